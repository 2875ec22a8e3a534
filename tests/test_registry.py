"""The op registry: ops declared once by their public functions, checked at
import time, dout checked in one place, and a context-local active backend."""
import re
import threading

import numpy as np
import pytest

import nnc
from nnc import backends, fast_layers, layers, optim

from conftest import BACKENDS


def test_registry_is_the_set_of_declared_public_functions():
    declared = backends.declared_ops()
    assert len(declared) == len(set(declared)) >= 40
    for name in declared:
        module = next(m for m in (layers, fast_layers, optim) if hasattr(m, name))
        assert getattr(module, name).__name__ == name
    assert sorted(declared) == nnc.implemented_ops("numpy")
    assert set(backends.declared_ops("forward")) == {
        n.replace("backward", "forward") for n in backends.declared_ops("backward")
        if n != "batchnorm_backward_alt"}
    assert "affine_forward" in declared and "embedding_backward" in declared


def test_a_misspelt_backend_function_fails_verification(monkeypatch):
    from nnc.backends import numpy_backend

    def affine_forwrd(x, w, b):  # a typo
        return x, ()
    affine_forwrd.__module__ = numpy_backend.__name__
    monkeypatch.setattr(numpy_backend, "affine_forwrd", affine_forwrd, raising=False)
    with pytest.raises(RuntimeError, match="affine_forwrd"):
        backends.verify()


def test_a_declared_op_missing_from_the_reference_fails_verification(monkeypatch):
    from nnc.backends import numpy_backend

    monkeypatch.delattr(numpy_backend, "tanh_backward")
    with pytest.raises(RuntimeError, match="tanh_backward"):
        backends.verify()


def test_declaring_an_op_twice_fails():
    def relu_forward(x):
        return x
    with pytest.raises(RuntimeError, match="declared twice"):
        backends.forward_op(relu_forward)


BACKWARDS = [
    (lambda: layers.affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.ones(4)),
     layers.affine_backward),
    (lambda: layers.relu_forward(np.ones((2, 3))), layers.relu_backward),
    (lambda: layers.layernorm_forward(np.eye(3), np.ones(3), np.zeros(3), {}),
     layers.layernorm_backward),
    (lambda: fast_layers.max_pool_forward_fast(
        np.ones((1, 1, 4, 4)), {"pool_height": 2, "pool_width": 2, "stride": 2}),
     fast_layers.max_pool_backward_fast),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("forward,backward", BACKWARDS)
def test_dout_is_checked_once_with_one_message(backend, forward, backward):
    with nnc.use_backend(backend):
        out, cache = forward()
        assert cache.out_shape == out.shape and cache.out_dtype == out.dtype
        bad = np.ones(out.shape[:-1] + (out.shape[-1] + 1,))
        msg = f"{backward.__name__}: dout has shape {bad.shape}, expected {out.shape}"
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            backward(bad, cache)
        with pytest.raises(ValueError, match=rf"^{backward.__name__}: dout must be "
                                             rf"{out.ndim}-D"):
            backward(np.ones(3), cache)
        with pytest.raises(TypeError, match=rf"^{backward.__name__}: dout must be a "
                                            rf"numpy.ndarray"):
            backward(out.tolist(), cache)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")
def test_use_backend_is_local_to_its_thread():
    """A thread inside ``use_backend('numpy')`` does not switch the backend of
    another thread, which keeps running on the process default."""
    nnc.set_backend("cpp")
    inside, checked = threading.Event(), threading.Event()
    seen = {}

    def switcher():
        with nnc.use_backend("numpy"):
            seen["switcher"] = nnc.get_backend()
            _, cache = layers.relu_forward(np.ones(3))
            seen["switcher_cache"] = cache.backend
            inside.set()
            checked.wait(10)
        seen["switcher_after"] = nnc.get_backend()

    def other():
        inside.wait(10)
        seen["other"] = nnc.get_backend()
        _, cache = layers.relu_forward(np.ones(3))
        seen["other_cache"] = cache.backend
        checked.set()

    threads = [threading.Thread(target=switcher), threading.Thread(target=other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"switcher": "numpy", "switcher_cache": "numpy", "other": "cpp",
                    "other_cache": "cpp", "switcher_after": "cpp"}
    assert nnc.get_backend() == "cpp"


def test_set_backend_sets_the_default_and_takes_effect_inside_use_backend():
    with nnc.use_backend("numpy"):
        nnc.set_backend(BACKENDS[-1])
        assert nnc.get_backend() == BACKENDS[-1]
    assert nnc.get_backend() == BACKENDS[-1]
    seen = []
    t = threading.Thread(target=lambda: seen.append(nnc.get_backend()))
    t.start()
    t.join()
    assert seen == [BACKENDS[-1]]

"""Issue 13: every public op takes, besides NumPy arrays, any CPU array that
exports ``__dlpack__``, without a copy, and returns NumPy arrays (which
``torch.from_dlpack`` takes back without a copy). Tested with a minimal
exporter everywhere and with PyTorch where it is installed."""
import numpy as np
import pytest

import nnc
from nnc import layers, optim

from conftest import ALL_BACKENDS


class Exporter:
    """A foreign array: only the DLPack protocol, over an ndarray's memory."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ops_take_dlpack_exporters(backend):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    with nnc.use_backend(backend):
        ref, ref_cache = layers.affine_forward(x, w, b)
        out, cache = layers.affine_forward(Exporter(x), Exporter(w), Exporter(b))
        assert isinstance(out, np.ndarray)
        np.testing.assert_array_equal(out, ref)
        dout = rng.standard_normal(out.shape)
        for g, r in zip(layers.affine_backward(Exporter(dout), cache),
                        layers.affine_backward(dout, ref_cache)):
            np.testing.assert_array_equal(g, r)
        # the update rule writes through the exporter into the caller's memory
        w0 = w.copy()
        next_w, _ = optim.sgd(Exporter(w), Exporter(np.ones_like(w)), {"learning_rate": 0.5})
        np.testing.assert_array_equal(w, w0 - 0.5)
        assert np.shares_memory(next_w, w)


def test_anything_else_is_a_type_error():
    with pytest.raises(TypeError, match=r"x must be a numpy.ndarray, got list \(any CPU array "
                                        r"with __dlpack__ works too\)"):
        layers.relu_forward([1.0, 2.0])



def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_torch_tensors_without_a_copy(backend):
    torch = _torch()
    x = torch.randn(6, 4, dtype=torch.float64)
    w = torch.randn(4, 3, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    with nnc.use_backend(backend):
        out, cache = layers.affine_forward(x, w, b)
        np.testing.assert_allclose(out, (x @ w + b).numpy(), rtol=1e-12)
        back = torch.from_dlpack(out)
        assert back.data_ptr() == out.ctypes.data          # handed back without a copy
        p = torch.ones(5, dtype=torch.float32)
        before = p.data_ptr()
        optim.sgd(p, torch.full((5,), 2.0), {"learning_rate": 0.25})
        assert p.data_ptr() == before and torch.all(p == 0.5)   # updated in place
        with pytest.raises(TypeError, match="DLPack"):
            layers.relu_forward(torch.ones(3, requires_grad=True))

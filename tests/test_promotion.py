"""Issue 14: both backends accept the same inputs. Every op of the registry
runs with each array input in turn made integer or float32 (the others
float64) on both backends: either both raise the same exception type, or
both return the same values in NumPy's promoted dtype."""
import numpy as np
import pytest

import nnc
from nnc.bench.suite import OPS, run_op

from conftest import needs_cpp

pytestmark = needs_cpp

CASES = []
for _name, _op in OPS.items():
    if _op.is_step and _name.endswith("_step"):
        continue  # whole training steps: their inputs are models, not arrays
    _inp = _op.make(_op.test_shapes[1 if len(_op.test_shapes) > 1 else 0], np.float64, seed=3)
    for _key, _value in _inp.items():
        if isinstance(_value, np.ndarray) and _value.dtype.kind == "f":
            for _kind in ("int", "float32"):
                CASES.append((_name, _key, _kind))


def _variant(op, key, kind):
    inp = op.make(op.test_shapes[1 if len(op.test_shapes) > 1 else 0], np.float64, seed=3)
    a = inp[key]
    inp[key] = np.round(4 * a).astype(np.int64) if kind == "int" else a.astype(np.float32)
    return inp


def _run(op, key, kind, backend):
    with nnc.use_backend(backend):
        try:
            return run_op(op, _variant(op, key, kind))
        except Exception as e:  # the exception itself is the result compared
            return e


@pytest.mark.parametrize("name,key,kind", CASES, ids=[f"{n}-{k}-{t}" for n, k, t in CASES])
def test_same_result_or_same_exception(name, key, kind):
    op = OPS[name]
    ref, got = _run(op, key, kind, "numpy"), _run(op, key, kind, "cpp")
    if isinstance(ref, Exception) or isinstance(got, Exception):
        assert type(ref) is type(got), f"numpy: {ref!r}; cpp: {got!r}"
        return
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert r.dtype == g.dtype, (r.dtype, g.dtype)
        # a loss comes back as a Python float whatever precision computed it
        computed32 = g.dtype == np.float32 or (g.ndim == 0 and kind == "float32")
        rtol = 1e-4 if computed32 else 1e-10
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol)


def test_promotion_follows_numpy():
    from nnc.layers import affine_forward

    x = np.arange(6).reshape(2, 3)
    for w_dtype, expected in ((np.float32, np.float64), (np.float64, np.float64),
                              (np.int32, np.float64)):
        w = np.ones((3, 2), w_dtype)
        for backend in nnc.available_backends():
            with nnc.use_backend(backend):
                out, _ = affine_forward(x, w, np.zeros(2, w_dtype))
            assert out.dtype == expected == np.result_type(x, w, 1.0)
    x32 = np.ones((2, 3), np.float32)
    for backend in nnc.available_backends():
        with nnc.use_backend(backend):
            assert affine_forward(x32, np.ones((3, 2), np.float32),
                                  np.zeros(2, np.float32))[0].dtype == np.float32

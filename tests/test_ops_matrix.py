"""Issue 4: every op of the shared registry (nnc.bench.suite), cpp against the
numpy reference, over dtype x the op's tail shapes. The benchmarks validate
with the same registry before they time anything."""
import numpy as np
import pytest

import nnc
from nnc.bench.harness import compare
from nnc.bench.suite import OPS, run_op

from conftest import BACKENDS

pytestmark = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")

CASES = [(name, shape) for name, op in OPS.items() for shape in op.test_shapes]


def _run(op, shape, dtype, backend):
    with nnc.use_backend(backend):
        return run_op(op, op.make(shape, dtype, seed=7))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_cpp_matches_reference(name, shape, dtype):
    op = OPS[name]
    gaps = [n for n in op.needs if n not in nnc.implemented_ops("cpp")]
    if gaps:
        pytest.skip(f"cpp backend lacks {gaps}")   # test_cpp_backend_is_complete fails for these
    ref = _run(op, shape, dtype, "numpy")
    got = _run(op, shape, dtype, "cpp")
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert g.shape == r.shape
        if g.dtype.kind == "f" and g.ndim:
            assert g.dtype == dtype
    ok, err = compare(ref, got, dtype)
    assert ok, f"{name} {shape} {np.dtype(dtype).name}: max relative error {err:.3e}"


def test_cpp_backend_is_complete():
    """The native backend implements every op of the reference (the *_naive
    teaching loops are not registry ops: they always run in NumPy)."""
    assert nnc.missing_ops("cpp") == []
    assert nnc.implemented_ops("cpp") == nnc.implemented_ops("numpy")


def test_missing_op_raises_not_implemented(monkeypatch):
    """A backend without an op says so; it never falls back to another backend."""
    from nnc.backends import cpp_backend
    from nnc.layers import relu_forward

    monkeypatch.delattr(cpp_backend, "relu_forward")
    assert "relu_forward" in nnc.missing_ops("cpp")
    with nnc.use_backend("cpp"):
        with pytest.raises(NotImplementedError, match="relu_forward is not implemented by the 'cpp'"):
            relu_forward(np.ones(3))

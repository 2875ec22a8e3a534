"""Issue 2: the registry, build info, threads, and affine end to end in both backends."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nnc
from nnc.layers import affine_backward, affine_forward

from conftest import BACKENDS, DTYPES, needs_cpp, num_grad

AFFINE_SHAPES = [((1, 5), 3), ((4, 7), 1), ((10, 3, 4), 6), ((2, 4, 5, 6), 3), ((33, 65), 17)]


def _affine_inputs(xshape, M, dtype, seed=0):
    rng = np.random.default_rng(seed)
    D = int(np.prod(xshape[1:]))
    return (rng.standard_normal(xshape).astype(dtype), rng.standard_normal((D, M)).astype(dtype),
            rng.standard_normal(M).astype(dtype), rng.standard_normal((xshape[0], M)).astype(dtype))


# --- registry ---------------------------------------------------------------

def test_available_backends():
    assert nnc.available_backends()[0] == "numpy"
    assert set(nnc.available_backends()) <= {"numpy", "cpp"}


@needs_cpp
def test_default_backend_is_cpp_and_both_listed():
    assert nnc.available_backends() == ["numpy", "cpp"]
    code = "import nnc; print(nnc.get_backend())"
    env = {k: v for k, v in os.environ.items() if k != "NNC_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "cpp", out.stderr


def test_set_get_backend():
    nnc.set_backend("numpy")
    assert nnc.get_backend() == "numpy"
    for name in BACKENDS:
        nnc.set_backend(name)
        assert nnc.get_backend() == name


def test_use_backend_restores_on_exit_and_on_exception():
    nnc.set_backend(BACKENDS[-1])
    with nnc.use_backend("numpy"):
        assert nnc.get_backend() == "numpy"
    assert nnc.get_backend() == BACKENDS[-1]
    with pytest.raises(RuntimeError):
        with nnc.use_backend("numpy"):
            raise RuntimeError("boom")
    assert nnc.get_backend() == BACKENDS[-1]


def test_unknown_backend_lists_available():
    with pytest.raises(ValueError, match="available backends.*numpy"):
        nnc.set_backend("torch")
    with pytest.raises(ValueError):
        with nnc.use_backend("cuda"):
            pass


def test_env_var_picks_default():
    env = dict(os.environ, NNC_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", "import nnc; print(nnc.get_backend())"], env=env,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "numpy", out.stderr
    env["NNC_BACKEND"] = "nope"
    out = subprocess.run([sys.executable, "-c", "import nnc"], env=env, capture_output=True,
                         text=True)
    assert out.returncode != 0 and "unknown backend 'nope'" in out.stderr


def test_swap_reaches_names_imported_before():
    x, w, b, _ = _affine_inputs((3, 4), 2, np.float64)
    for name in BACKENDS:
        with nnc.use_backend(name):
            _, cache = affine_forward(x, w, b)
            assert cache.backend == name


@needs_cpp
def test_cache_from_other_backend_is_refused():
    x, w, b, dout = _affine_inputs((3, 4), 2, np.float64)
    with nnc.use_backend("numpy"):
        _, cache = affine_forward(x, w, b)
    with nnc.use_backend("cpp"):
        with pytest.raises(ValueError, match="made by the 'numpy' backend"):
            affine_backward(dout, cache)


def test_backward_rejects_foreign_cache_object():
    x, w, b, dout = _affine_inputs((3, 4), 2, np.float64)
    with pytest.raises(TypeError, match="cache"):
        affine_backward(dout, (x, w, b))


def test_implemented_ops_lists_affine_for_every_backend():
    for name in BACKENDS:
        ops = nnc.implemented_ops(name)
        assert "affine_forward" in ops and "affine_backward" in ops
    assert nnc.missing_ops("numpy") == []


# --- build info and threads ---------------------------------------------------

@needs_cpp
def test_build_info():
    info = nnc.build_info()
    for key in ("version", "blas", "gemm", "openmp", "simd", "compiler", "num_threads"):
        assert key in info
    assert info["version"] == nnc.__version__
    assert "OpenBLAS" in info["blas"]
    assert info["gemm"] in ("nnc", "openblas")
    assert info["openmp"] is True
    assert info["num_threads"] >= 1


def test_set_num_threads_round_trip():
    before = nnc.get_num_threads()
    try:
        nnc.set_num_threads(1)
        assert nnc.get_num_threads() == 1
        nnc.set_num_threads(2)
        assert nnc.get_num_threads() == 2
    finally:
        nnc.set_num_threads(before)
    for bad, exc in [(0, ValueError), (-3, ValueError), (1.5, TypeError), ("2", TypeError)]:
        with pytest.raises(exc):
            nnc.set_num_threads(bad)


def test_omp_num_threads_sets_default():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", "import nnc; print(nnc.get_num_threads())"],
                         env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_same_as_one(dtype):
    x, w, b, dout = _affine_inputs((300, 257), 129, dtype)
    before = nnc.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            nnc.set_num_threads(n)
            with nnc.use_backend("cpp"):
                out, cache = affine_forward(x, w, b)
                results.append((out, *affine_backward(dout, cache)))
    finally:
        nnc.set_num_threads(before)
    # OpenBLAS splits the GEMM differently per thread count: same values up to rounding.
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=rtol, atol=rtol * np.abs(b_).max())


# --- affine ---------------------------------------------------------------------

def test_affine_golden(backend):
    num_inputs, input_shape, output_dim = 2, (4, 5, 6), 3
    input_size = num_inputs * np.prod(input_shape)
    weight_size = output_dim * np.prod(input_shape)
    x = np.linspace(-0.1, 0.5, num=input_size).reshape(num_inputs, *input_shape)
    w = np.linspace(-0.2, 0.3, num=weight_size).reshape(np.prod(input_shape), output_dim)
    b = np.linspace(-0.3, 0.1, num=output_dim)
    out, _ = affine_forward(x, w, b)
    expected = np.array([[1.49834967, 1.70660132, 1.91485297],
                         [3.25553199, 3.51413270, 3.77273342]])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)
    err = np.max(np.abs(out - expected) / np.maximum(1e-8, np.abs(out) + np.abs(expected)))
    assert err < 1e-9


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,M", AFFINE_SHAPES)
def test_affine_cpp_matches_numpy(xshape, M, dtype):
    x, w, b, dout = _affine_inputs(xshape, M, dtype)
    res = {}
    for name in ("numpy", "cpp"):
        with nnc.use_backend(name):
            out, cache = affine_forward(x, w, b)
            res[name] = (out, *affine_backward(dout, cache))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for a, r in zip(res["cpp"], res["numpy"]):
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, r, **tol)
    assert res["cpp"][1].shape == x.shape


def test_affine_gradcheck(backend):
    x, w, b, dout = _affine_inputs((3, 2, 3), 4, np.float64, seed=1)
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    np.testing.assert_allclose(dx, num_grad(lambda v: affine_forward(v, w, b)[0], x, dout),
                               rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(dw, num_grad(lambda v: affine_forward(x, v, b)[0], w, dout),
                               rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(db, num_grad(lambda v: affine_forward(x, w, v)[0], b, dout),
                               rtol=1e-8, atol=1e-9)


def test_affine_noncontiguous_and_inputs_untouched(backend):
    rng = np.random.default_rng(3)
    big = rng.standard_normal((6, 8, 5))
    x = big[:, ::2, :]                    # non-contiguous view
    w = np.asfortranarray(rng.standard_normal((20, 3)))
    b = rng.standard_normal(3)
    copies = [a.copy() for a in (big, w, b)]
    out, cache = affine_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(6, -1) @ w + b, rtol=1e-12)
    dx, dw, db = affine_backward(np.ones_like(out), cache)
    np.testing.assert_allclose(dw, x.reshape(6, -1).T @ np.ones_like(out), rtol=1e-12)
    for a, c in zip((big, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("args,exc,match", [
    ((np.zeros(5), np.zeros((5, 2)), np.zeros(2)), ValueError, "D=1"),
    ((np.zeros((2, 5)), np.zeros(5), np.zeros(2)), ValueError, "w must be 2-D"),
    ((np.zeros((2, 5)), np.zeros((4, 2)), np.zeros(2)), ValueError, r"\(2, 5\).*\(4, 2\)"),
    ((np.zeros((2, 5)), np.zeros((5, 2)), np.zeros(3)), ValueError, r"b has shape \(3,\)"),
    ((np.zeros((2, 5)), np.zeros((5, 2)), np.zeros((2, 1))), ValueError, "b must be 1-D"),
    (([[1.0]], np.zeros((1, 2)), np.zeros(2)), TypeError, "numpy.ndarray"),
])
def test_affine_bad_input(backend, args, exc, match):
    with pytest.raises(exc, match=match):
        affine_forward(*args)


def test_affine_backward_bad_dout(backend):
    x, w, b, dout = _affine_inputs((3, 4), 2, np.float64)
    _, cache = affine_forward(x, w, b)
    with pytest.raises(ValueError, match="dout"):
        affine_backward(dout[:, :1], cache)
    with pytest.raises(ValueError, match="dout must be 2-D"):
        affine_backward(dout.ravel(), cache)


@pytest.mark.parametrize("backend", BACKENDS)
def test_affine_dtypes(backend):
    """NumPy's promotion: int x with float64 w computes in float64, float16
    in float32; wider floats are refused; dout takes the forward's dtype."""
    x, w, b, _ = _affine_inputs((3, 4), 2, np.float64)
    xi = np.arange(12).reshape(3, 4)
    with nnc.use_backend(backend):
        out, _ = affine_forward(xi, w, b)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out, xi.astype(float) @ w + b, rtol=1e-13)
        out, _ = affine_forward(x, w.astype(np.float32), b)
        assert out.dtype == np.float64
        out, _ = affine_forward(x.astype(np.float16), w.astype(np.float16), b.astype(np.float16))
        assert out.dtype == np.float32
        with pytest.raises(TypeError, match="float32 or float64"):
            affine_forward(x.astype(np.longdouble), w, b)
        _, cache = affine_forward(x, w, b)
        assert affine_backward(np.ones((3, 2), np.float32), cache)[0].dtype == np.float64

"""relu / tanh / sigmoid: golden values, native vs reference, gradients,
special values and bad inputs, on both backends."""
import warnings

import numpy as np
import pytest

import nnc
from nnc import layers

from conftest import ALL_BACKENDS as BACKENDS
from conftest import needs_cpp, rel_error
from conftest import tol as conftest_tol

DTYPES = [np.float32, np.float64]
NAMES = ["relu", "tanh", "sigmoid"]
# Sizes with SIMD tails on purpose; 1000003 elements crosses the threaded path.
SHAPES = [(1,), (7,), (17,), (3, 5, 7), (1000003,)]



def fwd(name):
    return getattr(layers, name + "_forward")


def bwd(name):
    return getattr(layers, name + "_backward")



def tol(dtype):
    return conftest_tol(dtype, atol=0) if dtype == np.float64 else conftest_tol(dtype)


def numeric_grad(f, x, dout, h=1e-5):
    """Central differences of sum(f(x) * dout) with respect to x."""
    grad = np.zeros_like(x)
    flat, g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        pos = f(x).copy()
        flat[i] = old - h
        neg = f(x).copy()
        flat[i] = old
        g[i] = np.sum((pos - neg) * dout) / (2 * h)
    return grad


def run(backend, name, x, dout):
    with nnc.use_backend(backend):
        out, cache = fwd(name)(x)
        return out, bwd(name)(dout, cache)


# Golden 1.2 (CS231n relu_forward check).
@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_forward_golden(backend):
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    expected = np.array([[0.00000000, 0.00000000, 0.00000000, 0.00000000],
                         [0.00000000, 0.00000000, 0.04545455, 0.13636364],
                         [0.22727273, 0.31818182, 0.40909091, 0.50000000]])
    with nnc.use_backend(backend):
        out, _ = layers.relu_forward(x)
    assert rel_error(out, expected) < 1e-7
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


@needs_cpp
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_native_matches_reference(name, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    x0, d0 = x.copy(), dout.copy()
    out_np, dx_np = run("numpy", name, x, dout)
    out_c, dx_c = run("cpp", name, x, dout)
    assert out_c.dtype == dtype and dx_c.dtype == dtype
    assert out_c.shape == shape and dx_c.shape == shape
    np.testing.assert_allclose(out_c, out_np, **tol(dtype))
    # 1 - out**2 and out * (1 - out) cancel where out is near 1, so the
    # forward's last-ulp differences grow there: an absolute floor of a few
    # ulp of |dout| ~ 1 covers it. Given the same cache the kernels differ only
    # by rounding (the native one fuses 1 - out*out into one FMA).
    np.testing.assert_allclose(dx_c, dx_np, rtol=tol(dtype)["rtol"],
                               atol=1e-14 if dtype == np.float64 else 1e-5)
    if name != "relu":
        with nnc.use_backend("cpp"):
            dx_same_cache = getattr(nnc._nnc, name + "_backward")(dout, out_np)
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(dx_same_cache, dx_np, rtol=4 * eps,
                                   atol=8 * eps * np.abs(dout).max())
    np.testing.assert_array_equal(x, x0)  # inputs untouched
    np.testing.assert_array_equal(dout, d0)


@needs_cpp
@pytest.mark.parametrize("name", NAMES)
def test_native_non_contiguous_and_0d(name):
    x = np.random.default_rng(1).standard_normal((6, 10))[:, ::3]
    d = np.ones_like(x)
    for a, b in zip(run("numpy", name, x, d), run("cpp", name, x, d)):
        np.testing.assert_allclose(b, a, rtol=1e-10)
    s = np.array(0.7)
    out_np, dx_np = run("numpy", name, s, np.array(2.0))
    out_c, dx_c = run("cpp", name, s, np.array(2.0))
    assert out_c.shape == () and dx_c.shape == ()
    np.testing.assert_allclose([out_c, dx_c], [out_np, dx_np], rtol=1e-12)
    empty = np.zeros((0, 3))
    out_c, dx_c = run("cpp", name, empty, empty)
    assert out_c.shape == (0, 3) and dx_c.shape == (0, 3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_gradient_check(backend, name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7))
    x[np.abs(x) < 1e-2] = 0.5  # keep relu away from its kink
    dout = rng.standard_normal((4, 7))
    with nnc.use_backend(backend):
        _, cache = fwd(name)(x)
        dx = bwd(name)(dout, cache)
        dx_num = numeric_grad(lambda v: fwd(name)(v)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_without_warnings(backend, dtype):
    big = np.finfo(dtype).max
    x = np.array([-np.inf, -big, -1e4, -800.0, -100.0, -0.0, 0.0, 1e-30, 100.0, 800.0, 1e4,
                  big, np.inf, np.nan], dtype=dtype)
    with nnc.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")
        relu, _ = layers.relu_forward(x)
        tanh, _ = layers.tanh_forward(x)
        sig, _ = layers.sigmoid_forward(x)
    assert relu.dtype == tanh.dtype == sig.dtype == dtype
    np.testing.assert_array_equal(relu[:6], 0)
    np.testing.assert_array_equal(relu[7:-1], x[7:-1])
    assert np.isnan(relu[-1]) and np.isnan(tanh[-1]) and np.isnan(sig[-1])
    np.testing.assert_array_equal(tanh[:5], -1)
    np.testing.assert_array_equal(tanh[8:-1], 1)
    assert tanh[6] == 0 and np.signbit(tanh[5]) and tanh[7] == dtype(1e-30)
    np.testing.assert_array_equal(sig[:4], 0)
    np.testing.assert_array_equal(sig[9:-1], 1)
    assert sig[5] == sig[6] == 0.5
    # sigmoid(-100) = 3.72e-44: a subnormal in float32, with few digits left
    assert sig[4] == pytest.approx(np.exp(-100.0), rel=1e-12 if dtype == np.float64 else 0.05)


@needs_cpp
@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="needs an extended long double")
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_tanh_sigmoid_within_few_ulp(dtype):
    # Against an extended-precision reference; NumPy's own functions are
    # within about 1-3 ulp of it too.
    rng = np.random.default_rng(7)
    lo = -300 if dtype == np.float64 else -30
    x = np.concatenate([3 * rng.standard_normal(20000), np.logspace(lo, 2.5, 4000),
                        -np.logspace(lo, 2.5, 4000), rng.uniform(-40, 40, 20000)]).astype(dtype)
    xl = x.astype(np.longdouble)
    ref = {"tanh": np.tanh(xl),
           "sigmoid": np.where(xl >= 0, 1 / (1 + np.exp(-xl)), np.exp(xl) / (1 + np.exp(xl)))}
    with nnc.use_backend("cpp"):
        got = {"tanh": layers.tanh_forward(x)[0], "sigmoid": layers.sigmoid_forward(x)[0]}
    for name in got:
        ulp = np.spacing(np.abs(ref[name]).astype(dtype)).astype(np.longdouble)
        err = np.abs(got[name].astype(np.longdouble) - ref[name]) / ulp
        assert err.max() <= 4, name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs(backend, name):
    x = np.random.default_rng(0).standard_normal((3, 4))
    with nnc.use_backend(backend):
        with pytest.raises(TypeError, match="x"):
            fwd(name)(x.tolist())
        with pytest.raises(TypeError, match="x"):
            fwd(name)(x.astype(np.complex128))
        _, cache = fwd(name)(x)
        with pytest.raises(ValueError, match=r"\(3, 5\)"):
            bwd(name)(np.ones((3, 5)), cache)
        with pytest.raises(TypeError, match="dout"):
            bwd(name)(np.ones((3, 4), dtype=bool), cache)
        with pytest.raises(TypeError, match="cache"):
            bwd(name)(np.ones((3, 4)), tuple(cache))
    other = "cpp" if backend == "numpy" else "numpy"
    if other in nnc.available_backends():
        with nnc.use_backend(other), pytest.raises(ValueError, match="backend"):
            bwd(name)(np.ones((3, 4)), cache)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_other_dtypes(backend, name):
    """float16 computes in float32, wider floats are refused, and a dout of
    another dtype is converted to the forward's (gradients keep its dtype)."""
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    with nnc.use_backend(backend):
        out, _ = fwd(name)(x.astype(np.float16))
        assert out.dtype == np.float32
        with pytest.raises(TypeError, match="float32 or float64"):
            fwd(name)(x.astype(np.longdouble))
        _, cache = fwd(name)(x)
        dx = bwd(name)(np.ones((2, 3), dtype=np.float32), cache)
        assert dx.dtype == np.float64
        np.testing.assert_array_equal(dx, bwd(name)(np.ones((2, 3)), cache))

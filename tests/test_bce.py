"""Issue 10: bce_loss on logits (against extended-precision references at
extreme logits, native vs reference, gradients, bad inputs) and the softmax /
log_softmax helpers."""
import functools
import warnings

import numpy as np
import pytest

import nnc
from nnc.gradient_check import eval_numerical_gradient
from nnc.layers import bce_loss, log_softmax, softmax

from conftest import BACKENDS, DTYPES, rel_error

needs_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")

EXTREME = np.array([1e4, -1e4, 30.0, -30.0, 0.0, 700.0, -700.0, 1e-8, -1e-8, 5.0])
TARGETS = [0.0, 1.0, 0.5, 0.25, 1 - 2.0 ** -30]


def extreme_inputs():
    x = np.repeat(EXTREME, len(TARGETS))
    y = np.tile(TARGETS, len(EXTREME))
    return x, y


def reference_longdouble(x, y):
    """Per-element loss -(y log sigmoid(x) + (1 - y) log sigmoid(-x)) in long
    double, written the direct way: exp(1e4) ~ 1e4343 fits in the 80-bit
    format, so log sigmoid(x) = -log1p(exp(-x)) needs no max trick. dx is
    sigmoid(x) - y with the subtraction done where it does not cancel."""
    x, y = x.astype(np.longdouble), y.astype(np.longdouble)
    per = y * np.log1p(np.exp(-x)) + (1 - y) * np.log1p(np.exp(x))
    q = 1 / (1 + np.exp(np.abs(x)))           # sigmoid(-|x|)
    dx = np.where(x >= 0, (1 - y) - q, q - y)
    return per, dx


def within(got, ref, tol, floor):
    """|got - ref| <= tol * |ref| + floor, elementwise."""
    got, ref = np.asarray(got, np.longdouble), np.asarray(ref, np.longdouble)
    return bool(np.all(np.abs(got - ref) <= tol * np.abs(ref) + floor))


def dx_floor(y, dtype):
    """What no formula can beat for dx = sigmoid(x) - y: values below the
    smallest normal number lose relative accuracy, and where sigmoid(x) is
    close to a y strictly inside (0, 1) the difference cancels, to one ulp of
    y. For y = 0 or 1 (labels) the floor is tiny: the result must be
    accurate to its own size, e.g. -9.4e-14 for x = 30, y = 1."""
    fi = np.finfo(dtype)
    return fi.tiny + fi.eps * np.minimum(y, 1 - y).astype(np.float64)


@pytest.mark.skipif(np.finfo(np.longdouble).eps > 1e-18, reason="long double is double here")
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_against_long_double(backend, dtype):
    x, y = extreme_inputs()
    x, y = x.astype(dtype), y.astype(dtype)   # (float32 rounds 1 - 2**-30 to 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # no overflow, no log(0), no invalid value
        loss, dx = bce_loss(x, y)
        per_elem = [bce_loss(x[i:i + 1], y[i:i + 1]) for i in range(x.size)]
    per, dx1 = reference_longdouble(x, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dx)) and dx.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-15
    tiny = np.finfo(dtype).tiny
    assert within(loss, per.mean(), tol, 0)
    assert within(dx, dx1 / x.size, tol, dx_floor(y, dtype) / x.size)
    # one element at a time, so small losses are not hidden by large ones
    assert within([l for l, _ in per_elem], per, tol, tiny)
    assert within([d[0] for _, d in per_elem], dx1, tol, dx_floor(y, dtype))


@functools.lru_cache(maxsize=None)
def mpmath_reference(xi, yi):
    """(loss, dx) of one element by the naive textbook formulas, with enough
    digits to resolve 1 - sigmoid(x) ~ e^-|x| against 1 (4400 for |x| = 1e4)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(int(abs(xi) / 2.3) + 60):
        X, Y = mpmath.mpf(xi), mpmath.mpf(yi)
        sig = 1 / (1 + mpmath.exp(-X))
        loss = -(Y * mpmath.log(sig) + (1 - Y) * mpmath.log(1 - sig))
        return float(loss), float(sig - Y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_extreme_element_against_mpmath(backend, dtype):
    x, y = extreme_inputs()
    x, y = x.astype(dtype), y.astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-15
    tiny = np.finfo(dtype).tiny
    for xi, yi, floor in zip(x, y, dx_floor(y, dtype)):
        loss, dx = bce_loss(np.array([xi]), np.array([yi]))
        ref, ref_dx = mpmath_reference(float(xi), float(yi))
        assert abs(loss - ref) <= tol * abs(ref) + tiny, (xi, yi, loss, ref)
        assert abs(float(dx[0]) - ref_dx) <= tol * abs(ref_dx) + floor, (xi, yi, dx[0], ref_dx)


def test_exact_values(backend):
    loss, dx = bce_loss(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    assert loss == pytest.approx(np.log(2), abs=1e-16)
    np.testing.assert_allclose(dx, [-0.25, 0.25], rtol=1e-16)
    # a very confident right answer costs (almost) nothing, a wrong one |x|
    loss, _ = bce_loss(np.array([1e4, -1e4]), np.array([1.0, 0.0]))
    assert loss == 0.0
    loss, _ = bce_loss(np.array([1e4, -1e4]), np.array([0.0, 1.0]))
    assert loss == 1e4


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 17), (200, 1), (64, 257), (5, 3, 7), ()])
def test_native_matches_reference(shape, dtype):
    rng = np.random.default_rng(sum(shape) + 1)
    x = np.asarray(4 * rng.standard_normal(shape), dtype=dtype)
    y = np.asarray(rng.random(shape), dtype=dtype)
    y[rng.random(shape) < 0.3] = 1.0
    res = {}
    for b in ("numpy", "cpp"):
        with nnc.use_backend(b):
            res[b] = bce_loss(x, y)
    (l_np, dx_np), (l_c, dx_c) = res["numpy"], res["cpp"]
    assert type(l_c) is float and dx_c.dtype == dtype and dx_c.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert abs(l_c - l_np) <= tol * abs(l_np)
    # |dx| <= 1/n, and sigmoid(x) - y cancels where they are close: compare on that scale
    assert np.max(np.abs(dx_c.astype(np.float64) - dx_np)) * x.size < tol


def test_gradient_check(backend):
    rng = np.random.default_rng(0)
    x = 3 * rng.standard_normal((4, 5))
    y = rng.random((4, 5))
    _, dx = bce_loss(x, y)
    dx_num = eval_numerical_gradient(lambda x_: bce_loss(x_, y)[0], x, verbose=False)
    assert rel_error(dx, dx_num) < 1e-8


def test_integer_targets_and_promotion(backend):
    x = np.array([[1.0, -2.0]], dtype=np.float32)
    loss, dx = bce_loss(x, np.array([[1, 0]], dtype=np.uint8))
    assert dx.dtype == np.float32        # float32 with uint8 stays float32 under NumPy's rules
    expected = np.log1p(np.exp(-1.0)) + np.log1p(np.exp(-2.0))
    assert loss == pytest.approx(expected / 2, rel=1e-6)


@pytest.mark.parametrize("x,y,exc,msg", [
    (np.zeros(3), np.array([0.0, 1.5, 0.0]), ValueError,
     r"bce_loss: y must hold targets in \[0, 1\], got y\[1\] = 1.5"),
    (np.zeros(2), np.array([-0.1, 0.0]), ValueError, r"got y\[0\] = -0.1"),
    (np.zeros(2), np.array([0.0, np.nan]), ValueError, r"got y\[1\] = nan"),
    (np.zeros((2, 2)), np.array([[0, 0], [0, 2]]), ValueError, r"got y\[1, 1\] = 2"),
    (np.zeros(3), np.zeros(2), ValueError, r"x has shape \(3,\) but y has shape \(2,\)"),
    (np.zeros((3, 1)), np.zeros(3), ValueError, r"x has shape \(3, 1\) but y has shape \(3,\)"),
    (np.zeros(0), np.zeros(0), ValueError, r"bce_loss: x is empty \(shape \(0,\)\)"),
    ([0.0], np.zeros(1), TypeError, r"x must be a numpy.ndarray, got list"),
    (np.zeros(1), [0.0], TypeError, r"y must be a numpy.ndarray, got list"),
    (np.zeros(1, dtype=bool), np.zeros(1), TypeError, r"x must hold real numbers"),
])
def test_bad_inputs(backend, x, y, exc, msg):
    copies = [np.copy(a) for a in (x, y)]
    with pytest.raises(exc, match=msg):
        bce_loss(x, y)
    for a, c in zip((x, y), copies):
        np.testing.assert_array_equal(a, c)


# --- softmax, log_softmax (plain NumPy functions on both backends) ---

@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_survives_huge_logits(dtype):
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4 - 1], [-1e4, -1e4, -1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = softmax(x)
        lp = log_softmax(x)
    assert p.dtype == dtype and lp.dtype == dtype
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
    np.testing.assert_array_equal(p[0], [1, 0, 0])
    np.testing.assert_allclose(p[2], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(lp[0], [0, -1e4, -2e4], rtol=1e-6)   # no -inf where p underflows
    e = np.exp(-1.0)
    np.testing.assert_allclose(lp[1], np.log(np.array([1, 1, e]) / (2 + e)), rtol=1e-6)


def test_softmax_matches_definition_and_axis():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7))
    ref = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax(x), ref, rtol=1e-14)
    np.testing.assert_allclose(log_softmax(x), np.log(ref), rtol=1e-13)
    np.testing.assert_allclose(softmax(x[0, 0]), ref[0, 0], rtol=1e-14)   # 1-D works too


@pytest.mark.parametrize("fn", [softmax, log_softmax])
def test_softmax_bad_inputs(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: x has an empty last axis"):
        fn(np.zeros((2, 0)))
    with pytest.raises(ValueError, match=r"x must have at least 1 dims"):
        fn(np.array(1.0))
    with pytest.raises(TypeError, match=r"x must be a numpy.ndarray"):
        fn([1.0, 2.0])

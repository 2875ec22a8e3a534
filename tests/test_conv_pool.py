"""Convolution and max pooling: golden values, every fast variant of both
backends against the naive loops, gradient checks, ties, bad input,
non-contiguous input, and concurrent native calls."""
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nnc
from nnc import fast_layers as fl
from nnc.gradient_check import eval_numerical_gradient_array
from nnc.layers import (conv_backward_naive, conv_forward_naive, max_pool_backward_naive,
                        max_pool_forward_naive)

from conftest import BACKENDS, native_threads, needs_cpp, rel_error
from conftest import tol as conftest_tol

DTYPES = [np.float32, np.float64]

CONV_VARIANTS = {
    "im2col": (fl.conv_forward_im2col, fl.conv_backward_im2col),
    "strides": (fl.conv_forward_strides, fl.conv_backward_strides),
    "fast": (fl.conv_forward_fast, fl.conv_backward_fast),
}
POOL_VARIANTS = {
    "im2col": (fl.max_pool_forward_im2col, fl.max_pool_backward_im2col),
    "fast": (fl.max_pool_forward_fast, fl.max_pool_backward_fast),
    "reshape": (fl.max_pool_forward_reshape, fl.max_pool_backward_reshape),
}



def tol(dtype):
    # a conv output sums C*HH*WW float32 products: a looser absolute floor
    return conftest_tol(dtype, atol=1e-4) if dtype == np.float32 else conftest_tol(dtype)


def tiles(ph, pw, stride, H, W):
    return ph == pw == stride and H % ph == 0 and W % pw == 0


@pytest.fixture(params=BACKENDS)
def backend(request):
    with nnc.use_backend(request.param):
        yield request.param


# --- golden values (/work/shared/spec/golden-values.md 1.3 and 1.4) ---

CONV_GOLDEN = np.array([[[[-0.08759809, -0.10987781],
                          [-0.18387192, -0.21092160]],
                         [[0.21027089, 0.21661097],
                          [0.22847626, 0.23004637]],
                         [[0.50813986, 0.54309974],
                          [0.64082444, 0.67101435]]],
                        [[[-0.98053589, -1.03143541],
                          [-1.19128892, -1.24695841]],
                         [[0.69108355, 0.66880383],
                          [0.59480972, 0.56776003]],
                         [[2.36270298, 2.36904306],
                          [2.38090835, 2.38247847]]]])

POOL_GOLDEN = np.array([[[[-0.26315789, -0.24842105],
                          [-0.20421053, -0.18947368]],
                         [[-0.14526316, -0.13052632],
                          [-0.08631579, -0.07157895]],
                         [[-0.02736842, -0.01263158],
                          [0.03157895, 0.04631579]]],
                        [[[0.09052632, 0.10526316],
                          [0.14947368, 0.16421053]],
                         [[0.20842105, 0.22315789],
                          [0.26736842, 0.28210526]],
                         [[0.32631579, 0.34105263],
                          [0.38526316, 0.40000000]]]])


def golden_conv_inputs():
    x_shape, w_shape = (2, 3, 4, 4), (3, 3, 4, 4)
    x = np.linspace(-0.1, 0.5, num=np.prod(x_shape)).reshape(x_shape)
    w = np.linspace(-0.2, 0.3, num=np.prod(w_shape)).reshape(w_shape)
    b = np.linspace(-0.1, 0.2, num=3)
    return x, w, b, {"stride": 2, "pad": 1}


def golden_pool_inputs():
    x_shape = (2, 3, 4, 4)
    x = np.linspace(-0.3, 0.4, num=np.prod(x_shape)).reshape(x_shape)
    return x, {"pool_width": 2, "pool_height": 2, "stride": 2}


def test_conv_forward_naive_golden():
    out, _ = conv_forward_naive(*golden_conv_inputs())
    assert out.shape == (2, 3, 2, 2)
    assert rel_error(out, CONV_GOLDEN) < 1e-7
    np.testing.assert_allclose(out, CONV_GOLDEN, rtol=0, atol=1e-8)


def test_max_pool_forward_naive_golden():
    out, _ = max_pool_forward_naive(*golden_pool_inputs())
    assert out.shape == (2, 3, 2, 2)
    assert rel_error(out, POOL_GOLDEN) < 1e-7
    np.testing.assert_allclose(out, POOL_GOLDEN, rtol=0, atol=1e-8)


@pytest.mark.parametrize("variant", CONV_VARIANTS)
def test_conv_fast_golden(backend, variant):
    out, _ = CONV_VARIANTS[variant][0](*golden_conv_inputs())
    assert rel_error(out, CONV_GOLDEN) < 1e-7
    np.testing.assert_allclose(out, CONV_GOLDEN, rtol=0, atol=1e-8)


@pytest.mark.parametrize("variant", POOL_VARIANTS)
def test_pool_fast_golden(backend, variant):
    out, _ = POOL_VARIANTS[variant][0](*golden_pool_inputs())
    np.testing.assert_allclose(out, POOL_GOLDEN, rtol=0, atol=1e-8)


# --- every variant against the naive loops ---

# (N, C, H, W, F, HH, WW, stride, pad); each filter tiles its padded input.
CONV_CASES = [
    (1, 3, 7, 7, 2, 3, 3, 1, 1),      # N=1
    (2, 1, 11, 13, 3, 3, 5, 2, 1),    # rectangular 3x5 kernel, prime H and W
    (3, 5, 13, 7, 4, 7, 7, 3, 3),     # 7x7, stride 3, pad 3, non-square input
    (2, 17, 5, 9, 5, 1, 1, 1, 0),     # 1x1 kernel, 17 channels
    (3, 2, 9, 9, 4, 5, 5, 2, 0),      # 5x5, stride 2, no pad
    (5, 4, 6, 9, 3, 3, 3, 3, 0),      # stride 3, several images per block
    (4, 3, 4, 4, 6, 3, 3, 1, 3),      # pad larger than half the kernel
    (2, 3, 5, 3, 2, 5, 3, 1, 0),      # the kernel is the whole input
    (2, 64, 32, 32, 8, 3, 3, 1, 1),   # native: several column tiles per image, ragged last
    (1, 64, 32, 32, 8, 3, 3, 1, 1),   # the same for N=1 (native: threads share each tile)
    (3, 40, 33, 33, 4, 3, 3, 2, 1),   # the same with stride 2
]


def conv_data(case, dtype, seed=0):
    N, C, H, W, F, HH, WW, stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, HH, WW)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Hout = 1 + (H + 2 * pad - HH) // stride
    Wout = 1 + (W + 2 * pad - WW) // stride
    dout = rng.standard_normal((N, F, Hout, Wout)).astype(dtype)
    return x, w, b, {"stride": stride, "pad": pad}, dout


def naive_conv_f64(x, w, b, conv_param, dout):
    """The naive loops in float64 on the same (possibly float32) values."""
    f64 = [a.astype(np.float64) for a in (x, w, b, dout)]
    out, cache = conv_forward_naive(*f64[:3], conv_param)
    return (out,) + conv_backward_naive(f64[3], cache)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("variant", CONV_VARIANTS)
def test_conv_variants_match_naive(backend, variant, case, dtype):
    x, w, b, conv_param, dout = conv_data(case, dtype)
    expected = naive_conv_f64(x, w, b, conv_param, dout)
    forward, backward = CONV_VARIANTS[variant]
    out, cache = forward(x, w, b, conv_param)
    grads = backward(dout, cache)
    for name, got, want in zip(("out", "dx", "dw", "db"), (out,) + tuple(grads), expected):
        assert got.dtype == dtype, name
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, **tol(dtype), err_msg=name)


# (N, C, H, W, pool_height, pool_width, stride); the window tiles the input.
POOL_CASES = [
    (2, 3, 8, 8, 2, 2, 2),      # the classic case; reshape applies
    (1, 2, 7, 9, 3, 3, 2),      # overlapping windows, N=1
    (3, 5, 5, 6, 3, 3, 1),      # overlapping, stride 1
    (2, 17, 5, 7, 2, 3, 1),     # rectangular window
    (2, 3, 6, 4, 2, 2, 2),      # non-square input; reshape applies
    (1, 1, 13, 11, 3, 3, 2),    # prime sizes
    (2, 3, 9, 9, 3, 3, 3),      # 3x3 stride 3; reshape applies
    (2, 2, 7, 7, 2, 2, 1),      # 2x2 stride 1
]


def pool_data(case, dtype, seed=0):
    N, C, H, W, ph, pw, stride = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    dout = rng.standard_normal((N, C, 1 + (H - ph) // stride, 1 + (W - pw) // stride)).astype(dtype)
    return x, {"pool_height": ph, "pool_width": pw, "stride": stride}, dout


def pool_variants_for(case):
    N, C, H, W, ph, pw, stride = case
    return [v for v in POOL_VARIANTS if v != "reshape" or tiles(ph, pw, stride, H, W)]


def check_pool_against_naive(x, pool_param, dout, variant):
    want_out, cache = max_pool_forward_naive(x, pool_param)
    want_dx = max_pool_backward_naive(dout, cache)
    forward, backward = POOL_VARIANTS[variant]
    out, cache = forward(x, pool_param)
    dx = backward(dout, cache)
    assert out.dtype == x.dtype and dx.dtype == x.dtype
    np.testing.assert_array_equal(out, want_out)  # a max is exact
    np.testing.assert_allclose(dx, want_dx, **tol(x.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c)))
def test_pool_variants_match_naive(backend, case, dtype):
    x, pool_param, dout = pool_data(case, dtype)
    for variant in pool_variants_for(case):
        check_pool_against_naive(x, pool_param, dout, variant)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c)))
def test_pool_many_ties_match_naive(backend, case, dtype):
    """Values from {0, 1, 2}: most windows hold several maxima, and every
    variant must pick the same (first) one as the naive loop."""
    x, pool_param, dout = pool_data(case, dtype)
    x = np.random.default_rng(1).integers(0, 3, x.shape).astype(dtype)
    for variant in pool_variants_for(case):
        check_pool_against_naive(x, pool_param, dout, variant)


@pytest.mark.parametrize("case", [(1, 1, 4, 4, 2, 2, 2), (1, 1, 5, 5, 3, 3, 1),
                                  (1, 1, 4, 5, 2, 3, 1), (1, 2, 7, 7, 3, 3, 2)])
def test_pool_constant_input_routes_to_first_max(backend, case):
    N, C, H, W, ph, pw, stride = case
    x = np.full((N, C, H, W), 0.5)
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    Hout, Wout = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    dout = np.arange(1.0, 1 + N * C * Hout * Wout).reshape(N, C, Hout, Wout)
    expected = np.zeros_like(x)  # each window's top-left corner gets its gradient
    for i in range(Hout):
        for j in range(Wout):
            expected[:, :, i * stride, j * stride] += dout[:, :, i, j]
    variants = [("naive", (max_pool_forward_naive, max_pool_backward_naive))]
    variants += [(v, POOL_VARIANTS[v]) for v in pool_variants_for(case)]
    for name, (forward, backward) in variants:
        out, cache = forward(x, pool_param)
        np.testing.assert_array_equal(out, np.full(dout.shape, 0.5), err_msg=name)
        np.testing.assert_array_equal(backward(dout, cache), expected, err_msg=name)


def test_pool_partial_tie_picks_first_in_row_major_order(backend):
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    for forward, backward in [(max_pool_forward_naive, max_pool_backward_naive),
                              *POOL_VARIANTS.values()]:
        out, cache = forward(x, pool_param)
        assert out.item() == 3.0
        np.testing.assert_array_equal(backward(np.array([[[[7.0]]]]), cache),
                                      [[[[0.0, 7.0], [0.0, 0.0]]]])


# --- property test: native against the NumPy reference ---

@st.composite
def conv_problem(draw):
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    H = HH - 2 * pad + stride * draw(st.integers(0, 4))
    W = WW - 2 * pad + stride * draw(st.integers(0, 4))
    assume(H >= 1 and W >= 1)
    dtype = draw(st.sampled_from(DTYPES))
    return (N, C, H, W, F, HH, WW, stride, pad), dtype, draw(st.integers(0, 2**16))


@st.composite
def pool_problem(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    ph, pw, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    H = ph + stride * draw(st.integers(0, 4))
    W = pw + stride * draw(st.integers(0, 4))
    dtype = draw(st.sampled_from(DTYPES))
    return (N, C, H, W, ph, pw, stride), dtype, draw(st.integers(0, 2**16))


HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_cpp
@HYP
@given(conv_problem())
def test_conv_cpp_matches_numpy_property(problem):
    case, dtype, seed = problem
    x, w, b, conv_param, dout = conv_data(case, dtype, seed)
    results = {}
    for name in ("numpy", "cpp"):
        with nnc.use_backend(name):
            out, cache = fl.conv_forward_fast(x, w, b, conv_param)
            results[name] = (out,) + tuple(fl.conv_backward_fast(dout, cache))
    for got, want in zip(results["cpp"], results["numpy"]):
        np.testing.assert_allclose(got, want, **tol(dtype))


@needs_cpp
@HYP
@given(pool_problem())
def test_pool_cpp_matches_numpy_property(problem):
    case, dtype, seed = problem
    x, pool_param, dout = pool_data(case, dtype, seed)
    if seed % 2:  # half the examples full of ties
        x = np.random.default_rng(seed).integers(0, 2, x.shape).astype(dtype)
    results = {}
    for name in ("numpy", "cpp"):
        with nnc.use_backend(name):
            out, cache = fl.max_pool_forward_fast(x, pool_param)
            results[name] = (out, fl.max_pool_backward_fast(dout, cache))
    np.testing.assert_array_equal(results["cpp"][0], results["numpy"][0])
    np.testing.assert_allclose(results["cpp"][1], results["numpy"][1], **tol(dtype))


# --- numerical gradient checks (float64) ---

def numerical_gradient(f, a, dout, h=1e-5):
    """CS231n's eval_numerical_gradient_array: d(sum(f() * dout)) / da."""
    return eval_numerical_gradient_array(lambda _: f(), a, dout, h=h)


CONV_GRAD_VARIANTS = dict(CONV_VARIANTS, naive=(conv_forward_naive, conv_backward_naive))


@pytest.mark.parametrize("variant", CONV_GRAD_VARIANTS)
def test_conv_gradient_check(backend, variant):
    # Finite differences carry ~1e-10 of roundoff, so an entry near 0 would
    # fail the elementwise rel_error by chance; with this seed every gradient
    # entry is above 1e-2 in magnitude (the second check does not depend on it).
    x, w, b, conv_param, dout = conv_data((2, 3, 5, 7, 2, 3, 3, 2, 1), np.float64, seed=13)
    forward, backward = CONV_GRAD_VARIANTS[variant]
    _, cache = forward(x, w, b, conv_param)
    dx, dw, db = backward(dout, cache)
    for name, a, g in (("x", x, dx), ("w", w, dw), ("b", b, db)):
        num = numerical_gradient(lambda: forward(x, w, b, conv_param)[0], a, dout)
        assert rel_error(num, g) < 1e-8, name
        assert np.max(np.abs(num - g)) < 1e-9 * np.max(np.abs(g)), name


POOL_GRAD_VARIANTS = dict(POOL_VARIANTS, naive=(max_pool_forward_naive, max_pool_backward_naive))


@pytest.mark.parametrize("case", [(2, 2, 6, 6, 2, 2, 2), (2, 2, 5, 7, 3, 3, 2)])
@pytest.mark.parametrize("variant", POOL_GRAD_VARIANTS)
def test_pool_gradient_check(backend, variant, case):
    N, C, H, W, ph, pw, stride = case
    if variant == "reshape" and not tiles(ph, pw, stride, H, W):
        pytest.skip("reshape pooling needs tiling windows")
    rng = np.random.default_rng(4)
    # distinct values far apart compared with h: the argmax never flips
    x = rng.permutation(N * C * H * W).reshape(N, C, H, W) * 0.01
    x = x + rng.uniform(0, 1e-3, x.shape)
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    forward, backward = POOL_GRAD_VARIANTS[variant]
    out, cache = forward(x, pool_param)
    dout = rng.standard_normal(out.shape)
    dx = backward(dout, cache)
    num = numerical_gradient(lambda: forward(x, pool_param)[0], x, dout)
    assert rel_error(num, dx) < 1e-8


# --- bad input ---

def good_conv():
    x, w, b, conv_param, dout = conv_data((2, 3, 5, 5, 4, 3, 3, 2, 1), np.float64)
    return x, w, b, conv_param


CONV_FORWARDS = {"naive": conv_forward_naive, **{k: v[0] for k, v in CONV_VARIANTS.items()}}
CONV_BACKWARDS = {"naive": (conv_forward_naive, conv_backward_naive), **CONV_VARIANTS}


def bad_conv_calls():
    x, w, b, cp = good_conv()
    return [
        ("x 3-D", (x[0], w, b, cp), ValueError, "x must be 4-D"),
        ("w 3-D", (x, w[0], b, cp), ValueError, "w must be 4-D"),
        ("b 2-D", (x, w, b[None], cp), ValueError, "b must be 1-D"),
        ("C mismatch", (x, w[:, :2], b, cp), ValueError, r"C=3 channels.*\(4, 2, 3, 3\)"),
        ("b shape", (x, w, b[:3], cp), ValueError, r"b has shape \(3,\)"),
        ("H does not tile", (x[:, :, :4], w, b, cp), ValueError, r"H=4.*stride=2"),
        ("W does not tile", (x[:, :, :, :4], w, b, cp), ValueError, r"W=4.*stride=2"),
        ("stride 0", (x, w, b, {"stride": 0, "pad": 1}), ValueError, r"conv_param\['stride'\]"),
        ("stride -1", (x, w, b, {"stride": -1, "pad": 1}), ValueError, "stride"),
        ("stride float", (x, w, b, {"stride": 1.0, "pad": 1}), TypeError, "must be an int"),
        ("pad -1", (x, w, b, {"stride": 1, "pad": -1}), ValueError, r"conv_param\['pad'\]"),
        ("window too large", (x, np.zeros((4, 3, 9, 9)), b, {"stride": 1, "pad": 1}),
         ValueError, "does not fit"),
        ("empty batch", (x[:0], w, b, cp), ValueError, "empty batch"),
        ("no stride", (x, w, b, {"pad": 1}), ValueError, "missing the key 'stride'"),
        ("no pad", (x, w, b, {"stride": 2}), ValueError, "missing the key 'pad'"),
        ("conv_param not a dict", (x, w, b, (2, 1)), TypeError, "conv_param must be a dict"),
        ("x a list", (x.tolist(), w, b, cp), TypeError, "x must be a numpy.ndarray"),
        ("zero channels", (x[:, :0], w[:, :0], b, cp), ValueError, "zero-size"),
    ]


@pytest.mark.parametrize("fn", CONV_FORWARDS)
@pytest.mark.parametrize("case", bad_conv_calls(), ids=lambda c: c[0])
def test_conv_forward_bad_input(backend, fn, case):
    _, args, exc, match = case
    with pytest.raises(exc, match=match):
        CONV_FORWARDS[fn](*args)


@pytest.mark.parametrize("fn", CONV_BACKWARDS)
def test_conv_backward_bad_input(backend, fn):
    forward, backward = CONV_BACKWARDS[fn]
    x, w, b, cp = good_conv()
    out, cache = forward(x, w, b, cp)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 4, 3, 2\)"):
        backward(out[:, :, :, :2], cache)
    with pytest.raises(ValueError, match="dout must be 4-D"):
        backward(out[0], cache)
    with pytest.raises(TypeError, match="dout must be a numpy.ndarray"):
        backward(out.tolist(), cache)
    with pytest.raises(TypeError, match="cache"):
        backward(out, "not a cache")


@needs_cpp
@pytest.mark.parametrize("fn", CONV_VARIANTS)
def test_conv_promoted_dtypes(fn):
    """Integer and mixed inputs compute in NumPy's promoted dtype on both
    backends with the same results; dout takes the forward's dtype."""
    x, w, b, cp = good_conv()
    forward, backward = CONV_VARIANTS[fn]
    xi = np.round(10 * x).astype(np.int64)
    for args in ((xi, w, b), (x, w.astype(np.float32), b)):
        res = {}
        for backend in ("numpy", "cpp"):
            with nnc.use_backend(backend):
                out, cache = forward(*args, cp)
                res[backend] = (out,) + tuple(backward(np.ones_like(out), cache))
        for r, c in zip(res["numpy"], res["cpp"]):
            assert r.dtype == c.dtype == np.float64
            np.testing.assert_allclose(c, r, rtol=1e-12, atol=1e-12)
    with nnc.use_backend("cpp"):
        out, cache = forward(x, w, b, cp)
        dx, dw, db = backward(out.astype(np.float32), cache)
        assert dx.dtype == np.float64
        with pytest.raises(ValueError, match="cache was made by the 'cpp' backend"):
            with nnc.use_backend("numpy"):
                backward(out, cache)


def good_pool():
    x, pool_param, dout = pool_data((2, 3, 7, 7, 3, 3, 2), np.float64)
    return x, pool_param


POOL_FORWARDS = {"naive": max_pool_forward_naive, **{k: v[0] for k, v in POOL_VARIANTS.items()}}
POOL_BACKWARDS = {"naive": (max_pool_forward_naive, max_pool_backward_naive), **POOL_VARIANTS}


def bad_pool_calls():
    x, pp = good_pool()
    return [
        ("x 3-D", (x[0], pp), ValueError, "x must be 4-D"),
        ("H does not tile", (x[:, :, :6], pp), ValueError, r"H=6.*stride=2"),
        ("W does not tile", (x[:, :, :, :6], pp), ValueError, r"W=6.*stride=2"),
        ("window too large", (x[:, :, :2], pp), ValueError, "does not fit"),
        ("stride 0", (x, dict(pp, stride=0)), ValueError, r"pool_param\['stride'\]"),
        ("height 0", (x, dict(pp, pool_height=0)), ValueError, r"pool_param\['pool_height'\]"),
        ("width float", (x, dict(pp, pool_width=2.0)), TypeError, "must be an int"),
        ("empty batch", (x[:0], pp), ValueError, "empty batch"),
        ("no stride", (x, {"pool_height": 3, "pool_width": 3}), ValueError,
         "missing the key 'stride'"),
        ("no width", (x, {"pool_height": 3, "stride": 2}), ValueError,
         "missing the key 'pool_width'"),
        ("pool_param not a dict", (x, [3, 3, 2]), TypeError, "pool_param must be a dict"),
        ("x a list", (x.tolist(), pp), TypeError, "x must be a numpy.ndarray"),
    ]


@pytest.mark.parametrize("fn", POOL_FORWARDS)
@pytest.mark.parametrize("case", bad_pool_calls(), ids=lambda c: c[0])
def test_pool_forward_bad_input(backend, fn, case):
    _, args, exc, match = case
    with pytest.raises(exc, match=match):
        POOL_FORWARDS[fn](*args)


def test_pool_reshape_rejects_windows_that_do_not_tile(backend):
    x, pp = good_pool()  # 3x3 windows, stride 2: they overlap
    with pytest.raises(ValueError, match="do not tile x of shape"):
        fl.max_pool_forward_reshape(x, pp)
    with pytest.raises(ValueError, match="do not tile x of shape"):  # 2x2/2 on odd H
        fl.max_pool_forward_reshape(np.zeros((1, 1, 5, 4)), {"pool_height": 2,
                                                              "pool_width": 2, "stride": 1})


@pytest.mark.parametrize("fn", POOL_BACKWARDS)
def test_pool_backward_bad_input(backend, fn):
    forward, backward = POOL_BACKWARDS[fn]
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = forward(x, pp)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 3, 4, 3\)"):
        backward(out[:, :, :, :3], cache)
    with pytest.raises(ValueError, match="dout must be 4-D"):
        backward(out[0], cache)
    with pytest.raises(TypeError, match="cache"):
        backward(out, "not a cache")


@needs_cpp
@pytest.mark.parametrize("fn", POOL_VARIANTS)
def test_pool_cpp_dtypes(fn):
    x = np.zeros((2, 3, 8, 8))
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    forward, backward = POOL_VARIANTS[fn]
    x = np.arange(2 * 3 * 8 * 8).reshape(x.shape) % 7
    for backend in ("numpy", "cpp"):
        with nnc.use_backend(backend):
            out, cache = forward(x.astype(np.int32), pp)
            assert out.dtype == np.float64
            np.testing.assert_array_equal(out, x.reshape(2, 3, 4, 2, 4, 2).max(axis=(3, 5)))
            dx = backward(out.astype(np.int64), cache)
            assert dx.dtype == np.float64


@needs_cpp
def test_native_bindings_validate_without_python_checks():
    """The binding is the last line of defence: it must raise, never crash."""
    from nnc import _nnc
    x, w, b, cp = good_conv()
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        _nnc.conv_forward(x, w, b, 0, 1)
    with pytest.raises(ValueError, match="pad must be >= 0, got -2"):
        _nnc.conv_forward(x, w, b, 2, -2)
    # tiling is a rule of the public layer (test_conv_forward_bad_input), not a memory fact
    with pytest.raises(ValueError, match="does not fit"):
        _nnc.conv_forward(x, np.zeros((4, 3, 8, 8)), b, 1, 1)
    with pytest.raises(ValueError, match="empty batch"):
        _nnc.conv_forward(x[:0], w, b, 2, 1)
    with pytest.raises(ValueError, match="unreasonably large"):
        _nnc.conv_forward(x, w, b, 1, 2**40)
    with pytest.raises(ValueError, match="exceeds OpenBLAS's 32-bit index limit"):
        _nnc.conv_forward(x, w, b, 1, 2**20)
    with pytest.raises(ValueError, match="b has shape"):
        _nnc.conv_forward(x, w, b[:2], 2, 1)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 4, 3, 2\), expected \(2, 4, 3, 3\)"):
        _nnc.conv_backward(np.zeros((2, 4, 3, 2)), x, w, 2, 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        _nnc.conv_forward(x.astype(np.int32), w.astype(np.int32), b.astype(np.int32), 2, 1)
    xp = np.zeros((2, 3, 8, 8))
    with pytest.raises(ValueError, match="must be >= 1"):
        _nnc.max_pool_forward(xp, 2, 0, 2)
    out, argmax = _nnc.max_pool_forward(xp, 2, 2, 2)
    assert argmax.dtype == np.int32
    with pytest.raises(ValueError, match=r"values in \[64, 118\], outside the H\*W = 64 plane"):
        _nnc.max_pool_backward(out, argmax + 64, 8, 8)
    with pytest.raises(ValueError, match="outside"):
        _nnc.max_pool_backward(out, argmax - 1, 8, 8)
    with pytest.raises(TypeError, match="argmax must be int32, got int64"):
        _nnc.max_pool_backward(out, argmax.astype(np.int64), 8, 8)
    with pytest.raises(ValueError, match="argmax has shape"):
        _nnc.max_pool_backward(out, argmax[:, :, :2], 8, 8)


@needs_cpp
@pytest.mark.parametrize("where", [0, 16383, 16384, 65536, -1])
def test_argmax_check_over_threads(where):
    # past 65536 values the range check runs on all threads in chunks of
    # 16384: a stray index at a chunk's edge or in the short last chunk
    from nnc import _nnc
    xp = np.zeros((3, 5, 140, 142), np.float32)  # argmax of 74550 values
    out, argmax = _nnc.max_pool_forward(xp, 2, 2, 2)
    assert argmax.size == 74550
    bad = argmax.copy()
    bad.reshape(-1)[where] = 140 * 142
    with pytest.raises(ValueError, match=r"values in \[0, 19880\], outside the H\*W = 19880"):
        _nnc.max_pool_backward(out, bad, 140, 142)
    bad.reshape(-1)[where] = -3
    assert argmax.max() == 138 * 142 + 140  # the last window's first pixel
    with pytest.raises(ValueError, match=r"values in \[-3, 19736\]"):
        _nnc.max_pool_backward(out, bad, 140, 142)
    dx = _nnc.max_pool_backward(out + 1, argmax, 140, 142)
    assert dx.sum() == argmax.size


def test_inputs_not_modified(backend):
    x, w, b, cp = good_conv()
    dout = np.random.default_rng(2).standard_normal((2, 4, 3, 3))
    saved = [a.copy() for a in (x, w, b, dout)]
    cp_saved = dict(cp)
    for forward, backward in CONV_BACKWARDS.values():
        out, cache = forward(x, w, b, cp)
        backward(dout, cache)
        for a, s in zip((x, w, b, dout), saved):
            np.testing.assert_array_equal(a, s)
        assert cp == cp_saved
    xp, pp = good_pool()
    xp_saved, pp_saved = xp.copy(), dict(pp)
    for name, (forward, backward) in POOL_BACKWARDS.items():
        if name == "reshape":
            continue
        out, cache = forward(xp, pp)
        dout_p = np.ones_like(out)
        backward(dout_p, cache)
        np.testing.assert_array_equal(xp, xp_saved)
        np.testing.assert_array_equal(dout_p, 1.0)
        assert pp == pp_saved


# --- layouts, threads, memory ---

@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(backend, dtype):
    rng = np.random.default_rng(5)
    x_big = rng.standard_normal((3, 4, 14, 9)).astype(dtype)
    x = x_big[:, :, ::2]                          # (3, 4, 7, 9), strided rows
    w = np.asfortranarray(rng.standard_normal((5, 4, 3, 3)).astype(dtype))
    b = rng.standard_normal(10).astype(dtype)[::2]
    cp = {"stride": 2, "pad": 1}
    dout = rng.standard_normal((3, 5, 4, 5)).astype(dtype).transpose(0, 1, 2, 3)[:, :, :, ::-1]
    contiguous = [np.ascontiguousarray(a) for a in (x, w, b, dout)]
    for forward, backward in CONV_BACKWARDS.values():
        out, cache = forward(x, w, b, cp)
        grads = backward(dout, cache)
        out_c, cache_c = forward(*contiguous[:3], cp)
        grads_c = backward(contiguous[3], cache_c)
        for got, want in zip((out,) + tuple(grads), (out_c,) + tuple(grads_c)):
            np.testing.assert_allclose(got, want, **tol(dtype))
    pp = {"pool_height": 3, "pool_width": 3, "stride": 2}
    for name, (forward, backward) in POOL_BACKWARDS.items():
        if name == "reshape":
            continue
        out, cache = forward(x, pp)
        dout_p = rng.standard_normal(out.shape[::-1]).astype(dtype).T  # Fortran order
        dx = backward(dout_p, cache)
        out_c, cache_c = forward(contiguous[0], pp)
        np.testing.assert_array_equal(out, out_c)
        np.testing.assert_allclose(dx, backward(np.ascontiguousarray(dout_p), cache_c),
                                   **tol(dtype))


@needs_cpp
@pytest.mark.parametrize("N", [1, 7])
def test_cpp_conv_concurrent_calls_match_serial(N):
    """Four Python threads calling the native conv at once (each with its own
    OpenMP team and GEMMs) get the serial results, bit for bit."""
    rng = np.random.default_rng(6)
    problems = []
    for i in range(4):
        x = rng.standard_normal((N, 3 + i, 12, 12)).astype(np.float32)
        w = rng.standard_normal((8, 3 + i, 3, 3)).astype(np.float32)
        b = rng.standard_normal(8).astype(np.float32)
        dout = rng.standard_normal((N, 8, 12, 12)).astype(np.float32)
        problems.append((x, w, b, dout))
    cp = {"stride": 1, "pad": 1}

    def run(p):
        x, w, b, dout = p
        out, cache = fl.conv_forward_fast(x, w, b, cp)
        return (out,) + tuple(fl.conv_backward_fast(dout, cache))

    with nnc.use_backend("cpp"):
        serial = [run(p) for p in problems]
        results = [None] * 4

        def worker(i):
            for _ in range(5):
                results[i] = run(problems[i])

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for got, want in zip(results, serial):
        for g, s in zip(got, want):
            np.testing.assert_array_equal(g, s)
    # every single-thread GEMM request was handed back: OpenBLAS has its count again
    import scipy_openblas32
    assert scipy_openblas32.dll.scipy_openblas_get_num_threads() == nnc.get_num_threads()


@needs_cpp
@pytest.mark.parametrize("shape", [(50, 8192, 100), (100, 3072, 100), (256, 512, 512),
                                   (10, 2048, 128), (7, 300, 1000)])
def test_split_gemms_give_one_threads_bits(shape):
    """GEMMs of 2^21 to 2^27 multiply-adds are split over nnc's threads, one
    single-threaded GEMM per block of C's rows or columns (cpp/blas.cpp): at 2
    threads the affine layer gives the same bits as at 1, run after run."""
    from nnc.layers import affine_backward, affine_forward
    N, D, M = shape
    rng = np.random.default_rng(sum(shape))
    x, w = rng.standard_normal((N, D)), rng.standard_normal((D, M))
    b, dout = rng.standard_normal(M), rng.standard_normal((N, M))
    results = {}
    with nnc.use_backend("cpp"):
        for n in (1, 2, 2):
            with native_threads(n):
                out, cache = affine_forward(x, w, b)
                results.setdefault(n, []).append((out,) + tuple(affine_backward(dout, cache)))
    for got in results[2]:
        for g, want in zip(got, results[1][0]):
            np.testing.assert_array_equal(g, want)
    with nnc.use_backend("numpy"):
        out, cache = affine_forward(x, w, b)
        ref = (out,) + tuple(affine_backward(dout, cache))
    for g, want in zip(results[1][0], ref):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@needs_cpp
def test_cpp_conv_is_deterministic_and_thread_count_independent():
    x, w, b, cp, dout = conv_data((9, 5, 10, 10, 6, 3, 3, 1, 1), np.float32, seed=7)
    previous = nnc.get_num_threads()
    results = {}
    try:
        with nnc.use_backend("cpp"):
            for n in (1, 2, 3):
                nnc.set_num_threads(n)
                runs = []
                for _ in range(2):
                    out, cache = fl.conv_forward_fast(x, w, b, cp)
                    runs.append((out,) + tuple(fl.conv_backward_fast(dout, cache)))
                for a, c in zip(*runs):  # run to run: the same bits
                    np.testing.assert_array_equal(a, c)
                results[n] = runs[0]
    finally:
        nnc.set_num_threads(previous)
    for n in (2, 3):
        for a, c in zip(results[n], results[1]):
            np.testing.assert_allclose(a, c, **tol(np.float32))


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_threads", [1, 2, 4])
def test_cpp_conv_thread_counts_match_numpy(num_threads, dtype):
    """N=3 images: per-thread tiles with 1 or 2 threads; with 4 threads
    (more threads than images) the threads share each tile instead."""
    for case in [(3, 64, 32, 32, 6, 3, 3, 1, 1), (3, 7, 21, 13, 5, 5, 3, 2, 2)]:
        x, w, b, cp, dout = conv_data(case, dtype, seed=8)
        with nnc.use_backend("numpy"):
            out, cache = fl.conv_forward_strides(x, w, b, cp)
            expected = (out,) + tuple(fl.conv_backward_strides(dout, cache))
        previous = nnc.get_num_threads()
        try:
            nnc.set_num_threads(num_threads)
            with nnc.use_backend("cpp"):
                out, cache = fl.conv_forward_fast(x, w, b, cp)
                got = (out,) + tuple(fl.conv_backward_fast(dout, cache))
        finally:
            nnc.set_num_threads(previous)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, **tol(dtype))


@needs_cpp
def test_cpp_conv_memory_does_not_grow_with_batch():
    """A (200,3,32,32) x (32,3,7,7) pad-3 conv would need a 120 MB column
    matrix for the whole batch; the per-thread buffers stay a few MB."""
    code = (
        "import numpy as np, resource, nnc\n"
        "from nnc.fast_layers import conv_forward_fast, conv_backward_fast\n"
        "nnc.set_backend('cpp')\n"
        "x = np.ones((200, 3, 32, 32), np.float32); w = np.ones((32, 3, 7, 7), np.float32)\n"
        "b = np.zeros(32, np.float32); dout = np.ones((200, 32, 32, 32), np.float32)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out, cache = conv_forward_fast(x, w, b, {'stride': 1, 'pad': 3})\n"
        "dx, dw, db = conv_backward_fast(dout, cache)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n")
    grown_mb = float(subprocess.run([sys.executable, "-c", code], check=True,
                                    capture_output=True, text=True).stdout)
    # out (26 MB) and dx (2.5 MB) are the only large new arrays
    assert grown_mb < 70, grown_mb


def test_cpp_implements_every_conv_and_pool_op():
    if "cpp" not in BACKENDS:
        pytest.skip("native backend not built")
    ops = set(nnc.implemented_ops("cpp"))
    for name in ("conv_forward_im2col", "conv_backward_im2col", "conv_forward_strides",
                 "conv_backward_strides", "max_pool_forward_fast", "max_pool_backward_fast",
                 "max_pool_forward_reshape", "max_pool_backward_reshape",
                 "max_pool_forward_im2col", "max_pool_backward_im2col"):
        assert name in ops


# --- conv_backward_weights: dw and db without dx (a network's first layer) ---

# (N, C, H, W, F, HH, WW, stride, pad): one image (fewer than the threads),
# a batch with tails, a strided 5x5, and 3x3 stride-1 shapes for Winograd
WEIGHT_CASES = [(1, 3, 8, 8, 4, 3, 3, 1, 1), (5, 3, 9, 7, 6, 3, 3, 2, 1),
                (3, 2, 11, 11, 5, 5, 5, 2, 2), (4, 8, 10, 10, 8, 3, 3, 1, 1),
                (2, 16, 12, 12, 16, 3, 3, 1, 0), (3, 4, 7, 7, 3, 1, 1, 1, 0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["auto", "im2col", "winograd"])
@pytest.mark.parametrize("fn", CONV_VARIANTS)
def test_conv_backward_weights_equals_the_backward(backend, dtype, algo, fn):
    """The same dw and db as the full backward (the same bits on cpp) and as
    the naive loops, for every forward variant and algorithm."""
    forward, backward = CONV_VARIANTS[fn]
    for case in WEIGHT_CASES:
        x, w, b, cp, dout = conv_data(case, dtype, seed=sum(case))
        with nnc.conv_algorithm(algo):
            _, cache = forward(x, w, b, cp)
            _, dw, db = backward(dout, cache)
            dw2, db2 = fl.conv_backward_weights(dout, cache)
        assert dw2.dtype == db2.dtype == dtype
        if backend == "cpp":   # the backward's own kernel, with dx skipped: the same bits
            np.testing.assert_array_equal(dw2, dw)
            np.testing.assert_array_equal(db2, db)
        else:                  # the numpy im2col backward sums by einsum, this by tensordot
            np.testing.assert_allclose(dw2, dw, **tol(dtype))
            np.testing.assert_allclose(db2, db, **tol(dtype))
        _, _, dw_ref, db_ref = naive_conv_f64(x, w, b, cp, dout)
        np.testing.assert_allclose(dw2, dw_ref, **tol(dtype))
        np.testing.assert_allclose(db2, db_ref, **tol(dtype))


def test_conv_backward_weights_bad_input(backend):
    x, w, b, cp = good_conv()
    out, cache = fl.conv_forward_fast(x, w, b, cp)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 4, 3, 2\)"):
        fl.conv_backward_weights(out[:, :, :, :2], cache)
    with pytest.raises(TypeError, match="cache"):
        fl.conv_backward_weights(out, tuple(cache))
    with nnc.use_backend("numpy"):
        _, cache = fl.conv_forward_fast(x, w, b, cp)
    if "cpp" in BACKENDS:
        with nnc.use_backend("cpp"):
            with pytest.raises(ValueError, match="cache was made by the 'numpy' backend"):
                fl.conv_backward_weights(out, cache)


# --- conv_pool_forward: a conv and a max pool as one op (a network's first layer) ---

from nnc.bench.suite import CONV_POOL_TEST_SHAPES  # noqa: E402


def conv_pool_data(shape, dtype, seed=0):
    x, w, b, cp, _ = conv_data(shape[:9], dtype, seed)
    ph, pw, ps = shape[9:]
    return x, w, b, cp, {"pool_height": ph, "pool_width": pw, "stride": ps}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["auto", "im2col", "winograd", "direct"])
@pytest.mark.parametrize("shape", CONV_POOL_TEST_SHAPES, ids=lambda c: "x".join(map(str, c)))
def test_conv_pool_is_the_conv_then_the_pool(backend, shape, algo, dtype):
    """The same bits as max_pool_forward_fast(conv_forward_fast) and, for dx
    and dw, as their backwards (also where the cpp backend fuses the pool
    into the direct kernels); db of the weights-only backward sums the pooled
    dout instead of the conv's, so it agrees to rounding."""
    x, w, b, cp, pp = conv_pool_data(shape, dtype, seed=sum(shape))
    with nnc.conv_algorithm(algo):
        a, conv_cache = fl.conv_forward_fast(x, w, b, cp)
        p, pool_cache = fl.max_pool_forward_fast(a, pp)
        out, cache = fl.conv_pool_forward(x, w, b, cp, pp)
        dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
        dx, dw, db = fl.conv_backward_fast(fl.max_pool_backward_fast(dout, pool_cache), conv_cache)
        dx2, dw2, db2 = fl.conv_pool_backward(dout, cache)
        dw3, db3 = fl.conv_pool_backward_weights(dout, cache)
    assert out.dtype == dx2.dtype == dw3.dtype == db3.dtype == dtype
    np.testing.assert_array_equal(out, p)
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)
    np.testing.assert_array_equal(dw3, dw)
    np.testing.assert_allclose(db3, db, rtol=1e-12 if dtype == np.float64 else 1e-6)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_pool_fused_paths_against_the_naive_loops(dtype):
    """The fused cpp paths (ThreeLayerConvNet's conv1 and tails: odd F, one
    image, an odd pooled width) at 1, 2 and 3 threads against the naive conv
    and pool in float64; ties and NaN in the pool windows go where
    max_pool_forward_naive sends them."""
    from nnc import _nnc
    cases = [(5, 3, 32, 32, 32, 7, 7, 1, 3), (1, 3, 16, 16, 5, 5, 5, 1, 2),
             (3, 3, 16, 18, 17, 5, 5, 1, 2)]
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    for case in cases:
        x, w, b, cp, _ = conv_data(case, dtype, seed=sum(case))
        w[0] = 0.0                      # filter 0: every window ties at b[0]
        x[0, :, :3, :3] = np.nan
        assert _nnc.conv_paths(x, w, 1, cp["pad"], 0)[::2] == ("direct", "direct"), case
        a, conv_cache = conv_forward_naive(x.astype(np.float64), w.astype(np.float64),
                                           b.astype(np.float64), cp)
        p_ref, pool_cache = max_pool_forward_naive(a, pp)
        dout = np.random.default_rng(2).standard_normal(p_ref.shape).astype(dtype)
        dw_ref, db_ref = conv_backward_naive(max_pool_backward_naive(
            np.nan_to_num(dout.astype(np.float64)), pool_cache), conv_cache)[1:]
        for threads in (1, 2, 3):
            with native_threads(threads):
                out, cache = fl.conv_pool_forward(x, w, b, cp, pp)
                dw, db = fl.conv_pool_backward_weights(dout, cache)
            np.testing.assert_array_equal(np.isnan(out), np.isnan(p_ref))
            ok = ~np.isnan(p_ref)
            np.testing.assert_allclose(out[ok], p_ref[ok], **tol(dtype))
            # NaN inputs reach dw through the windows that read them; compare the rest
            fin = np.isfinite(dw_ref)
            np.testing.assert_array_equal(np.isfinite(dw), fin)
            np.testing.assert_allclose(dw[fin], dw_ref[fin], **tol(dtype))
            np.testing.assert_allclose(db, db_ref, **tol(dtype))


def test_conv_pool_bad_input(backend):
    x, w, b, cp = good_conv()           # conv output (2, 4, 3, 3)
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    with pytest.raises(ValueError, match=r"pool window does not tile the conv output of shape "
                                         r"\(2, 4, 3, 3\): \(H=3 - 2\) % stride=2"):
        fl.conv_pool_forward(x, w, b, cp, pp)
    with pytest.raises(ValueError, match=r"4x4 pool window does not fit in the conv output"):
        fl.conv_pool_forward(x, w, b, cp, {"pool_height": 4, "pool_width": 4, "stride": 1})
    with pytest.raises(TypeError, match="pool_param must be a dict"):
        fl.conv_pool_forward(x, w, b, cp, [2, 2, 2])
    with pytest.raises(ValueError, match="C=3 channels but w"):
        fl.conv_pool_forward(x, w[:, :2], b, cp, pp)
    pp1 = {"pool_height": 3, "pool_width": 3, "stride": 1}
    out, cache = fl.conv_pool_forward(x, w, b, cp, pp1)
    assert out.shape == (2, 4, 1, 1)
    for fn in (fl.conv_pool_backward, fl.conv_pool_backward_weights):
        with pytest.raises(ValueError, match=r"dout has shape \(2, 4, 1, 2\)"):
            fn(np.zeros((2, 4, 1, 2)), cache)
        with pytest.raises(TypeError, match="cache"):
            fn(out, tuple(cache))
    if "cpp" in BACKENDS:
        with nnc.use_backend("numpy" if backend == "cpp" else "cpp"):
            _, other = fl.conv_pool_forward(x, w, b, cp, pp1)
        with pytest.raises(ValueError, match="cache was made by the"):
            fl.conv_pool_backward_weights(out, other)


# --- the direct forward, dx and dw (stride 1) ---

DIRECT_CASES = [(50, 3, 32, 32, 32, 7, 7, 1, 3),   # ThreeLayerConvNet's conv1
                (10, 3, 32, 32, 16, 5, 5, 1, 2),   # the course's conv1
                (1, 1, 17, 19, 5, 3, 3, 1, 1), (3, 4, 20, 37, 19, 7, 5, 1, 0),
                (2, 2, 9, 40, 9, 3, 4, 1, 2), (4, 3, 6, 6, 8, 1, 1, 1, 0),
                (2, 8, 12, 12, 7, 3, 3, 1, 1),
                # dx's forward with C and F swapped: 20 filters there, 13 channels
                (2, 20, 7, 35, 13, 3, 3, 1, 2), (1, 9, 5, 30, 33, 5, 5, 1, 4),
                (2, 6, 7, 33, 2, 3, 3, 1, 1),      # 2 filters: the blocks of 4
                (1, 130, 40, 66, 9, 3, 3, 1, 1),   # windows of a few rows (512 KB)
                # rows of one vector, blocks of 16 filters (19: a tail of 3)
                (2, 5, 9, 14, 19, 3, 3, 1, 1), (3, 4, 10, 7, 9, 3, 3, 1, 1)]


def direct_dx_forced(case):
    """Whether algo 'direct' computes dx by the direct kernel too: a square
    kernel with pad below its size."""
    HH, WW, pad = case[5], case[6], case[8]
    return HH == WW and pad < HH


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DIRECT_CASES, ids=lambda c: "x".join(map(str, c)))
def test_direct_conv_matches_naive(case, dtype):
    """Filter counts that are not a multiple of the register block, output
    rows narrower and wider than a block, tap counts that are not a multiple
    of the tap block, pads 0-4, one image; dw is direct too, and dx where the
    kernel is square with pad below its size (else im2col's)."""
    from nnc import _nnc
    x, w, b, cp, dout = conv_data(case, dtype, seed=sum(case))
    ref = naive_conv_f64(x, w, b, cp, dout)
    dx_path = "direct" if direct_dx_forced(case) else "im2col"
    with nnc.use_backend("cpp"), nnc.conv_algorithm("direct"):
        assert _nnc.conv_paths(x, w, 1, cp["pad"], 3) == ("direct", dx_path, "direct")
        out, cache = fl.conv_forward_fast(x, w, b, cp)
        grads = fl.conv_backward_fast(dout, cache)
        again = fl.conv_forward_fast(x, w, b, cp)[0]
        dw_only = fl.conv_backward_weights(dout, cache)
    np.testing.assert_array_equal(out, again)   # the same bits every run
    assert_direct_outputs(out, grads, dw_only, ref, dtype)


# stride 2 (N, C, H, W, F, HH, WW, 2, pad): seed002's conv, filters and rows
# that are not a multiple of the block, pads 0-3, one image, a 1x1 kernel
STRIDE2_CASES = [(100, 3, 31, 31, 25, 3, 3, 2, 1), (2, 3, 9, 9, 5, 3, 3, 2, 1),
                 (3, 4, 21, 37, 19, 7, 5, 2, 0), (2, 2, 9, 40, 9, 3, 4, 2, 2),
                 (1, 1, 17, 19, 5, 3, 3, 2, 1), (2, 8, 13, 13, 7, 5, 5, 2, 2),
                 (2, 3, 9, 9, 4, 1, 1, 2, 0), (1, 5, 33, 71, 17, 7, 7, 2, 3)]


@needs_cpp
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", STRIDE2_CASES, ids=lambda c: "x".join(map(str, c)))
def test_direct_stride2_forward_matches_naive(case, dtype, threads):
    """The direct forward with stride 2 (its window rows split by column
    parity) against the naive loops and im2col's forward, the same bits on
    every call; the backward stays im2col's."""
    from nnc import _nnc
    x, w, b, cp, dout = conv_data(case, dtype, seed=sum(case))
    ref = naive_conv_f64(x, w, b, cp, dout)
    with native_threads(threads), nnc.use_backend("cpp"):
        with nnc.conv_algorithm("direct"):
            assert _nnc.conv_paths(x, w, 2, cp["pad"], 3) == ("direct", "im2col", "im2col")
            out, cache = fl.conv_forward_fast(x, w, b, cp)
            again = fl.conv_forward_fast(x, w, b, cp)[0]
            grads = fl.conv_backward_fast(dout, cache)
            dw_only = fl.conv_backward_weights(dout, cache)
        with nnc.conv_algorithm("im2col"):
            im2col_out = fl.conv_forward_fast(x, w, b, cp)[0]
    np.testing.assert_array_equal(out, again)
    r = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, im2col_out, rtol=10 * r, atol=r * np.abs(im2col_out).max())
    assert_direct_outputs(out, grads, dw_only, ref, dtype)


def assert_direct_outputs(out, grads, dw_only, ref, dtype):
    """dw and db of conv_backward_weights the same bits as the backward's, and
    (out, dx, dw, db) close to the naive loops' (ref)."""
    np.testing.assert_array_equal(dw_only[0], grads[1])
    np.testing.assert_array_equal(dw_only[1], grads[2])
    for got, want in zip((out,) + tuple(grads), ref):
        assert got.dtype == dtype
        # dw sums 50*32*32 float32 products: an absolute floor scaled to the values
        r = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=10 * r, atol=r * np.abs(want).max())


@needs_cpp
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", [(5, 3, 32, 32, 32, 7, 7, 1, 3), (2, 2, 9, 40, 9, 3, 4, 1, 2),
                                  (1, 3, 16, 16, 40, 5, 5, 1, 2)],
                         ids=lambda c: "x".join(map(str, c)))
def test_direct_dw_threads_split_images_or_taps(case, threads):
    """With at least as many images as threads each thread sums its own images
    (added in thread order); with fewer, the threads split the tap blocks. Both
    give im2col's dw to the last few bits, and the same bits on every call."""
    x, w, b, cp, dout = conv_data(case, np.float64, seed=7)
    with native_threads(threads), nnc.use_backend("cpp"):
        _, cache = fl.conv_forward_fast(x, w, b, cp)
        with nnc.conv_algorithm("direct"):
            dw, db = fl.conv_backward_weights(dout, cache)
            again, _ = fl.conv_backward_weights(dout, cache)
        with nnc.conv_algorithm("im2col"):
            dw_ref, db_ref = fl.conv_backward_weights(dout, cache)
    np.testing.assert_array_equal(dw, again)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12, atol=1e-12 * np.abs(dw_ref).max())
    np.testing.assert_array_equal(db, db_ref)


MIXED_CASES = [(2, 16, 10, 10, 16, 3, 3, 1, 1),   # Winograd's forward and dx, the direct dw
               (4, 16, 16, 16, 32, 3, 3, 1, 1),   # the course's conv2 at batch 4
               (3, 8, 9, 11, 7, 5, 5, 1, 2),      # im2col's forward and dx, the direct dw
               (1, 6, 12, 13, 40, 3, 3, 1, 0)]    # one image: the threads split the taps


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MIXED_CASES, ids=lambda c: "x".join(map(str, c)))
def test_direct_dw_beside_other_dx_paths(case, dtype):
    """Auto's backward with the direct dw beside Winograd's or im2col's dx:
    every output against the naive loops at 1 to 3 threads, dw and db the same
    bits as conv_backward_weights, and as on every call."""
    from nnc import _nnc
    x, w, b, cp, dout = conv_data(case, dtype, seed=sum(case))
    assert _nnc.conv_paths(x, w, 1, cp["pad"])[2] == "direct"
    ref = naive_conv_f64(x, w, b, cp, dout)
    for threads in (1, 2, 3):
        with native_threads(threads), nnc.use_backend("cpp"), nnc.conv_algorithm("auto"):
            out, cache = fl.conv_forward_fast(x, w, b, cp)
            grads = fl.conv_backward_fast(dout, cache)
            again = fl.conv_backward_fast(dout, cache)
            dw_only = fl.conv_backward_weights(dout, cache)
        for g, a in zip(grads, again):
            np.testing.assert_array_equal(g, a)
        assert_direct_outputs(out, grads, dw_only, ref, dtype)


@needs_cpp
def test_direct_conv_paths_by_size():
    """(forward, dx, dw) with auto, float64, on rows too short for the rule of
    full register blocks (test_direct_for_rows_that_fill_the_blocks): the
    direct forward for stride 1, C <= 4 and rows of at least 16; the direct dw
    for stride 1, at least 48 taps and C*F up to 2048 (4096 on AVX-512 CPUs
    beside im2col or Winograd on AVX2 GEMMs), whatever the forward and dx
    take."""
    from nnc import _nnc
    shape = lambda N, C, H, F, k: (np.empty((N, C, H, H)), np.empty((F, C, k, k)))  # noqa: E731
    paths = _nnc.conv_paths
    assert paths(*shape(50, 3, 20, 32, 7), 1, 3) == ("direct", "im2col", "direct")
    assert paths(*shape(10, 4, 20, 16, 5), 1, 2) == ("direct", "im2col", "direct")
    assert paths(*shape(10, 3, 20, 16, 3), 1, 1) == ("direct", "im2col", "im2col")  # 27 taps
    # stride 2: the direct forward for C <= 4 where the rows fill the blocks
    assert paths(*shape(10, 3, 31, 16, 5), 2, 2) == ("direct", "im2col", "im2col")  # rows of 16
    assert paths(*shape(10, 3, 34, 16, 3), 2, 1) == ("im2col", "im2col", "im2col")  # rows of 17
    assert paths(*shape(10, 8, 31, 16, 5), 2, 2) == ("im2col", "im2col", "im2col")  # C = 8
    assert paths(*shape(10, 3, 31, 16, 3), 3, 1) == ("im2col", "im2col", "im2col")  # stride 3
    assert paths(*shape(10, 8, 20, 16, 5), 1, 2) == ("im2col", "im2col", "direct")  # C = 8
    assert paths(*shape(10, 3, 6, 16, 5), 1, 2) == ("im2col", "im2col", "direct")   # Wout 6
    # the course's conv2 on 20-pixel rows: Winograd's forward and dx, the direct dw
    assert paths(*shape(100, 16, 20, 32, 3), 1, 1) == ("winograd", "winograd", "direct")
    assert paths(*shape(64, 128, 20, 128, 3), 1, 1) == ("winograd", "winograd", "winograd")
    assert paths(*shape(10, 128, 20, 128, 5), 1, 2) == ("im2col", "im2col", "im2col")  # C*F
    assert paths(*shape(10, 3, 32, 16, 7), 1, 3, 1) == ("im2col", "im2col", "im2col")
    assert paths(*shape(10, 16, 16, 32, 3), 1, 1, 2) == ("winograd", "winograd", "winograd")
    with pytest.raises(ValueError, match="algo must be"):
        paths(*shape(10, 3, 32, 16, 7), 1, 3, 4)


def _cpuinfo_vendor_family_model():
    """(vendor, family, model) of the first CPU in /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                          if ":" in line)
    except OSError:
        return None
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if not {"vendor_id", "cpu family", "model"} <= fields.keys():
        return None
    return fields["vendor_id"], int(fields["cpu family"]), int(fields["model"])


@needs_cpp
def test_fma_width_predicates_match_the_cpu_model():
    """The conv rules' two CPU predicates read cpuid's family and model (the
    extended fields added in); /proc/cpuinfo prints the same numbers."""
    from nnc import _nnc
    cpu = _cpuinfo_vendor_family_model()
    if cpu is None:
        pytest.skip("no x86 /proc/cpuinfo")
    vendor, family, model = cpu
    amd, hygon = vendor == "AuthenticAMD", vendor == "HygonGenuine"
    assert _nnc.fma_splits_256bit() == (
        (amd and (family == 0x15 or (family == 0x17 and model < 0x30))) or
        (hygon and family == 0x18))
    assert _nnc.fma_splits_512bit() == (
        amd and (family == 0x19 or
                 (family == 0x1A and (0x20 <= model < 0x30 or 0x60 <= model < 0x80))))


@needs_cpp
def test_direct_up_to_16_channels_on_avx2():
    """On AVX2 CPUs (no AVX-512), auto takes the direct kernel for stride-1
    kernels of 9 taps or more where the rows fill its blocks of 4 filters x 2
    vectors (16 float32 or 8 float64 columns, at most an eighth of the last
    padding), in place of Winograd or im2col: NCHW up to C = 16, or C = 32
    with F <= 16 (F <= 32 in float32); NHWC, where F fills the filter
    blocks, up to C = 32 with F <= 16, or C = 16 in float32; but in float32
    not beyond C*F = 256 where Winograd applies, on CPUs that split 256-bit
    FMAs in two (Zen 1). dx follows the same rule with C and F swapped."""
    from nnc import _nnc
    if not _nnc.simd_isa().startswith("x86-64-v3"):
        pytest.skip("the rule is for AVX2 CPUs without AVX-512")
    paths, nhwc = _nnc.conv_paths, _nnc.conv_nhwc_paths
    f32, f64 = np.float32, np.float64

    def nchw(N, C, W, F, k, dt):
        return np.empty((N, C, 8, W), dt), np.empty((F, C, k, k), dt)

    def channels_last(N, C, W, F, k, dt):
        return np.empty((N, 8, W, C), dt), np.empty((k, k, C, F), dt)

    # the course's conv2 and its dx (C 32, F 16)
    assert paths(*nchw(100, 16, 16, 32, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert paths(*nchw(100, 16, 16, 32, 3, f64), 1, 1)[:2] == ("direct", "direct")
    assert paths(*nchw(100, 16, 32, 16, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert paths(*nchw(100, 32, 16, 32, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert paths(*nchw(100, 32, 16, 32, 3, f64), 1, 1)[:2] == ("winograd", "winograd")
    assert paths(*nchw(100, 32, 16, 64, 3, f32), 1, 1)[:2] == ("winograd", "winograd")
    assert paths(*nchw(100, 48, 16, 16, 3, f32), 1, 1)[:2] == ("winograd", "direct")
    # 5x5 in place of im2col, at the block edge (28 of 32 columns full, 27 not)
    assert paths(*nchw(8, 16, 28, 16, 5, f32), 1, 2)[:2] == ("direct", "direct")
    assert paths(*nchw(8, 16, 27, 16, 5, f32), 1, 2)[:2] == ("im2col", "im2col")
    assert paths(*nchw(8, 16, 12, 16, 3, f64), 1, 1)[0] == "winograd"   # 12 of 16
    # the course's conv2 in NHWC (C*F 512) and its dx
    split = _nnc.fma_splits_256bit()
    nhwc_wide = ("winograd", "winograd") if split else ("direct", "direct")
    assert nhwc(*channels_last(100, 16, 16, 32, 3, f32), 1, 1)[:2] == nhwc_wide
    assert nhwc(*channels_last(100, 32, 16, 16, 3, f32), 1, 1)[:2] == nhwc_wide
    assert nhwc(*channels_last(100, 16, 16, 16, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert nhwc(*channels_last(100, 8, 16, 32, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert nhwc(*channels_last(100, 16, 16, 32, 5, f32), 1, 2)[:2] == ("direct", "direct")
    assert nhwc(*channels_last(100, 16, 16, 32, 3, f64), 1, 1)[:2] == ("winograd", "direct")
    assert nhwc(*channels_last(100, 32, 16, 16, 3, f64), 1, 1)[:2] == ("direct", "winograd")
    assert nhwc(*channels_last(100, 16, 16, 20, 3, f32), 1, 1)[0] == "winograd"  # 20 of 24
    assert nhwc(*channels_last(100, 32, 16, 32, 3, f32), 1, 1)[:2] == ("winograd", "winograd")


@needs_cpp
def test_direct_for_rows_that_fill_the_blocks():
    """On AVX-512 CPUs, auto takes the direct kernel for any stride-1 kernel of
    9 taps or more whose output rows fill its blocks of 2 vectors (32 float32 or
    16 float64 columns; or of one vector for rows that short, with more than 8
    filters; at most an eighth of the last block padding): always in place of
    im2col, and in place of Winograd up to C = 32 (16 for one-vector rows), or
    at any C when
    OpenBLAS runs AVX2 kernels (its core, or OPENBLAS_CORETYPE, says which).
    dx is the direct forward of dout with C and F swapped, by the same rule;
    the direct dw goes up to C*F = 4096 there."""
    from nnc import _nnc
    if not _nnc.simd_isa().startswith("x86-64-v4"):
        pytest.skip("the rule of full blocks is for AVX-512 CPUs")
    core = _nnc.blas_corename().lower()
    blas_wide = any(n in core for n in ("skylakex", "cooperlake", "sapphirerapids"))
    paths = _nnc.conv_paths

    def shape(N, C, W, F, k, dtype):
        return np.empty((N, C, 8, W), dtype), np.empty((F, C, k, k), dtype)

    f32, f64 = np.float32, np.float64
    # 5x5: direct forward and dx against im2col, at the block edge (28 of 32 full, 27 not)
    assert paths(*shape(8, 64, 32, 64, 5, f32), 1, 2)[:2] == ("direct", "direct")
    assert paths(*shape(8, 64, 28, 64, 5, f32), 1, 2)[:2] == ("direct", "direct")
    assert paths(*shape(8, 64, 27, 64, 5, f32), 1, 2)[:2] == ("im2col", "im2col")
    assert paths(*shape(8, 64, 14, 64, 5, f64), 1, 2)[:2] == ("direct", "direct")
    assert paths(*shape(8, 64, 13, 64, 5, f64), 1, 2)[:2] == ("im2col", "im2col")
    # 3x3 up to C = 32 (dx: F = 32) in place of Winograd, whatever OpenBLAS runs
    assert paths(*shape(64, 32, 32, 32, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert paths(*shape(64, 16, 16, 32, 3, f64), 1, 1)[:2] == ("direct", "direct")
    # rows of one vector (16 float32 pixels) in blocks of 16 filters: up to C = 16, and up
    # to C = 32 with at most 16 filters (dx: C and F swapped)
    assert paths(*shape(64, 16, 16, 32, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert paths(*shape(64, 32, 16, 16, 3, f32), 1, 1)[:2] == ("direct", "direct")
    assert paths(*shape(64, 32, 16, 32, 3, f32), 1, 1)[:2] == \
        ("winograd" if blas_wide else "direct",) * 2
    assert paths(*shape(64, 48, 16, 16, 3, f32), 1, 1)[:2] == \
        ("winograd" if blas_wide else "direct", "direct")
    assert paths(*shape(64, 16, 8, 32, 3, f64), 1, 1)[0] == "direct"
    assert paths(*shape(64, 16, 12, 32, 3, f32), 1, 1)[0] == "winograd"  # 12 of 16
    # 3x3 with C = F = 64: Winograd when OpenBLAS's GEMMs are AVX-512 ones
    deep = ("winograd",) * 2 if blas_wide else ("direct",) * 2
    assert paths(*shape(64, 64, 32, 64, 3, f32), 1, 1)[:2] == deep
    assert paths(*shape(64, 64, 16, 64, 3, f64), 1, 1)[:2] == deep
    # dw: C*F up to 4096 beside im2col, and beside Winograd on OpenBLAS's AVX2 kernels
    assert paths(*shape(8, 64, 20, 64, 5, f64), 1, 2) == ("im2col", "im2col", "direct")
    assert paths(*shape(8, 64, 20, 128, 5, f64), 1, 2) == ("im2col",) * 3
    deep_dw = "winograd" if blas_wide else "direct"
    assert paths(*shape(64, 64, 20, 64, 3, f64), 1, 1) == ("winograd", "winograd", deep_dw)
    # dx needs a square kernel and pad below its size
    assert paths(*shape(8, 64, 26, 64, 5, f32), 1, 5)[:2] == ("direct", "im2col")  # Wout 32
    assert paths(*shape(8, 16, 32, 16, 1, f32), 1, 0) == ("im2col",) * 3  # 1 tap

"""Issue 9, the functional ops under nnc.nn: gelu, leaky_relu, bce_loss and
the channels-last conv and max-pool. Golden values (golden-values.md 4.2,
4.6, 4.7, copied here), native against the reference in float32 and float64,
gradient checks, edge values and bad input on both backends."""
import warnings

import numpy as np
import pytest

import nnc
from nnc import fast_layers as fl
from nnc import layers as L

from conftest import ALL_BACKENDS, DTYPES, native_threads, needs_cpp, num_grad, rel_error, tol

# --- golden values (section 4 of ../shared/spec/golden-values.md) ---

GELU_GOLDEN = np.array([[-0.10042842, -0.13504766, -0.16231757, -0.16892140],
                        [-0.13960493, -0.06078651, 0.07557713, 0.26948598],
                        [0.51289678, 0.79222788, 1.09222506, 1.39957158]])
CONV_GOLDEN = np.array([[[[-0.03874312, 0.57000324], [-0.03955296, 0.57081309],
                          [-0.04036281, 0.57162293], [-0.04117266, 0.57243278]],
                         [[-0.04522190, 0.57648202], [-0.04603175, 0.57729187],
                          [-0.04684159, 0.57810172], [-0.04765144, 0.57891156]],
                         [[-0.05170068, 0.58296080], [-0.05251053, 0.58377065],
                          [-0.05332038, 0.58458050], [-0.05413022, 0.58539035]],
                         [[-0.05817946, 0.58943959], [-0.05898931, 0.59024943],
                          [-0.05979916, 0.59105928], [-0.06060901, 0.59186913]]]])
POOL_GOLDEN = np.array([[[[0.11428571], [0.13015873], [0.14603175]],
                         [[0.24126984], [0.25714286], [0.27301587]],
                         [[0.36825397], [0.38412698], [0.40000000]]]])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_gelu_golden(backend):
    x = np.linspace(-1.5, 1.5, num=12).reshape(3, 4)
    with nnc.use_backend(backend):
        out, _ = L.gelu_forward(x)
    assert rel_error(out, GELU_GOLDEN) < 1e-7
    np.testing.assert_allclose(out, GELU_GOLDEN, rtol=0, atol=1e-8)
    # the exact erf GELU is 1.08e-3 away: the tanh approximation is the one asked for
    from math import erf
    exact = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))(x)
    assert rel_error(exact, GELU_GOLDEN) > 1e-4


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv_nhwc_golden(backend):
    x = np.linspace(-0.1, 0.4, num=1 * 8 * 8 * 1).reshape([1, 8, 8, 1])
    w = np.linspace(-0.2, 0.2, num=5 * 5 * 1 * 2).reshape(5, 5, 1, 2)
    b = np.linspace(-0.3, 0.3, num=2)
    with nnc.use_backend(backend):
        out, _ = fl.conv_nhwc_forward(x, w, b, {"stride": 1, "pad": 0})
    assert out.shape == (1, 4, 4, 2)
    assert rel_error(out, CONV_GOLDEN) < 1e-7
    np.testing.assert_allclose(out, CONV_GOLDEN, rtol=0, atol=1e-8)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_max_pool_nhwc_golden(backend):
    x = np.linspace(-0.1, 0.4, num=64).reshape([1, 8, 8, 1])
    with nnc.use_backend(backend):
        out, _ = fl.max_pool_nhwc_forward(x, {"pool_height": 4, "pool_width": 4, "stride": 2})
    assert out.shape == (1, 3, 3, 1)
    assert rel_error(out, POOL_GOLDEN) < 1e-7
    np.testing.assert_allclose(out, POOL_GOLDEN, rtol=0, atol=1e-8)


# --- the ops as (forward, backward) runs on inputs built from a seed ---

# (N, H, W, C, HH, WW, F, stride, pad): tails on purpose (N=1, odd and prime
# sizes, C not a multiple of the SIMD width), windows that do not tile
# (rounded down), pads larger than the filter, 1x1 kernels.
CONV_SHAPES = [(1, 5, 5, 1, 5, 5, 2, 1, 0), (2, 7, 9, 3, 3, 3, 4, 1, 1),
               (3, 11, 8, 5, 4, 2, 7, 2, 1), (4, 9, 9, 17, 1, 1, 3, 2, 0),
               (2, 6, 6, 3, 3, 3, 2, 3, 4), (5, 8, 8, 3, 4, 4, 12, 2, 1),
               (3, 13, 10, 6, 5, 3, 5, 3, 2), (1, 4, 4, 2, 3, 3, 3, 1, 0)]
# (N, H, W, C, ph, pw, stride)
POOL_SHAPES = [(1, 2, 2, 1, 2, 2, 2), (2, 8, 8, 3, 2, 2, 2), (3, 7, 9, 5, 3, 3, 2),
               (1, 8, 8, 1, 4, 4, 2), (2, 13, 11, 17, 5, 3, 4), (2, 6, 6, 4, 3, 3, 1),
               (2, 9, 7, 3, 2, 3, 3),
               # the native forward's vector blocks: 4 vectors of channels (32 float32 or 16
               # float64), then single vectors, then a scalar tail
               (2, 6, 7, 37, 2, 2, 2), (1, 5, 5, 64, 3, 3, 1), (1, 4, 4, 45, 2, 2, 2)]
EW_SHAPES = [(1,), (7,), (3, 5, 7), (1, 100003)]


def conv_inputs(shape, dtype, seed=0):
    N, H, W, C, HH, WW, F, s, p = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = (0.3 * rng.standard_normal((HH, WW, C, F))).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Ho, Wo = (H + 2 * p - HH) // s + 1, (W + 2 * p - WW) // s + 1
    dout = rng.standard_normal((N, Ho, Wo, F)).astype(dtype)
    return x, w, b, {"stride": s, "pad": p}, dout


def pool_inputs(shape, dtype, seed=0):
    N, H, W, C, ph, pw, s = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    Ho, Wo = (H - ph) // s + 1, (W - pw) // s + 1
    return x, {"pool_height": ph, "pool_width": pw, "stride": s}, \
        rng.standard_normal((N, Ho, Wo, C)).astype(dtype)


def run_conv(backend, x, w, b, cp, dout):
    with nnc.use_backend(backend):
        out, cache = fl.conv_nhwc_forward(x, w, b, cp)
        return (out,) + tuple(fl.conv_nhwc_backward(dout, cache))


def run_pool(backend, x, pp, dout):
    with nnc.use_backend(backend):
        out, cache = fl.max_pool_nhwc_forward(x, pp)
        return out, fl.max_pool_nhwc_backward(dout, cache)


def run_ew(backend, name, x, dout, *args):
    with nnc.use_backend(backend):
        out, cache = getattr(L, name + "_forward")(x, *args)
        return out, getattr(L, name + "_backward")(dout, cache)


def assert_outputs_close(ref, got, dtype, atol32=1e-5):
    for r, g in zip(ref, got):
        assert g.shape == r.shape and g.dtype == dtype
        scale = max(1.0, float(np.max(np.abs(r))))
        np.testing.assert_allclose(g, r, **tol(dtype, atol=(atol32 if dtype == np.float32
                                                            else 1e-12) * scale))


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv_nhwc_native_matches_reference(shape, dtype):
    args = conv_inputs(shape, dtype)
    copies = [a.copy() if isinstance(a, np.ndarray) else dict(a) for a in args]
    ref = run_conv("numpy", *args)
    got = run_conv("cpp", *args)
    # a conv output sums HH*WW*C float32 products
    assert_outputs_close(ref, got, dtype, atol32=1e-4)
    for a, c in zip(args, copies):   # inputs untouched
        np.testing.assert_array_equal(a, c) if isinstance(a, np.ndarray) else None


def test_conv_nhwc_reference_matches_nchw_conv_and_transposes():
    """The NHWC reference is the CS231n NCHW conv with its axes moved (the
    shapes where the filter tiles the input, which the NCHW op requires)."""
    for shape in [(2, 7, 9, 3, 3, 3, 4, 1, 1), (3, 11, 9, 5, 3, 3, 7, 2, 1),
                  (2, 6, 6, 3, 3, 3, 2, 3, 3)]:
        x, w, b, cp, dout = conv_inputs(shape, np.float64)
        with nnc.use_backend("numpy"):
            out, cache = fl.conv_nhwc_forward(x, w, b, cp)
            dx, dw, db = fl.conv_nhwc_backward(dout, cache)
        ref, ref_cache = L.conv_forward_naive(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1),
                                              b, cp)
        rdx, rdw, rdb = L.conv_backward_naive(dout.transpose(0, 3, 1, 2), ref_cache)
        np.testing.assert_allclose(out, ref.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, rdx.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, rdw.transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db, rdb, rtol=1e-12, atol=1e-12)


@needs_cpp
@pytest.mark.parametrize("N", [1, 2, 3, 7])
def test_conv_nhwc_native_batch_splits(N):
    """Both thread layouts (fewer images than threads: serial, BLAS threads the
    GEMMs; more: images split between threads) and tiles that span images,
    or split one image (a large image with a deep filter)."""
    for shape in [(N, 6, 6, 3, 3, 3, 5, 1, 1), (N, 40, 37, 16, 3, 3, 8, 1, 1)]:
        args = conv_inputs(shape, np.float64, seed=N)
        assert_outputs_close(run_conv("numpy", *args), run_conv("cpp", *args), np.float64)


@needs_cpp
def test_conv_nhwc_native_is_deterministic():
    args = conv_inputs((9, 17, 15, 8, 3, 3, 16, 1, 1), np.float32, seed=3)
    first = run_conv("cpp", *args)
    for _ in range(3):
        for a, b in zip(first, run_conv("cpp", *args)):
            np.testing.assert_array_equal(a, b)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_max_pool_nhwc_native_matches_reference(shape, dtype):
    x, pp, dout = pool_inputs(shape, dtype)
    x0 = x.copy()
    ref = run_pool("numpy", x, pp, dout)
    got = run_pool("cpp", x, pp, dout)
    np.testing.assert_array_equal(got[0], ref[0])
    assert_outputs_close(ref, got, dtype)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_max_pool_nhwc_ties_go_to_the_first_maximum(backend):
    # constant input: every window's first tap wins; overlapping windows add up
    x = np.ones((2, 5, 5, 3))
    dout = np.ones((2, 2, 2, 3))
    out, dx = run_pool(backend, x, {"pool_height": 3, "pool_width": 3, "stride": 2}, dout)
    np.testing.assert_array_equal(out, 1)
    expected = np.zeros((5, 5))
    expected[0, 0] = expected[0, 2] = expected[2, 0] = expected[2, 2] = 1
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(dx[n, :, :, c], expected)
    # a partial tie in one window: the first in row-major order
    x = np.zeros((1, 2, 2, 2))
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 5.0   # channel 0: (0, 1) comes first
    x[0, 1, 1, 1] = x[0, 1, 0, 1] = 2.0   # channel 1: (1, 0) comes first
    _, dx = run_pool(backend, x, {"pool_height": 2, "pool_width": 2, "stride": 2},
                     np.ones((1, 1, 1, 2)))
    assert dx[0, 0, 1, 0] == 1 and dx[0, 1, 0, 0] == 0
    assert dx[0, 1, 0, 1] == 1 and dx[0, 1, 1, 1] == 0


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [8, 37, 64])
def test_max_pool_nhwc_native_ties_and_nans_in_every_lane(C, dtype):
    # few distinct values, so most windows tie, and NaNs scattered over the channels: the
    # vector blocks must pick the first maximum (or first NaN) in window order in every lane
    rng = np.random.default_rng(C)
    x = rng.integers(0, 3, (3, 8, 8, C)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    for pp in ({"pool_height": 2, "pool_width": 2, "stride": 2},
               {"pool_height": 3, "pool_width": 3, "stride": 1}):
        Ho = (8 - pp["pool_height"]) // pp["stride"] + 1
        # small integers: sums of overlapping windows are exact in any order
        dout = rng.integers(-4, 5, (3, Ho, Ho, C)).astype(dtype)
        ref = run_pool("numpy", x, pp, dout)
        got = run_pool("cpp", x, pp, dout)
        np.testing.assert_array_equal(got[0], ref[0])   # NaNs compare equal here
        np.testing.assert_array_equal(got[1], ref[1])   # dx lands on the same taps


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_max_pool_nhwc_nan_wins_like_argmax(backend):
    x = np.zeros((1, 2, 2, 1))
    x[0, 0, 1, 0] = np.nan
    x[0, 1, 1, 0] = 3.0
    out, dx = run_pool(backend, x, {"pool_height": 2, "pool_width": 2, "stride": 2},
                       np.ones((1, 1, 1, 1)))
    assert np.isnan(out).all()
    assert dx[0, 0, 1, 0] == 1 and dx.sum() == 1


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", EW_SHAPES)
@pytest.mark.parametrize("name,args", [("gelu", ()), ("leaky_relu", ()), ("leaky_relu", (0.2,))])
def test_elementwise_native_matches_reference(name, args, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    x0 = x.copy()
    ref = run_ew("numpy", name, x, dout, *args)
    got = run_ew("cpp", name, x, dout, *args)
    assert_outputs_close(ref, got, dtype)
    np.testing.assert_array_equal(x, x0)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 3), (64, 1), (33, 1001)])
def test_bce_native_matches_reference(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    y = (rng.random(shape) < 0.5).astype(dtype)
    ref = [np.asarray(v) for v in _bce("numpy", x, y)]
    got = [np.asarray(v) for v in _bce("cpp", x, y)]
    assert isinstance(_bce("cpp", x, y)[0], float)
    assert got[1].dtype == dtype
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-10 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(got[1], ref[1], **tol(dtype, atol=1e-7 if dtype == np.float32
                                                     else 1e-16))


def _bce(backend, x, y):
    with nnc.use_backend(backend):
        return L.bce_loss(x, y)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bce_values(backend):
    x = np.array([[0.0, 2.0], [-3.0, 1e4]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    with nnc.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dx = L.bce_loss(x, y)
        big, dbig = L.bce_loss(np.array([-1e300, 1e300]), np.array([1.0, 0.0]))
    terms = [np.log(2), 2 + np.log1p(np.exp(-2)), np.log1p(np.exp(-3)), 0.0]
    assert abs(loss - np.mean(terms)) < 1e-12
    assert abs(dx[0, 0] - (0.5 - 1) / 4) < 1e-15 and abs(dx[1, 1]) < 1e-15
    # huge logits: the loss is their size, exactly, and nothing overflows
    assert big == 1e300 and np.array_equal(dbig, [-0.5, 0.5])


# --- gradient checks ---

@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("shape", [(2, 7, 6, 3, 3, 3, 4, 1, 1), (3, 8, 7, 2, 4, 2, 3, 2, 1),
                                   (2, 6, 6, 3, 3, 3, 2, 3, 4)])
def test_conv_nhwc_gradient_check(backend, shape):
    x, w, b, cp, dout = conv_inputs(shape, np.float64, seed=5)
    with nnc.use_backend(backend):
        _, cache = fl.conv_nhwc_forward(x, w, b, cp)
        dx, dw, db = fl.conv_nhwc_backward(dout, cache)

        def f(_):
            return fl.conv_nhwc_forward(x, w, b, cp)[0]
        assert rel_error(dx, num_grad(f, x, dout)) < 1e-8
        assert rel_error(dw, num_grad(f, w, dout)) < 1e-8
        assert rel_error(db, num_grad(f, b, dout)) < 1e-8


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("shape", [(2, 8, 8, 3, 2, 2, 2), (2, 7, 9, 2, 3, 3, 2),
                                   (1, 8, 8, 3, 4, 4, 2)])
def test_max_pool_nhwc_gradient_check(backend, shape):
    x, pp, dout = pool_inputs(shape, np.float64, seed=6)
    with nnc.use_backend(backend):
        _, cache = fl.max_pool_nhwc_forward(x, pp)
        dx = fl.max_pool_nhwc_backward(dout, cache)
        dx_num = num_grad(lambda v: fl.max_pool_nhwc_forward(v, pp)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("name,args", [("gelu", ()), ("leaky_relu", ()), ("leaky_relu", (0.3,))])
def test_elementwise_gradient_check(backend, name, args):
    rng = np.random.default_rng(3)
    x = 2 * rng.standard_normal((4, 7))
    x[np.abs(x) < 1e-2] = 0.5   # keep leaky_relu away from its kink
    # and gelu's derivative away from where it is tiny (its zero near x = -0.75
    # and the far left), where the central difference's rounding noise is a
    # large part of the value
    x[np.abs(x + 0.75) < 0.1] = 0.5
    x = np.clip(x, -3, 3)
    dout = rng.standard_normal((4, 7))
    with nnc.use_backend(backend):
        _, dx = run_ew(backend, name, x, dout, *args)
        dx_num = num_grad(lambda v: getattr(L, name + "_forward")(v, *args)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bce_gradient_check(backend):
    rng = np.random.default_rng(4)
    x = 3 * rng.standard_normal((5, 3))
    y = rng.random((5, 3))
    with nnc.use_backend(backend):
        _, dx = L.bce_loss(x, y)
        dx_num = num_grad(lambda v: np.array(L.bce_loss(v, y)[0]), x, np.array(1.0))
    assert rel_error(dx, dx_num) < 1e-8


# --- edge values, promotion, bad input ---

@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_special_values_without_warnings(backend, dtype):
    big = np.finfo(dtype).max
    x = np.array([-np.inf, -big, -1e4, -30.0, -0.0, 0.0, 1e-30, 30.0, 1e4, big, np.inf, np.nan],
                 dtype=dtype)
    with nnc.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("ignore" if backend == "numpy" else "error")  # NumPy's x**3 overflows
        out, cache = L.gelu_forward(x)
        dx = L.gelu_backward(np.ones_like(x), cache)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[1:4], 0)               # far left: 0
    np.testing.assert_array_equal(out[7:10], x[7:10])        # far right: x itself
    assert out[4] == 0 and out[5] == 0 and out[6] == x[6] / 2
    assert np.isnan(out[0]) and out[10] == np.inf and np.isnan(out[11])   # -inf * 0
    np.testing.assert_array_equal(dx[0:4], 0)                # no inf * 0 in the derivative
    np.testing.assert_array_equal(dx[7:11], 1)
    assert dx[5] == 0.5 and np.isnan(dx[11])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_new_ops_follow_numpy_promotion(backend):
    with nnc.use_backend(backend):
        assert L.gelu_forward(np.arange(4))[0].dtype == np.float64
        assert L.leaky_relu_forward(np.arange(-2, 2, dtype=np.int32))[0].dtype == np.float64
        assert L.gelu_forward(np.ones(3, np.float16))[0].dtype == np.float32
        x, w, b, cp, _ = conv_inputs((1, 5, 5, 2, 3, 3, 2, 1, 1), np.float32)
        assert fl.conv_nhwc_forward(x, w, b, cp)[0].dtype == np.float32
        assert fl.conv_nhwc_forward(x, w.astype(np.float64), b, cp)[0].dtype == np.float64
        assert fl.conv_nhwc_forward((x * 10).astype(np.int64), w, b, cp)[0].dtype == np.float64
        pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
        ints = np.arange(16).reshape(1, 4, 4, 1)
        assert fl.max_pool_nhwc_forward(ints, pp)[0].dtype == np.float64
        loss, dx = L.bce_loss(np.zeros(3, np.float32), np.array([0, 1, 1]))
        assert dx.dtype == np.float64 and abs(loss - np.log(2)) < 1e-12


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_non_contiguous_inputs(backend):
    x, w, b, cp, dout = conv_inputs((2, 9, 8, 4, 3, 3, 3, 1, 1), np.float64)
    xs = np.asfortranarray(x)
    ws = np.ascontiguousarray(w[:, :, :, ::-1])[:, :, :, ::-1]
    a = run_conv(backend, xs, ws, b, cp, dout)
    r = run_conv("numpy", x, np.ascontiguousarray(ws), b, cp, dout)
    for u, v in zip(a, r):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)
    xp = x[:, ::2]
    pp = {"pool_height": 2, "pool_width": 2, "stride": 1}
    out, _ = run_pool(backend, xp, pp, np.ones((2, 4, 7, 4)))
    np.testing.assert_array_equal(out, run_pool("numpy", np.ascontiguousarray(xp), pp,
                                                np.ones((2, 4, 7, 4)))[0])


P0 = {"stride": 1, "pad": 0}
CONV_BAD = [
    (lambda x, w, b: (x[0], w, b, {"stride": 1, "pad": 0}), ValueError, r"x must be 4-D"),
    (lambda x, w, b: (x, w[0], b, {"stride": 1, "pad": 0}), ValueError, r"w must be 4-D"),
    (lambda x, w, b: (x, w, b[None], {"stride": 1, "pad": 0}), ValueError, r"b must be 1-D"),
    (lambda x, w, b: (x, w[:, :, :2], b, {"stride": 1, "pad": 0}), ValueError,
     r"C=3 channels but w has shape \(3, 3, 2, 4\)"),
    (lambda x, w, b: (x, w, b[:3], P0), ValueError, r"b must have shape \(4,\)"),
    (lambda x, w, b: (x[:, :2], w, b, {"stride": 1, "pad": 0}), ValueError,
     r"3x3 filter .* does not fit in the padded input: H=2 \+ 2\*pad=0 < 3"),
    (lambda x, w, b: (x, w, b, {"stride": 1.0, "pad": 0}), TypeError,
     r"conv_param\['stride'\] must be an int"),
    (lambda x, w, b: (x, w, b, {"stride": 0, "pad": 0}), ValueError,
     r"conv_param\['stride'\] must be >= 1"),
    (lambda x, w, b: (x, w, b, {"stride": 1, "pad": -1}), ValueError,
     r"conv_param\['pad'\] must be >= 0"),
    (lambda x, w, b: (x, w, b, {"stride": 1}), ValueError, r"missing the key 'pad'"),
    (lambda x, w, b: (x, w, b, [1, 0]), TypeError, r"conv_param must be a dict"),
    (lambda x, w, b: (x.tolist(), w, b, P0), TypeError, r"x must be a numpy.ndarray"),
    (lambda x, w, b: (x.astype(complex), w, b, P0), TypeError, r"x must hold real numbers"),
    (lambda x, w, b: (x[:0], w, b, {"stride": 1, "pad": 0}), ValueError, r"empty batch"),
    (lambda x, w, b: (x.astype(np.longdouble), w, b, {"stride": 1, "pad": 0}), TypeError,
     r"float32 or float64"),
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("case", range(len(CONV_BAD)))
def test_conv_nhwc_bad_input(backend, case):
    make, exc, msg = CONV_BAD[case]
    x, w, b, _, _ = conv_inputs((2, 5, 5, 3, 3, 3, 4, 1, 0), np.float64)
    args = make(x, w, b)
    with nnc.use_backend(backend), pytest.raises(exc, match=msg):
        fl.conv_nhwc_forward(*args)


POOL_BAD = [
    (lambda x: (x[0], {"pool_height": 2, "pool_width": 2, "stride": 2}), ValueError,
     r"x must be 4-D"),
    (lambda x: (x, {"pool_height": 7, "pool_width": 2, "stride": 2}), ValueError,
     r"7x2 pool window does not fit in x of shape \(2, 6, 6, 3\) \(N, H, W, C\): H=6 < 7"),
    (lambda x: (x, {"pool_height": 2.5, "pool_width": 2, "stride": 2}), TypeError,
     r"pool_param\['pool_height'\] must be an int"),
    (lambda x: (x, {"pool_height": True, "pool_width": 2, "stride": 2}), TypeError,
     r"pool_param\['pool_height'\] must be an int"),
    (lambda x: (x, {"pool_height": 2, "pool_width": 2, "stride": 0}), ValueError,
     r"pool_param\['stride'\] must be >= 1"),
    (lambda x: (x, {"pool_height": 2, "pool_width": 2}), ValueError, r"missing the key 'stride'"),
    (lambda x: (x[:, :, :, :0], {"pool_height": 2, "pool_width": 2, "stride": 2}), ValueError,
     r"has no channels"),
    (lambda x: (x.astype(object), {"pool_height": 2, "pool_width": 2, "stride": 2}), TypeError,
     r"x must hold real numbers"),
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("case", range(len(POOL_BAD)))
def test_max_pool_nhwc_bad_input(backend, case):
    make, exc, msg = POOL_BAD[case]
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3))
    with nnc.use_backend(backend), pytest.raises(exc, match=msg):
        fl.max_pool_nhwc_forward(*make(x))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_elementwise_and_bce_bad_input(backend):
    with nnc.use_backend(backend):
        for bad, exc, msg in [(float("nan"), ValueError, "finite"),
                              (True, TypeError, "real number"), ("0.1", TypeError, "real number"),
                              (np.inf, ValueError, "finite")]:
            with pytest.raises(exc, match=f"negative_slope must be .*{msg}"):
                L.leaky_relu_forward(np.ones(3), bad)
        with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
            L.gelu_forward([1.0, 2.0])
        with pytest.raises(TypeError, match="x must hold real numbers"):
            L.gelu_forward(np.ones(2, complex))
        with pytest.raises(ValueError, match=r"x has shape \(3,\) but y has shape \(4,\)"):
            L.bce_loss(np.zeros(3), np.zeros(4))
        with pytest.raises(ValueError, match=r"bce_loss: x is empty \(shape \(0, 2\)\)"):
            L.bce_loss(np.zeros((0, 2)), np.zeros((0, 2)))
        with pytest.raises(ValueError, match=r"y must hold targets in \[0, 1\]"):
            L.bce_loss(np.zeros(2), np.array([0.5, 2.0]))
        _, cache = L.gelu_forward(np.ones((2, 3)))
        with pytest.raises(ValueError,
                           match=r"gelu_backward: dout has shape \(3, 2\), expected \(2, 3\)"):
            L.gelu_backward(np.ones((3, 2)), cache)
        x, pp, _ = pool_inputs((1, 4, 4, 2, 2, 2, 2), np.float64)
        _, cache = fl.max_pool_nhwc_forward(x, pp)
        with pytest.raises(ValueError, match=r"max_pool_nhwc_backward: dout has shape"):
            fl.max_pool_nhwc_backward(np.ones((1, 2, 2, 3)), cache)


@needs_cpp
def test_native_bindings_validate_without_python_checks():
    """The bindings re-check what protects memory, so a direct call with bad
    shapes or a tampered argmax raises instead of reading or writing out of bounds."""
    from nnc import _nnc
    x = np.ones((2, 5, 5, 3))
    with pytest.raises(ValueError, match="filter does not fit"):
        _nnc.conv_nhwc_forward(x, np.ones((7, 3, 3, 2)), np.ones(2), 1, 0)
    with pytest.raises(ValueError, match=r"w has shape \(3, 3, 2, 2\), expected \(3, 3, 3, 2\)"):
        _nnc.conv_nhwc_forward(x, np.ones((3, 3, 2, 2)), np.ones(2), 1, 0)
    with pytest.raises(ValueError, match=r"b has shape \(3,\), expected \(2,\)"):
        _nnc.conv_nhwc_forward(x, np.ones((3, 3, 3, 2)), np.ones(3), 1, 0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        _nnc.conv_nhwc_forward(x, np.ones((3, 3, 3, 2)), np.ones(2), 0, 0)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 3, 3, 3\), expected \(2, 3, 3, 2\)"):
        _nnc.conv_nhwc_backward(np.ones((2, 3, 3, 3)), x, np.ones((3, 3, 3, 2)), 1, 0)
    with pytest.raises(TypeError, match="w has dtype float32 but x has dtype float64"):
        _nnc.conv_nhwc_forward(x, np.ones((3, 3, 3, 2), np.float32), np.ones(2), 1, 0)
    with pytest.raises(ValueError, match="pool window does not fit"):
        _nnc.max_pool_nhwc_forward(x, 6, 2, 1)
    out, argmax = _nnc.max_pool_nhwc_forward(x, 2, 2, 1)
    bad = argmax.copy()
    bad[0, 0, 0, 0] = 25
    with pytest.raises(ValueError,
                       match=r"argmax holds values in \[0, 25\], outside the H\*W = 25"):
        _nnc.max_pool_nhwc_backward(np.ones_like(out), bad, 5, 5)
    with pytest.raises(TypeError, match="argmax must be int32"):
        _nnc.max_pool_nhwc_backward(np.ones_like(out), argmax.astype(np.int64), 5, 5)
    with pytest.raises(ValueError, match=r"dout has shape \(3,\) but x has shape \(4,\)"):
        _nnc.gelu_backward(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"y has shape \(4,\) but x has shape \(3,\)"):
        _nnc.bce_loss(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="float32 or float64"):
        _nnc.leaky_relu_forward(np.ones(3, np.int64), 0.1)


def test_registry_declares_the_new_ops():
    from nnc import backends
    for name in ["gelu_forward", "leaky_relu_forward", "conv_nhwc_forward",
                 "max_pool_nhwc_forward"]:
        assert backends.declared_ops("forward").count(name) == 1
        assert name.replace("forward", "backward") in backends.declared_ops("backward")
    assert "bce_loss" in backends.declared_ops("call")
    if "cpp" in nnc.available_backends():
        assert nnc.missing_ops("cpp") == []


# --- the native NHWC conv's Winograd F(2x2, 3x3) path (3x3, stride 1) ---

WINO_SHAPES = [(2, 8, 8, 16, 3, 3, 32, 1, 1), (3, 7, 9, 5, 3, 3, 4, 1, 1),
               (1, 5, 6, 3, 3, 3, 7, 1, 0), (2, 9, 7, 4, 3, 3, 6, 1, 2),
               (4, 6, 6, 8, 3, 3, 8, 1, 3), (2, 1, 1, 3, 3, 3, 2, 1, 1),
               (5, 11, 10, 13, 3, 3, 9, 1, 1)]


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", WINO_SHAPES)
def test_conv_nhwc_winograd_matches_reference(shape, dtype):
    from nnc import _nnc
    args = conv_inputs(shape, dtype, seed=sum(shape))
    # algo 2: Winograd for every 3x3 stride-1 shape (dx: pad <= 2)
    bwd = "winograd" if shape[8] <= 2 else "im2col"
    assert _nnc.conv_nhwc_paths(args[0], args[1], 1, shape[8], 2) == ("winograd", bwd, bwd)
    ref = run_conv("numpy", *args)
    with nnc.conv_algorithm("winograd"):
        got = run_conv("cpp", *args)
        again = run_conv("cpp", *args)
    assert_outputs_close(ref, got, dtype, atol32=1e-4)
    # the same bits every run
    for a, b in zip(got, again):
        np.testing.assert_array_equal(a, b)


@needs_cpp
def test_conv_nhwc_paths_by_size():
    """(forward, dx, dw), float64. The size rule of the NCHW kernel: Winograd
    for 3x3 stride-1 filters with enough channels and tiles (the course's
    conv2, the deep conv), im2col else; the direct forward for few input
    channels, on AVX2 CPUs up to 32 beside at most 16 filters, and on AVX-512
    CPUs up to 128 channels with F filling the register blocks, in place of
    im2col, or of Winograd when OpenBLAS runs AVX2 kernels; dx by the same kernel where that rule holds with C and F
    swapped (a square kernel, pad below its size); the direct dw for stride 1,
    at least 48 taps and C*F up to 512 (where Winograd applies) or 2048
    (where it does not; 4096 on AVX-512 CPUs)."""
    from nnc import _nnc
    shape = lambda N, H, C, k, F: (np.empty((N, H, H, C)), np.empty((k, k, C, F)))  # noqa: E731
    paths = _nnc.conv_nhwc_paths
    avx512 = _nnc.simd_isa().startswith("x86-64-v4")
    core = _nnc.blas_corename().lower()
    blas_avx512 = any(n in core for n in ("skylakex", "cooperlake", "sapphirerapids"))
    # where Winograd applies (3x3, enough channels and tiles)
    wino = ("direct",) * 2 if avx512 and not blas_avx512 else ("winograd",) * 2
    # AVX2 CPUs: dx (C 32, F 16) is direct, as every AVX2 shape with C <= 32 and F <= 16
    avx2 = _nnc.simd_isa().startswith("x86-64-v3")
    assert paths(*shape(10, 16, 16, 3, 32), 1, 1) == \
        (("winograd", "direct") if avx2 else wino) + ("direct",)
    assert paths(*shape(10, 16, 16, 3, 64), 1, 1) == wino + ("winograd",)
    assert paths(*shape(64, 32, 64, 3, 64), 1, 1) == wino + ("winograd",)
    assert paths(*shape(10, 16, 160, 3, 160), 1, 1) == ("winograd",) * 3  # C > 128
    assert paths(*shape(10, 16, 16, 3, 9), 1, 1)[0] == "winograd"  # 9 of 16 filters
    # where im2col is the other path
    other = "direct" if avx512 else "im2col"
    few = "direct" if avx512 or avx2 else "im2col"
    assert paths(*shape(10, 32, 8, 5, 16), 1, 2) == (few, few, "direct")  # C = 8
    assert paths(*shape(10, 32, 64, 5, 64), 1, 2) == (other, other, other)  # C*F 4096
    assert paths(*shape(10, 32, 64, 5, 128), 1, 2)[2] == "im2col"  # C*F 8192
    # few input channels, stride 1: the direct forward and dw; dx with 3 filters is im2col's
    assert paths(*shape(10, 32, 3, 5, 16), 1, 2) == ("direct", "im2col", "direct")
    assert paths(*shape(10, 32, 3, 3, 64), 1, 1) == ("direct", "im2col", "direct")
    assert paths(*shape(10, 6, 3, 5, 16), 1, 2) == ("im2col", "im2col", "direct")   # Wo = 6
    assert paths(*shape(10, 6, 1, 3, 16), 1, 1) == ("im2col", "im2col", "im2col")   # 9 taps
    # 'direct' reaches any stride-1 shape, and dx where the kernel is square with pad
    # below its size
    assert paths(*shape(10, 6, 3, 5, 16), 1, 2, 3) == ("direct",) * 3
    assert paths(*shape(10, 32, 8, 5, 16), 1, 2, 3) == ("direct",) * 3
    assert paths(*shape(10, 32, 64, 3, 64), 1, 1, 3) == ("direct",) * 3
    assert paths(*shape(10, 32, 64, 3, 64), 1, 3, 3) == ("direct", "im2col", "direct")
    assert paths(*shape(10, 16, 16, 3, 32), 2, 1) == ("im2col", "im2col", "im2col")
    assert paths(*shape(10, 16, 16, 3, 32), 2, 1, 3) == ("im2col", "im2col", "im2col")
    assert paths(*shape(1, 4, 16, 3, 32), 1, 1) == ("im2col", "im2col", "direct")  # 4 tiles


NHWC_DIRECT_SHAPES = [(10, 32, 32, 3, 5, 5, 16, 1, 2),   # the course's conv1
                      (3, 17, 19, 1, 3, 3, 5, 1, 1), (2, 9, 40, 2, 3, 4, 9, 1, 2),
                      (4, 12, 12, 4, 7, 7, 40, 1, 3), (2, 16, 16, 3, 3, 3, 33, 1, 1),
                      (1, 5, 21, 3, 5, 2, 17, 1, 0), (2, 3, 8, 3, 3, 3, 4, 1, 0),  # Wo 6: forced
                      # C a run-time value; dx's forward with C and F swapped
                      (2, 7, 35, 20, 3, 3, 13, 1, 2), (1, 5, 30, 9, 5, 5, 33, 1, 4),
                      (3, 6, 17, 6, 3, 3, 2, 1, 1),
                      (1, 40, 66, 130, 3, 3, 9, 1, 1)]  # windows of a few rows (512 KB)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", NHWC_DIRECT_SHAPES, ids=lambda c: "x".join(map(str, c)))
def test_conv_nhwc_direct_matches_reference(shape, dtype):
    """The direct NHWC forward, dx and dw under 'direct': filter counts that
    fill one, two or a part of a register block, output rows shorter than a
    pixel block and with a tail, rows of taps (WW*C) shorter and longer than a
    tap block, pads 0-4, 1-4 channels (C compiled in) and more (C at run
    time). The forward and dx give the same bits on every call and at every
    thread count (each output pixel is one thread's sum); dw and db the same
    bits on every call (each thread sums fixed images). dx is the direct
    kernel's where the kernel is square with pad below its size."""
    from nnc import _nnc
    x, w, b, cp, dout = conv_inputs(shape, dtype, seed=sum(shape))
    HH, WW, pad = shape[4], shape[5], shape[8]
    dx_path = "direct" if HH == WW and pad < HH else "im2col"
    assert _nnc.conv_nhwc_paths(x, w, 1, pad, 3) == ("direct", dx_path, "direct")
    ref = run_conv("numpy", x, w, b, cp, dout)
    outs = []
    with nnc.conv_algorithm("direct"), nnc.use_backend("cpp"):
        for threads in (1, 2, 3):
            with native_threads(threads):
                out, cache = fl.conv_nhwc_forward(x, w, b, cp)
                grads = fl.conv_nhwc_backward(dout, cache)
                dw_db = fl.conv_nhwc_backward_weights(dout, cache)
                again = fl.conv_nhwc_backward_weights(dout, cache)
            for g, a in zip(dw_db, again):
                np.testing.assert_array_equal(g, a)
            np.testing.assert_array_equal(grads[1], dw_db[0])
            outs.append((out, grads[0]) + tuple(dw_db))
    for got in outs:
        # out, dx, dw, db against the reference's
        assert_outputs_close(ref, got, dtype, atol32=1e-4)
        np.testing.assert_array_equal(got[0], outs[0][0])
        if dx_path == "direct":
            np.testing.assert_array_equal(got[1], outs[0][1])


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 10, 10, 16, 3, 3, 16, 1, 1), (4, 16, 16, 16, 3, 3, 32, 1, 1),
                                   (3, 9, 11, 8, 5, 5, 7, 1, 2), (1, 12, 13, 6, 3, 3, 40, 1, 0)],
                         ids=lambda c: "x".join(map(str, c)))
def test_conv_nhwc_direct_dw_beside_other_dx_paths(shape, dtype):
    """Auto's backward with the direct dw beside Winograd's dx (the first two)
    or im2col's: every output against the reference at 1 to 3 threads, dw and
    db the same bits as conv_nhwc_backward_weights, and as on every call."""
    from nnc import _nnc
    x, w, b, cp, dout = conv_inputs(shape, dtype, seed=sum(shape))
    assert _nnc.conv_nhwc_paths(x, w, 1, shape[8])[2] == "direct"
    ref = run_conv("numpy", x, w, b, cp, dout)
    for threads in (1, 2, 3):
        with native_threads(threads), nnc.use_backend("cpp"), nnc.conv_algorithm("auto"):
            out, cache = fl.conv_nhwc_forward(x, w, b, cp)
            grads = fl.conv_nhwc_backward(dout, cache)
            again = fl.conv_nhwc_backward(dout, cache)
            dw_only = fl.conv_nhwc_backward_weights(dout, cache)
        for g, a in zip(grads, again):
            np.testing.assert_array_equal(g, a)
        np.testing.assert_array_equal(dw_only[0], grads[1])
        np.testing.assert_array_equal(dw_only[1], grads[2])
        assert_outputs_close(ref, (out,) + tuple(grads), dtype, atol32=1e-4)


@needs_cpp
def test_conv_nhwc_winograd_gradient_check():
    x, w, b, cp, dout = conv_inputs((2, 6, 5, 3, 3, 3, 4, 1, 1), np.float64, seed=9)
    with nnc.use_backend("cpp"), nnc.conv_algorithm("winograd"):
        _, cache = fl.conv_nhwc_forward(x, w, b, cp)
        dx, dw, db = fl.conv_nhwc_backward(dout, cache)

        def f(_):
            return fl.conv_nhwc_forward(x, w, b, cp)[0]
        # Winograd's forward rounds a little differently from the direct sum,
        # which the central differences see on the smallest entries
        for a, g in ((x, dx), (w, dw), (b, db)):
            num = num_grad(f, a, dout)
            assert rel_error(num, g) < 1e-7
            assert np.max(np.abs(num - g)) < 1e-9 * np.max(np.abs(g))


# --- weight gradients without dx (a network's first layer) ---

@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("algo", ["im2col", "winograd"])
def test_conv_nhwc_backward_weights(backend, algo):
    for shape in [(3, 9, 8, 4, 3, 3, 6, 1, 1), (2, 11, 10, 3, 5, 5, 7, 2, 2),
                  (1, 6, 6, 2, 3, 3, 3, 1, 0)]:
        x, w, b, cp, dout = conv_inputs(shape, np.float64, seed=3)
        with nnc.use_backend(backend), nnc.conv_algorithm(algo):
            _, cache = fl.conv_nhwc_forward(x, w, b, cp)
            _, dw, db = fl.conv_nhwc_backward(dout, cache)
            dw2, db2 = fl.conv_nhwc_backward_weights(dout, cache)
        np.testing.assert_allclose(dw2, dw, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db2, db, rtol=1e-12, atol=1e-12)
    with nnc.use_backend(backend):
        with pytest.raises(ValueError, match=r"conv_nhwc_backward_weights: dout has shape"):
            fl.conv_nhwc_backward_weights(dout[:, :-1], cache)
        with pytest.raises(TypeError, match="cache must be the cache returned"):
            fl.conv_nhwc_backward_weights(dout, tuple(cache))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_affine_backward_weights(backend):
    rng = np.random.default_rng(4)
    for dtype in DTYPES:
        x = rng.standard_normal((7, 3, 5)).astype(dtype)
        w = rng.standard_normal((15, 4)).astype(dtype)
        b = rng.standard_normal(4).astype(dtype)
        dout = rng.standard_normal((7, 4)).astype(dtype)
        with nnc.use_backend(backend):
            _, cache = L.affine_forward(x, w, b)
            _, dw, db = L.affine_backward(dout, cache)
            dw2, db2 = L.affine_backward_weights(dout, cache)
        assert dw2.dtype == dtype and dw2.shape == (15, 4) and db2.shape == (4,)
        np.testing.assert_allclose(dw2, dw, **tol(dtype))
        np.testing.assert_allclose(db2, db, **tol(dtype))
    with nnc.use_backend(backend), pytest.raises(ValueError, match="affine_backward_weights: dout"):
        L.affine_backward_weights(np.ones((7, 5)), cache)


@needs_cpp
def test_a_cache_of_the_other_backend_is_refused_by_the_weights_ops():
    x, w, b, cp, dout = conv_inputs((2, 6, 6, 2, 3, 3, 3, 1, 1), np.float64)
    with nnc.use_backend("numpy"):
        _, cache = fl.conv_nhwc_forward(x, w, b, cp)
    with nnc.use_backend("cpp"), pytest.raises(ValueError, match="made by the 'numpy' backend"):
        fl.conv_nhwc_backward_weights(dout, cache)

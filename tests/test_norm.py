"""Normalization layers: batchnorm, layernorm, spatial batchnorm and spatial
groupnorm. Golden values (spec sections 1.6-1.10), native vs reference
equivalence, numerical gradient checks, bad input, and float32 precision."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnc
from nnc import layers as L
from nnc.gradient_check import eval_numerical_gradient_array

from conftest import ALL_BACKENDS as BACKENDS
from conftest import DTYPES, needs_cpp, rel_error

HAS_CPP = "cpp" in nnc.available_backends()


def num_grad(f, x, df, h=1e-5):
    """Central-difference gradient of sum(f() * df) with respect to x (CS231n's
    eval_numerical_gradient_array); f reads x, which is perturbed in place."""
    return eval_numerical_gradient_array(lambda _: f(), x, df, h=h)


def assert_close(actual, expected, dtype):
    """Native vs reference: 1e-10 relative in float64, 1e-4 in float32, with
    an absolute floor scaled by the array's magnitude (entries near zero come
    from cancellations whose rounding differs between the two)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    if dtype == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12 * scale)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale)


def rng_arrays(seed, dtype, *shapes, scale=1.0, offset=0.0):
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(s) + offset).astype(dtype) for s in shapes]


def run(backend, fn, *args):
    with nnc.use_backend(backend):
        return fn(*args)


def fwd_bwd(backend, forward, backward, args, dout):
    """out, dx, dgamma, dbeta of one forward and backward pass on backend."""
    with nnc.use_backend(backend):
        out, cache = forward(*args)
        return (out, *backward(dout, cache))


# ---------------------------------------------------------------------------
# Golden values (float64, both backends)
# ---------------------------------------------------------------------------


def _fc_activations(N, D1, D2, D3):
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    return np.maximum(0, X.dot(W1)).dot(W2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_batchnorm_train(backend):  # spec 1.6
    np.random.seed(231)
    a = _fc_activations(200, 50, 60, 3)
    np.testing.assert_allclose(a.mean(axis=0), [-2.38145980, -13.18038246, 1.91780462],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(a.std(axis=0), [27.18502186, 34.21455511, 37.68611762],
                               rtol=0, atol=1e-7)
    with nnc.use_backend(backend):
        a_norm1, _ = L.batchnorm_forward(a, np.ones(3), np.zeros(3), {"mode": "train"})
        a_norm2, _ = L.batchnorm_forward(a, np.array([1.0, 2.0, 3.0]),
                                         np.array([11.0, 12.0, 13.0]), {"mode": "train"})
    assert np.abs(a_norm1.mean(axis=0)).max() < 1e-12
    np.testing.assert_allclose(a_norm1.std(axis=0), [0.99999999, 1.00000000, 1.00000000],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(a_norm2.mean(axis=0), [11.0, 12.0, 13.0], rtol=0, atol=1e-7)
    np.testing.assert_allclose(a_norm2.std(axis=0), [0.99999999, 1.99999999, 2.99999999],
                               rtol=0, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_batchnorm_test_mode_after_50_passes(backend):  # spec 1.7
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(D3), np.zeros(D3)
    with nnc.use_backend(backend):
        for _ in range(50):
            X = np.random.randn(N, D1)
            a = np.maximum(0, X.dot(W1)).dot(W2)
            L.batchnorm_forward(a, gamma, beta, bn_param)
        bn_param["mode"] = "test"
        X = np.random.randn(N, D1)
        a = np.maximum(0, X.dot(W1)).dot(W2)
        a_norm, _ = L.batchnorm_forward(a, gamma, beta, bn_param)
    np.testing.assert_allclose(a_norm.mean(axis=0), [-0.03927354, -0.04349152, -0.10452688],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(a_norm.std(axis=0), [1.01531428, 1.01238373, 0.97819988],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(bn_param["running_mean"],
                               [-0.32415038, 18.55718135, 14.18894184], rtol=1e-9)
    np.testing.assert_allclose(bn_param["running_var"],
                               [1205.42218363, 1249.80137297, 1311.43079537], rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_layernorm(backend):  # spec 1.8
    np.random.seed(231)
    a = _fc_activations(4, 50, 60, 3)
    a_expected = np.array([[-55.29386195, -72.85111612, -49.05521921],
                           [-47.91118586, -12.68076651, -82.23152820],
                           [-73.68339328, -62.41172756, 6.16099979],
                           [-32.09224683, -23.50847324, -23.62903226]])
    np.testing.assert_allclose(a, a_expected, rtol=0, atol=1e-8)
    with nnc.use_backend(backend):
        a_norm1, _ = L.layernorm_forward(a, np.ones(3), np.zeros(3), {"mode": "train"})
        a_norm2, _ = L.layernorm_forward(a, np.array([3.0, 3.0, 3.0]),
                                         np.array([5.0, 5.0, 5.0]), {"mode": "train"})
    np.testing.assert_allclose(a.mean(axis=1),
                               [-59.06673243, -47.60782686, -43.31137368, -26.40991744],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(a.std(axis=1),
                               [10.07429373, 28.39478981, 35.28360729, 4.01831507],
                               rtol=0, atol=1e-7)
    assert np.abs(a_norm1.mean(axis=1)).max() < 1e-12
    np.testing.assert_allclose(a_norm1.std(axis=1),
                               [0.99999995, 0.99999999, 1.00000000, 0.99999969],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(a_norm2.mean(axis=1), [5.0, 5.0, 5.0, 5.0], rtol=0, atol=1e-7)
    np.testing.assert_allclose(a_norm2.std(axis=1),
                               [2.99999985, 2.99999998, 2.99999999, 2.99999907],
                               rtol=0, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_spatial_batchnorm_train(backend):  # spec 1.9
    np.random.seed(231)
    N, C, H, W = 2, 3, 4, 5
    x = 4 * np.random.randn(N, C, H, W) + 10
    # The spec passes integer gamma/beta for out2; the cpp backend refuses
    # mixed dtypes (tested below), so it gets the same values as floats.
    gamma2, beta2 = np.asarray([3, 4, 5]), np.asarray([6, 7, 8])
    if backend == "cpp":
        gamma2, beta2 = gamma2.astype(np.float64), beta2.astype(np.float64)
    with nnc.use_backend(backend):
        out1, _ = L.spatial_batchnorm_forward(x, np.ones(C), np.zeros(C), {"mode": "train"})
        out2, _ = L.spatial_batchnorm_forward(x, gamma2, beta2, {"mode": "train"})
    assert out1.shape == out2.shape == (2, 3, 4, 5)
    ax = (0, 2, 3)
    np.testing.assert_allclose(x.mean(axis=ax), [9.33463814, 8.90909116, 9.11056338],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(x.std(axis=ax), [3.61447857, 3.19347686, 3.51681420],
                               rtol=0, atol=1e-7)
    assert np.abs(out1.mean(axis=ax)).max() < 1e-12
    np.testing.assert_allclose(out1.std(axis=ax), [0.99999962, 0.99999951, 0.99999960],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(out2.mean(axis=ax), [6.0, 7.0, 8.0], rtol=0, atol=1e-7)
    np.testing.assert_allclose(out2.std(axis=ax), [2.99999885, 3.99999804, 4.99999798],
                               rtol=0, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_spatial_batchnorm_test_mode_after_50_passes(backend):  # spec 1.10
    np.random.seed(231)
    N, C, H, W = 10, 4, 11, 12
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(C), np.zeros(C)
    with nnc.use_backend(backend):
        for _ in range(50):
            x = 2.3 * np.random.randn(N, C, H, W) + 13
            L.spatial_batchnorm_forward(x, gamma, beta, bn_param)
        bn_param["mode"] = "test"
        x = 2.3 * np.random.randn(N, C, H, W) + 13
        a_norm, _ = L.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    ax = (0, 2, 3)
    np.testing.assert_allclose(a_norm.mean(axis=ax),
                               [-0.08034406, 0.07562881, 0.05716371, 0.04378383],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(a_norm.std(axis=ax),
                               [0.96718744, 1.02997140, 1.02887624, 1.00585577],
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(bn_param["running_mean"],
                               [12.95245383, 12.95404872, 12.92818886, 12.92276219], rtol=1e-9)
    np.testing.assert_allclose(bn_param["running_var"],
                               [5.23616142, 5.22209674, 5.20456255, 5.16538918], rtol=1e-9)


# ---------------------------------------------------------------------------
# Native vs reference
# ---------------------------------------------------------------------------

BN_SHAPES = [(1, 7), (2, 3), (5, 33), (200, 3), (16, 2100), (20000, 3), (9, 4099)]


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_matches_reference(shape, dtype):
    N, D = shape
    x, gamma, beta, dout = rng_arrays(N * D, dtype, (N, D), (D,), (D,), (N, D))
    x = 3 * x + 5
    params = {b: {"mode": "train", "momentum": 0.8, "eps": 1e-3} for b in ("numpy", "cpp")}
    res = {}
    for b in ("numpy", "cpp"):
        with nnc.use_backend(b):
            # Two train passes (running statistics), then a test pass.
            L.batchnorm_forward(x[::-1].copy(), gamma, beta, params[b])
            out, cache = L.batchnorm_forward(x, gamma, beta, params[b])
            grads = L.batchnorm_backward(dout, cache)
            grads_alt = L.batchnorm_backward_alt(dout, cache)
            params[b]["mode"] = "test"
            out_t, cache_t = L.batchnorm_forward(x, gamma, beta, params[b])
            grads_t = L.batchnorm_backward(dout, cache_t)
        res[b] = (out, *grads, *grads_alt, out_t, *grads_t,
                  params[b]["running_mean"], params[b]["running_var"])
    for got, want in zip(res["cpp"], res["numpy"]):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


LN_SHAPES = [(4, 1), (1, 7), (5, 33), (9, 4099), (12000, 3)]


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LN_SHAPES)
def test_layernorm_matches_reference(shape, dtype):
    N, D = shape
    x, gamma, beta, dout = rng_arrays(N + 7 * D, dtype, (N, D), (D,), (D,), (N, D))
    x = 2 * x - 4
    res = {b: fwd_bwd(b, L.layernorm_forward, L.layernorm_backward,
                      (x, gamma, beta, {"eps": 1e-4}), dout) for b in ("numpy", "cpp")}
    for got, want in zip(res["cpp"], res["numpy"]):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


SPATIAL_SHAPES = [(1, 1, 1, 1), (1, 3, 5, 7), (2, 13, 7, 11), (4, 3, 1, 1), (3, 5, 64, 64)]


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SPATIAL_SHAPES)
def test_spatial_batchnorm_matches_reference(shape, dtype):
    N, C, H, W = shape
    x, gamma, beta, dout = rng_arrays(sum(shape), dtype, shape, (C,), (C,), shape)
    x = 2 * x + 7
    params = {b: {"mode": "train"} for b in ("numpy", "cpp")}
    res = {}
    for b in ("numpy", "cpp"):
        with nnc.use_backend(b):
            L.spatial_batchnorm_forward(x * 2, gamma, beta, params[b])
            out, cache = L.spatial_batchnorm_forward(x, gamma, beta, params[b])
            grads = L.spatial_batchnorm_backward(dout, cache)
            params[b]["mode"] = "test"
            out_t, cache_t = L.spatial_batchnorm_forward(x, gamma, beta, params[b])
            grads_t = L.spatial_batchnorm_backward(dout, cache_t)
        res[b] = (out, *grads, out_t, *grads_t,
                  params[b]["running_mean"], params[b]["running_var"])
    for got, want in zip(res["cpp"], res["numpy"]):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


GN_CASES = [((1, 3, 5, 7), 1), ((1, 3, 5, 7), 3), ((2, 12, 7, 11), 1), ((2, 12, 7, 11), 4),
            ((2, 12, 7, 11), 12), ((2, 13, 7, 11), 13), ((3, 16, 32, 32), 4), ((5, 6, 1, 1), 2)]


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,G", GN_CASES)
@pytest.mark.parametrize("param_shape", ["1C11", "C"])
def test_groupnorm_matches_reference(shape, G, param_shape, dtype):
    N, C, H, W = shape
    ps = (1, C, 1, 1) if param_shape == "1C11" else (C,)
    x, gamma, beta, dout = rng_arrays(G + sum(shape), dtype, shape, ps, ps, shape)
    x = 3 * x - 2
    res = {b: fwd_bwd(b, L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                      (x, gamma, beta, G, {"eps": 1e-5}), dout) for b in ("numpy", "cpp")}
    out, dx, dgamma, dbeta = res["cpp"]
    assert out.shape == dx.shape == shape and dgamma.shape == dbeta.shape == ps
    for got, want in zip(res["cpp"], res["numpy"]):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


@needs_cpp
@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 40), C=st.integers(1, 6), H=st.integers(1, 9), W=st.integers(1, 9),
       seed=st.integers(0, 2**31))
def test_spatial_layers_match_reference_hypothesis(N, C, H, W, seed):
    shape = (N, C, H, W)
    x, gamma, beta, dout = rng_arrays(seed, np.float64, shape, (C,), (C,), shape)
    G = max(g for g in range(1, C + 1) if C % g == 0 and g <= 3)
    for fwd, bwd, args in ((L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                            (x, gamma, beta, {"mode": "train"})),
                           (L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                            (x, gamma, beta, G, {}))):
        ref = fwd_bwd("numpy", fwd, bwd, args, dout)
        got = fwd_bwd("cpp", fwd, bwd, args, dout)
        for a, b in zip(got, ref):
            assert_close(a, b, np.float64)


@needs_cpp
@pytest.mark.parametrize("threads", [1, 3])
def test_thread_count_does_not_change_results(threads):
    # Large enough that every kernel runs in parallel; 3 threads on 2 cores
    # gives uneven splits.
    x, gamma, beta, dout = rng_arrays(5, np.float64, (3000, 37), (37,), (37,), (3000, 37))
    x4, d4 = x.reshape(30, 10, 37, 10), dout.reshape(30, 10, 37, 10)
    g4, b4 = gamma[:10], beta[:10]

    def everything():
        with nnc.use_backend("cpp"):
            out = [fwd_bwd("cpp", L.batchnorm_forward, L.batchnorm_backward,
                           (x, gamma, beta, {"mode": "train"}), dout),
                   fwd_bwd("cpp", L.layernorm_forward, L.layernorm_backward,
                           (x, gamma, beta, {}), dout),
                   fwd_bwd("cpp", L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                           (x4, g4, b4, {"mode": "train"}), d4),
                   fwd_bwd("cpp", L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                           (x4, g4, b4, 5, {}), d4)]
        return [a for group in out for a in group]

    before = nnc.get_num_threads()
    default = everything()
    nnc.set_num_threads(threads)
    try:
        other = everything()
    finally:
        nnc.set_num_threads(before)
    for a, b in zip(other, default):
        assert_close(a, b, np.float64)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
def test_results_identical_run_to_run(dtype):
    # The native kernels split the work the same way every time and combine
    # partial sums in a fixed order: two runs agree to the last bit.
    x, gamma, beta, dout = rng_arrays(6, dtype, (515, 301), (301,), (301,), (515, 301),
                                      scale=2.0, offset=3.0)
    x4, d4 = x[:512].reshape(16, 8, 43, 28), dout[:512].reshape(16, 8, 43, 28)

    def everything():
        return [fwd_bwd("cpp", L.batchnorm_forward, L.batchnorm_backward,
                        (x, gamma, beta, {"mode": "train"}), dout),
                fwd_bwd("cpp", L.layernorm_forward, L.layernorm_backward,
                        (x, gamma, beta, {}), dout),
                fwd_bwd("cpp", L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                        (x4, gamma[:8], beta[:8], {"mode": "train"}), d4),
                fwd_bwd("cpp", L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                        (x4, gamma[:8], beta[:8], 4, {}), d4)]

    first, second = everything(), everything()
    for a, b in zip(first, second):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


# ---------------------------------------------------------------------------
# Numerical gradient checks (float64)
# ---------------------------------------------------------------------------


def _grad_check(backend, forward, backward, x, gamma, beta, rest, dout):
    """Analytic vs numerical dx, dgamma, dbeta: their rel_errors."""
    with nnc.use_backend(backend):
        def f():
            return forward(x, gamma, beta, *rest)[0]
        dx_num = num_grad(f, x, dout)
        dgamma_num = num_grad(f, gamma, dout)
        dbeta_num = num_grad(f, beta, dout)
        _, cache = forward(x, gamma, beta, *rest)
        dx, dgamma, dbeta = backward(dout, cache)
    assert dx.shape == x.shape and dgamma.shape == gamma.shape and dbeta.shape == beta.shape
    return rel_error(dx, dx_num), rel_error(dgamma, dgamma_num), rel_error(dbeta, dbeta_num)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("backward", ["batchnorm_backward", "batchnorm_backward_alt"])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_gradient(backend, backward, mode):
    np.random.seed(231)
    N, D = 4, 5
    x = 5 * np.random.randn(N, D) + 12
    gamma, beta, dout = np.random.randn(D), np.random.randn(D), np.random.randn(N, D)
    bn_param = {"mode": mode, "running_mean": np.random.randn(D),
                "running_var": np.random.rand(D) + 0.5}
    if mode == "train":  # the running statistics must not leak into train mode
        bn_param["momentum"] = 1.0
    errs = _grad_check(backend, L.batchnorm_forward, getattr(L, backward), x, gamma, beta,
                       (bn_param,), dout)
    assert max(errs) < 1e-8, errs


@pytest.mark.parametrize("backend", BACKENDS)
def test_layernorm_gradient(backend):
    np.random.seed(231)
    N, D = 4, 5
    x = 5 * np.random.randn(N, D) + 12
    gamma, beta, dout = np.random.randn(D), np.random.randn(D), np.random.randn(N, D)
    errs = _grad_check(backend, L.layernorm_forward, L.layernorm_backward, x, gamma, beta,
                       ({},), dout)
    assert max(errs) < 1e-8, errs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_gradient(backend, mode):
    np.random.seed(231)
    N, C, H, W = 2, 3, 4, 5
    x = 5 * np.random.randn(N, C, H, W) + 12
    gamma, beta = np.random.randn(C), np.random.randn(C)
    dout = np.random.randn(N, C, H, W)
    bn_param = {"mode": mode, "momentum": 1.0, "running_mean": 12 + np.random.randn(C),
                "running_var": 25 * (np.random.rand(C) + 0.5)}
    errs = _grad_check(backend, L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                       x, gamma, beta, (bn_param,), dout)
    # The notebook reports dx errors around 1e-7 for this layer.
    assert errs[0] < 1e-6 and max(errs[1:]) < 1e-8, errs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("param_shape", ["1C11", "C"])
def test_spatial_groupnorm_gradient(backend, param_shape):
    np.random.seed(231)
    N, C, H, W, G = 2, 6, 4, 5, 2
    ps = (1, C, 1, 1) if param_shape == "1C11" else (C,)
    x = 5 * np.random.randn(N, C, H, W) + 12
    gamma, beta = np.random.randn(*ps), np.random.randn(*ps)
    dout = np.random.randn(N, C, H, W)
    errs = _grad_check(backend, L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                       x, gamma, beta, (G, {}), dout)
    # The notebook reports dx errors around 1e-7 for this layer.
    assert errs[0] < 1e-6 and max(errs[1:]) < 1e-8, errs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_backward_and_alt_agree(backend, mode):
    x, gamma, beta, dout = rng_arrays(3, np.float64, (50, 500), (500,), (500,), (50, 500))
    with nnc.use_backend(backend):
        bn_param = {"mode": "train"}
        L.batchnorm_forward(x, gamma, beta, bn_param)
        bn_param["mode"] = mode
        _, cache = L.batchnorm_forward(x, gamma, beta, bn_param)
        a = L.batchnorm_backward(dout, cache)
        b = L.batchnorm_backward_alt(dout, cache)
    for u, v in zip(a, b):
        assert_close(u, v, np.float64)


# ---------------------------------------------------------------------------
# Semantics of bn_param and the caches
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_running_stats_created_and_updated(backend, dtype):
    x, gamma, beta = rng_arrays(1, dtype, (30, 4), (4,), (4,))
    bn_param = {"mode": "train"}
    with nnc.use_backend(backend):
        L.batchnorm_forward(x, gamma, beta, bn_param)
        rm, rv = bn_param["running_mean"], bn_param["running_var"]
        assert rm.dtype == rv.dtype == dtype and rm.shape == rv.shape == (4,)
        x64 = x.astype(np.float64)
        assert_close(rm, 0.1 * x64.mean(axis=0), dtype)
        assert_close(rv, 0.1 * x64.var(axis=0), dtype)
        # Test mode uses the running statistics and leaves them alone.
        bn_param["mode"] = "test"
        out, _ = L.batchnorm_forward(x, gamma, beta, bn_param)
        assert_close(bn_param["running_mean"], rm, dtype)
        want = gamma.astype(np.float64) * (x64 - rm) / np.sqrt(rv.astype(np.float64) + 1e-5) + beta
        assert_close(out, want, dtype)
        assert out.dtype == dtype


@pytest.mark.parametrize("backend", BACKENDS)
def test_layernorm_same_in_train_and_test(backend):
    x, gamma, beta = rng_arrays(2, np.float64, (6, 9), (9,), (9,))
    with nnc.use_backend(backend):
        a, _ = L.layernorm_forward(x, gamma, beta, {"mode": "train"})
        b, _ = L.layernorm_forward(x, gamma, beta, {"mode": "test"})
        c, _ = L.layernorm_forward(x, gamma, beta, {})
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("backend", BACKENDS)
def test_groupnorm_with_G_equal_C_and_1(backend):
    # G = 1 is layernorm over (C, H, W); G = C is instance norm.
    x, = rng_arrays(4, np.float64, (3, 4, 5, 6))
    gamma, beta = np.ones((1, 4, 1, 1)), np.zeros((1, 4, 1, 1))
    with nnc.use_backend(backend):
        out1, _ = L.spatial_groupnorm_forward(x, gamma, beta, 1, {})
        outC, _ = L.spatial_groupnorm_forward(x, gamma, beta, 4, {})
    flat = x.reshape(3, -1)
    ln = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5)
    assert_close(out1, ln.reshape(x.shape), np.float64)
    inst = (x - x.mean((2, 3), keepdims=True)) / np.sqrt(x.var((2, 3), keepdims=True) + 1e-5)
    assert_close(outC, inst, np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_single_example_is_degenerate_but_finite(backend):
    x, gamma, beta, dout = rng_arrays(6, np.float64, (1, 7), (7,), (7,), (1, 7))
    with nnc.use_backend(backend):
        out, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
        dx, dgamma, dbeta = L.batchnorm_backward(dout, cache)
    np.testing.assert_allclose(out, beta[None], atol=1e-12)  # x - mean = 0
    np.testing.assert_allclose(dx, 0, atol=1e-12)
    np.testing.assert_allclose(dgamma, 0, atol=1e-12)
    np.testing.assert_allclose(dbeta, dout[0])


@needs_cpp
def test_cache_from_other_backend_is_refused():
    x, gamma, beta = rng_arrays(0, np.float64, (4, 3), (3,), (3,))
    with nnc.use_backend("numpy"):
        _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    with nnc.use_backend("cpp"):
        with pytest.raises(ValueError, match="numpy"):
            L.batchnorm_backward(x, cache)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

x2, g3, b3 = rng_arrays(9, np.float64, (4, 3), (3,), (3,))
x4, = rng_arrays(9, np.float64, (2, 4, 3, 3))
g4, b4 = np.ones(4), np.zeros(4)

BAD_CALLS = [
    # batchnorm
    ("bn x 1-D", ValueError, lambda: L.batchnorm_forward(g3, g3, b3, {"mode": "train"})),
    ("bn x 3-D", ValueError, lambda: L.batchnorm_forward(x4[0], g3, b3, {"mode": "train"})),
    ("bn gamma shape", ValueError, lambda: L.batchnorm_forward(x2, g4, b3, {"mode": "train"})),
    ("bn beta shape", ValueError, lambda: L.batchnorm_forward(x2, g3, b4, {"mode": "train"})),
    ("bn gamma 2-D", ValueError, lambda: L.batchnorm_forward(x2, g3[None], b3, {"mode": "train"})),
    ("bn unknown mode", ValueError, lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "eval"})),
    ("bn missing mode", ValueError, lambda: L.batchnorm_forward(x2, g3, b3, {})),
    ("bn param not dict", TypeError, lambda: L.batchnorm_forward(x2, g3, b3, "train")),
    ("bn empty batch", ValueError,
     lambda: L.batchnorm_forward(x2[:0], g3, b3, {"mode": "train"})),
    ("bn negative eps", ValueError,
     lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "train", "eps": -1.0})),
    ("bn momentum > 1", ValueError,
     lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "train", "momentum": 2.0})),
    ("bn running_mean shape", ValueError,
     lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "train", "running_mean": np.zeros(4)})),
    ("bn running_var list", TypeError,
     lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "train", "running_var": [0, 0, 0]})),
    ("bn x not array", TypeError, lambda: L.batchnorm_forward(x2.tolist(), g3, b3,
                                                              {"mode": "train"})),
    # layernorm
    ("ln x 1-D", ValueError, lambda: L.layernorm_forward(g3, g3, b3, {})),
    ("ln gamma shape", ValueError, lambda: L.layernorm_forward(x2, g4, b3, {})),
    ("ln beta shape", ValueError, lambda: L.layernorm_forward(x2, g3, b4, {})),
    ("ln empty batch", ValueError, lambda: L.layernorm_forward(x2[:0], g3, b3, {})),
    ("ln no features", ValueError, lambda: L.layernorm_forward(x2[:, :0], g3[:0], b3[:0], {})),
    ("ln param not dict", TypeError, lambda: L.layernorm_forward(x2, g3, b3, None)),
    ("ln bad eps", TypeError, lambda: L.layernorm_forward(x2, g3, b3, {"eps": "small"})),
    # spatial batchnorm
    ("sbn x 2-D", ValueError, lambda: L.spatial_batchnorm_forward(x2, g3, b3, {"mode": "train"})),
    ("sbn gamma shape", ValueError,
     lambda: L.spatial_batchnorm_forward(x4, g3, b4, {"mode": "train"})),
    ("sbn beta shape", ValueError,
     lambda: L.spatial_batchnorm_forward(x4, g4, b3, {"mode": "train"})),
    ("sbn unknown mode", ValueError,
     lambda: L.spatial_batchnorm_forward(x4, g4, b4, {"mode": "Train"})),
    ("sbn empty batch", ValueError,
     lambda: L.spatial_batchnorm_forward(x4[:0], g4, b4, {"mode": "train"})),
    ("sbn no pixels", ValueError,
     lambda: L.spatial_batchnorm_forward(x4[:, :, :0], g4, b4, {"mode": "train"})),
    ("sbn running_var shape", ValueError,
     lambda: L.spatial_batchnorm_forward(x4, g4, b4, {"mode": "test", "running_var": g3})),
    # groupnorm
    ("gn x 3-D", ValueError, lambda: L.spatial_groupnorm_forward(x4[0], g4, b4, 2, {})),
    ("gn C % G", ValueError, lambda: L.spatial_groupnorm_forward(x4, g4, b4, 3, {})),
    ("gn G = 0", ValueError, lambda: L.spatial_groupnorm_forward(x4, g4, b4, 0, {})),
    ("gn G float", TypeError, lambda: L.spatial_groupnorm_forward(x4, g4, b4, 2.0, {})),
    ("gn gamma shape", ValueError, lambda: L.spatial_groupnorm_forward(x4, g3, b4, 2, {})),
    ("gn gamma (C,1,1)", ValueError,
     lambda: L.spatial_groupnorm_forward(x4, g4.reshape(4, 1, 1), b4, 2, {})),
    ("gn beta shape", ValueError,
     lambda: L.spatial_groupnorm_forward(x4, g4, np.zeros((1, 3, 1, 1)), 2, {})),
    ("gn empty batch", ValueError, lambda: L.spatial_groupnorm_forward(x4[:0], g4, b4, 2, {})),
    ("gn param not dict", TypeError, lambda: L.spatial_groupnorm_forward(x4, g4, b4, 2, [])),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input(backend, name, exc, call):
    with nnc.use_backend(backend):
        with pytest.raises(exc):
            call()


def _caches(backend):
    with nnc.use_backend(backend):
        return {
            "bn": (L.batchnorm_backward,
                   L.batchnorm_forward(x2, g3, b3, {"mode": "train"})[1], x2),
            "bn_alt": (L.batchnorm_backward_alt,
                       L.batchnorm_forward(x2, g3, b3, {"mode": "train"})[1], x2),
            "ln": (L.layernorm_backward, L.layernorm_forward(x2, g3, b3, {})[1], x2),
            "sbn": (L.spatial_batchnorm_backward,
                    L.spatial_batchnorm_forward(x4, g4, b4, {"mode": "train"})[1], x4),
            "gn": (L.spatial_groupnorm_backward,
                   L.spatial_groupnorm_forward(x4, g4, b4, 2, {})[1], x4),
        }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer", ["bn", "bn_alt", "ln", "sbn", "gn"])
def test_backward_bad_dout(backend, layer):
    backward, cache, x = _caches(backend)[layer]
    with nnc.use_backend(backend):
        with pytest.raises(ValueError):  # wrong ndim
            backward(x[0], cache)
        with pytest.raises(ValueError):  # wrong shape
            backward(x[:1], cache)
        with pytest.raises(TypeError):  # not the forward's cache
            backward(x, tuple(cache))


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_not_modified(backend):
    x, gamma, beta, dout = rng_arrays(7, np.float64, (6, 5), (5,), (5,), (6, 5))
    xs, gs, bs, ds = rng_arrays(8, np.float64, (2, 6, 3, 4), (6,), (6,), (2, 6, 3, 4))
    arrays = [x, gamma, beta, dout, xs, gs, bs, ds]
    copies = [a.copy() for a in arrays]
    with nnc.use_backend(backend):
        for mode in ("train", "test"):
            _, c = L.batchnorm_forward(x, gamma, beta, {"mode": mode})
            L.batchnorm_backward(dout, c)
            L.batchnorm_backward_alt(dout, c)
            _, c = L.spatial_batchnorm_forward(xs, gs, bs, {"mode": mode})
            L.spatial_batchnorm_backward(ds, c)
        _, c = L.layernorm_forward(x, gamma, beta, {})
        L.layernorm_backward(dout, c)
        _, c = L.spatial_groupnorm_forward(xs, gs.reshape(1, 6, 1, 1), bs, 3, {})
        L.spatial_groupnorm_backward(ds, c)
    for a, b in zip(arrays, copies):
        np.testing.assert_array_equal(a, b)


# dtypes: NumPy's promotion for the inputs, a strict dtype for the running
# statistics that are updated in place; the same on both backends


BAD_STATS_CALLS = [
    ("bn float32 x, float64 running_mean", TypeError,
     lambda: L.batchnorm_forward(x2.astype(np.float32), g3.astype(np.float32),
                                 b3.astype(np.float32),
                                 {"mode": "train", "running_mean": np.zeros(3)})),
    ("bn running_mean non-contiguous", TypeError,
     lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "train", "running_mean": np.zeros(6)[::2]})),
    ("bn running_var int", TypeError,
     lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "train",
                                              "running_var": np.zeros(3, np.int64)})),
    ("bn test mode running_mean float32", TypeError,
     lambda: L.batchnorm_forward(x2, g3, b3, {"mode": "test",
                                              "running_mean": np.zeros(3, np.float32)})),
    ("sbn mixed running_var", TypeError,
     lambda: L.spatial_batchnorm_forward(x4, g4, b4, {"mode": "train",
                                                      "running_var": np.zeros(4, np.float32)})),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,exc,call", BAD_STATS_CALLS, ids=[c[0] for c in BAD_STATS_CALLS])
def test_bad_running_stats(backend, name, exc, call):
    with nnc.use_backend(backend):
        with pytest.raises(exc, match="updated in place|shape"):
            call()


PROMOTED_CALLS = [  # (name, call, dtype of the result)
    ("bn int x", lambda: L.batchnorm_forward((10 * x2).astype(np.int64), g3, b3,
                                             {"mode": "train"}), np.float64),
    ("bn mixed gamma", lambda: L.batchnorm_forward(x2, g3.astype(np.float32), b3,
                                                   {"mode": "train"}), np.float64),
    ("ln int gamma", lambda: L.layernorm_forward(x2, np.arange(1, 4), b3, {}), np.float64),
    ("ln float16 x", lambda: L.layernorm_forward(x2.astype(np.float16), g3.astype(np.float32),
                                                 b3.astype(np.float32), {}), np.float32),
    ("sbn int gamma (spec 1.9 style)",
     lambda: L.spatial_batchnorm_forward(x4, np.asarray([3, 4, 5, 6]), b4, {"mode": "train"}),
     np.float64),
    ("gn mixed beta", lambda: L.spatial_groupnorm_forward(x4, g4, b4.astype(np.float32), 2, {}),
     np.float64),
]


@needs_cpp
@pytest.mark.parametrize("name,call,dtype", PROMOTED_CALLS, ids=[c[0] for c in PROMOTED_CALLS])
def test_promoted_inputs_agree(name, call, dtype):
    """Integer and mixed-precision inputs compute in NumPy's promoted dtype
    on both backends, forward and backward, with the same results."""
    results = {}
    for backend in ("numpy", "cpp"):
        with nnc.use_backend(backend):
            out, cache = call()
            grads = getattr(L, name_to_backward(name))(np.ones_like(out), cache)
        results[backend] = (out,) + tuple(grads)
        assert out.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for r, c in zip(results["numpy"], results["cpp"]):
        assert r.dtype == c.dtype
        np.testing.assert_allclose(c, r, rtol=tol, atol=tol)


def name_to_backward(name):
    return {"bn": "batchnorm_backward", "ln": "layernorm_backward",
            "sbn": "spatial_batchnorm_backward",
            "gn": "spatial_groupnorm_backward"}[name.split()[0]]


@needs_cpp
def test_cpp_read_only_running_stats_refused():
    rm = np.zeros(3)
    rm.flags.writeable = False
    with nnc.use_backend("cpp"):
        with pytest.raises(TypeError, match="read-only"):
            L.batchnorm_forward(x2, g3, b3, {"mode": "train", "running_mean": rm})


@needs_cpp
def test_cpp_running_stats_updated_in_place():
    rm, rv = np.zeros(3), np.ones(3)
    bn_param = {"mode": "train", "running_mean": rm, "running_var": rv}
    with nnc.use_backend("cpp"):
        L.batchnorm_forward(x2, g3, b3, bn_param)
    assert bn_param["running_mean"] is rm and bn_param["running_var"] is rv
    np.testing.assert_allclose(rm, 0.1 * x2.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x2.var(axis=0), rtol=1e-12)


@needs_cpp
def test_cpp_bindings_validate_on_their_own():
    from nnc import _nnc
    x, g, b = x2, g3, b3
    rm, rv = np.zeros(3), np.zeros(3)
    mean, rstd = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match="gamma"):
        _nnc.batchnorm_forward_train(x, g4, b, rm, rv, 1e-5, 0.9)
    with pytest.raises(ValueError, match="running_var"):
        _nnc.batchnorm_forward_train(x, g, b, rm, np.zeros(4), 1e-5, 0.9)
    with pytest.raises(TypeError):  # noconvert: a strided array would be a silent copy
        _nnc.batchnorm_forward_train(x, g, b, np.zeros(6)[::2], rv, 1e-5, 0.9)
    with pytest.raises(TypeError, match="running_mean"):
        _nnc.batchnorm_forward_train(x, g, b, rm.astype(np.float32), rv, 1e-5, 0.9)
    with pytest.raises(ValueError, match="empty batch"):
        _nnc.batchnorm_forward_train(x[:0], g, b, rm, rv, 1e-5, 0.9)
    # eps and momentum ranges are the public layer's to check, not the binding's
    with pytest.raises(TypeError, match="float64"):
        _nnc.batchnorm_backward(x, x, g, mean.astype(np.float32), rstd, True)
    with pytest.raises(ValueError, match="dout"):
        _nnc.batchnorm_backward(x[:2], x, g, mean, rstd, True)
    with pytest.raises(ValueError, match="mean"):
        _nnc.layernorm_backward(x, x, g, mean[:2], rstd, )
    with pytest.raises(ValueError, match="no features"):
        _nnc.layernorm_forward(x[:, :0], g[:0], b[:0], 1e-5)
    with pytest.raises(ValueError, match="4-D"):
        _nnc.spatial_batchnorm_forward_test(x, g, b, rm, rv, 1e-5)
    with pytest.raises(ValueError, match="no pixels"):
        _nnc.spatial_batchnorm_forward_train(x4[:, :, :0], g4, b4, np.zeros(4), np.zeros(4),
                                             1e-5, 0.9)
    with pytest.raises(ValueError, match="G = 3"):
        _nnc.groupnorm_forward(x4, g4, b4, 3, 1e-5)
    with pytest.raises(ValueError, match="G = -2"):
        _nnc.groupnorm_backward(x4, x4, g4, np.zeros(4), np.ones(4), -2)
    with pytest.raises(ValueError, match="rstd"):
        _nnc.groupnorm_backward(x4, x4, g4, np.zeros(4), np.ones(3), 2)
    with pytest.raises(TypeError, match="dout"):
        _nnc.spatial_batchnorm_backward(x4.astype(np.float32), x4, g4, np.zeros(4), np.ones(4),
                                        True)


# ---------------------------------------------------------------------------
# float32 precision: large batches with a large mean offset
# ---------------------------------------------------------------------------


def _float64_reference(forward, backward, args32, dout32):
    """The numpy backend on float64 copies of the float32 inputs."""
    args64 = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args32]
    return fwd_bwd("numpy", forward, backward, args64, dout32.astype(np.float64))


PRECISION_CASES = {
    "batchnorm": (L.batchnorm_forward, L.batchnorm_backward, (65536, 8), (8,),
                  lambda: ({"mode": "train"},)),
    "layernorm": (L.layernorm_forward, L.layernorm_backward, (4, 65536), (65536,),
                  lambda: ({},)),
    "spatial_batchnorm": (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                          (64, 4, 32, 32), (4,), lambda: ({"mode": "train"},)),
    "groupnorm": (L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                  (2, 4, 128, 128), (4,), lambda: (2, {})),
}


@needs_cpp
@pytest.mark.parametrize("layer", list(PRECISION_CASES))
def test_float32_large_batch_precision(layer):
    forward, backward, shape, pshape, rest = PRECISION_CASES[layer]
    x, gamma, beta, dout = rng_arrays(11, np.float32, shape, pshape, pshape, shape)
    # 65536 values per statistic around 1e4: naive float32 sums lose the
    # variance entirely; the kernels accumulate in double.
    x = (x + np.float32(1e4)).astype(np.float32)
    got = fwd_bwd("cpp", forward, backward, (x, gamma, beta, *rest()), dout)
    want = _float64_reference(forward, backward, (x, gamma, beta, *rest()), dout)
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        scale = np.abs(b).max()
        # Only the final rounding to float32 should separate the two.
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6 * scale)


@needs_cpp
def test_float32_running_stats_precision():
    x, = rng_arrays(12, np.float32, (65536, 5))
    x = (3 * x + np.float32(1e4)).astype(np.float32)
    gamma, beta = np.ones(5, np.float32), np.zeros(5, np.float32)
    bn_param = {"mode": "train", "momentum": 0.0}
    with nnc.use_backend("cpp"):
        L.batchnorm_forward(x, gamma, beta, bn_param)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(bn_param["running_mean"], x64.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(bn_param["running_var"], x64.var(axis=0), rtol=1e-6)


@needs_cpp
def test_float32_batchnorm_precision_for_drifting_columns():
    # The native batchnorm sums each block of rows around the running mean;
    # columns whose mean drifts (sorted), jumps (one far block), or never
    # varies must keep full precision too.
    rng = np.random.default_rng(13)
    N, D = 65536, 6
    x = rng.standard_normal((N, D))
    x[:, 0] = np.sort(x[:, 0])
    x[:, 1] = np.sort(x[:, 1])[::-1] * 100
    x[:, 2] = 0.0
    x[:, 3] = 0.0
    x[4096:4112, 3] = 50.0
    x[:, 4] = np.repeat(rng.standard_normal(N // 16), 16)
    x = (x + 1e4).astype(np.float32)
    gamma, beta = rng_arrays(14, np.float32, (D,), (D,))
    dout, = rng_arrays(15, np.float32, (N, D))
    bn_param = {"mode": "train", "momentum": 0.0}
    got = fwd_bwd("cpp", L.batchnorm_forward, L.batchnorm_backward, (x, gamma, beta, bn_param),
                  dout)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(bn_param["running_mean"], x64.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(bn_param["running_var"], x64.var(axis=0), rtol=1e-6, atol=0)
    want = _float64_reference(L.batchnorm_forward, L.batchnorm_backward,
                              (x, gamma, beta, {"mode": "train"}), dout)
    for a, b in zip(got, want):
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6 * scale)


@needs_cpp
def test_cpp_output_memory_reused_only_after_the_array_dies():
    # Native outputs of 1 MB and more come from a cache of freed blocks:
    # a live output must never share memory with a later one, and a block
    # handed out again must hold the new result.
    x1, x2, gamma, beta = rng_arrays(16, np.float32, (512, 1024), (512, 1024), (1024,), (1024,))
    with nnc.use_backend("numpy"):
        want1 = L.layernorm_forward(x1, gamma, beta, {})[0]
        want2 = L.layernorm_forward(x2, gamma, beta, {})[0]
    with nnc.use_backend("cpp"):
        out1 = L.layernorm_forward(x1, gamma, beta, {})[0]
        out2 = L.layernorm_forward(x2, gamma, beta, {})[0]
        assert not np.shares_memory(out1, out2)
        del out1
        out3 = L.layernorm_forward(x1, gamma, beta, {})[0]
        out4 = L.layernorm_forward(x2, gamma, beta, {})[0]
    assert not np.shares_memory(out2, out3) and not np.shares_memory(out3, out4)
    for got, want in ((out2, want2), (out3, want1), (out4, want2)):
        assert_close(got, want, np.float32)


@needs_cpp
def test_float32_layernorm_precision_for_drifting_rows():
    # The native layernorm sums each chunk of a row around the running mean:
    # sorted rows, steps, and constant stretches must keep full precision.
    rng = np.random.default_rng(17)
    N, D = 4, 65536
    x = rng.standard_normal((N, D))
    x[0] = np.sort(x[0])
    x[1] = 0.0
    x[1, 1024:] = 30.0
    x[2] = 0.0
    x[3] = np.repeat(rng.standard_normal(D // 1024), 1024)
    x = (x + 1e4).astype(np.float32)
    gamma, beta = rng_arrays(18, np.float32, (D,), (D,))
    dout, = rng_arrays(19, np.float32, (N, D))
    got = fwd_bwd("cpp", L.layernorm_forward, L.layernorm_backward, (x, gamma, beta, {}), dout)
    want = _float64_reference(L.layernorm_forward, L.layernorm_backward, (x, gamma, beta, {}),
                              dout)
    for a, b in zip(got, want):
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6 * scale)


@needs_cpp
def test_groupnorm_gradient_check_noise_matches_the_reference():
    """The ConvolutionalNetworks notebook's group norm dx check (x ~ 12, h =
    1e-5) sits at the finite difference's noise floor: with the same analytic
    dx, the numerical gradient through the cpp forward is as close to it as
    the one through the NumPy forward, over many seeds (one seed of the
    notebook read 1.07e-07 on cpp against 6.3e-08 on numpy)."""
    errors = {"numpy": [], "cpp": []}
    for seed in range(30):
        rng = np.random.default_rng(seed)
        N, C, H, W, G = 2, 6, 4, 5, 2
        x = 5 * rng.standard_normal((N, C, H, W)) + 12
        gamma, beta = rng.standard_normal((2, 1, C, 1, 1))
        dout = rng.standard_normal((N, C, H, W))
        with nnc.use_backend("numpy"):
            _, cache = L.spatial_groupnorm_forward(x, gamma, beta, G, {})
            dx = L.spatial_groupnorm_backward(dout, cache)[0]
        for backend, errs in errors.items():
            with nnc.use_backend(backend):
                f = lambda _: L.spatial_groupnorm_forward(x, gamma, beta, G, {})[0]  # noqa: E731
                errs.append(rel_error(eval_numerical_gradient_array(f, x, dout), dx))
    assert np.median(errors["cpp"]) < 1.5 * np.median(errors["numpy"])
    assert np.mean(errors["cpp"]) < 1.5 * np.mean(errors["numpy"])
    assert max(errors["cpp"]) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_net_bias_check_reads_zero_gradient(backend):
    """The BatchNormalization notebook's FullyConnectedNet check: the biases
    ahead of batchnorm have a zero gradient (batchnorm cancels them), and the
    analytic one must be as close to zero as the reference's. The cpp
    backend's closed-form dx used to leave column sums of ~2.5e-15 here
    (relative error 2.7e-07 against a stated 1e-08~1e-10)."""
    from nnc.classifiers.fc_net import FullyConnectedNet
    from nnc.gradient_check import eval_numerical_gradient

    with nnc.use_backend(backend):
        np.random.seed(231)
        N, D, H1, H2, C = 2, 15, 20, 30, 10
        X = np.random.randn(N, D)
        y = np.random.randint(C, size=(N,))
        for reg in [0, 3.14]:
            model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg,
                                      weight_scale=5e-2, dtype=np.float64,
                                      normalization="batchnorm")
            _, grads = model.loss(X, y)
            for name in ("b1", "b2"):
                num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name],
                                              verbose=False, h=1e-5)
                assert rel_error(num, grads[name]) < 1e-7, (name, reg)
                assert np.abs(grads[name]).max() < 1e-15


@needs_cpp
@pytest.mark.parametrize("N", [1, 2, 3, 64])
def test_cpp_batchnorm_dx_columns_sum_to_zero_in_float64(N):
    rng = np.random.default_rng(N)
    x = rng.standard_normal((N, 700)) * 3 + 7
    dout = rng.standard_normal((N, 700))
    g, b = rng.standard_normal(700), rng.standard_normal(700)
    sums = {}
    for backend in ("numpy", "cpp"):
        with nnc.use_backend(backend):
            _, cache = L.batchnorm_forward(x, g, b, {"mode": "train"})
            sums[backend] = np.abs(L.batchnorm_backward(dout, cache)[0].sum(axis=0)).max()
    assert sums["cpp"] <= max(2 * sums["numpy"], 1e-14)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial", [False, True])
def test_eps_zero_with_zero_running_var_gives_the_references_infinities(dtype, spatial):
    """Test mode with running_var = 0 and eps = 0 divides by zero: out is +-Inf
    away from the running mean and NaN at it, dx = dout * gamma * Inf, on both
    backends alike (cpp used to fold 0 * Inf = NaN into every value)."""
    rng = np.random.default_rng(5)
    shape = (4, 3, 2, 2) if spatial else (4, 3)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(4, -1)[0, 0] = 0.0   # at the running mean (0): NaN
    C = 3
    gamma, beta = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    forward = L.spatial_batchnorm_forward if spatial else L.batchnorm_forward
    backward = L.spatial_batchnorm_backward if spatial else L.batchnorm_backward
    got = {}
    for b in ("numpy", "cpp"):
        bn = {"mode": "test", "eps": 0.0, "running_mean": np.zeros(C, dtype),
              "running_var": np.zeros(C, dtype)}
        with nnc.use_backend(b), np.errstate(all="ignore"):
            out, cache = forward(x, gamma, beta, bn)
            dx = backward(dout, cache)[0]
        got[b] = (out, dx)
    for ref, cpp in zip(got["numpy"], got["cpp"]):
        np.testing.assert_array_equal(np.isnan(cpp), np.isnan(ref))
        np.testing.assert_array_equal(cpp, ref)  # the same infinities (NaN equal NaN)
    assert np.isinf(got["cpp"][0]).sum() == x.size - 1

"""nnc.layer_utils: every sandwich gradient-checked in float64 on both
backends, and the backends agreeing with each other."""
import numpy as np
import pytest

import nnc
from nnc import layer_utils as lu
from nnc.gradient_check import eval_numerical_gradient_array, rel_error

from conftest import BACKENDS, DTYPES

# The ops each sandwich runs, so a backend that lacks one skips with a reason.
OPS = {
    "affine_relu": ["affine_forward", "relu_forward"],
    "affine_bn_relu": ["affine_forward", "batchnorm_forward", "relu_forward"],
    "affine_ln_relu": ["affine_forward", "layernorm_forward", "relu_forward"],
    "conv_relu": ["conv_forward_strides", "relu_forward"],
    "conv_bn_relu": ["conv_forward_strides", "spatial_batchnorm_forward", "relu_forward"],
    "conv_relu_pool": ["conv_forward_strides", "relu_forward", "max_pool_forward_fast"],
}


def require(backend, name):
    missing = sorted({op for f in OPS[name] for op in (f, f.replace("forward", "backward"))}
                     & set(nnc.missing_ops(backend)))
    if missing:
        pytest.skip(f"the {backend!r} backend does not implement {', '.join(missing)} yet")


def make_inputs(name, dtype, seed=0):
    """(args of the forward function, shape of its output) for a small case
    with odd, non-multiple-of-8 sizes."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    if name.startswith("affine"):
        N, dims, M = 5, (3, 3), 7
        x, w, b = r(N, *dims), r(9, M), r(M)
        if name == "affine_relu":
            return (x, w, b), (N, M)
        gamma, beta = (1 + 0.1 * r(M)), 0.1 * r(M)
        return (x, w, b, gamma, beta, {"mode": "train"}), (N, M)
    N, C, H, W, F = 2, 3, 6, 4, 5
    x, w, b = r(N, C, H, W), r(F, C, 3, 3), r(F)
    conv_param = {"stride": 1, "pad": 1}
    if name == "conv_relu":
        return (x, w, b, conv_param), (N, F, H, W)
    if name == "conv_relu_pool":
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        return (x, w, b, conv_param, pool_param), (N, F, H // 2, W // 2)
    gamma, beta = (1 + 0.1 * r(F)), 0.1 * r(F)
    return (x, w, b, gamma, beta, conv_param, {"mode": "train"}), (N, F, H, W)


# positions of the differentiable arguments, in the order backward returns them
GRAD_ARGS = {"affine_relu": 3, "affine_bn_relu": 5, "affine_ln_relu": 5,
             "conv_relu": 3, "conv_bn_relu": 5, "conv_relu_pool": 3}


def forward(name, *args):
    return getattr(lu, name + "_forward")(*args)


def backward(name, dout, cache):
    return getattr(lu, name + "_backward")(dout, cache)


@pytest.mark.parametrize("name", list(OPS))
def test_gradients(backend, name):
    require(backend, name)
    args, out_shape = make_inputs(name, np.float64, seed=1)
    dout = np.random.default_rng(2).standard_normal(out_shape)
    out, cache = forward(name, *args)
    assert out.shape == out_shape and out.dtype == np.float64
    grads = backward(name, dout, cache)
    assert len(grads) == GRAD_ARGS[name]
    for k, g in enumerate(grads):
        assert g.shape == args[k].shape

        def f(v, k=k):
            a = list(args)
            a[k] = v
            return forward(name, *a)[0]

        num = eval_numerical_gradient_array(f, args[k], dout)
        # atol: the bias before a batchnorm has gradient exactly 0, where the
        # centered difference leaves ~1e-11 of rounding noise.
        np.testing.assert_allclose(g, num, rtol=1e-7, atol=1e-9, err_msg=f"{name} arg {k}")
        if np.abs(g).max() > 1e-3:
            assert rel_error(g, num) < 1e-6


@pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPS))
def test_backends_agree(name, dtype):
    require("cpp", name)
    results = {}
    for be in ("numpy", "cpp"):
        args, out_shape = make_inputs(name, dtype, seed=3)
        dout = np.random.default_rng(4).standard_normal(out_shape).astype(dtype)
        with nnc.use_backend(be):
            out, cache = forward(name, *args)
            results[be] = (out, *backward(name, dout, cache), args[-1])
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for a, r in zip(results["cpp"][:-1], results["numpy"][:-1]):
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, r, **tol)
    if "bn" in name:  # the running statistics the batchnorm updated
        for key in ("running_mean", "running_var"):
            np.testing.assert_allclose(results["cpp"][-1][key], results["numpy"][-1][key], **tol)


def test_sandwich_equals_its_layers(backend):
    """affine_bn_relu is exactly affine, then batchnorm, then relu."""
    require(backend, "affine_bn_relu")
    from nnc.layers import affine_forward, batchnorm_forward, relu_forward
    (x, w, b, gamma, beta, bn_param), _ = make_inputs("affine_bn_relu", np.float64)
    out, _ = lu.affine_bn_relu_forward(x, w, b, gamma, beta, bn_param)
    a, _ = affine_forward(x, w, b)
    a, _ = batchnorm_forward(a, gamma, beta, {"mode": "train"})
    np.testing.assert_array_equal(out, relu_forward(a)[0])
    assert "running_mean" in bn_param and bn_param["running_mean"].shape == (7,)


def test_conv_relu_pool_rejects_bad_input(backend):
    require(backend, "conv_relu_pool")
    (x, w, b, conv_param, pool_param), _ = make_inputs("conv_relu_pool", np.float64)
    with pytest.raises(ValueError):
        lu.conv_relu_pool_forward(x[0], w, b, conv_param, pool_param)      # 3-D x
    with pytest.raises(ValueError):
        lu.conv_relu_pool_forward(x, w[:, :2], b, conv_param, pool_param)  # channel mismatch
    with pytest.raises(ValueError):
        lu.affine_relu_forward(x, np.zeros((5, 2)), np.zeros(2))         # D mismatch


def test_relu_after_the_pool_is_the_same_bits(backend):
    """ThreeLayerConvNet pools before its ReLU (max commutes with ReLU), with
    the conv and the pool one op (conv_pool_forward): the output and the
    weight gradients equal conv_relu_pool's bit for bit, also for windows that
    are all negative, ties, zeros and NaN."""
    from nnc import layer_utils as lu
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 8, 8))
    w, b = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4) - 1.0  # many negatives
    cp, pp = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    w[1] = 0.0          # filter 1: every window ties at b[1]
    x[0, :, :2, :2] = np.nan
    out, cache = lu.conv_relu_pool_forward(x, w, b, cp, pp)
    out2, cache2 = lu._conv_pool_relu_forward(x, w, b, cp, pp)
    np.testing.assert_array_equal(out2, out)
    assert (out <= 0).any() and np.isnan(out).any()
    dout = rng.standard_normal(out.shape)
    _, dw, db = lu.conv_relu_pool_backward(dout, cache)
    dw2, db2 = lu._conv_pool_relu_backward_weights(dout, cache2)
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)

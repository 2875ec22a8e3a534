"""nnc.classifiers: CS231n golden values on both backends, gradient checks of
every parameter in float64, shapes, and bad constructor arguments."""
import numpy as np
import pytest

import nnc
from nnc.classifiers import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
from nnc.gradient_check import eval_numerical_gradient, rel_error

FC_OPS = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss"]
NORM_OPS = {None: [], "batchnorm": ["batchnorm_forward", "batchnorm_backward"],
            "layernorm": ["layernorm_forward", "layernorm_backward"]}
DROPOUT_OPS = ["dropout_forward", "dropout_backward"]
CONV_OPS = FC_OPS + ["conv_forward_strides", "conv_backward_strides",
                     "max_pool_forward_fast", "max_pool_backward_fast"]


def require(backend, ops):
    missing = sorted(set(ops) & set(nnc.missing_ops(backend)))
    if missing:
        pytest.skip(f"the {backend!r} backend does not implement {', '.join(missing)} yet")


def check_all_grads(model, X, y, tol=1e-6):
    """Numerical gradient of every parameter vs the analytic one (float64)."""
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for name in sorted(model.params):
        assert grads[name].shape == model.params[name].shape
        assert grads[name].dtype == model.params[name].dtype
        f = lambda _: model.loss(X, y)[0]  # noqa: E731
        num = eval_numerical_gradient(f, model.params[name], verbose=False, h=1e-5)
        # The centered difference leaves ~1e-10 of rounding noise, so the relative
        # error (CS231n's metric) is taken over entries above 1e-3 and the rest
        # (e.g. biases in front of a normalization, whose exact gradient is 0)
        # must agree to 1e-8 absolute.
        np.testing.assert_allclose(grads[name], num, rtol=tol, atol=1e-8, err_msg=name)
        big = np.abs(num) > 1e-3
        if big.any():
            err = rel_error(grads[name][big], num[big])
            assert err < tol, (name, err)
    return loss


# --- TwoLayerNet (golden 3.1) ------------------------------------------------------

def test_two_layer_net_golden(backend):
    require(backend, FC_OPS)
    N, D, H, C = 3, 5, 50, 7
    model = TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=1e-3)
    assert model.params["W1"].shape == (D, H) and model.params["b2"].shape == (C,)
    assert np.all(model.params["b1"] == 0) and abs(model.params["W1"].std() - 1e-3) < 3e-4
    model.params["W1"] = np.linspace(-0.7, 0.3, num=D * H).reshape(D, H)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=H)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=H * C).reshape(H, C)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=C)
    X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    scores = model.loss(X)
    expected_scores = np.array(
        [[11.53165108, 12.29173440, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
         [12.05769098, 12.74614105, 13.43459113, 14.12304120, 14.81149128, 15.49994135, 16.18839143],
         [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.28463190]])
    assert np.abs(scores - expected_scores).sum() < 1e-6
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-8)
    y = np.asarray([0, 5, 1])
    loss, _ = model.loss(X, y)
    assert abs(loss - 3.4702243555953918) < 1e-10
    model.reg = 1.0
    loss, _ = model.loss(X, y)
    assert abs(loss - 26.594842695238583) < 1e-10


def test_two_layer_net_gradients(backend):
    require(backend, FC_OPS)
    rng = np.random.default_rng(0)
    np.random.seed(0)
    model = TwoLayerNet(input_dim=6, hidden_dim=9, num_classes=4, weight_scale=1e-1, reg=0.7)
    X = rng.standard_normal((5, 2, 3))
    y = rng.integers(4, size=5)
    check_all_grads(model, X, y)
    # float32 data is cast to the parameters' dtype
    np.testing.assert_array_equal(model.loss(X.astype(np.float32)),
                                  model.loss(X.astype(np.float32).astype(np.float64)))


# --- FullyConnectedNet (golden 3.2, 3.3, 3.5, 3.4) -------------------------------------

FC_GOLDEN = {
    None: (2.3004790897684924, 7.052114776533016),
    "batchnorm": (2.2611955101340957, 6.996533220108303),
    "layernorm": (2.237831004146712, 7.10213782725159),  # 3.5: derived regression values
}


def _fc_golden_inputs():
    np.random.seed(231)
    N, D, C = 2, 15, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    return X, y


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_initial_loss_golden(backend, normalization):
    require(backend, FC_OPS + NORM_OPS[normalization])
    X, y = _fc_golden_inputs()
    assert np.allclose(X[0, :3], [0.41794341, 1.39710028, -1.78590431]) and list(y) == [7, 0]
    for reg, expected in zip([0, 3.14], FC_GOLDEN[normalization]):
        # weights are drawn from the global stream right after X, y (reg=3.14 draws the next 3)
        model = FullyConnectedNet([20, 30], input_dim=15, num_classes=10, reg=reg,
                                  weight_scale=5e-2, dtype=np.float64, normalization=normalization)
        loss, grads = model.loss(X, y)
        assert abs(loss - expected) < 1e-10, (normalization, reg, loss)
        assert set(grads) == set(model.params)


def test_fc_net_dropout_initial_loss_golden(backend):
    """Golden 3.4: dropout_forward with a 'seed' re-seeds the global stream on
    every call, so each model's weights depend on the previous model's loss call."""
    require(backend, FC_OPS + DROPOUT_OPS)
    X, y = _fc_golden_inputs()
    expected = {1: 2.3004790897684924, 0.75: 2.302371489704412, 0.5: 2.3042759220785896}
    for keep in [1, 0.75, 0.5]:
        model = FullyConnectedNet([20, 30], input_dim=15, num_classes=10, weight_scale=5e-2,
                                  dtype=np.float64, dropout=keep, seed=123)
        loss, _ = model.loss(X, y)
        assert abs(loss - expected[keep]) < 1e-10, (keep, loss)


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
@pytest.mark.parametrize("keep", [1, 0.6])
def test_fc_net_gradients(backend, normalization, keep):
    ops = FC_OPS + NORM_OPS[normalization] + (DROPOUT_OPS if keep != 1 else [])
    require(backend, ops)
    np.random.seed(231)
    N, D, H1, H2, C = 4, 7, 9, 6, 5
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    for reg in [0.0, 3.14]:
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg,
                                  weight_scale=5e-1, dtype=np.float64,
                                  normalization=normalization, dropout_keep_ratio=keep, seed=123)
        check_all_grads(model, X, y)


def test_fc_net_params_and_state():
    np.random.seed(0)
    model = FullyConnectedNet([4, 3], input_dim=6, num_classes=2, normalization="batchnorm",
                              dropout_keep_ratio=0.5, weight_scale=2e-2, seed=7)
    assert sorted(model.params) == sorted(["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2",
                                           "beta2", "W3", "b3"])
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes["W1"] == (6, 4) and shapes["W2"] == (4, 3) and shapes["W3"] == (3, 2)
    assert shapes["gamma2"] == (3,) and shapes["b3"] == (2,)
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert np.all(model.params["gamma1"] == 1) and np.all(model.params["beta2"] == 0)
    assert model.dropout_param == {"mode": "train", "p": 0.5, "seed": 7}
    assert model.bn_params == [{"mode": "train"}, {"mode": "train"}]
    assert model.num_layers == 3
    # weights drawn in layer order from the global stream
    np.random.seed(0)
    w1 = 2e-2 * np.random.randn(6, 4)
    w2 = 2e-2 * np.random.randn(4, 3)
    np.testing.assert_array_equal(model.params["W1"], w1.astype(np.float32))
    np.testing.assert_array_equal(model.params["W2"], w2.astype(np.float32))
    no_seed = FullyConnectedNet([4], input_dim=6, num_classes=2, dropout_keep_ratio=0.5)
    assert no_seed.dropout_param == {"mode": "train", "p": 0.5}
    plain = FullyConnectedNet([], input_dim=6, num_classes=2)
    assert sorted(plain.params) == ["W1", "b1"] and plain.dropout_param == {}
    assert plain.bn_params == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fc_net_dtype_and_test_mode(backend, dtype):
    require(backend, FC_OPS + NORM_OPS["batchnorm"] + DROPOUT_OPS)
    np.random.seed(1)
    model = FullyConnectedNet([8, 8], input_dim=12, num_classes=3, normalization="batchnorm",
                              dropout_keep_ratio=0.5, dtype=dtype, weight_scale=1e-1)
    X = np.random.randn(6, 3, 4)           # float64 input is cast to the model's dtype
    X_before = X.copy()
    y = np.array([0, 1, 2, 0, 1, 2])
    loss, grads = model.loss(X, y)
    assert np.isfinite(loss) and all(g.dtype == dtype for g in grads.values())
    assert "running_mean" in model.bn_params[0]
    scores1 = model.loss(X)
    scores2 = model.loss(X)
    assert scores1.shape == (6, 3) and scores1.dtype == dtype
    np.testing.assert_array_equal(scores1, scores2)  # test mode: no dropout, running stats
    assert model.dropout_param["mode"] == "test" and model.bn_params[1]["mode"] == "test"
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_backends_agree(normalization):
    if "cpp" not in nnc.available_backends():
        pytest.skip("native extension not built")
    require("cpp", FC_OPS + NORM_OPS[normalization] + DROPOUT_OPS)
    results = {}
    for be in ("numpy", "cpp"):
        np.random.seed(5)
        X = np.random.randn(7, 11)
        y = np.random.randint(4, size=7)
        model = FullyConnectedNet([9, 13], input_dim=11, num_classes=4, reg=0.3,
                                  normalization=normalization, dropout_keep_ratio=0.7, seed=3,
                                  weight_scale=0.3, dtype=np.float64)
        with nnc.use_backend(be):
            results[be] = model.loss(X, y), model.loss(X)
    (l_np, g_np), s_np = results["numpy"]
    (l_cpp, g_cpp), s_cpp = results["cpp"]
    assert abs(l_np - l_cpp) <= 1e-10 * abs(l_np)
    np.testing.assert_allclose(s_cpp, s_np, rtol=1e-10, atol=1e-12)
    for k in g_np:
        np.testing.assert_allclose(g_cpp[k], g_np[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(normalization="groupnorm"), ValueError, "normalization must be None, 'batchnorm'"),
    (dict(dropout_keep_ratio=0), ValueError, r"\(0, 1\]"),
    (dict(dropout_keep_ratio=1.5), ValueError, r"\(0, 1\]"),
    (dict(dropout=0.5, dropout_keep_ratio=0.7), ValueError, "disagree"),
    (dict(dropout_keep_ratio="0.5"), TypeError, "dropout_keep_ratio must be a number"),
    (dict(hidden_dims=[10, 0]), ValueError, r"hidden_dims\[1\] must be positive"),
    (dict(hidden_dims=[10, 2.5]), TypeError, r"hidden_dims\[1\] must be an int"),
    (dict(hidden_dims=5), TypeError, "hidden_dims must be a list"),
    (dict(input_dim=-3), ValueError, "input_dim must be positive"),
    (dict(num_classes=0), ValueError, "num_classes must be positive"),
    (dict(reg=-1.0), ValueError, "reg must be >= 0"),
    (dict(weight_scale=float("nan")), ValueError, "weight_scale must be >= 0"),
    (dict(dtype=np.int32), TypeError, "dtype must be np.float32 or np.float64"),
    (dict(dtype="banana"), TypeError, "dtype must be np.float32 or np.float64"),
])
def test_fc_net_bad_args(kwargs, exc, match):
    kwargs = dict(kwargs)
    hidden = kwargs.pop("hidden_dims", [10])
    with pytest.raises(exc, match=match):
        FullyConnectedNet(hidden, **kwargs)


def test_fc_net_dropout_old_name():
    a = FullyConnectedNet([3], input_dim=4, num_classes=2, dropout=0.5)
    b = FullyConnectedNet([3], input_dim=4, num_classes=2, dropout=0.5, dropout_keep_ratio=0.5)
    assert a.use_dropout and a.dropout_param["p"] == 0.5 == b.dropout_param["p"]
    assert not FullyConnectedNet([3], input_dim=4, num_classes=2, dropout=1).use_dropout


def test_two_layer_net_bad_args():
    with pytest.raises(ValueError, match="hidden_dim must be positive"):
        TwoLayerNet(hidden_dim=0)
    with pytest.raises(ValueError, match="reg must be >= 0"):
        TwoLayerNet(reg=-0.1)


# --- ThreeLayerConvNet ----------------------------------------------------------------

def test_three_layer_convnet_shapes_and_init():
    np.random.seed(0)
    model = ThreeLayerConvNet(weight_scale=1e-2)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"W1": (32, 3, 7, 7), "b1": (32,), "W2": (32 * 16 * 16, 100), "b2": (100,),
                      "W3": (100, 10), "b3": (10,)}
    assert all(v.dtype == np.float32 for v in model.params.values())
    np.random.seed(0)
    np.testing.assert_array_equal(model.params["W1"],
                                  (1e-2 * np.random.randn(32, 3, 7, 7)).astype(np.float32))
    assert model.conv_param == {"stride": 1, "pad": 3}
    assert model.pool_param == {"pool_height": 2, "pool_width": 2, "stride": 2}


def test_three_layer_convnet_initial_loss(backend):
    require(backend, CONV_OPS)
    np.random.seed(231)
    N = 20
    X = np.random.randn(N, 3, 16, 16)
    y = np.random.randint(10, size=N)
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=8, hidden_dim=20,
                              dtype=np.float64)
    loss, _ = model.loss(X, y)
    # tiny weights: scores ~ 0, loss ~ log(10)
    assert abs(loss - np.log(10)) < 1e-3
    model.reg = 0.5
    loss_reg, _ = model.loss(X, y)
    expected_reg = 0.25 * sum(np.sum(model.params[w] ** 2) for w in ("W1", "W2", "W3"))
    assert abs((loss_reg - loss) - expected_reg) < 1e-12


@pytest.mark.parametrize("input_dim,filter_size", [((3, 6, 6), 3), ((2, 8, 6), 3),
                                                    ((1, 10, 4), 5), ((1, 5, 7), 4)])
def test_three_layer_convnet_gradients(backend, input_dim, filter_size):
    """Square, non-square, 1-channel, and an even filter (odd input -> even conv output)."""
    require(backend, CONV_OPS)
    np.random.seed(1)  # no near-ties in the pooling windows (a kink within h breaks the check)
    N, C = 2, input_dim[0]
    X = np.random.randn(N, *input_dim)
    y = np.random.randint(4, size=N)
    model = ThreeLayerConvNet(input_dim=input_dim, num_filters=3, filter_size=filter_size,
                              hidden_dim=7, num_classes=4, weight_scale=5e-1, reg=0.3,
                              dtype=np.float64)
    assert model.params["W1"].shape == (3, C, filter_size, filter_size)
    pad = (filter_size - 1) // 2
    Hc = input_dim[1] + 2 * pad - filter_size + 1
    Wc = input_dim[2] + 2 * pad - filter_size + 1
    assert model.params["W2"].shape == (3 * (Hc // 2) * (Wc // 2), 7)
    assert model.loss(X).shape == (N, 4)
    check_all_grads(model, X, y)


def test_three_layer_convnet_backends_agree():
    if "cpp" not in nnc.available_backends():
        pytest.skip("native extension not built")
    require("cpp", CONV_OPS)
    results = {}
    for be in ("numpy", "cpp"):
        np.random.seed(3)
        X = np.random.randn(3, 2, 8, 6)
        y = np.random.randint(5, size=3)
        model = ThreeLayerConvNet(input_dim=(2, 8, 6), num_filters=4, filter_size=3,
                                  hidden_dim=9, num_classes=5, weight_scale=0.3, reg=0.1,
                                  dtype=np.float64)
        with nnc.use_backend(be):
            results[be] = model.loss(X, y)
    assert abs(results["numpy"][0] - results["cpp"][0]) <= 1e-10 * results["numpy"][0]
    for k, g in results["numpy"][1].items():
        np.testing.assert_allclose(results["cpp"][1][k], g, rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(input_dim=(3, 32)), ValueError, r"input_dim must be \(C, H, W\)"),
    (dict(input_dim=5), ValueError, r"input_dim must be \(C, H, W\)"),
    (dict(input_dim=(0, 32, 32)), ValueError, r"input_dim\[0\] must be positive"),
    (dict(input_dim=(3, 7, 8), filter_size=3), ValueError, "conv output is 7x8"),
    (dict(input_dim=(3, 1, 8), filter_size=1), ValueError, "conv output is 1x8"),
    (dict(num_filters=0), ValueError, "num_filters must be positive"),
    (dict(filter_size=2.0), TypeError, "filter_size must be an int"),
    (dict(hidden_dim=-1), ValueError, "hidden_dim must be positive"),
    (dict(reg=-2), ValueError, "reg must be >= 0"),
    (dict(dtype=np.float16), TypeError, "dtype must be np.float32 or np.float64"),
])
def test_three_layer_convnet_bad_args(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ThreeLayerConvNet(**kwargs)


# --- the first layer's input gradient is never computed ---

def _count_calls(monkeypatch, backend, names):
    """Counts the calls the active backend's functions `names` receive."""
    from nnc.backends import cpp_backend, numpy_backend
    module = {"numpy": numpy_backend, "cpp": cpp_backend}[backend]
    counts = dict.fromkeys(names, 0)
    for name in names:
        fn = getattr(module, name)

        def counted(*args, _fn=fn, _name=name):
            counts[_name] += 1
            return _fn(*args)
        monkeypatch.setattr(module, name, counted)
    return counts


def test_first_layer_skips_the_input_gradient(backend, monkeypatch):
    """The classifiers ask the first layer for dw and db only (its dx would be
    the images' gradient, which nothing uses); the gradients are the same
    bits as through the public sandwich functions, which return dx."""
    from nnc import layer_utils as lu
    from nnc.layers import affine_backward, softmax_loss

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3, 8, 8))
    y = rng.integers(0, 10, 6)
    net = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7,
                            reg=0.1, dtype=np.float64)
    p = net.params
    counts = _count_calls(monkeypatch, backend, ["conv_backward_strides", "conv_backward_im2col",
                                                 "conv_pool_backward_weights"])
    loss, grads = net.loss(X, y)
    assert counts == {"conv_backward_strides": 0, "conv_backward_im2col": 0,
                      "conv_pool_backward_weights": 1}
    # the same values through the public functions, which compute dx too
    cp = {"stride": 1, "pad": 1}
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    o1, c1 = lu.conv_relu_pool_forward(X, p["W1"], p["b1"], cp, pp)
    o2, c2 = lu.affine_relu_forward(o1, p["W2"], p["b2"])
    s, c3 = lu.affine_forward(o2, p["W3"], p["b3"])
    _, ds = softmax_loss(s, y)
    d2, _, _ = affine_backward(ds, c3)
    d1, _, _ = lu.affine_relu_backward(d2, c2)
    dx, dW1, db1 = lu.conv_relu_pool_backward(d1, c1)
    assert dx.shape == X.shape
    # the L2 term is added in place by sgd with learning rate -reg (fused on cpp)
    from nnc.optim import sgd
    np.testing.assert_array_equal(grads["W1"], sgd(dW1.copy(), p["W1"], {"learning_rate": -0.1})[0])
    np.testing.assert_allclose(grads["W1"], dW1 + 0.1 * p["W1"], rtol=1e-15, atol=1e-17)
    np.testing.assert_array_equal(grads["b1"], db1)

    for normalization in (None, "batchnorm", "layernorm"):
        fc = FullyConnectedNet([5, 4], input_dim=12, num_classes=3, normalization=normalization,
                               dtype=np.float64, seed=1)
        counts = _count_calls(monkeypatch, backend, ["affine_backward", "affine_backward_weights"])
        fc.loss(rng.standard_normal((4, 12)), rng.integers(0, 3, 4))
        assert counts == {"affine_backward": 2, "affine_backward_weights": 1}, normalization
    two = TwoLayerNet(input_dim=12, hidden_dim=5, num_classes=3)
    counts = _count_calls(monkeypatch, backend, ["affine_backward", "affine_backward_weights"])
    two.loss(rng.standard_normal((4, 12)), rng.integers(0, 3, 4))
    assert counts == {"affine_backward": 1, "affine_backward_weights": 1}


def test_reg_grad_is_added_in_place_or_to_a_copy(backend):
    """_add_reg_grad adds reg * W to the backward's own gradient arrays in place;
    a gradient it may not write (read-only, strided, another dtype) gets a new
    array instead, and the weights are never written."""
    from nnc.classifiers.fc_net import _add_reg_grad
    rng = np.random.default_rng(3)
    params = {"W": rng.standard_normal((5, 7)), "V": rng.standard_normal((4, 6))}
    saved = {k: v.copy() for k, v in params.items()}
    g_w = rng.standard_normal((5, 7))
    g_v = np.asfortranarray(rng.standard_normal((4, 6)))
    grads = {"W": g_w, "V": g_v}
    want = {k: grads[k] + 0.25 * params[k] for k in grads}
    _add_reg_grad(grads, params, 0.25, ("W", "V"))
    assert grads["W"] is g_w and grads["V"] is not g_v
    for k in grads:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-15, atol=1e-16)
        np.testing.assert_array_equal(params[k], saved[k])

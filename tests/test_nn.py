"""Issue 9: the object-layer API of the CSCI566-style assignments (nnc.nn).

The course's check cells with their published values (section 4 of
../shared/spec/golden-values.md, copied here) on both backends; the layer
protocol; gradient checks of every layer, loss and model, L1/L2 through
backward; the optimizers; bad input (a clear exception, nothing modified);
the architecture rules (nnc.nn only uses the public ops)."""
import ast
import os
import subprocess
import sys

import numpy as np
import pytest

import nnc
from nnc.nn import *  # noqa: F401,F403  (the notebooks' import)
from nnc.nn import (SGD, SGDM, Adam, ConvLayer2D, DropoutNet, FullyConnectedNetwork,
                    MaxPoolingLayer, Module, RMSProp, SmallConvolutionalNetwork,
                    SmallFullyConnectedNetwork, TestCNN, TestFCGeLU, TinyNet, bce, cross_entropy,
                    dropout, fc, flatten, gelu, leaky_relu, mse, relu, sequential, sigmoid,
                    softmax, tanh)
from nnc.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array

from conftest import ALL_BACKENDS, rel_error

NN_DIR = os.path.join(os.path.dirname(nnc.__file__), "nn")


# --- 4.1 flatten + fc -----------------------------------------------------------------

@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_flatten_fc_golden(backend):
    input_bz, input_dim, output_dim = 3, (7, 6, 4), 4
    input_size = input_bz * np.prod(input_dim)
    weight_size = output_dim * np.prod(input_dim)
    flatten_layer = flatten(name="flatten_test")
    single_fc = fc(np.prod(input_dim), output_dim, init_scale=0.02, name="fc_test")
    x = np.linspace(-0.1, 0.4, num=input_size).reshape(input_bz, *input_dim)
    w = np.linspace(-0.2, 0.2, num=weight_size).reshape(np.prod(input_dim), output_dim)
    b = np.linspace(-0.3, 0.3, num=output_dim)
    single_fc.params[single_fc.w_name] = w
    single_fc.params[single_fc.b_name] = b
    with nnc.use_backend(backend):
        out = single_fc.forward(flatten_layer.forward(x))
    expected = np.array([[0.63910291, 0.83740057, 1.03569824, 1.23399591],
                         [0.61401587, 0.82903823, 1.04406058, 1.25908294],
                         [0.58892884, 0.82067589, 1.05242293, 1.28416997]])
    assert rel_error(out, expected) < 1e-8
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


# --- 4.2 gelu -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_gelu_layer_golden(backend):
    x = np.linspace(-1.5, 1.5, num=12).reshape(3, 4)
    with nnc.use_backend(backend):
        out = gelu(name="gelu_f").forward(x)
    expected = np.array([[-0.10042842, -0.13504766, -0.16231757, -0.16892140],
                         [-0.13960493, -0.06078651, 0.07557713, 0.26948598],
                         [0.51289678, 0.79222788, 1.09222506, 1.39957158]])
    assert rel_error(out, expected) < 1e-7
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


# --- 4.3 dropout ----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_dropout_keep_prob_table(backend):
    x = np.random.default_rng(0).standard_normal((100, 100)) + 5.0
    with nnc.use_backend(backend):
        for p in [0, 0.25, 0.50, 0.75, 1]:
            d = dropout(keep_prob=p, seed=1)
            out = d.forward(x, True)
            out_test = d.forward(x, False)
            assert np.array_equal(out_test, x)
            if p in (0, 1):
                assert np.array_equal(out, x)   # 0 and 1 both mean no dropout
                continue
            zero_frac = np.mean(out == 0)
            assert abs(zero_frac - (1 - p)) < 0.02
            assert abs(out.mean() - x.mean()) < 0.45
            kept = out != 0
            np.testing.assert_allclose(out[kept], x[kept] / p, rtol=1e-15)


def test_dropout_mask_comes_from_the_layers_own_generator():
    x = np.ones((20, 30))
    d = dropout(0.5, seed=7)
    state = np.random.get_state()[1].copy()
    out = d.forward(x, True)
    assert np.array_equal(np.random.get_state()[1], state)   # the global generator is untouched
    expected = (np.random.RandomState(7).rand(20, 30) < 0.5) / 0.5
    np.testing.assert_array_equal(out, expected)
    # a seed passed to forward re-creates the generator: same mask again
    again = d.forward(x, True, seed=7)
    np.testing.assert_array_equal(again, expected)
    other = d.forward(x, True)   # continues the stream: another mask
    assert not np.array_equal(other, expected)
    # backward uses the stored mask
    dx = d.backward(np.full_like(x, 3.0))
    np.testing.assert_array_equal(dx, 3.0 * other)
    # test mode: identity forward and backward
    d.forward(x, False)
    np.testing.assert_array_equal(d.backward(x), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_keeps_the_dtype(dtype):
    x = np.ones((4, 5), dtype)
    assert dropout(0.3, seed=0).forward(x).dtype == dtype


# --- 4.4 cross_entropy ----------------------------------------------------------------

@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_cross_entropy_near_log_num_classes(backend):
    num_classes, num_inputs = 6, 100
    rng = np.random.default_rng(0)
    x = 0.001 * rng.standard_normal((num_inputs, num_classes))
    y = rng.integers(num_classes, size=num_inputs)
    with nnc.use_backend(backend):
        loss = cross_entropy().forward(x, y)
        total = cross_entropy(size_average=False)
        loss_sum = total.forward(x, y)
        dx_sum = total.backward()
    assert abs(loss - np.log(6)) < 0.01
    assert abs(loss_sum - num_inputs * loss) < 1e-10
    p = softmax(x)
    p[np.arange(num_inputs), y] -= 1
    np.testing.assert_allclose(dx_sum, p, rtol=1e-10, atol=1e-14)


def test_softmax_over_the_last_axis():
    x = np.array([[[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]]])
    p = softmax(x)
    np.testing.assert_allclose(p.sum(axis=-1), 1)
    np.testing.assert_allclose(p[0, 1], 1 / 3)
    np.testing.assert_allclose(p[0, 0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


# --- 4.5 SmallFullyConnectedNetwork -----------------------------------------------------

SMALL_FC_SCORES = np.array(
    [[-2.33881897, -1.92174121, -1.50466344, -1.08758567, -0.67050790, -0.25343013, 0.16364763],
     [-1.57214916, -1.18570130, -0.79925345, -0.41280559, -0.02635774, 0.36009011, 0.74653797],
     [-0.80178618, -0.44604469, -0.09030320, 0.26543829, 0.62117977, 0.97692126, 1.33266275],
     [-0.00331319, 0.32124836, 0.64580991, 0.97037146, 1.29493301, 1.61949456, 1.94405611]])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_small_fully_connected_network_golden(backend):
    N, D, H, C = 4, 4, 30, 7
    model = SmallFullyConnectedNetwork()
    model.net.assign("fc1_w", np.linspace(-0.7, 0.3, num=D * H).reshape(D, H))
    model.net.assign("fc1_b", np.linspace(-0.6, 0.2, num=H))
    model.net.assign("fc2_w", np.linspace(-0.2, 0.2, num=H * C).reshape(H, C))
    model.net.assign("fc2_b", np.linspace(-0.9, 0.1, num=C))
    feats = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    with nnc.use_backend(backend):
        scores = model.forward(feats)
        loss = cross_entropy().forward(scores, np.asarray([0, 5, 1, 4]))
    assert np.sum(np.abs(scores - SMALL_FC_SCORES)) < 1e-6
    np.testing.assert_allclose(scores, SMALL_FC_SCORES, rtol=0, atol=1e-8)
    assert abs(loss - 2.4248995879903195) < 1e-10


# --- 4.6 ConvLayer2D, 4.7 MaxPoolingLayer, 4.8 TestCNN ----------------------------------

CONV_LAYER_GOLDEN = np.array([[[[-0.03874312, 0.57000324], [-0.03955296, 0.57081309],
                                [-0.04036281, 0.57162293], [-0.04117266, 0.57243278]],
                               [[-0.04522190, 0.57648202], [-0.04603175, 0.57729187],
                                [-0.04684159, 0.57810172], [-0.04765144, 0.57891156]],
                               [[-0.05170068, 0.58296080], [-0.05251053, 0.58377065],
                                [-0.05332038, 0.58458050], [-0.05413022, 0.58539035]],
                               [[-0.05817946, 0.58943959], [-0.05898931, 0.59024943],
                                [-0.05979916, 0.59105928], [-0.06060901, 0.59186913]]]])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv_layer_golden(backend):
    input_image = np.linspace(-0.1, 0.4, num=1 * 8 * 8 * 1).reshape([1, 8, 8, 1])
    in_channels, k_size, n_filt = 1, 5, 2
    single_conv = ConvLayer2D(in_channels, k_size, n_filt, stride=1, padding=0, name="conv_test")
    single_conv.params[single_conv.w_name] = np.linspace(
        -0.2, 0.2, num=k_size * k_size * in_channels * n_filt).reshape(k_size, k_size,
                                                                       in_channels, n_filt)
    single_conv.params[single_conv.b_name] = np.linspace(-0.3, 0.3, num=n_filt)
    with nnc.use_backend(backend):
        out = single_conv.forward(input_image)
    assert out.shape == (1, 4, 4, 2)
    assert rel_error(out, CONV_LAYER_GOLDEN) < 1e-7
    np.testing.assert_allclose(out, CONV_LAYER_GOLDEN, rtol=0, atol=1e-8)


def test_conv_layer_output_size():
    conv_layer = ConvLayer2D(3, 4, 16, stride=2, padding=3)
    assert conv_layer.get_output_size(np.zeros([32, 28, 28, 3]).shape) == [32, 16, 16, 16]
    assert MaxPoolingLayer(3, 2, "p").get_output_size((5, 30, 30, 7)) == [5, 14, 14, 7]
    with pytest.raises(ValueError, match="4-D shape"):
        conv_layer.get_output_size((28, 28, 3))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_max_pooling_layer_golden(backend):
    input_image = np.linspace(-0.1, 0.4, num=64).reshape([1, 8, 8, 1])
    maxpool = MaxPoolingLayer(pool_size=4, stride=2, name="maxpool_test")
    with nnc.use_backend(backend):
        out = maxpool.forward(input_image)
    expected = np.array([[[[0.11428571], [0.13015873], [0.14603175]],
                          [[0.24126984], [0.25714286], [0.27301587]],
                          [[0.36825397], [0.38412698], [0.40000000]]]])
    assert out.shape == (1, 3, 3, 1)
    assert rel_error(out, expected) < 1e-7
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


TEST_CNN_SCORES = np.array([[-13.85107294, -11.52845818, -9.20584342, -6.88322866, -4.56061390],
                            [-11.44514171, -10.21200524, -8.97886878, -7.74573231, -6.51259584],
                            [-9.03921048, -8.89555231, -8.75189413, -8.60823596, -8.46457778],
                            [-6.63327925, -7.57909937, -8.52491949, -9.47073960, -10.41655972]])


def _test_cnn_with_golden_params():
    B, H, W, iC = 4, 8, 8, 3
    k = 3
    oC, Hi, O = 3, 27, 5  # noqa: E741  (the notebook's names)
    model = TestCNN()
    model.net.assign("conv_w", np.linspace(-0.7, 0.3, num=k * k * iC * oC).reshape(k, k, iC, oC))
    model.net.assign("conv_b", np.linspace(-0.6, 0.2, num=oC))
    model.net.assign("fc_w", np.linspace(-0.2, 0.2, num=Hi * O).reshape(Hi, O))
    model.net.assign("fc_b", np.linspace(-0.9, 0.1, num=O))
    feats = np.linspace(-5.5, 4.5, num=B * H * W * iC).reshape(B, H, W, iC)
    return model, feats


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_test_cnn_golden(backend):
    model, feats = _test_cnn_with_golden_params()
    loss_func = cross_entropy()
    y = np.asarray([0, 2, 1, 4])
    with nnc.use_backend(backend):
        scores = model.forward(feats)
        loss = loss_func.forward(scores, y)
        model.backward(loss_func.backward())
    assert np.sum(np.abs(scores - TEST_CNN_SCORES)) < 1e-6
    np.testing.assert_allclose(scores, TEST_CNN_SCORES, rtol=0, atol=1e-8)
    assert abs(loss - 4.56046848799693) < 1e-10


def test_test_cnn_initialization():
    """The notebook's initialization check: weights of std 0.02, zero biases."""
    np.random.seed(1234)
    model = TestCNN()
    for name in ("conv", "fc"):
        assert abs(model.net.get_params(name + "_w").std() - 0.02) < 0.02 / 10 * 2
        assert np.all(model.net.get_params(name + "_b") == 0)
    assert model.net.get_params("conv_w").shape == (3, 3, 3, 3)
    assert model.net.get_params("fc_w").shape == (27, 5)


# --- 4.9 SGD, 4.10 Adam ---------------------------------------------------------------

@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_sgd_weight_decay_golden(backend):
    N, D = 4, 5
    test_sgd = sequential(fc(N, D, name="sgd_fc"))
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    test_sgd.layers[0].params = {"sgd_fc_w": w}
    test_sgd.layers[0].grads = {"sgd_fc_w": dw}
    with nnc.use_backend(backend):
        SGD(test_sgd, 1e-3, 1e-4).step()
    updated_w = test_sgd.layers[0].params["sgd_fc_w"]
    expected = np.array([[-0.39936000, -0.34678632, -0.29421263, -0.24163895, -0.18906526],
                         [-0.13649158, -0.08391789, -0.03134421, 0.02122947, 0.07380316],
                         [0.12637684, 0.17895053, 0.23152421, 0.28409789, 0.33667158],
                         [0.38924526, 0.44181895, 0.49439263, 0.54696632, 0.59954000]])
    assert rel_error(updated_w, expected) < 1e-6
    # atol 1e-8 pins the decoupled form (the (1 - wd) * (w - lr * dw) form is 3.8e-7 off)
    np.testing.assert_allclose(updated_w, expected, rtol=0, atol=1e-8)
    assert updated_w is w   # in place


ADAM_W = np.array([[-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
                   [-0.13802740, -0.08544591, -0.03286534, 0.01971428, 0.07229290],
                   [0.12487050, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
                   [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
ADAM_V = np.array([[0.69966000, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
                   [0.64683452, 0.63628604, 0.62574310, 0.61520571, 0.60467385],
                   [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
                   [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966000]])
ADAM_M = np.array([[0.48000000, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
                   [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
                   [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
                   [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85000000]])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_adam_golden(backend):
    N, D = 4, 5
    test_adam = sequential(fc(N, D, name="adam_fc"))
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    test_adam.layers[0].params = {"adam_fc_w": w}
    test_adam.layers[0].grads = {"adam_fc_w": dw}
    opt_adam = Adam(test_adam, 1e-2, 0.9, 0.999, t=5)
    opt_adam.mt = {"adam_fc_w": np.linspace(0.6, 0.9, num=N * D).reshape(N, D)}
    opt_adam.vt = {"adam_fc_w": np.linspace(0.7, 0.5, num=N * D).reshape(N, D)}
    with nnc.use_backend(backend):
        opt_adam.step()
    assert rel_error(test_adam.layers[0].params["adam_fc_w"], ADAM_W) < 2e-7
    assert rel_error(opt_adam.mt["adam_fc_w"], ADAM_M) < 1e-8
    assert rel_error(opt_adam.vt["adam_fc_w"], ADAM_V) < 1e-8
    np.testing.assert_allclose(test_adam.layers[0].params["adam_fc_w"], ADAM_W, rtol=0, atol=1e-8)
    assert opt_adam.t == 6


def test_adam_increments_t_once_per_step_not_per_layer():
    net = sequential(fc(3, 4, name="a"), gelu(), fc(4, 2, name="b"))
    for layer in (net.layers[0], net.layers[2]):
        for n in layer.grads:
            layer.grads[n] = np.ones_like(layer.params[n])
    opt = Adam(net, 1e-3)
    opt.step()
    opt.step()
    assert opt.t == 2
    # both layers saw t = 1 then t = 2: with a constant gradient every
    # parameter moved by exactly the same bias-corrected step
    moved = [np.unique(np.round(layer.params[layer.b_name], 12)) for layer in (net.layers[0],
                                                                               net.layers[2])]
    np.testing.assert_allclose(moved[0], moved[1])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_sgdm_and_rmsprop_match_their_formulas(backend):
    rng = np.random.default_rng(0)
    net = sequential(fc(5, 3, name="f"))
    w0, b0 = rng.standard_normal((5, 3)), rng.standard_normal(3)
    net.assign("f_w", w0.copy())
    net.assign("f_b", b0.copy())
    grads = [(rng.standard_normal((5, 3)), rng.standard_normal(3)) for _ in range(3)]
    with nnc.use_backend(backend):
        opt = SGDM(net, lr=0.1, momentum=0.9)
        w_ref, v = w0.copy(), np.zeros_like(w0)
        for gw, gb in grads:
            net.assign_grads("f_w", gw)
            net.assign_grads("f_b", gb)
            opt.step()
            v = 0.9 * v - 0.1 * gw
            w_ref = w_ref + v
        np.testing.assert_allclose(net.get_params("f_w"), w_ref, rtol=1e-12)
        np.testing.assert_allclose(opt.velocity["f_w"], v, rtol=1e-12)
        assert net.get_params("f_w") is net.layers[0].params["f_w"] is net.params["f_w"]

        net.assign("f_w", w0.copy())
        opt = RMSProp(net, lr=0.01, decay=0.99, eps=1e-8)
        w_ref, c = w0.copy(), np.zeros_like(w0)
        for gw, gb in grads:
            net.assign_grads("f_w", gw)
            net.assign_grads("f_b", gb)
            opt.step()
            c = 0.99 * c + 0.01 * gw ** 2
            w_ref = w_ref - 0.01 * gw / (np.sqrt(c) + 1e-8)
        np.testing.assert_allclose(net.get_params("f_w"), w_ref, rtol=1e-12)
        np.testing.assert_allclose(opt.cache["f_w"], c, rtol=1e-12)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_adam_weight_decay_is_decoupled(backend):
    net = sequential(fc(3, 2, name="f"))
    w = np.linspace(-1, 1, 6).reshape(3, 2)
    net.assign("f_w", w.copy())
    g = np.linspace(0.5, -0.5, 6).reshape(3, 2)
    net.assign_grads("f_w", g)
    net.assign_grads("f_b", np.zeros(2))
    with nnc.use_backend(backend):
        Adam(net, lr=1e-2, weight_decay=1e-3).step()
    m, v = 0.1 * g, 0.001 * g ** 2
    step = 1e-2 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(net.get_params("f_w"), w - step - 1e-3 * w, rtol=1e-12)


def test_optimizers_update_in_place_on_both_backends():
    for backend in nnc.available_backends():
        for make in (lambda n: SGD(n, 1e-2, 1e-3), lambda n: SGDM(n, 1e-2, 0.9),
                     lambda n: RMSProp(n, 1e-2), lambda n: Adam(n, 1e-2, weight_decay=1e-3)):
            net = sequential(fc(3, 2, name="f"))
            before = dict(net.params)
            old = {n: v.copy() for n, v in before.items()}
            for n in net.grads:
                net.assign_grads(n, np.ones_like(net.params[n]))
            with nnc.use_backend(backend):
                make(net).step()
            for n, v in before.items():
                assert net.layers[0].params[n] is v and net.params[n] is v
                assert not np.array_equal(v, old[n])


# --- the layer protocol -----------------------------------------------------------------

def all_layers():
    return [flatten(), fc(4, 3), gelu(), relu(), tanh(), sigmoid(), leaky_relu(), dropout(0.5),
            ConvLayer2D(2, 3, 4), MaxPoolingLayer(2, 2)]


def test_layer_protocol():
    np.random.seed(0)
    for layer in all_layers():
        assert isinstance(layer.name, str) and isinstance(layer.params, dict)
        assert isinstance(layer.grads, dict) and set(layer.params) == set(layer.grads)
        if layer.params:
            assert sorted(layer.params) == sorted([layer.name + "_b", layer.name + "_w"])
            assert layer.w_name == layer.name + "_w" and layer.b_name == layer.name + "_b"
            assert all(g is None for g in layer.grads.values())
            assert np.all(layer.params[layer.b_name] == 0)
        with pytest.raises(ValueError, match="No forward function called before"):
            layer.backward(np.ones((2, 3)))
    for loss in (cross_entropy(), mse(), bce()):
        with pytest.raises(ValueError, match="No forward function called before"):
            loss.backward()


def test_default_names_and_init():
    np.random.seed(3)
    layer = fc(50, 40)
    assert layer.name == "fc" and abs(layer.params["fc_w"].std() - 0.002) < 2e-4
    np.random.seed(3)
    np.testing.assert_array_equal(layer.params["fc_w"], 0.002 * np.random.randn(50, 40))
    assert gelu().name == "gelu" and flatten().name == "flatten" and dropout(0).name == "dropout"
    conv = ConvLayer2D(3, 5, 7)
    assert conv.name == "conv" and conv.params["conv_w"].shape == (5, 5, 3, 7)


def test_models_draw_from_the_global_generator_in_layer_order():
    np.random.seed(42)
    model = SmallFullyConnectedNetwork()
    np.random.seed(42)
    w1 = 0.02 * np.random.randn(4, 30)
    w2 = 0.02 * np.random.randn(30, 7)
    np.testing.assert_array_equal(model.net.get_params("fc1_w"), w1)
    np.testing.assert_array_equal(model.net.get_params("fc2_w"), w2)


def test_model_layer_names_and_shapes():
    names = lambda m: [layer.name for layer in m.net.layers]  # noqa: E731
    assert names(TestFCGeLU()) == ["flatten", "fc1", "gelu"]
    assert names(SmallFullyConnectedNetwork()) == ["fc1", "gelu1", "fc2"]
    assert names(DropoutNet()) == ["flatten", "fc1", "gelu1", "fc2", "gelu2", "fc3", "gelu3",
                                   "dropout"]
    assert names(TinyNet()) == ["flatten", "fc1", "gelu1", "fc2"]
    fcn = FullyConnectedNetwork()
    assert [n for n in names(fcn) if n.startswith("fc")] == [f"fc{i}" for i in range(1, 7)]
    assert [n for n in names(fcn) if n.startswith("gelu")] == [f"gelu{i}" for i in range(1, 6)]
    assert fcn.net.get_params("fc1_w").shape == (3072, 100)
    assert fcn.net.get_params("fc6_w").shape == (100, 20)
    assert abs(fcn.net.get_params("fc3_w").std() - 0.1) < 0.01
    assert TinyNet().net.get_params("fc1_w").shape == (3072, 512)
    assert names(TestCNN()) == ["conv", "maxpool", "flatten", "fc"]
    scn = SmallConvolutionalNetwork()
    assert scn.net.layers[0].name == "conv1"
    assert sum(isinstance(layer, ConvLayer2D) for layer in scn.net.layers) <= 2
    assert sum(isinstance(layer, MaxPoolingLayer) for layer in scn.net.layers) <= 2
    out = scn.forward(np.zeros((2, 32, 32, 3)), is_training=False)
    assert out.shape == (2, 20)


# --- the container --------------------------------------------------------------------

def test_sequential_params_alias_the_layers():
    net = sequential(fc(3, 4, name="a"), gelu(), fc(4, 2, name="b"))
    assert list(net.params) == ["a_w", "a_b", "b_w", "b_b"]
    assert net.params["a_w"] is net.layers[0].params["a_w"]
    w = np.ones((3, 4))
    net.assign("a_w", w)
    assert net.layers[0].params["a_w"] is w and net.get_params("a_w") is w
    net.layers[2].params["b_b"] = np.ones(2)   # replaced behind the container's back
    net.gather_params()
    assert net.params["b_b"] is net.layers[2].params["b_b"]
    x = np.ones((5, 3))
    model = Module()
    model.net = net
    model.backward(model.forward(x))
    assert net.grads["a_w"] is net.layers[0].grads["a_w"] is net.get_grads("a_w")
    g = np.zeros((4, 2))
    net.assign_grads("b_w", g)
    assert net.layers[2].grads["b_w"] is g


def test_sequential_bad_use():
    with pytest.raises(ValueError, match="Existing name dup!"):
        sequential(fc(2, 2, name="dup"), gelu(name="dup"))
    with pytest.raises(TypeError, match="argument 1 .* is not a layer"):
        sequential(fc(2, 2), "gelu")
    net = sequential(fc(2, 3, name="f"), gelu())
    w = net.get_params("f_w").copy()
    with pytest.raises(KeyError,
                       match=r"no parameter named 'g_w'; the parameters are \['f_w', 'f_b'\]"):
        net.assign("g_w", np.ones((2, 3)))
    for call in (net.get_params, net.get_grads):
        with pytest.raises(KeyError, match="the parameters are"):
            call("f_x")
    with pytest.raises(ValueError, match=r"f_w has shape \(2, 3\), got an array of shape \(3, 2\)"):
        net.assign("f_w", np.ones((3, 2)))
    with pytest.raises(TypeError, match="f_w must be a numpy.ndarray"):
        net.assign("f_w", [[1.0] * 3] * 2)
    np.testing.assert_array_equal(net.get_params("f_w"), w)   # nothing modified


def test_load_copies_and_reports(capsys):
    np.random.seed(0)
    model = SmallFullyConnectedNetwork()
    trained = {n: np.full(v.shape, 0.5) for n, v in model.net.params.items()}
    trained["unknown"] = np.ones(3)
    other = SmallFullyConnectedNetwork()
    other.net.load(trained)
    out = capsys.readouterr().out.splitlines()
    assert out == ["Loading Params: fc1_w Shape: (4, 30)", "Loading Params: fc1_b Shape: (30,)",
                   "Loading Params: fc2_w Shape: (30, 7)", "Loading Params: fc2_b Shape: (7,)"]
    for n in model.net.params:
        np.testing.assert_array_equal(other.net.get_params(n), 0.5)
        assert other.net.get_params(n) is not trained[n]        # a copy
        assert other.net.params[n] is other.net.layers[0 if n.startswith("fc1") else 2].params[n]
    bad = dict(trained, fc2_b=np.ones(8))
    before = {n: v.copy() for n, v in other.net.params.items()}
    with pytest.raises(ValueError, match=r"fc2_b has shape \(7,\)"):
        other.net.load(bad)
    for n, v in before.items():   # nothing loaded
        np.testing.assert_array_equal(other.net.get_params(n), v)


# --- gradient checks --------------------------------------------------------------------

def _check_layer_gradients(layer, x, **fwd):
    """Input and parameter gradients of one layer against central differences."""
    out = layer.forward(x, **fwd)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    f = lambda _: layer.forward(x, **fwd)  # noqa: E731
    assert rel_error(dx, eval_numerical_gradient_array(f, x, dout)) < 1e-7
    for n in layer.params:
        layer.forward(x, **fwd)
        layer.backward(dout)
        num = eval_numerical_gradient_array(f, layer.params[n], dout)
        assert rel_error(layer.grads[n], num) < 1e-7, n


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_layer_gradient_checks(backend):
    rng = np.random.default_rng(0)
    np.random.seed(0)
    with nnc.use_backend(backend):
        _check_layer_gradients(flatten(), rng.standard_normal((3, 4, 2, 2)))
        _check_layer_gradients(fc(6, 5, init_scale=0.5), rng.standard_normal((4, 6)))
        v = rng.standard_normal((4, 5))
        v[np.abs(v) < 0.05] = 0.3   # away from the kinks
        for layer in (gelu(), relu(), tanh(), sigmoid(), leaky_relu(0.1)):
            _check_layer_gradients(layer, v.copy())
        _check_layer_gradients(dropout(0.6, seed=3), v.copy(), seed=5)   # seeded: same mask
        # the notebook's conv check: 15 images 8x8x3, 4x4 filters, stride 2, pad 1
        conv = ConvLayer2D(input_channels=3, kernel_size=4, number_filters=12, stride=2,
                           padding=1, name="conv_test")
        conv.params[conv.w_name] = rng.standard_normal((4, 4, 3, 12))
        conv.params[conv.b_name] = rng.standard_normal(12)
        _check_layer_gradients(conv, rng.standard_normal((3, 8, 8, 3)))
        _check_layer_gradients(ConvLayer2D(2, 3, 3, stride=1, padding=1, init_scale=0.5),
                               rng.standard_normal((2, 5, 4, 2)))
        _check_layer_gradients(MaxPoolingLayer(pool_size=4, stride=2, name="maxpool_test"),
                               rng.standard_normal((3, 8, 8, 3)))
        _check_layer_gradients(MaxPoolingLayer(3, 2), rng.standard_normal((2, 7, 7, 2)))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_loss_gradient_checks(backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4))
    y_int = rng.integers(4, size=6)
    y_real = rng.standard_normal((6, 4))
    y_01 = rng.random((6, 4))
    with nnc.use_backend(backend):
        for loss, y in [(cross_entropy(), y_int), (cross_entropy(False), y_int), (mse(), y_real),
                        (mse(False), y_real), (bce(), y_01), (bce(False), y_01)]:
            value = loss.forward(x, y)
            dx = loss.backward()
            num = eval_numerical_gradient(lambda v: loss.forward(v, y), x, verbose=False)
            assert rel_error(dx, num) < 1e-7, type(loss).__name__
            assert isinstance(value, float)
        assert abs(mse().forward(x, y_real) - np.mean((x - y_real) ** 2)) < 1e-14
        assert abs(mse(False).forward(x, y_real) - np.sum((x - y_real) ** 2)) < 1e-12
        sig = 1 / (1 + np.exp(-x))
        ref = -np.mean(y_01 * np.log(sig) + (1 - y_01) * np.log(1 - sig))
        assert abs(bce().forward(x, y_01) - ref) < 1e-14


def _model_loss(model, x, y, loss_func, penalty=None, seed=None):
    def f(_):
        loss = loss_func.forward(model.forward(x, True, seed), y)
        return loss if penalty is None else loss + penalty()
    return f


def _check_model_gradients(model, x, y, loss_func=None, regularization="none", lam=0.0, seed=None,
                           max_entries=None):
    """Every parameter gradient of model.backward against central differences
    of the loss (plus the penalty whose gradient the regularization adds).
    With max_entries, a random subset of each parameter's entries is checked."""
    loss_func = loss_func or cross_entropy()
    params = model.net.params
    penalty = None
    if regularization == "l1":
        penalty = lambda: lam * sum(np.abs(v).sum() for v in params.values())  # noqa: E731
    elif regularization == "l2":
        penalty = lambda: lam / 2 * sum((v ** 2).sum() for v in params.values())  # noqa: E731
    loss_func.forward(model.forward(x, True, seed), y)
    model.backward(loss_func.backward(), regularization, lam)
    grads = {n: g.copy() for n, g in model.net.grads.items()}
    f = _model_loss(model, x, y, loss_func, penalty, seed)
    rng = np.random.default_rng(0)
    for n, p in params.items():
        if max_entries is None or p.size <= max_entries:
            num = eval_numerical_gradient(f, p, verbose=False)
            # central differences of an O(1) loss carry ~1e-10 of rounding noise
            np.testing.assert_allclose(grads[n], num, rtol=1e-6, atol=1e-9, err_msg=n)
            continue
        for flat in rng.choice(p.size, max_entries, replace=False):
            ix = np.unravel_index(flat, p.shape)
            old = p[ix]
            p[ix] = old + 1e-5
            fp = f(None)
            p[ix] = old - 1e-5
            fm = f(None)
            p[ix] = old
            num = (fp - fm) / 2e-5
            assert abs(num - grads[n][ix]) <= 1e-6 * abs(num) + 1e-9, (n, ix, num, grads[n][ix])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_model_gradient_checks(backend):
    rng = np.random.default_rng(4)
    np.random.seed(231)
    with nnc.use_backend(backend):
        _check_model_gradients(TestFCGeLU(), rng.standard_normal((3, 3, 5)),
                               rng.integers(5, size=3))
        m = SmallFullyConnectedNetwork()
        _check_model_gradients(m, rng.standard_normal((4, 4)), rng.integers(7, size=4))
        _check_model_gradients(DropoutNet(keep_prob=0.7, seed=3), rng.standard_normal((3, 5, 3)),
                               rng.integers(10, size=3), seed=11)
        model, feats = _test_cnn_with_golden_params()
        _check_model_gradients(model, feats[:, :, :, :] * 0.1, np.array([0, 2, 1, 4]))
        _check_model_gradients(TestCNN(), rng.standard_normal((2, 8, 8, 3)),
                               rng.integers(5, size=2))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_large_model_gradient_checks(backend):
    """The CIFAR-sized models, on a random subset of every parameter's entries."""
    rng = np.random.default_rng(5)
    np.random.seed(5)
    x = rng.standard_normal((2, 32, 32, 3))
    cnn = SmallConvolutionalNetwork(keep_prob=0.8, seed=1)
    # O(1) activations: with the 0.02 init, values in a pool window lie so
    # close that a finite-difference step can move the maximum to another
    for name in ("conv1_w", "conv2_w"):
        cnn.net.assign(name, cnn.net.get_params(name) * 20)
    with nnc.use_backend(backend):
        for model in (TinyNet(), FullyConnectedNetwork(), cnn):
            _check_model_gradients(model, x, rng.integers(20, size=2), seed=2, max_entries=8)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("regularization", ["l1", "l2"])
def test_regularization_through_backward(backend, regularization):
    rng = np.random.default_rng(6)
    np.random.seed(6)
    x, y = rng.standard_normal((4, 4)), rng.integers(7, size=4)
    with nnc.use_backend(backend):
        model = SmallFullyConnectedNetwork()
        for n in model.net.params:   # nonzero biases, away from sign's kink
            model.net.assign(n, model.net.params[n] + 0.05 * np.sign(rng.standard_normal(
                model.net.params[n].shape)) + 0.01)
        _check_model_gradients(model, x, y, regularization=regularization, lam=0.3)
        # the penalty's gradient is exactly what is added, to weights and biases
        loss = cross_entropy()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        plain = {n: g.copy() for n, g in model.net.grads.items()}
        loss.forward(model.forward(x), y)
        model.backward(loss.backward(), regularization=regularization, reg_lambda=0.3)
        for n, p in model.net.params.items():
            extra = 0.3 * (np.sign(p) if regularization == "l1" else p)
            np.testing.assert_allclose(model.net.grads[n], plain[n] + extra, rtol=1e-12, atol=1e-15)
            assert model.net.grads[n] is model.net.layers[0 if n.startswith("fc1") else 2].grads[n]


def _short_training(lr, weight_decay=0.0, regularization="none", reg_lambda=0.0):
    from nnc.nn import train_net
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 4))
    y = np.argmax(X @ rng.standard_normal((4, 7)), axis=1)   # learnable labels
    data = {"data_train": (X, y), "data_val": (X[:20], y[:20])}
    np.random.seed(0)
    model = SmallFullyConnectedNetwork()
    res = train_net(data, model, cross_entropy(), SGD(model.net, lr, weight_decay=weight_decay),
                    10, 4, regularization=regularization, reg_lambda=reg_lambda)
    return np.array(res[1])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_sgd_weight_decay_equals_l2_with_lambda_weight_decay_over_lr(backend):
    """SGD's decoupled weight decay wd is L2 regularization with lambda = wd / lr
    (no factor 2 in apply_l2_regularization): two short trainings give the
    same loss history, to rounding (the two orders of operations differ in
    the last bit now and then)."""
    lr, wd = 1.0, 0.005
    with nnc.use_backend(backend):
        decayed = _short_training(lr, weight_decay=wd)
        l2 = _short_training(lr, regularization="l2", reg_lambda=wd / lr)
        plain = _short_training(lr)
    assert len(decayed) == 24
    assert decayed[-1] < decayed[0] - 0.5    # it trains
    np.testing.assert_allclose(decayed, l2, rtol=1e-14, atol=0)
    assert np.max(np.abs(decayed - plain)) > 1e-3   # and the decay matters


# --- the backend switch applies to the layers ---------------------------------------------

@pytest.mark.skipif("cpp" not in nnc.available_backends(), reason="native extension not built")
def test_backend_switch_reaches_the_layers():
    np.random.seed(0)
    model = SmallConvolutionalNetwork()
    x = np.random.default_rng(0).standard_normal((3, 32, 32, 3))
    outs = {}
    for backend in ("numpy", "cpp"):
        with nnc.use_backend(backend):
            outs[backend] = model.forward(x)
            assert model.net.layers[0].meta.backend == backend
            assert model.net.layers[-1].meta.backend == backend
            model.backward(np.ones_like(outs[backend]))
    np.testing.assert_allclose(outs["cpp"], outs["numpy"], rtol=1e-10, atol=1e-12)
    # a cache made on one backend is refused by the other, never misread
    with nnc.use_backend("numpy"):
        model.forward(x)
    with nnc.use_backend("cpp"), pytest.raises(ValueError, match="made by the 'numpy' backend"):
        model.backward(np.ones((3, 20)))


# --- bad input: a clear exception, nothing modified ------------------------------------------

def test_bad_layer_arguments():
    with pytest.raises(TypeError, match="kernel_size must be an int, got 3.0"):
        ConvLayer2D(3, 3.0, 4)
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        ConvLayer2D(3, True, 4)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        ConvLayer2D(3, 3, 4, padding=-1)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        ConvLayer2D(3, 3, 4, stride=0)
    with pytest.raises(TypeError, match="pool_size must be an int, got 2.5"):
        MaxPoolingLayer(2.5, 2, "p")
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"Keep Prob = {p} is not within"):
            dropout(p)
    with pytest.raises(TypeError, match="keep_prob must be a real number"):
        dropout("0.5")
    with pytest.raises(TypeError, match="input_dim must be an int"):
        fc(3.0, 2)
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        leaky_relu(None)
    with pytest.raises(TypeError, match="size_average must be True or False"):
        cross_entropy(size_average=1)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bad_layer_inputs(backend):
    np.random.seed(0)
    with nnc.use_backend(backend):
        layer = fc(6, 5, name="f")
        with pytest.raises(ValueError,
                           match=r"2-D with input_dim=6 features, but got shape \(4, 2, 3\)"):
            layer.forward(np.ones((4, 2, 3)))
        with pytest.raises(ValueError, match=r"but got shape \(4, 5\) \(weights \(6, 5\)\)"):
            layer.forward(np.ones((4, 5)))
        with pytest.raises(TypeError, match="feat must hold real numbers"):
            layer.forward(np.ones((4, 6), complex))
        with pytest.raises(TypeError, match="feat must be a numpy.ndarray"):
            layer.forward([[1.0] * 6])
        assert layer.meta is None and layer.grads["f_w"] is None
        conv = ConvLayer2D(3, 3, 4, name="c")
        with pytest.raises(ValueError, match=r"expected a batch of NHWC images \(N, H, W, 3\), but "
                                             r"received shape \(2, 8, 8\)"):
            conv.forward(np.ones((2, 8, 8)))
        with pytest.raises(ValueError, match=r"received shape \(2, 3, 8, 8\)"):   # NCHW by mistake
            conv.forward(np.ones((2, 3, 8, 8)))
        with pytest.raises(ValueError, match="3x3 filter .* does not fit in the padded input"):
            conv.forward(np.ones((2, 2, 8, 3)))
        with pytest.raises(ValueError, match="5x5 pool window does not fit"):
            MaxPoolingLayer(5, 1, "p").forward(np.ones((1, 4, 8, 2)))
        with pytest.raises(ValueError, match=r"expected a batch of NHWC images"):
            MaxPoolingLayer(2, 2, "p").forward(np.ones((4, 4)))
        assert conv.meta is None
        loss = cross_entropy()
        with pytest.raises(ValueError, match=r"y must lie in \[0, 3\)"):
            loss.forward(np.zeros((2, 3)), np.array([0, 3]))
        with pytest.raises(TypeError, match="integer class labels"):
            loss.forward(np.zeros((2, 3)), np.array([0.0, 1.0]))
        with pytest.raises(ValueError, match="No forward function called before"):
            loss.backward()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_unknown_regularization_changes_nothing(backend):
    np.random.seed(0)
    x, y = np.random.randn(3, 4), np.array([0, 1, 2])
    with nnc.use_backend(backend):
        model = SmallFullyConnectedNetwork()
        loss = cross_entropy()
        loss.forward(model.forward(x), y)
        dscores = loss.backward()
        for bad, exc in (("L2", ValueError), ("elastic", ValueError), (None, ValueError)):
            with pytest.raises(exc, match=r"regularization must be one of \['none', 'l1', 'l2'\]"):
                model.backward(dscores, regularization=bad, reg_lambda=0.1)
        with pytest.raises(TypeError, match="reg_lambda must be a real number"):
            model.backward(dscores, regularization="l2", reg_lambda="0.1")
        assert all(g is None for g in model.net.grads.values())
        model.backward(dscores, regularization="l2", reg_lambda=0.1)   # the caches are intact
        assert all(g is not None for g in model.net.grads.values())
        from nnc.nn import train_net
        before = {n: v.copy() for n, v in model.net.params.items()}
        data = {"data_train": (np.random.randn(20, 4), np.zeros(20, int)),
                "data_val": (np.random.randn(5, 4), np.zeros(5, int))}
        with pytest.raises(ValueError, match="regularization must be one of"):
            train_net(data, model, cross_entropy(), SGD(model.net, 1.0), 5, 2,
                      regularization="ridge")
        for n, v in before.items():
            np.testing.assert_array_equal(model.net.params[n], v)


def test_bad_optimizer_use_changes_nothing():
    net = sequential(fc(3, 2, name="f"))
    w = net.get_params("f_w").copy()
    with pytest.raises(ValueError, match="the gradient of 'f_w' is None: run a backward pass"):
        SGD(net, 1e-2).step()
    np.testing.assert_array_equal(net.get_params("f_w"), w)
    with pytest.raises(ValueError, match=r"beta1 must lie in \[0, 1\)"):
        Adam(net, beta1=1.0)
    with pytest.raises(ValueError, match="t must be an int >= 0"):
        Adam(net, t=-1)
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        SGD(net, lr=-1)
    with pytest.raises(TypeError, match="net must be a sequential"):
        SGD(TinyNet(), 1e-2)
    net.assign_grads("f_w", np.ones((3, 2)))
    net.assign_grads("f_b", np.ones(2))
    net.layers[0].params["f_w"] = np.ones((2, 3)).T   # not C-contiguous: cannot be updated in place
    with pytest.raises(TypeError, match="parameter 'f_w': w must be C-contiguous"):
        SGD(net, 1e-2).step()


# --- the architecture rules ------------------------------------------------------------------

def test_nn_uses_only_the_public_ops():
    """nnc.nn imports nnc's public modules, never a backend or the binding."""
    for fname in os.listdir(NN_DIR):
        if not fname.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(NN_DIR, fname)).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [(node.module or "")] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert "backends" not in name and "_nnc" not in name, (fname, name)


def test_the_core_never_imports_nn():
    code = ("import sys, nnc, nnc.layers, nnc.fast_layers, nnc.optim, nnc.solver, "
            "nnc.classifiers; print('nnc.nn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_star_import_gives_the_course_names():
    ns = {}
    exec("from nnc.nn import *", ns)
    for name in ["flatten", "fc", "gelu", "relu", "tanh", "sigmoid", "leaky_relu", "dropout",
                 "ConvLayer2D", "MaxPoolingLayer", "sequential", "softmax", "cross_entropy", "mse",
                 "bce", "Module", "TestFCGeLU", "SmallFullyConnectedNetwork", "DropoutNet",
                 "TinyNet", "FullyConnectedNetwork", "TestCNN", "SmallConvolutionalNetwork", "SGD",
                 "Adam", "SGDM", "RMSProp", "train_net", "compute_acc", "nhwc_to_nchw",
                 "to_torch_state_dict"]:
        assert name in ns, name


# --- backward without the data's gradient (what train_net asks for) --------------------------

@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_backward_without_input_grad_gives_the_same_weight_gradients(backend):
    rng = np.random.default_rng(8)
    np.random.seed(8)
    cases = [(SmallFullyConnectedNetwork(), rng.standard_normal((5, 4)), 7),
             (TinyNet(), rng.standard_normal((3, 32, 32, 3)), 20),
             (SmallConvolutionalNetwork(), rng.standard_normal((3, 32, 32, 3)), 20),
             (DropoutNet(keep_prob=0.5, seed=1), rng.standard_normal((4, 5, 3)), 10)]
    with nnc.use_backend(backend):
        for model, x, C in cases:
            y = rng.integers(C, size=x.shape[0])
            loss = cross_entropy()
            grads = []
            for input_grad in (True, False):
                loss.forward(model.forward(x, seed=3), y)
                d = model.backward(loss.backward(), regularization="l2", reg_lambda=0.1,
                                   input_grad=input_grad)
                assert (d is None) == (not input_grad)
                if input_grad:
                    assert d.shape == x.shape
                grads.append({n: g.copy() for n, g in model.net.grads.items()})
            for n in grads[0]:
                np.testing.assert_allclose(grads[1][n], grads[0][n], rtol=1e-10, atol=1e-13,
                                           err_msg=n)


def test_train_net_skips_the_data_gradient(monkeypatch):
    from nnc.nn import train_net
    calls = []
    original = ConvLayer2D.backward

    def spy(self, dprev, input_grad=True):
        calls.append(input_grad)
        return original(self, dprev, input_grad)
    monkeypatch.setattr(ConvLayer2D, "backward", spy)
    np.random.seed(0)
    model = TestCNN()
    X = np.random.randn(8, 8, 8, 3)
    y = np.random.randint(5, size=8)
    train_net({"data_train": (X, y), "data_val": (X, y)}, model, cross_entropy(),
              SGD(model.net, 0.1), 4, 1)
    assert calls == [False, False]

    class CourseModel(Module):   # a model with the course's backward signature
        def __init__(self):
            self.net = sequential(flatten(), fc(8 * 8 * 3, 5, name="f"))

        def backward(self, dprev, regularization="none", reg_lambda=0.0):
            return Module.backward(self, dprev, regularization, reg_lambda)
    model = CourseModel()
    res = train_net({"data_train": (X, y), "data_val": (X, y)}, model, cross_entropy(),
                    SGD(model.net, 0.1), 4, 1)
    assert len(res[1]) == 2

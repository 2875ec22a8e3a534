"""Issue 9: train_net, compute_acc and DataLoader of nnc.nn (the course's
printed lines, batching and RNG use), training on the shared CIFAR-10
subset in NHWC, and the PyTorch converters."""
import os
import re

import numpy as np
import pytest

import nnc
from nnc.nn import (SGD, Adam, DataLoader, SmallConvolutionalNetwork, SmallFullyConnectedNetwork,
                    TestCNN, TinyNet, compute_acc, conv_weight_from_torch, conv_weight_to_torch,
                    cross_entropy, fc_weight_from_torch, fc_weight_to_torch, from_torch_state_dict,
                    nchw_to_nhwc, nhwc_to_nchw, to_torch_state_dict, train_net)

from conftest import needs_cpp

SHARED_CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                            "cifar-10-batches-py")
if not os.path.isdir(SHARED_CIFAR):   # the repo checked out next to shared/ (main)
    SHARED_CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                "cifar-10-batches-py")


def toy_data(n_train=60, n_val=20, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train + n_val, 4))
    y = np.argmax(X @ rng.standard_normal((4, 7)), axis=1)
    return {"data_train": (X[:n_train], y[:n_train]), "data_val": (X[n_train:], y[n_train:])}


def course_batches(data, labels, batch_size, n_batches):
    """The course's DataLoader (np.delete version), verbatim in behaviour."""
    indices = np.asarray(range(data.shape[0]))
    out = []
    for _ in range(n_batches):
        if len(indices) < batch_size:
            indices = np.asarray(range(data.shape[0]))
            np.random.shuffle(indices)
        cur = indices[0:batch_size]
        out.append(cur.copy())
        indices = np.delete(indices, range(batch_size))
    return out


def test_data_loader_matches_the_course():
    X = np.arange(23)[:, None] * np.ones((1, 2))
    y = np.arange(23)
    np.random.seed(5)
    expected = course_batches(X, y, 5, 14)
    after_course = np.random.rand()
    np.random.seed(5)
    loader = DataLoader(X, y, 5)
    got = [loader.get_batch() for _ in range(14)]
    assert np.random.rand() == after_course          # the same draws from the global generator
    for (xb, yb), idx in zip(got, expected):
        np.testing.assert_array_equal(yb, idx)
        np.testing.assert_array_equal(xb, X[idx])
    # the first pass in order, the leftover 3 dropped, then reshuffled passes
    np.testing.assert_array_equal(np.concatenate([b for _, b in got[:4]]), np.arange(20))
    assert sorted(np.concatenate([b for _, b in got[4:8]])) != list(range(20))
    # fewer examples than the batch size: all of them, shuffled, every time
    small = DataLoader(X[:3], y[:3], 5)
    assert sorted(small.get_batch()[1]) == [0, 1, 2] == sorted(small.get_batch()[1])


def test_train_net_prints_the_course_lines(capsys):
    data = toy_data()
    np.random.seed(0)
    model = SmallFullyConnectedNetwork()
    opt = SGD(model.net, 0.5)
    res = train_net(data, model, cross_entropy(), opt, 10, 4, lr_decay=0.5, lr_decay_every=2,
                    show_every=4, verbose=True)
    opt_params, loss_hist, train_acc_hist, val_acc_hist = res
    out = capsys.readouterr().out.splitlines()
    expected = []
    for epoch in range(4):
        if epoch == 2:
            expected.append("Decaying learning rate of the optimizer to {}".format(0.25))
        for it in range(epoch * 6, (epoch + 1) * 6):
            if it % 4 == 0:
                last = loss_hist[:it + 1][-4:]
                expected.append("(Iteration {} / {}) Average loss: {}".format(
                    it + 1, 24, sum(last) / len(last)))
        expected.append("(Epoch {} / {}) Training Accuracy: {}, Validation Accuracy: {}".format(
            epoch + 1, 4, train_acc_hist[epoch], val_acc_hist[epoch]))
    assert out == expected
    assert out[0].startswith("(Iteration 1 / 24) Average loss: 1.9")
    assert re.fullmatch(r"\(Epoch 1 / 4\) Training Accuracy: 0\.\d+, Validation Accuracy: 0\.\d+",
                        out[2])
    assert opt.lr == 0.25 and len(loss_hist) == 24 and len(val_acc_hist) == 4
    assert all(isinstance(v, float) for v in loss_hist)


def test_train_net_quiet_still_prints_the_decay(capsys):
    data = toy_data()
    np.random.seed(0)
    model = SmallFullyConnectedNetwork()
    train_net(data, model, cross_entropy(), SGD(model.net, 0.1), 10, 3, lr_decay=0.9,
              lr_decay_every=1)
    out = capsys.readouterr().out.splitlines()
    assert out == ["Decaying learning rate of the optimizer to 0.09000000000000001",
                   "Decaying learning rate of the optimizer to 0.08100000000000002"]


def test_opt_params_is_a_copy_at_the_best_validation_accuracy():
    data = toy_data()
    np.random.seed(0)
    model = SmallFullyConnectedNetwork()
    opt_params, _, _, val_acc_hist = train_net(data, model, cross_entropy(),
                                               Adam(model.net, 1e-2), 10, 6)
    assert set(opt_params) == {"fc1_w", "fc1_b", "fc2_w", "fc2_b"}
    for n, v in opt_params.items():
        live = model.net.params[n]
        assert v is not live and not np.shares_memory(v, live)
    # a model loaded from opt_params reaches the best validation accuracy
    best = SmallFullyConnectedNetwork()
    best.net.load(opt_params)
    X, y = data["data_val"]
    assert compute_acc(best, X, y) == max(val_acc_hist)


def test_compute_acc():
    np.random.seed(0)
    model = SmallFullyConnectedNetwork()
    X = np.random.randn(250, 4)
    scores = model.forward(X, False)
    y = np.argmax(scores, axis=1)
    y[:50] = (y[:50] + 1) % 7
    assert compute_acc(model, X, y) == 0.8
    assert compute_acc(model, X, y, batch_size=7) == 0.8
    np.random.seed(3)
    idx = np.random.choice(250, 40)   # with replacement, as the course draws them
    np.random.seed(3)
    assert compute_acc(model, X, y, num_samples=40) == np.mean(np.argmax(scores[idx], 1) == y[idx])


@needs_cpp
@pytest.mark.skipif(not os.path.isdir(SHARED_CIFAR), reason="shared CIFAR-10 subset not found")
def test_train_net_on_the_cifar10_subset():
    """SmallConvolutionalNetwork (10 classes, float32) trained for 2 epochs
    with Adam 1e-3, batch 25, on the 5,170 training images of the shared
    CIFAR-10 subset (NHWC, standardized per channel with training statistics),
    reaches 42% accuracy on its 1,017 test images (chance: 10%; measured
    46%). About 5 s on 2 idle cores."""
    from nnc.data_utils import load_CIFAR10
    Xtr, ytr, Xte, yte = load_CIFAR10(SHARED_CIFAR)     # (N, 32, 32, 3): NHWC already
    assert Xtr.shape[1:] == (32, 32, 3)
    x = Xtr / 255
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))

    def standardized(a):
        return ((a / 255 - mean) / std).astype(np.float32)
    data = {"data_train": (standardized(Xtr), ytr), "data_val": (standardized(Xte), yte)}
    np.random.seed(123)
    model = SmallConvolutionalNetwork(num_classes=10)
    model.net.astype(np.float32)
    with nnc.use_backend("cpp"):
        opt_params, loss_hist, train_acc, val_acc = train_net(
            data, model, cross_entropy(), Adam(model.net, 1e-3), 25, 2)
    assert len(loss_hist) == 2 * (5170 // 25)
    assert loss_hist[0] == pytest.approx(np.log(10), abs=0.01)
    assert np.mean(loss_hist[-50:]) < 1.75
    assert max(val_acc) >= 0.42, val_acc
    assert opt_params["conv1_w"].dtype == np.float32


# --- converters ---------------------------------------------------------------------------

def test_layout_converters_round_trip():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 3))
    assert nhwc_to_nchw(x).shape == (2, 3, 5, 6)
    np.testing.assert_array_equal(nchw_to_nhwc(nhwc_to_nchw(x)), x)
    np.testing.assert_array_equal(nhwc_to_nchw(x)[1, 2, 3, 4], x[1, 3, 4, 2])
    w = rng.standard_normal((3, 3, 4, 8))
    assert conv_weight_to_torch(w).shape == (8, 4, 3, 3)
    np.testing.assert_array_equal(conv_weight_from_torch(conv_weight_to_torch(w)), w)
    f = rng.standard_normal((7, 2))
    assert fc_weight_to_torch(f).shape == (2, 7) and fc_weight_to_torch(f).flags.c_contiguous
    np.testing.assert_array_equal(fc_weight_from_torch(fc_weight_to_torch(f)), f)


def test_state_dict_matches_an_nchw_reference_computation():
    """The exported weights, used in NCHW with CS231n's conv and (C, H, W)
    flattening, compute the same scores as the NHWC network."""
    from nnc.layers import affine_forward, conv_forward_naive, max_pool_forward_naive
    np.random.seed(1)
    model = TestCNN()
    x = np.random.randn(3, 8, 8, 3)
    scores = model.forward(x)
    sd = to_torch_state_dict(model.net, input_shape=(8, 8, 3))
    assert sorted(sd) == ["0.bias", "0.weight", "3.bias", "3.weight"]
    assert sd["0.weight"].shape == (3, 3, 3, 3) and sd["3.weight"].shape == (5, 27)
    h, _ = conv_forward_naive(nhwc_to_nchw(x), sd["0.weight"], sd["0.bias"],
                              {"stride": 1, "pad": 0})
    h, _ = max_pool_forward_naive(h, {"pool_height": 2, "pool_width": 2, "stride": 2})
    ref, _ = affine_forward(h.reshape(3, -1), sd["3.weight"].T, sd["3.bias"])
    np.testing.assert_allclose(ref, scores, rtol=1e-12, atol=1e-12)
    back = from_torch_state_dict(model.net, sd, input_shape=(8, 8, 3))
    for n, v in model.net.params.items():
        np.testing.assert_array_equal(back[n], v)
    with pytest.raises(ValueError, match="pass input_shape"):
        to_torch_state_dict(model.net)


@pytest.mark.parametrize("make,shape", [(SmallConvolutionalNetwork, (32, 32, 3)),
                                        (TinyNet, (32, 32, 3))])
def test_to_torch_computes_the_same_network(make, shape):
    torch = pytest.importorskip("torch")
    from nnc.nn import to_torch
    np.random.seed(2)
    model = make()
    x = np.random.randn(4, *shape)
    ref = model.forward(x, is_training=False)
    tmodel = to_torch(model.net, input_shape=shape).eval()
    with torch.no_grad():
        got = tmodel(torch.from_numpy(nhwc_to_nchw(x))).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    # and back: the state_dict loads into the nnc network
    back = from_torch_state_dict(model.net, tmodel.state_dict(), input_shape=shape)
    for n, v in model.net.params.items():
        np.testing.assert_allclose(back[n], v, rtol=0, atol=0)

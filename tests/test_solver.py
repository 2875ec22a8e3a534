"""nnc.solver: CS231n's training loop (printing, histories, lr decay, best
parameters incl. batchnorm running statistics), safe checkpoints, the
overfit-50-examples check, and identical histories on both backends."""
import os
from pathlib import Path

import numpy as np
import pytest

import nnc
from nnc.solver import Solver, load_checkpoint

from conftest import cifar10_subset_dir

REPO = Path(__file__).resolve().parents[1]


def require(backend, ops):
    missing = sorted(set(ops) & set(nnc.missing_ops(backend)))
    if missing:
        pytest.skip(f"the {backend!r} backend does not implement {', '.join(missing)} yet")


FC_OPS = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss"]


def sgd_plain(w, dw, config):
    """A user-supplied rule, as CS231n students write them."""
    config.setdefault("learning_rate", 1e-2)
    return w - config["learning_rate"] * dw, config


class ScriptedModel:
    """A model without layers whose loss, predictions and batchnorm statistics
    are scripted, so the Solver's bookkeeping can be checked exactly.

    Examples are their own index i (X[i, 0] = i) with label i % 2.
    params['w'] counts the updates (sgd_step1 adds 1 per step). At a given w
    the model classifies example i correctly iff i % 4 < 4 * acc_at[w], so any
    set of 4k examples is classified with accuracy acc_at[w]. Each training
    loss call writes w into the running statistics of the bn_params.
    """

    def __init__(self, acc_at, num_classes=2):
        self.params = {"w": np.zeros(1), "v": np.zeros(3)}
        self.bn_params = [{"mode": "train"}, {"mode": "train"}]
        self.acc_at = acc_at
        self.batches = []

    def loss(self, X, y=None):
        w = int(round(self.params["w"][0]))
        if y is None:
            idx = X[:, 0].astype(int)
            right = idx % 4 < 4 * self.acc_at.get(w, 0.0)
            pred = np.where(right, idx % 2, 1 - idx % 2)
            return np.eye(2)[pred]
        self.batches.append(X[:, 0].copy())
        for i, d in enumerate(self.bn_params):
            d["running_mean"] = np.full(2, 10.0 * w + i)
            d["running_var"] = np.full(2, 100.0 * w + i)
        grads = {"w": -np.ones(1), "v": np.ones(3)}
        return 1.0 / (w + 1), grads


def make_scripted(acc_at, n_train=8, n_val=4):
    data = {"X_train": np.arange(n_train, dtype=float)[:, None],
            "y_train": np.arange(n_train) % 2,
            "X_val": np.arange(n_val, dtype=float)[:, None],
            "y_val": np.arange(n_val) % 2}
    return ScriptedModel(acc_at), data


def sgd_step1(w, dw, config):
    """Moves w by exactly +1 per step (dw = -1) and v by -lr."""
    config.setdefault("learning_rate", 1.0)
    return w - config["learning_rate"] * dw, config


# --- bookkeeping and printing ---------------------------------------------------------

def test_print_lines_and_histories(capsys):
    # 8 examples, batch 4: 2 iterations per epoch, 3 epochs -> 6 iterations
    model, data = make_scripted({1: 0.25, 2: 0.5, 4: 0.75, 6: 0.5})
    solver = Solver(model, data, update_rule=sgd_step1, batch_size=4, num_epochs=3,
                    print_every=2, num_train_samples=None)
    solver.train()
    lines = capsys.readouterr().out.splitlines()
    # loss is 1/(w+1) with w the number of steps taken before this one
    assert lines == [
        "(Iteration 1 / 6) loss: 1.000000",
        "(Epoch 0 / 3) train acc: 0.250000; val_acc: 0.250000",
        "(Epoch 1 / 3) train acc: 0.500000; val_acc: 0.500000",
        "(Iteration 3 / 6) loss: 0.333333",
        "(Epoch 2 / 3) train acc: 0.750000; val_acc: 0.750000",
        "(Iteration 5 / 6) loss: 0.200000",
        "(Epoch 3 / 3) train acc: 0.500000; val_acc: 0.500000",
    ]
    np.testing.assert_allclose(solver.loss_history, [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6])
    assert solver.val_acc_history == [0.25, 0.5, 0.75, 0.5]
    assert solver.train_acc_history == [0.25, 0.5, 0.75, 0.5]
    assert solver.epoch == 3
    assert solver.best_val_acc == 0.75


def test_verbose_false_prints_nothing(capsys):
    model, data = make_scripted({})
    Solver(model, data, update_rule=sgd_step1, batch_size=4, num_epochs=1,
           verbose=False).train()
    assert capsys.readouterr().out == ""


def test_best_params_and_bn_stats_restored():
    # best validation accuracy after 4 steps (end of epoch 2)
    model, data = make_scripted({1: 0.25, 2: 0.5, 4: 0.75, 6: 0.5})
    solver = Solver(model, data, update_rule=sgd_step1, batch_size=4, num_epochs=3,
                    verbose=False)
    solver.train()
    np.testing.assert_array_equal(model.params["w"], [4.0])
    np.testing.assert_array_equal(model.params["v"], [-4.0] * 3)
    # the statistics written by the 4th training step (w = 3 at that call)
    for i, d in enumerate(model.bn_params):
        np.testing.assert_array_equal(d["running_mean"], np.full(2, 30.0 + i))
        np.testing.assert_array_equal(d["running_var"], np.full(2, 300.0 + i))
        assert d["mode"] == "train"   # the rest of the dict is left alone
    # deep copies: changing the model leaves best_params and the snapshot alone
    model.params["w"][0] = 99
    model.bn_params[0]["running_mean"][0] = 99
    assert solver.best_params["w"][0] == 4.0
    assert solver.best_bn_stats[0]["running_mean"][0] == 30.0


def test_zero_accuracy_still_restores_params():
    model, data = make_scripted({})   # never right
    solver = Solver(model, data, update_rule=sgd_step1, batch_size=4, num_epochs=2,
                    verbose=False)
    solver.train()
    assert set(model.params) == {"w", "v"}
    np.testing.assert_array_equal(model.params["w"], [1.0])  # the first check's parameters


def test_lr_decay_and_per_param_configs():
    model, data = make_scripted({})
    solver = Solver(model, data, update_rule="sgd" if hasattr_optim() else sgd_plain,
                    optim_config={"learning_rate": 0.5}, lr_decay=0.5, batch_size=4,
                    num_epochs=3, verbose=False)
    assert solver.optim_configs["w"] is not solver.optim_configs["v"]
    assert solver.optim_configs["w"] == {"learning_rate": 0.5}
    solver.train()
    assert solver.optim_configs["w"]["learning_rate"] == 0.5 * 0.5 ** 3
    assert solver.optim_config == {"learning_rate": 0.5}  # the user's dict is not touched


def hasattr_optim():
    try:
        from nnc import optim  # noqa: F401
    except ImportError:
        return False
    return True


def test_minibatches_drawn_like_cs231n():
    model, data = make_scripted({})
    np.random.seed(7)
    solver = Solver(model, data, update_rule=sgd_step1, batch_size=3, num_epochs=1,
                    verbose=False, num_train_samples=None)
    solver._step()
    np.random.seed(7)
    np.testing.assert_array_equal(model.batches[0], np.random.choice(8, 3))


def test_check_accuracy_batches_and_subsampling():
    model, data = make_scripted({0: 0.5}, n_train=8, n_val=8)
    solver = Solver(model, data, update_rule=sgd_step1, verbose=False)
    X, y = data["X_val"], data["y_val"]
    for bs in (1, 3, 8, 100):
        assert solver.check_accuracy(X, y, batch_size=bs) == 0.5
    np.random.seed(3)
    acc = solver.check_accuracy(X, y, num_samples=5)
    np.random.seed(3)
    mask = np.random.choice(8, 5)
    assert acc == np.mean(mask % 4 < 2)


def test_update_rule_by_name():
    if not hasattr_optim():
        pytest.skip("nnc.optim has not landed yet")
    from nnc import optim
    model, data = make_scripted({})
    for name in ("sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam"):
        if hasattr(optim, name):
            assert Solver(model, data, update_rule=name).update_rule is getattr(optim, name)
    solver = Solver(model, data, update_rule="sgd", optim_config={"learning_rate": 0.25},
                    batch_size=4, num_epochs=1, verbose=False)
    solver._step()
    np.testing.assert_array_equal(model.params["w"], [0.25])   # w - lr * (-1)


def test_callable_update_rule_gets_each_params_config():
    calls = []

    def rule(w, dw, config):
        calls.append(id(config))
        config["n"] = config.get("n", 0) + 1
        return w - dw, config

    model, data = make_scripted({})
    solver = Solver(model, data, update_rule=rule, batch_size=4, num_epochs=2, verbose=False)
    solver.train()
    assert len(calls) == 2 * 4 and solver.optim_configs["w"]["n"] == 4
    assert solver.update_rule is rule


@pytest.mark.parametrize("kwargs,match", [
    (dict(learning_rate=1e-3), 'Unrecognized arguments "learning_rate"'),
    (dict(foo=1, bar=2), 'Unrecognized arguments "foo", "bar"'),
    (dict(update_rule="adamw"), 'Invalid update_rule "adamw"'),
    (dict(update_rule="np"), 'Invalid update_rule "np"'),
    (dict(update_rule=3), 'Invalid update_rule "3"'),
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(num_epochs=1.5), "num_epochs must be a positive int"),
])
def test_bad_kwargs(kwargs, match):
    model, data = make_scripted({})
    with pytest.raises(ValueError, match=match):
        Solver(model, data, **kwargs)


def test_bad_data():
    model, data = make_scripted({})
    del data["y_val"]
    with pytest.raises(ValueError, match="data lacks y_val"):
        Solver(model, data)
    model, data = make_scripted({})
    data["y_train"] = data["y_train"][:-1]
    with pytest.raises(ValueError, match="X_train has 8 rows and y_train 7"):
        Solver(model, data)


# --- checkpoints ---------------------------------------------------------------------

def test_checkpoints_written_and_load_without_pickle(tmp_path, capsys):
    model, data = make_scripted({1: 0.25, 2: 0.5, 4: 0.75})
    name = str(tmp_path / "ck")
    solver = Solver(model, data, update_rule=sgd_step1, batch_size=4, num_epochs=2,
                    checkpoint_name=name, optim_config={"learning_rate": 1.0})
    solver.train()
    out = capsys.readouterr().out
    assert f'Saving checkpoint to "{name}_epoch_0.npz"' in out
    files = sorted(os.listdir(tmp_path))
    assert files == ["ck_epoch_0.npz", "ck_epoch_1.npz", "ck_epoch_2.npz"]  # no temp files
    with np.load(tmp_path / "ck_epoch_1.npz", allow_pickle=False) as f:
        np.testing.assert_array_equal(f["param/w"], [2.0])
        assert "meta" in f.files
    ck = load_checkpoint(tmp_path / "ck_epoch_1.npz")
    assert ck["epoch"] == 1 and ck["update_rule"] == "sgd_step1"
    assert ck["batch_size"] == 4 and ck["lr_decay"] == 1.0 and ck["num_val_samples"] is None
    np.testing.assert_allclose(ck["loss_history"], [1, 1 / 2])
    assert ck["val_acc_history"] == [0.25, 0.5] and ck["train_acc_history"] == [0.25, 0.5]
    np.testing.assert_array_equal(ck["params"]["v"], [-2.0] * 3)
    assert len(ck["bn_running_stats"]) == 2
    np.testing.assert_array_equal(ck["bn_running_stats"][1]["running_var"], [101.0, 101.0])
    assert ck["optim_configs"]["w"] == {"learning_rate": 1.0}
    last = load_checkpoint(tmp_path / "ck_epoch_2.npz")
    assert last["epoch"] == 2 and len(last["loss_history"]) == 4


def test_checkpoint_holds_optimizer_state_arrays(tmp_path):
    def momentum(w, dw, config):
        v = config.get("velocity", np.zeros_like(w))
        config["velocity"] = 0.9 * v - 0.1 * dw
        config["t"] = np.int64(config.get("t", 0) + 1)
        return w + config["velocity"], config

    model, data = make_scripted({})
    Solver(model, data, update_rule=momentum, batch_size=4, num_epochs=1,
           checkpoint_name=str(tmp_path / "m"), verbose=False).train()
    ck = load_checkpoint(tmp_path / "m_epoch_1.npz")
    assert ck["optim_configs"]["v"]["t"] == 2
    np.testing.assert_allclose(ck["optim_configs"]["v"]["velocity"], [-0.19] * 3)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model, data = make_scripted({})
    name = str(tmp_path / "ck")
    solver = Solver(model, data, update_rule=sgd_step1, batch_size=4, num_epochs=1,
                    checkpoint_name=name, verbose=False)
    solver._save_checkpoint()
    good = (tmp_path / "ck_epoch_0.npz").read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    model.params["w"][0] = 5
    with pytest.raises(OSError, match="disk full"):
        solver._save_checkpoint()
    # the earlier file is intact and no temporary file is left behind
    assert os.listdir(tmp_path) == ["ck_epoch_0.npz"]
    assert (tmp_path / "ck_epoch_0.npz").read_bytes() == good


# --- real networks -------------------------------------------------------------------

def _synthetic(n, shape=(3, 8, 8), C=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)), rng.integers(C, size=n)


@pytest.mark.parametrize("rule", ["sgd", sgd_plain])
def test_overfit_small_data(backend, rule):
    """CS231n's sanity check: a small net reaches 100% train accuracy on 50 examples."""
    require(backend, FC_OPS)
    from nnc.classifiers import FullyConnectedNet
    if rule == "sgd":
        if not hasattr_optim():
            pytest.skip("nnc.optim has not landed yet")
        require(backend, ["sgd"])
    X, y = _synthetic(50)
    Xv, yv = _synthetic(20, seed=1)
    data = {"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv}
    np.random.seed(0)
    model = FullyConnectedNet([100, 100], input_dim=3 * 8 * 8, weight_scale=1e-1,
                              dtype=np.float64)
    solver = Solver(model, data, update_rule=rule, optim_config={"learning_rate": 1e-1},
                    num_epochs=20, batch_size=25, print_every=10, verbose=False)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0
    assert solver.loss_history[-1] < 0.2 < 2 < solver.loss_history[0]


def test_best_params_restored_for_batchnorm_net(backend):
    require(backend, FC_OPS + ["batchnorm_forward", "batchnorm_backward"])
    from nnc.classifiers import FullyConnectedNet
    X, y = _synthetic(40)
    Xv, yv = _synthetic(30, seed=1)
    data = {"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv}
    np.random.seed(1)
    model = FullyConnectedNet([20], input_dim=3 * 8 * 8, normalization="batchnorm",
                              dtype=np.float64, weight_scale=5e-2)
    solver = Solver(model, data, update_rule=sgd_plain, optim_config={"learning_rate": 1e-1},
                    num_epochs=6, batch_size=10, verbose=False)
    solver.train()
    for k, v in solver.best_params.items():
        np.testing.assert_array_equal(model.params[k], v)
    stats = model.bn_params[0]
    np.testing.assert_array_equal(stats["running_mean"], solver.best_bn_stats[0]["running_mean"])
    np.testing.assert_array_equal(stats["running_var"], solver.best_bn_stats[0]["running_var"])
    # the restored model reproduces the best validation accuracy exactly
    assert solver.check_accuracy(Xv, yv) == solver.best_val_acc


def test_same_histories_on_both_backends():
    """~20 iterations, same seed: identical histories on numpy and cpp (float64)."""
    if "cpp" not in nnc.available_backends():
        pytest.skip("native extension not built")
    ops = FC_OPS + ["batchnorm_forward", "batchnorm_backward", "dropout_forward",
                    "dropout_backward", "adam", "conv_forward_strides", "conv_backward_strides",
                    "max_pool_forward_fast", "max_pool_backward_fast"]
    require("cpp", ops)
    from nnc.classifiers import FullyConnectedNet, ThreeLayerConvNet

    def run(backend, make_model):
        np.random.seed(42)
        X, y = _synthetic(60, shape=(3, 8, 8), seed=2)
        Xv, yv = _synthetic(20, shape=(3, 8, 8), seed=3)
        model = make_model()
        with nnc.use_backend(backend):
            solver = Solver(model, {"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv},
                            update_rule="adam", optim_config={"learning_rate": 1e-3},
                            num_epochs=5, batch_size=15, verbose=False)
            solver.train()
        return solver

    makers = {
        # no dropout seed: the masks come from the global stream, which the
        # cpp backend advances exactly as np.random.rand would
        "fc": lambda: FullyConnectedNet([16, 12], input_dim=3 * 8 * 8, normalization="batchnorm",
                                        dropout_keep_ratio=0.8, dtype=np.float64,
                                        weight_scale=5e-2),
        "cnn": lambda: ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3,
                                         hidden_dim=10, dtype=np.float64, weight_scale=1e-1),
    }
    for name, make in makers.items():
        a, b = run("numpy", make), run("cpp", make)
        assert len(a.loss_history) == 20
        np.testing.assert_allclose(b.loss_history, a.loss_history, rtol=1e-8, err_msg=name)
        assert a.train_acc_history == b.train_acc_history
        assert a.val_acc_history == b.val_acc_history


# --- end to end on the CIFAR subset --------------------------------------------------

def _cifar_dir():
    d = cifar10_subset_dir()
    return None if d is None else str(d)


@pytest.mark.slow
@pytest.mark.skipif(_cifar_dir() is None,
                    reason="CIFAR-10 subset not found (set NNC_CIFAR10_DIR or put it at "
                           "../shared/data/cifar-10-batches-py)")
def test_three_layer_convnet_on_cifar_subset():
    require(nnc.get_backend(), ["adam", "conv_forward_strides", "max_pool_forward_fast"] + FC_OPS)
    from nnc.classifiers import ThreeLayerConvNet
    from nnc.data_utils import get_CIFAR10_data

    data = get_CIFAR10_data(cifar10_dir=_cifar_dir(), num_training=4500, num_validation=500, num_test=10)
    np.random.seed(0)
    model = ThreeLayerConvNet(weight_scale=1e-3, hidden_dim=100, reg=1e-3, dtype=np.float32)
    solver = Solver(model, data, num_epochs=1, batch_size=50, update_rule="adam",
                    optim_config={"learning_rate": 1e-3}, verbose=False)
    solver.train()
    assert solver.best_val_acc > 0.25, solver.val_acc_history


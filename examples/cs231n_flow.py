"""The CS231n assignment notebook flow (FullyConnectedNets / ConvolutionalNetworks)
on nnc: the same code with only the imports changed.

    python examples/cs231n_flow.py [--backend cpp|numpy] [--cifar DIR] [--out PNG]

It gradient-checks a FullyConnectedNet and a ThreeLayerConvNet on tiny inputs,
overfits 50 examples, trains a ThreeLayerConvNet for one epoch with the
Solver on the CIFAR-10 folder (--cifar, $NNC_CIFAR10_DIR, or the shared
subset next to the repo; small synthetic data when none is found), and plots
the loss and accuracy histories to a PNG when matplotlib is installed.
About half a minute on the cpp backend.
"""
import argparse
import os
import time

import numpy as np

import nnc
# In the notebooks: from cs231n.classifiers.fc_net import * (and so on)
from nnc.classifiers.cnn import *  # noqa: F401,F403
from nnc.classifiers.fc_net import *  # noqa: F401,F403
from nnc.data_utils import get_CIFAR10_data
from nnc.gradient_check import eval_numerical_gradient
from nnc.solver import Solver

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_CIFAR = os.path.join(HERE, "..", "..", "shared", "data", "cifar-10-batches-py")


def rel_error(x, y):
    """returns relative error"""
    return np.max(np.abs(x - y) / (np.maximum(1e-8, np.abs(x) + np.abs(y))))


def load_data(cifar_dir, num_training, num_validation):
    for d in (cifar_dir, os.environ.get("NNC_CIFAR10_DIR"), SHARED_CIFAR):
        if not d:
            continue
        try:
            data = get_CIFAR10_data(cifar10_dir=d, num_training=num_training,
                                    num_validation=num_validation, num_test=100)
        except FileNotFoundError:
            continue
        print(f"CIFAR-10 from {os.path.normpath(d)}")
        return data, True
    print("No CIFAR-10 folder found (see nnc.data_utils): using synthetic data, "
          "10 classes of noisy class templates")
    rng = np.random.default_rng(0)
    templates = rng.standard_normal((10, 3, 32, 32)) * 20

    def split(n):
        y = rng.integers(10, size=n)
        return templates[y] + 60 * rng.standard_normal((n, 3, 32, 32)), y

    (Xtr, ytr), (Xv, yv), (Xte, yte) = split(num_training), split(num_validation), split(100)
    return {"X_train": Xtr, "y_train": ytr, "X_val": Xv, "y_val": yv, "X_test": Xte,
            "y_test": yte}, False


def check_fc_net():
    print("\n== FullyConnectedNet: initial loss and gradient check ==")
    np.random.seed(231)
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))

    for reg in [0, 3.14]:
        print("Running check with reg = ", reg)
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C,  # noqa: F405
                                  reg=reg, weight_scale=5e-2, dtype=np.float64)

        loss, grads = model.loss(X, y)
        print("Initial loss: ", loss)

        # Most of the errors should be on the order of e-7 or smaller.
        for name in sorted(grads):
            f = lambda _: model.loss(X, y)[0]  # noqa: E731
            grad_num = eval_numerical_gradient(f, model.params[name], verbose=False, h=1e-5)
            print(f"{name} relative error: {rel_error(grad_num, grads[name])}")


def check_conv_net():
    print("\n== ThreeLayerConvNet: gradient check ==")
    num_inputs = 2
    input_dim = (3, 16, 16)
    reg = 0.0
    num_classes = 10
    np.random.seed(231)
    X = np.random.randn(num_inputs, *input_dim)
    y = np.random.randint(num_classes, size=num_inputs)

    model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=input_dim,  # noqa: F405
                              hidden_dim=7, dtype=np.float64, reg=reg)
    loss, grads = model.loss(X, y)
    # Errors should be small, but correct implementations may have
    # relative errors up to the order of e-2
    for param_name in sorted(model.params):
        f = lambda _: model.loss(X, y)[0]  # noqa: E731
        param_grad_num = eval_numerical_gradient(f, model.params[param_name], verbose=False,
                                                 h=1e-6)
        print("%s max relative error: %e"
              % (param_name, rel_error(param_grad_num, grads[param_name])))


def overfit_small_data(data):
    print("\n== Overfit 50 training examples ==")
    np.random.seed(231)
    num_train = 50
    small_data = {
        "X_train": data["X_train"][:num_train], "y_train": data["y_train"][:num_train],
        "X_val": data["X_val"], "y_val": data["y_val"],
    }
    model = FullyConnectedNet([100, 100], weight_scale=1e-2, dtype=np.float64)  # noqa: F405
    solver = Solver(model, small_data, print_every=10, num_epochs=20, batch_size=25,
                    update_rule="sgd", optim_config={"learning_rate": 1e-2})
    solver.train()
    return solver


def train_conv_net(data):
    print("\n== ThreeLayerConvNet, 1 epoch with Adam ==")
    np.random.seed(231)
    model = ThreeLayerConvNet(weight_scale=0.001, hidden_dim=100, reg=0.001)  # noqa: F405
    solver = Solver(model, data, num_epochs=1, batch_size=50, update_rule="adam",
                    optim_config={"learning_rate": 1e-3}, verbose=True, print_every=20)
    t0 = time.time()
    solver.train()
    print(f"trained in {time.time() - t0:.1f} s; best val acc {solver.best_val_acc:.3f}")
    return solver


def plot(solvers, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no plot (pip install 'nnc[plot]')")
        return
    fig, axes = plt.subplots(len(solvers), 2, figsize=(11, 4 * len(solvers)), squeeze=False)
    for row, (title, solver) in zip(axes, solvers.items()):
        row[0].plot(solver.loss_history, "o", markersize=3)
        row[0].set_title(f"{title}: training loss")
        row[0].set_xlabel("Iteration")
        row[1].plot(solver.train_acc_history, "-o", label="train")
        row[1].plot(solver.val_acc_history, "-o", label="val")
        row[1].set_title(f"{title}: accuracy")
        row[1].set_xlabel("Check (epoch)")
        row[1].legend(loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    print(f"\nsaved {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=nnc.get_backend(), choices=nnc.available_backends())
    parser.add_argument("--cifar", help="the cifar-10-batches-py directory")
    parser.add_argument("--num-training", type=int, default=4000)
    parser.add_argument("--out", default="cs231n_flow.png", help="where to save the plot")
    args = parser.parse_args()

    nnc.set_backend(args.backend)
    print(f"nnc {nnc.__version__}, backend {nnc.get_backend()}")
    data, _ = load_data(args.cifar, args.num_training, num_validation=500)
    for k, v in data.items():
        print(k, v.shape)

    check_fc_net()
    check_conv_net()
    solvers = {"FullyConnectedNet, 50 examples": overfit_small_data(data),
               "ThreeLayerConvNet": train_conv_net(data)}
    plot(solvers, args.out)


if __name__ == "__main__":
    main()

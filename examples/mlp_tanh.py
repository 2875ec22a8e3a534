"""A one-hidden-layer tanh MLP trained with MSE on +-1 labels (cat vs car images from an .h5 file).

    python examples/mlp_tanh.py [--hidden 32] [--epochs 30] [--h5 cat_car.h5] [--out PNG]

The course writes this network by hand around NumPy; here it is the same
hand-written network on nnc.layers functions (affine, tanh, mse_loss) and
nnc.optim.sgd_momentum, so it runs on either backend. It is deliberately
not a FullyConnectedNet option: FullyConnectedNet is a softmax classifier
(relu, integer labels, Solver accuracy by argmax), while this model has one
tanh output unit regressed onto -1/+1 and is judged by the sign of that
output, a different loss and a different accuracy. (nnc.nn.sequential will
be the object-API way to stack such layers.)

The data: writes an .h5 file in the course's layout (trainims (1900, 32, 32)
uint8, trainlbls, testims (1000, 32, 32), testlbls; 1 = cat, 0 = car) of
synthetic drawings from nnc.datasets_synthetic (needs h5py), reads it back
with nnc.datasets.load_h5 (pass --h5 with --no-write to train on the course's
own file), trains by minibatch SGD with momentum, prints and plots the
train/test MSE and classification error per epoch. A few seconds.
"""
import argparse
import os
import time

import numpy as np

import nnc
from nnc.datasets import load_h5
from nnc.datasets_synthetic import write_cat_car_h5
from nnc.layers import affine_backward, affine_forward, mse_loss, tanh_backward, tanh_forward
from nnc.optim import sgd_momentum


def load(path):
    """The course's arrays from the .h5 file: images as (N, 1024) floats in
    [0, 1], labels mapped from {0, 1} to targets in {-1, +1}."""
    arrays = load_h5(path, keys=["trainims", "trainlbls", "testims", "testlbls"])
    X_train = arrays["trainims"].reshape(len(arrays["trainims"]), -1) / 255.0
    X_test = arrays["testims"].reshape(len(arrays["testims"]), -1) / 255.0
    t_train = 2.0 * arrays["trainlbls"].reshape(-1, 1) - 1
    t_test = 2.0 * arrays["testlbls"].reshape(-1, 1) - 1
    return X_train, t_train, X_test, t_test


class TanhMLP:
    """x (N, D) -> tanh(x W1 + b1) (N, H) -> tanh(h W2 + b2) (N, 1), with the
    loss 0.5 * mean((out - t)^2) over the N examples (nnc.layers.mse_loss)."""

    def __init__(self, D, H, weight_scale, rng):
        self.params = {"W1": weight_scale * rng.standard_normal((D, H)), "b1": np.zeros(H),
                       "W2": weight_scale * rng.standard_normal((H, 1)), "b2": np.zeros(1)}

    def forward(self, X):
        p = self.params
        a1, c1 = affine_forward(X, p["W1"], p["b1"])
        h, ct1 = tanh_forward(a1)
        a2, c2 = affine_forward(h, p["W2"], p["b2"])
        out, ct2 = tanh_forward(a2)
        return out, (c1, ct1, c2, ct2)

    def loss(self, X, t):
        """(loss, grads) for inputs X (N, D) and targets t (N, 1) in {-1, +1}."""
        out, (c1, ct1, c2, ct2) = self.forward(X)
        loss, dout = mse_loss(out, t)
        grads = {}
        dh, grads["W2"], grads["b2"] = affine_backward(tanh_backward(dout, ct2), c2)
        _, grads["W1"], grads["b1"] = affine_backward(tanh_backward(dh, ct1), c1)
        return loss, grads

    def evaluate(self, X, t):
        """(MSE as in the loss, classification error of sign(out) against t)."""
        out, _ = self.forward(X)
        return mse_loss(out, t)[0], float(np.mean(np.where(out >= 0, 1, -1) != t))


def plot(history, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no plot (pip install 'nnc[plot]')")
        return
    h = np.array(history)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(h[:, 0], h[:, 1], label="train")
    a.plot(h[:, 0], h[:, 3], label="test")
    a.set(xlabel="epoch", ylabel="0.5 * mean squared error", title="MSE")
    b.plot(h[:, 0], 100 * h[:, 2], label="train")
    b.plot(h[:, 0], 100 * h[:, 4], label="test")
    b.set(xlabel="epoch", ylabel="% misclassified", title="classification error")
    for ax in (a, b):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(f"\nplot saved to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=nnc.get_backend(), choices=nnc.available_backends())
    parser.add_argument("--hidden", type=int, default=32, help="hidden tanh units")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=38)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--h5", default="cat_car.h5", help="the .h5 file to write and read")
    parser.add_argument("--no-write", action="store_true",
                        help="read --h5 as it is (e.g. the course's file) instead of writing it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="mlp_tanh.png", help="where to save the plot")
    args = parser.parse_args()
    nnc.set_backend(args.backend)
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise SystemExit("this example reads an .h5 file and needs h5py: pip install h5py")

    if not args.no_write:
        write_cat_car_h5(args.h5, num_train=1900, num_test=1000, seed=args.seed)
        print(f"wrote {args.h5} ({os.path.getsize(args.h5) // 1024} KB): trainims, trainlbls, "
              f"testims, testlbls")
    X_train, t_train, X_test, t_test = load(args.h5)
    mean = X_train.mean(axis=0)   # center the pixels, as the course does
    X_train, X_test = X_train - mean, X_test - mean
    print(f"train {X_train.shape}, test {X_test.shape}, targets in "
          f"{sorted(set(t_train.ravel().tolist()))}")

    rng = np.random.default_rng(args.seed)
    model = TanhMLP(X_train.shape[1], args.hidden, 0.01, rng)
    configs = {k: {"learning_rate": args.learning_rate, "momentum": args.momentum}
               for k in model.params}
    N = X_train.shape[0]
    history = []
    start = time.perf_counter()
    print("epoch  train MSE  train err  test MSE  test err")
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(N)
        for i in range(0, N, args.batch_size):
            batch = order[i:i + args.batch_size]
            _, grads = model.loss(X_train[batch], t_train[batch])
            for k in model.params:
                model.params[k], configs[k] = sgd_momentum(model.params[k], grads[k], configs[k])
        row = (epoch,) + model.evaluate(X_train, t_train) + model.evaluate(X_test, t_test)
        history.append(row)
        print(f"{epoch:5d}  {row[1]:9.4f}  {100 * row[2]:8.2f}%  {row[3]:8.4f}  {100 * row[4]:7.2f}%")
    took = time.perf_counter() - start
    print(f"\n{args.epochs} epochs in {took:.1f} s on the {args.backend} backend; final test "
          f"classification error {100 * history[-1][4]:.2f}%")
    plot(history, args.out)


if __name__ == "__main__":
    main()

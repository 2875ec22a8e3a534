"""The CS231n assignment-2 Dropout notebook, cell by cell, on nnc.

    python examples/dropout.py [--backend numpy|cpp] [--data DIR] [--quick] [--no-plots]

Dropout forward (p is the keep probability) in train and test mode, its
backward, the FullyConnectedNet with dropout (loss and gradient check) and the
regularization experiment: two nets, keep 1 and keep 0.25, trained on 500
examples. Exits non-zero when a check is outside the notebook's tolerance.
"""
import numpy as np

import _flow
# The notebook's imports, with cs231n. replaced by nnc.
from nnc.classifiers.fc_net import *  # noqa: F401,F403
from nnc.data_utils import get_CIFAR10_data  # noqa: F401  (called through _flow.load)
from nnc.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array
from nnc.solver import Solver

from _flow import rel_error, check, require

args = _flow.parse_args(__doc__)
Q = args.quick

data = _flow.load(args, *((4000, 500, 500) if Q else (49000, 1000, 1000)))

# --- Dropout forward pass
# The published means of the seeded run (golden-values.md 1.11): both nnc backends draw the
# mask from NumPy's global random state, so they reproduce them.
PUBLISHED = {0.25: (10.014059116977283, 0.749784), 0.4: (9.977917658761159, 0.600796),
             0.7: (9.987811912159428, 0.30074)}
np.random.seed(231)
x = np.random.randn(500, 500) + 10

for p in [0.25, 0.4, 0.7]:
    out, _ = dropout_forward(x, {"mode": "train", "p": p})
    out_test, _ = dropout_forward(x, {"mode": "test", "p": p})

    print("\nRunning tests with p = ", p)
    print("Mean of input: ", x.mean())
    print("Mean of train-time output: ", out.mean())
    print("Mean of test-time output: ", out_test.mean())
    print("Fraction of train-time output set to zero: ", (out == 0).mean())
    print("Fraction of test-time output set to zero: ", (out_test == 0).mean())
    # the means should be close, about 1 - p of the train-time output zeroed, none at test time
    check("|train mean - input mean|", abs(out.mean() - x.mean()), 0.2)
    check("|zero fraction - (1 - p)|", abs((out == 0).mean() - (1 - p)), 0.005)
    require("test-time output is the input", np.array_equal(out_test, x))
    check("|train mean - published| / published", abs(out.mean() / PUBLISHED[p][0] - 1), 1e-12)
    require("zero fraction as published", (out == 0).mean() == PUBLISHED[p][1],
            f"{(out == 0).mean()}")

# --- Dropout backward pass
print()
np.random.seed(231)
x = np.random.randn(10, 10) + 10
dout = np.random.randn(*x.shape)

dropout_param = {"mode": "train", "p": 0.2, "seed": 123}
out, cache = dropout_forward(x, dropout_param)
dx = dropout_backward(dout, cache)
dx_num = eval_numerical_gradient_array(lambda xx: dropout_forward(xx, dropout_param)[0], x, dout)

# Error should be around e-10 or less.
check("dx relative error", rel_error(dx, dx_num), 1e-9)

# --- Fully connected nets with dropout
print()
np.random.seed(231)
N, D, H1, H2, C = 2, 15, 20, 30, 10
X = np.random.randn(N, D)
y = np.random.randint(C, size=(N,))
# golden-values.md 3.4 (each model's loss is taken before the next model is built)
PUBLISHED_LOSS = {1: 2.3004790897684924, 0.75: 2.302371489704412, 0.5: 2.3042759220785896}

for dropout_keep_ratio in [1, 0.75, 0.5]:
    print("Running check with dropout = ", dropout_keep_ratio)
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=5e-2,
                              dtype=np.float64, dropout_keep_ratio=dropout_keep_ratio, seed=123)

    loss, grads = model.loss(X, y)
    print("Initial loss: ", loss)
    check("|loss - published|", abs(loss - PUBLISHED_LOSS[dropout_keep_ratio]), 1e-10)

    # Relative errors should be around e-6 or less.
    # Note that it's fine if for dropout_keep_ratio=1 you have W2 error be on the order of e-5.
    for name in sorted(grads):
        f = lambda _: model.loss(X, y)[0]  # noqa: E731
        grad_num = eval_numerical_gradient(f, model.params[name], verbose=False, h=1e-5)
        # keep ratio 1 is fully_connected_nets.py's net: its W2 error is rounding noise
        # (entries near 5e-8; see there), 2.2e-5 in NumPy's arithmetic, 2.3e-4 seen in cpp's.
        limit = 1e-3 if (dropout_keep_ratio == 1 and name == "W2") else 1e-5
        check(f"{name} relative error", rel_error(grad_num, grads[name]), limit)
    print()

# --- Regularization experiment
# Train two identical nets, one with dropout and one without.
np.random.seed(231)
num_train = 500
small_data = {
    "X_train": data["X_train"][:num_train],
    "y_train": data["y_train"][:num_train],
    "X_val": data["X_val"],
    "y_val": data["y_val"],
}

solvers = {}
dropout_choices = [1, 0.25]
for dropout_keep_ratio in dropout_choices:
    model = FullyConnectedNet([500], dropout_keep_ratio=dropout_keep_ratio)
    print(dropout_keep_ratio)

    solver = Solver(model, small_data, num_epochs=8 if Q else 25, batch_size=100,
                    update_rule="adam", optim_config={"learning_rate": 5e-4},
                    verbose=True, print_every=100)
    solver.train()
    solvers[dropout_keep_ratio] = solver
    print()

for keep, s in solvers.items():
    print(f"keep {keep}: final train acc {s.train_acc_history[-1]:.3f}, "
          f"best val acc {s.best_val_acc:.3f}")
require("the net without dropout fits its 500 examples better",
        solvers[1].train_acc_history[-1] > solvers[0.25].train_acc_history[-1],
        f"train acc {solvers[1].train_acc_history[-1]:.3f} > "
        f"{solvers[0.25].train_acc_history[-1]:.3f}")

plt = _flow.pyplot(args)
if plt:
    # Plot train and validation accuracies of the two models.
    train_accs = []
    val_accs = []
    for dropout_keep_ratio in dropout_choices:
        solver = solvers[dropout_keep_ratio]
        train_accs.append(solver.train_acc_history[-1])
        val_accs.append(solver.val_acc_history[-1])

    plt.subplot(3, 1, 1)
    for dropout_keep_ratio in dropout_choices:
        plt.plot(solvers[dropout_keep_ratio].train_acc_history, "o",
                 label="%.2f dropout_keep_ratio" % dropout_keep_ratio)
    plt.title("Train accuracy")
    plt.xlabel("Epoch")
    plt.ylabel("Accuracy")
    plt.legend(ncol=2, loc="lower right")

    plt.subplot(3, 1, 2)
    for dropout_keep_ratio in dropout_choices:
        plt.plot(solvers[dropout_keep_ratio].val_acc_history, "o",
                 label="%.2f dropout_keep_ratio" % dropout_keep_ratio)
    plt.title("Val accuracy")
    plt.xlabel("Epoch")
    plt.ylabel("Accuracy")
    plt.legend(ncol=2, loc="lower right")
    _flow.save(plt, args, "dropout_regularization.png")

_flow.done(args)

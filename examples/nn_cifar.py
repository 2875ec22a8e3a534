"""The CSCI566 assignment flow (Problem 2, "Incorporating CNNs") on nnc.nn:
the notebook's code with only the imports changed, on NHWC CIFAR images.

    python examples/nn_cifar.py [--backend cpp|numpy] [--cifar DIR] [--epochs E] [--out PREFIX]

It checks ConvLayer2D, MaxPoolingLayer and TestCNN against the course's
values and gradient-checks them, trains a SmallConvolutionalNetwork with
train_net on CIFAR-10 (the cifar-10-batches-py folder given by --cifar or
$NNC_CIFAR10_DIR, or the shared subset next to the repo; small synthetic
data when none is found), then saves PREFIX_curves.png (loss and accuracy),
PREFIX_filters.png (the first conv layer's filters) and
PREFIX_confusion.png (the confusion matrix on the test images) when
matplotlib is installed. The confusion matrix is printed either way.
About 15 s on the cpp backend with 2 cores and the shared subset.
"""
import argparse
import os
import time

import numpy as np

import nnc
# In the notebook: from lib.mlp.fully_conn import *, lib.mlp.layer_utils,
# lib.mlp.train, lib.cnn.layer_utils, lib.cnn.cnn_models and lib.optim
from nnc.nn import *  # noqa: F401,F403
# lib.grad_check and lib.datasets
from nnc.data_utils import load_CIFAR10
from nnc.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error

HERE = os.path.dirname(os.path.abspath(__file__))
# the shared subset next to the repo (or next to the worktrees' folder)
SHARED_CIFAR = [os.path.join(HERE, *[".."] * up, "shared", "data", "cifar-10-batches-py")
                for up in (2, 3)]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


def load_data(cifar_dir, num_training, num_validation):
    """CIFAR-10 as the course prepares CIFAR-100: NHWC float32, pixels / 255,
    standardized per channel with the training split's mean and std."""
    for d in (cifar_dir, os.environ.get("NNC_CIFAR10_DIR"), *SHARED_CIFAR):
        if not d:
            continue
        try:
            Xtr, ytr, Xte, yte = load_CIFAR10(d)   # (N, 32, 32, 3): NHWC
        except FileNotFoundError:
            continue
        print(f"CIFAR-10 from {os.path.normpath(d)}")
        break
    else:
        print("No CIFAR-10 folder found (see nnc.data_utils): using synthetic data, "
              "10 classes of noisy class templates")
        rng = np.random.default_rng(0)
        templates = rng.uniform(0, 255, (10, 32, 32, 3))

        def split(n):
            y = rng.integers(10, size=n)
            return np.clip(templates[y] + 80 * rng.standard_normal((n, 32, 32, 3)), 0, 255), y
        (Xtr, ytr), (Xte, yte) = split(num_training + num_validation), split(500)
    num_training = min(num_training, len(Xtr) - num_validation)
    x_train = Xtr[:num_training] / 255
    mean_image = x_train.mean(axis=(0, 1, 2), keepdims=True)
    std_image = x_train.std(axis=(0, 1, 2), keepdims=True)

    def standardized(x):
        return ((x / 255 - mean_image) / std_image).astype(np.float32)
    return {
        "data_train": standardized(Xtr[:num_training]), "labels_train": ytr[:num_training],
        "data_val": standardized(Xtr[num_training:num_training + num_validation]),
        "labels_val": ytr[num_training:num_training + num_validation],
        "data_test": standardized(Xte), "labels_test": yte,
        "label_names": CIFAR10_NAMES, "mean_image": mean_image.astype(np.float32),
        "std_image": std_image.astype(np.float32),
    }


def check_layers():
    print("\n== ConvLayer2D, MaxPoolingLayer and TestCNN: forward values and gradients ==")
    conv_layer = ConvLayer2D(3, 4, 16, stride=2, padding=3)  # noqa: F405
    output_size = conv_layer.get_output_size(np.zeros([32, 28, 28, 3]).shape)
    print("Received {} and expected [32, 16, 16, 16]".format(output_size))

    input_image = np.linspace(-0.1, 0.4, num=1 * 8 * 8 * 1).reshape([1, 8, 8, 1])
    single_conv = ConvLayer2D(1, 5, 2, stride=1, padding=0, name="conv_test")  # noqa: F405
    single_conv.params[single_conv.w_name] = np.linspace(-0.2, 0.2, num=50).reshape(5, 5, 1, 2)
    single_conv.params[single_conv.b_name] = np.linspace(-0.3, 0.3, num=2)
    out = single_conv.forward(input_image)
    print("Received output shape: {}, Expected output shape: (1, 4, 4, 2)".format(out.shape))
    print("conv first output row:", np.round(out[0, 0, 0], 8), "expected [-0.03874312 0.57000324]")

    np.random.seed(231)
    img = np.random.randn(15, 8, 8, 3)
    w = np.random.randn(4, 4, 3, 12)
    b = np.random.randn(12)
    dout = np.random.randn(15, 4, 4, 12)
    single_conv = ConvLayer2D(input_channels=3, kernel_size=4, number_filters=12,  # noqa: F405
                              stride=2, padding=1, name="conv_test")
    single_conv.params[single_conv.w_name] = w
    single_conv.params[single_conv.b_name] = b
    dimg_num = eval_numerical_gradient_array(lambda x: single_conv.forward(img), img, dout)
    dw_num = eval_numerical_gradient_array(lambda w: single_conv.forward(img), w, dout)
    db_num = eval_numerical_gradient_array(lambda b: single_conv.forward(img), b, dout)
    single_conv.forward(img)
    dimg = single_conv.backward(dout)
    print("conv dimg relative error:", rel_error(dimg_num, dimg))
    print("conv dw relative error:", rel_error(dw_num, single_conv.grads[single_conv.w_name]))
    print("conv db relative error:", rel_error(db_num, single_conv.grads[single_conv.b_name]))

    img = np.random.randn(15, 8, 8, 3)
    dout = np.random.randn(15, 3, 3, 3)
    maxpool = MaxPoolingLayer(pool_size=4, stride=2, name="maxpool_test")  # noqa: F405
    dimg_num = eval_numerical_gradient_array(lambda x: maxpool.forward(img), img, dout)
    maxpool.forward(img)
    print("maxpool dimg relative error:", rel_error(dimg_num, maxpool.backward(dout)))

    np.random.seed(1234)
    model = TestCNN()  # noqa: F405
    loss_func = cross_entropy()  # noqa: F405
    B, H, W, iC, k, oC, Hi, O = 4, 8, 8, 3, 3, 3, 27, 5  # noqa: E741  (the notebook's names)
    model.net.assign("conv_w", np.linspace(-0.7, 0.3, num=k * k * iC * oC).reshape(k, k, iC, oC))
    model.net.assign("conv_b", np.linspace(-0.6, 0.2, num=oC))
    model.net.assign("fc_w", np.linspace(-0.2, 0.2, num=Hi * O).reshape(Hi, O))
    model.net.assign("fc_b", np.linspace(-0.9, 0.1, num=O))
    feats = np.linspace(-5.5, 4.5, num=B * H * W * iC).reshape(B, H, W, iC)
    y = np.asarray([0, 2, 1, 4])
    loss = loss_func.forward(model.forward(feats), y)
    print("TestCNN loss: {} (expected 4.56046848799693)".format(loss))
    model.backward(loss_func.backward())
    for layer in model.net.layers:
        for name in sorted(layer.grads):
            f = lambda _: loss_func.forward(model.forward(feats), y)  # noqa: E731
            grad_num = eval_numerical_gradient(f, layer.params[name], verbose=False)
            print("%s relative error: %.2e" % (name, rel_error(grad_num, layer.grads[name])))


def train(data, epochs, batch_size, num_classes):
    print(f"\n== SmallConvolutionalNetwork, {epochs} epochs with Adam ==")
    data_dict = {"data_train": (data["data_train"], data["labels_train"]),
                 "data_val": (data["data_val"], data["labels_val"]),
                 "data_test": (data["data_test"], data["labels_test"])}
    np.random.seed(123)
    model = SmallConvolutionalNetwork(num_classes=num_classes)  # noqa: F405
    model.net.astype(np.float32)   # the course's float64 weights would run at half speed
    loss_f = cross_entropy()  # noqa: F405
    optimizer = Adam(model.net, 1e-3)  # noqa: F405
    t0 = time.time()
    results = train_net(data_dict, model, loss_f, optimizer, batch_size, epochs,  # noqa: F405
                        lr_decay=0.999, lr_decay_every=10, show_every=50, verbose=True)
    print(f"trained in {time.time() - t0:.1f} s")
    opt_params = results[0]
    best = SmallConvolutionalNetwork(num_classes=num_classes)  # noqa: F405
    best.net.load(opt_params)
    test_acc = compute_acc(best, data["data_test"], data["labels_test"])  # noqa: F405
    print("Test Accuracy: {}".format(test_acc))
    return best, results


def confusion_matrix(model, X, y, num_classes):
    pred = np.concatenate([np.argmax(model.forward(X[i:i + 100], False), axis=1)
                           for i in range(0, len(X), 100)])
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y, np.minimum(pred, num_classes - 1)), 1)
    return cm


def filter_grid(w):
    """The first conv layer's filters (k, k, 3, F) as one image: a row of
    k x k RGB tiles per ceil(sqrt(F)), each scaled to [0, 1]."""
    k, _, _, F = w.shape
    ncols = int(np.ceil(np.sqrt(F)))
    nrows = int(np.ceil(F / ncols))
    grid = np.ones((nrows * (k + 1) - 1, ncols * (k + 1) - 1, 3))
    for f in range(F):
        tile = w[:, :, :, f]
        tile = (tile - tile.min()) / max(tile.max() - tile.min(), 1e-12)
        r, c = divmod(f, ncols)
        grid[r * (k + 1):r * (k + 1) + k, c * (k + 1):c * (k + 1) + k] = tile
    return grid


def plot(results, model, cm, names, prefix):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no plots (pip install 'nnc[plot]')")
        return
    opt_params, loss_hist, train_acc_hist, val_acc_hist = results
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 8))
    a.set_title("Training loss")
    a.plot(loss_hist[1::10], "-o", markersize=3)   # sparse the curve a bit
    a.set_xlabel("Iteration / 10")
    b.set_title("Accuracy")
    b.plot(train_acc_hist, "-o", label="Training")
    b.plot(val_acc_hist, "-o", label="Validation")
    b.set_xlabel("Epoch")
    b.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(prefix + "_curves.png", dpi=80)
    plt.close(fig)

    im_array = filter_grid(model.net.get_params("conv1_w"))
    fig = plt.figure(figsize=(5, 5))
    plt.imshow(im_array, interpolation="nearest")
    plt.axis("off")
    plt.title("conv1 filters")
    fig.savefig(prefix + "_filters.png", dpi=80)
    plt.close(fig)

    fig = plt.figure(figsize=(7, 6))
    plt.imshow(cm, cmap="Blues")
    plt.colorbar()
    plt.xticks(range(len(names)), names, rotation=90)
    plt.yticks(range(len(names)), names)
    plt.xlabel("predicted")
    plt.ylabel("true")
    plt.title("Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(prefix + "_confusion.png", dpi=80)
    plt.close(fig)
    print(f"\nsaved {prefix}_curves.png, {prefix}_filters.png, {prefix}_confusion.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=nnc.get_backend(), choices=nnc.available_backends())
    parser.add_argument("--cifar", help="the cifar-10-batches-py directory")
    parser.add_argument("--num-training", type=int, default=4170)
    parser.add_argument("--num-validation", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--out", default="nn_cifar", help="prefix of the saved plots")
    args = parser.parse_args()

    nnc.set_backend(args.backend)
    print(f"nnc {nnc.__version__}, backend {nnc.get_backend()}")
    data = load_data(args.cifar, args.num_training, args.num_validation)
    for k, v in data.items():
        if isinstance(v, np.ndarray):
            print("Name: {} Shape: {}, {}".format(k, v.shape, type(v)))

    check_layers()
    names = data["label_names"]
    model, results = train(data, args.epochs, args.batch_size, len(names))
    cm = confusion_matrix(model, data["data_test"], data["labels_test"], len(names))
    print("\nConfusion matrix (rows: true class, columns: predicted):")
    print("\n".join(f"{names[i]:>10} " + " ".join(f"{v:4d}" for v in row)
                    for i, row in enumerate(cm)))
    plot(results, model, cm, names, args.out)


if __name__ == "__main__":
    main()

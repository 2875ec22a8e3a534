"""Tile many small images into one, as in CS231n's vis_utils.py (NumPy only;
show the result with any plotting library, e.g. ``plt.imshow(grid.astype('uint8'))``).

Images are channels last here, as in CS231n: to look at conv filters W of
shape (F, C, HH, WW), call ``visualize_grid(W.transpose(0, 2, 3, 1))``.

Plots of a training run, for notebooks and ``nnc train`` (matplotlib is
imported only inside them; ``pip install 'nnc[plot]'``):

    plot_history(solver)                        # loss and train/val accuracy
    plot_confusion_matrix(y_test, y_pred, label_names, path="confusion.png")
    per_class_accuracy(y_test, y_pred)          # NumPy only
    plot_per_class_accuracy(y_test, y_pred, label_names)
    plot_filters(model.params["W1"])            # first-layer conv filters

Each returns a matplotlib Figure and, given ``path``, also saves it there
(at the figure's own size: no tight cropping, so the pixel size is fixed).
In a notebook, end the line with ``;`` to show the figure once.
"""
import json
import os
import sys
from math import ceil, sqrt

import numpy as np

__all__ = ["visualize_grid", "vis_grid", "vis_nn", "ceil", "sqrt", "np"]


def _images(Xs, name="Xs"):
    if not isinstance(Xs, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(Xs).__name__}")
    if Xs.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, H, W, C), got shape {Xs.shape}")
    if Xs.shape[0] == 0:
        raise ValueError(f"{name} holds no images (shape {Xs.shape})")
    return Xs


def _rescale01(G):
    """(G - min) / (max - min); a constant G maps to zeros instead of 0/0 = nan."""
    lo, hi = G.min(), G.max()
    return (G - lo) / (hi - lo) if hi > lo else np.zeros_like(G)


def visualize_grid(Xs, ubound=255.0, padding=1):
    """Tile N images into a square grid, each rescaled to [0, ubound] on its own.

    Inputs:
    - Xs: (N, H, W, C) images
    - ubound: output values lie in [0, ubound]
    - padding: pixels of zeros between neighbouring tiles

    Returns grid of shape (A*H + (A-1)*padding, A*W + (A-1)*padding, C) with
    A = ceil(sqrt(N)); image n fills row n // A, column n % A; unused tiles and
    padding are 0. float64, or Xs's dtype when that is a float type. A constant
    image (max == min) becomes a tile of zeros (CS231n would give nan).
    """
    _images(Xs)
    if isinstance(padding, (bool, np.bool_)) or not isinstance(padding, (int, np.integer)) \
            or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    N, H, W, C = Xs.shape
    grid_size = int(ceil(sqrt(N)))
    grid_height = H * grid_size + padding * (grid_size - 1)
    grid_width = W * grid_size + padding * (grid_size - 1)
    dtype = Xs.dtype if Xs.dtype.kind == "f" else np.float64
    grid = np.zeros((grid_height, grid_width, C), dtype=dtype)
    for n in range(N):
        y0 = (n // grid_size) * (H + padding)
        x0 = (n % grid_size) * (W + padding)
        grid[y0:y0 + H, x0:x0 + W] = ubound * _rescale01(Xs[n].astype(dtype))
    return grid


def vis_grid(Xs):
    """Tile N images into a square grid with a 1-pixel border, then rescale the
    whole grid (not each image) to [0, 1].

    Inputs:
    - Xs: (N, H, W, C) images

    Returns G of shape (A*H + A, A*W + A, C), A = ceil(sqrt(N)), dtype of Xs
    (float64 for integer input). Borders and unused tiles start at min(Xs), so
    they come out as 0. A constant input gives zeros.
    """
    _images(Xs)
    N, H, W, C = Xs.shape
    A = int(ceil(sqrt(N)))
    dtype = Xs.dtype if Xs.dtype.kind == "f" else np.float64
    G = np.full((A * H + A, A * W + A, C), np.min(Xs), dtype=dtype)
    for n in range(N):
        y, x = divmod(n, A)
        G[y * H + y:(y + 1) * H + y, x * W + x:(x + 1) * W + x, :] = Xs[n]
    return _rescale01(G)


def vis_nn(rows):
    """Lay out a table of images (rows of equally many (H, W, C) images) with a
    1-pixel border, then rescale the whole table to [0, 1].

    Inputs:
    - rows: list of N lists, each with D arrays of shape (H, W, C)

    Returns G of shape (N*H + N, D*W + D, C); borders start at 1 before the
    rescale, as in CS231n. A constant table gives zeros.
    """
    N = len(rows)
    if N == 0 or len(rows[0]) == 0:
        raise ValueError("rows must be a non-empty list of non-empty lists of (H, W, C) images")
    D = len(rows[0])
    first = np.asarray(rows[0][0])
    if first.ndim != 3:
        raise ValueError(f"rows[0][0] must be an (H, W, C) image, got shape {first.shape}")
    H, W, C = first.shape
    dtype = first.dtype if first.dtype.kind == "f" else np.float64
    G = np.ones((N * H + N, D * W + D, C), dtype)
    for y in range(N):
        if len(rows[y]) != D:
            raise ValueError(f"rows[{y}] has {len(rows[y])} images but rows[0] has {D}")
        for x in range(D):
            img = np.asarray(rows[y][x])
            if img.shape != (H, W, C):
                raise ValueError(f"rows[{y}][{x}] has shape {img.shape} but rows[0][0] has "
                                 f"shape {(H, W, C)}")
            G[y * H + y:(y + 1) * H + y, x * W + x:(x + 1) * W + x, :] = img
    return _rescale01(G)


# --- plots of a training run --------------------------------------------------------

def _pyplot(path):
    """matplotlib.pyplot, switched to Agg first when saving with no display to
    draw on (and neither pyplot nor MPLBACKEND chose a backend yet)."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib "
                          "(or pip install 'nnc[plot]')") from None
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                         or os.environ.get("WAYLAND_DISPLAY"))
    if path is not None and headless and "matplotlib.pyplot" not in sys.modules \
            and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    if path is not None:
        # dpi=fig.dpi and no bbox_inches="tight": the PNG is figsize * dpi pixels.
        fig.savefig(os.fspath(path), dpi=fig.dpi)
    return fig


def _labels_1d(y, name):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {y.shape}")
    if y.size and y.dtype.kind not in "iu":
        if y.dtype.kind != "f" or not np.all(y == np.round(y)):
            raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{name} holds a negative label ({y.min()})")
    return y.astype(np.int64)


def _pair(y_true, y_pred, num_classes):
    y_true, y_pred = _labels_1d(y_true, "y_true"), _labels_1d(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred {y_pred.size}")
    top = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if num_classes is None:
        num_classes = top
    elif isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes,
                                                                    (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    elif top > num_classes:
        raise ValueError(f"num_classes is {num_classes} but the labels go up to {top - 1}")
    return y_true, y_pred, int(num_classes)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts of (true class, predicted class) pairs.

    Inputs:
    - y_true, y_pred: (N,) integer labels
    - num_classes: C; default 1 + the largest label in either

    Returns M, int64 (C, C): M[i, j] = examples of class i predicted as j, so
    a row sums to the class's count and the diagonal holds the correct ones.
    """
    y_true, y_pred, C = _pair(y_true, y_pred, num_classes)
    M = np.zeros((C, C), dtype=np.int64)
    np.add.at(M, (y_true, y_pred), 1)
    return M


def per_class_accuracy(y_true, y_pred, num_classes=None):
    """Accuracy within each true class (needs no matplotlib).

    Inputs:
    - y_true, y_pred: (N,) integer labels
    - num_classes: C; default 1 + the largest label in either

    Returns float64 (C,): entry c is the fraction of the examples of class c
    predicted as c; nan for a class with no examples.
    """
    M = confusion_matrix(y_true, y_pred, num_classes)
    counts = M.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(M) / np.maximum(counts, 1), np.nan)


def _history_arrays(solver_or_history):
    h = solver_or_history
    if isinstance(h, (str, os.PathLike)):  # a history.json written by nnc train
        with open(h) as f:
            h = json.load(f)
    keys = ("loss_history", "train_acc_history", "val_acc_history")
    if isinstance(h, dict):
        missing = [k for k in keys if k not in h]
        get = h.get
    else:
        missing = [k for k in keys if not hasattr(h, k)]
        get = lambda k: getattr(h, k)  # noqa: E731
    if missing:
        raise TypeError("plot_history needs a Solver, a dict or a history.json path with "
                        f"{', '.join(keys)}; {type(h).__name__} lacks {', '.join(missing)}")
    return [np.asarray(get(k), dtype=np.float64) for k in keys]


def plot_history(solver_or_history, path=None):
    """Training loss per iteration, and train/val accuracy per check.

    Inputs:
    - solver_or_history: a trained ``nnc.solver.Solver``, a dict with
      'loss_history' (T,), 'train_acc_history' (E+1,), 'val_acc_history' (E+1,)
      (as ``nnc train`` writes to history.json), or the path of such a JSON file
    - path: where to save the figure (PNG: 1000 x 400 pixels)

    Check k is after epoch k; check 0 is after the first iteration. The loss
    panel also draws a moving average over about 1/25 of the iterations.
    Returns the matplotlib Figure.
    """
    loss, train_acc, val_acc = _history_arrays(solver_or_history)
    plt = _pyplot(path)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    it = np.arange(1, loss.size + 1)
    ax_loss.plot(it, loss, "o", markersize=2, alpha=0.4, label="minibatch")
    k = max(1, loss.size // 25)
    if k > 1:
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax_loss.plot(it[k - 1:], smooth, "-", linewidth=1.5, label=f"mean of {k}")
        ax_loss.legend(loc="upper right")
    ax_loss.set_title("Training loss")
    ax_loss.set_xlabel("Iteration")
    ax_acc.plot(np.arange(train_acc.size), train_acc, "-o", markersize=4, label="train")
    ax_acc.plot(np.arange(val_acc.size), val_acc, "-o", markersize=4, label="val")
    if val_acc.size:
        best = int(np.argmax(val_acc))
        ax_acc.set_title(f"Accuracy (best val {val_acc[best]:.3f}, epoch {best})")
    else:
        ax_acc.set_title("Accuracy")
    ax_acc.set_xlabel("Epoch")
    ax_acc.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.legend(loc="lower right")
    ax_acc.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(y_true, y_pred, labels=None, path=None, normalize=True):
    """The confusion matrix as an image: rows are true classes, columns predicted.

    Inputs:
    - y_true, y_pred: (N,) integer labels
    - labels: C class names (default "0" .. "C-1"); C also sets the matrix size
    - path: where to save the figure (PNG: 600 x 600 pixels)
    - normalize: colour each row by its fractions (rows of rare classes stay
      readable); the cells are annotated with counts when C <= 20

    Returns the matplotlib Figure.
    """
    C = None if labels is None else len(labels)
    M = confusion_matrix(y_true, y_pred, C)
    C = M.shape[0]
    labels = [str(i) for i in range(C)] if labels is None else [str(v) for v in labels]
    counts = M.sum(axis=1, keepdims=True)
    shown = M / np.maximum(counts, 1) if normalize else M
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if C <= 20:
        ticks = np.arange(C)
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels)
        cut = 0.5 * (shown.max() if shown.size else 1)
        for i in range(C):
            for j in range(C):
                ax.text(j, i, str(M[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > cut else "black")
    acc = np.trace(M) / max(M.sum(), 1)
    ax.set_title(f"Confusion matrix (accuracy {acc:.3f})")
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    fig.tight_layout()
    return _save(fig, path)


def plot_per_class_accuracy(y_true, y_pred, labels=None, path=None):
    """Accuracy within each true class as bars, with the overall accuracy as a line.

    Inputs:
    - y_true, y_pred: (N,) integer labels
    - labels: C class names (default "0" .. "C-1"); C also sets the number of bars
    - path: where to save the figure (PNG: 800 x 400 pixels)

    A class with no examples gets no bar. Returns the matplotlib Figure.
    """
    C = None if labels is None else len(labels)
    acc = per_class_accuracy(y_true, y_pred, C)
    C = acc.size
    labels = [str(i) for i in range(C)] if labels is None else [str(v) for v in labels]
    overall = float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if C else 0.0
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    x = np.arange(C)
    ax.bar(x, np.nan_to_num(acc), color="tab:blue")
    ax.axhline(overall, color="tab:orange", linestyle="--", label=f"all: {overall:.3f}")
    if C <= 20:
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("Accuracy")
    ax.set_title("Accuracy per class")
    ax.legend(loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


_FILTER_LAYOUTS = ("NCHW", "HWCF", "FHWC")


def _filters_nhwc(W, layout):
    """W as (N, H, W, C) images with C in (1, 3)."""
    W = np.asarray(W)
    if W.ndim != 4:
        raise ValueError(f"W must be 4-D filters, got shape {W.shape}")
    if layout is None:
        s = W.shape
        fits = {"NCHW": s[1] in (1, 3) and s[2] == s[3],
                "HWCF": s[2] in (1, 3) and s[0] == s[1],
                "FHWC": s[3] in (1, 3) and s[1] == s[2]}
        layout = next((k for k in _FILTER_LAYOUTS if fits[k]), None)
        if layout is None:
            raise ValueError(f"cannot tell the layout of filters of shape {W.shape} (square "
                             "kernels with 1 or 3 channels are recognized); pass layout= one "
                             f"of {', '.join(_FILTER_LAYOUTS)}")
    elif layout not in _FILTER_LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(_FILTER_LAYOUTS)}, got {layout!r}")
    X = {"NCHW": lambda: W.transpose(0, 2, 3, 1), "HWCF": lambda: W.transpose(3, 0, 1, 2),
         "FHWC": lambda: W}[layout]()
    if X.shape[3] not in (1, 3):  # not colour images: one grey tile per (filter, channel)
        N, H, Wd, C = X.shape
        X = X.transpose(0, 3, 1, 2).reshape(N * C, H, Wd, 1)
    return X


def plot_filters(W, path=None, layout=None):
    """First-layer conv filters as a grid of small images, each rescaled to its
    own min..max (as CS231n's visualize_grid).

    Inputs:
    - W: 4-D filters in one of three layouts:
      - NCHW (F, C, H, W), as nnc and CS231n keep them,
      - HWCF (H, W, C, F), as TensorFlow keeps them,
      - FHWC (F, H, W, C), filters as channels-last images.
      layout=None infers it from the shape: the first of NCHW, HWCF, FHWC
      (in that order) whose kernel is square and whose channel count is 1 or
      3 wins, so nnc's own NCHW wins every tie, e.g. (32, 3, 3, 3) is NCHW;
      (3, 3, 3, 64) can only be HWCF and (32, 7, 7, 3) only FHWC.
    - path: where to save the figure (PNG: 500 x 500 pixels)
    - layout: 'NCHW', 'HWCF' or 'FHWC' to skip the inference (then C may be
      any count: each filter's channels become separate grey tiles)

    Returns the matplotlib Figure.
    """
    X = _filters_nhwc(W, layout)
    grid = visualize_grid(X.astype(np.float64), ubound=1.0)
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if grid.shape[2] == 1:
        ax.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_title(f"{X.shape[0]} filters, {X.shape[1]}x{X.shape[2]}")
    ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)

"""nnc.vis_utils' plots of a training run: per_class_accuracy and
confusion_matrix (NumPy only), plot_history, plot_confusion_matrix and
plot_filters (matplotlib, imported inside them)."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from nnc.vis_utils import (confusion_matrix, per_class_accuracy, plot_confusion_matrix,
                           plot_filters, plot_history, plot_per_class_accuracy)


def _png_size(path):
    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def plt():
    plt = pytest.importorskip("matplotlib.pyplot")
    yield plt
    plt.close("all")


# --- NumPy only ----------------------------------------------------------------------

def test_per_class_accuracy_and_confusion_matrix():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0, 2]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred),
                                  [[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    np.testing.assert_allclose(per_class_accuracy(y_true, y_pred), [0.5, 2 / 3, 1.0])
    # a class with no examples is nan; num_classes pads the matrix
    acc = per_class_accuracy(y_true, y_pred, num_classes=4)
    assert acc.shape == (4,) and acc.dtype == np.float64 and np.isnan(acc[3])
    assert confusion_matrix(y_true, y_pred, 4).shape == (4, 4)


def test_per_class_accuracy_matches_a_loop():
    rng = np.random.default_rng(0)
    y, p = rng.integers(10, size=500), rng.integers(10, size=500)
    want = [np.mean(p[y == c] == c) for c in range(10)]
    np.testing.assert_allclose(per_class_accuracy(y, p), want, rtol=0, atol=0)
    assert confusion_matrix(y, p).sum() == 500


@pytest.mark.parametrize("y_true,y_pred,kw,match", [
    ([[0, 1]], [0, 1], {}, "y_true must be 1-D"),
    ([0, 1], [0], {}, "y_true has 2 labels but y_pred 1"),
    ([0, -1], [0, 1], {}, "negative label"),
    ([0.5, 1], [0, 1], {}, "integer class labels"),
    ([0, 5], [0, 1], {"num_classes": 3}, "num_classes is 3 but the labels go up to 5"),
])
def test_label_errors(y_true, y_pred, kw, match):
    with pytest.raises(ValueError, match=match):
        per_class_accuracy(y_true, y_pred, **kw)


def test_no_matplotlib_means_a_clear_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_history({"loss_history": [1.0], "train_acc_history": [0.1],
                      "val_acc_history": [0.1]})
    assert per_class_accuracy([0, 1], [0, 0])[0] == 1.0  # still works


# --- the plots -----------------------------------------------------------------------

def _trained_solver():
    from nnc.classifiers import TwoLayerNet
    from nnc.solver import Solver

    rng = np.random.default_rng(1)
    data = {"X_train": rng.standard_normal((50, 6)), "y_train": rng.integers(3, size=50),
            "X_val": rng.standard_normal((20, 6)), "y_val": rng.integers(3, size=20)}
    np.random.seed(0)
    solver = Solver(TwoLayerNet(input_dim=6, hidden_dim=5, num_classes=3, weight_scale=0.1),
                    data, num_epochs=3, batch_size=10, verbose=False)
    solver.train()
    return solver


def test_plot_history_from_a_solver_a_dict_or_a_file(plt, tmp_path):
    solver = _trained_solver()
    fig = plot_history(solver, tmp_path / "a.png")
    assert isinstance(fig, plt.Figure) and _png_size(tmp_path / "a.png") == (1000, 400)
    loss_ax, acc_ax = fig.axes[:2]
    np.testing.assert_array_equal(loss_ax.lines[0].get_ydata(), solver.loss_history)
    np.testing.assert_array_equal(acc_ax.lines[1].get_ydata(), solver.val_acc_history)
    np.testing.assert_array_equal(acc_ax.lines[1].get_xdata(), [0, 1, 2, 3])

    history = {k: [float(v) for v in getattr(solver, k)]
               for k in ("loss_history", "train_acc_history", "val_acc_history")}
    assert plot_history(history).axes[0].lines[0].get_ydata().size == 15
    (tmp_path / "history.json").write_text(json.dumps(history))
    plot_history(str(tmp_path / "history.json"), path=tmp_path / "b.png")
    assert _png_size(tmp_path / "b.png") == (1000, 400)
    with pytest.raises(TypeError, match="lacks val_acc_history"):
        plot_history({"loss_history": [], "train_acc_history": []})


def test_plot_confusion_matrix(plt, tmp_path):
    y = np.array([0, 1, 2, 2, 1])
    p = np.array([0, 2, 2, 2, 1])
    fig = plot_confusion_matrix(y, p, ["cat", "dog", "ship"], path=tmp_path / "c.png")
    assert _png_size(tmp_path / "c.png") == (600, 600)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), [[1, 0, 0], [0, 0.5, 0.5], [0, 0, 1]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "ship"]
    assert "accuracy 0.800" in ax.get_title()
    # the labels set the size: a class nobody predicted or saw still gets its row
    assert plot_confusion_matrix(y, p, list("abcd")).axes[0].images[0].get_array().shape \
        == (4, 4)


def test_plot_per_class_accuracy(plt, tmp_path):
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0])
    fig = plot_per_class_accuracy(y, p, ["a", "b", "c", "d"], path=tmp_path / "p.png")
    assert _png_size(tmp_path / "p.png") == (800, 400)
    ax = fig.axes[0]
    np.testing.assert_allclose([b.get_height() for b in ax.patches], [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.6, 0.6])  # all classes together


@pytest.mark.parametrize("shape,layout,tiles,tile", [
    ((32, 3, 7, 7), None, 32, (7, 7, 3)),      # NCHW, nnc's own
    ((3, 3, 3, 64), None, 64, (3, 3, 3)),      # HWCF (TensorFlow), inferred
    ((16, 5, 5, 3), None, 16, (5, 5, 3)),      # FHWC, inferred
    ((8, 1, 5, 5), None, 8, (5, 5, 1)),        # grey
    ((4, 3, 3, 3), None, 4, (3, 3, 3)),        # a tie: NCHW wins
    ((4, 3, 3, 3), "FHWC", 4, (3, 3, 3)),
    ((6, 8, 3, 3), "NCHW", 48, (3, 3, 1)),     # 8 channels: one grey tile per channel
])
def test_plot_filters_layouts(plt, shape, layout, tiles, tile):
    W = np.random.default_rng(0).standard_normal(shape)
    fig = plot_filters(W, layout=layout)
    img = fig.axes[0].images[0].get_array()
    A = int(np.ceil(np.sqrt(tiles)))
    H, Wd, C = tile
    assert img.shape[:2] == (A * H + A - 1, A * Wd + A - 1)
    assert fig.axes[0].get_title() == f"{tiles} filters, {H}x{Wd}"
    assert img.ndim == (3 if C == 3 else 2)


def test_plot_filters_puts_each_filter_in_its_tile(plt):
    W = np.zeros((4, 3, 2, 2))
    W[1, 0] = 1.0                                  # filter 1: red only
    img = plot_filters(W, layout="NCHW").axes[0].images[0].get_array()
    tile = img[0:2, 3:5]                           # row 0, column 1 (1-pixel padding)
    np.testing.assert_array_equal(tile[..., 0], 1.0)
    np.testing.assert_array_equal(tile[..., 1:], 0.0)


def test_plot_filters_errors(plt, tmp_path):
    with pytest.raises(ValueError, match="cannot tell the layout of filters of shape"):
        plot_filters(np.zeros((8, 5, 4, 4)))
    with pytest.raises(ValueError, match="must be 4-D"):
        plot_filters(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="layout must be one of NCHW, HWCF, FHWC"):
        plot_filters(np.zeros((8, 3, 4, 4)), layout="CHWN")
    fig = plot_filters(np.ones((8, 3, 4, 4)), path=tmp_path / "f.png")  # constant: no nan
    assert _png_size(tmp_path / "f.png") == (500, 500)
    assert not np.isnan(fig.axes[0].images[0].get_array()).any()


def test_saving_without_a_display_uses_agg(tmp_path):
    pytest.importorskip("matplotlib")
    code = ("import matplotlib, nnc.vis_utils as v; "
            "v.plot_filters(__import__('numpy').ones((2, 3, 3, 3)), path='f.png'); "
            "print(matplotlib.get_backend().lower())")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg" and (tmp_path / "f.png").is_file()

"""nnc.vis_utils: grid layout and rescaling as in CS231n, NumPy only."""
import subprocess
import sys

import numpy as np
import pytest

from nnc.vis_utils import vis_grid, vis_nn, visualize_grid


def _imgs(N, H=3, W=2, C=3, seed=0):
    return np.random.default_rng(seed).standard_normal((N, H, W, C))


def _cs231n_visualize_grid(Xs, ubound=255.0, padding=1):
    """CS231n's loop, verbatim, as the reference."""
    from math import ceil, sqrt
    (N, H, W, C) = Xs.shape
    grid_size = int(ceil(sqrt(N)))
    grid_height = H * grid_size + padding * (grid_size - 1)
    grid_width = W * grid_size + padding * (grid_size - 1)
    grid = np.zeros((grid_height, grid_width, C))
    next_idx = 0
    y0, y1 = 0, H
    for y in range(grid_size):
        x0, x1 = 0, W
        for x in range(grid_size):
            if next_idx < N:
                img = Xs[next_idx]
                low, high = np.min(img), np.max(img)
                grid[y0:y1, x0:x1] = ubound * (img - low) / (high - low)
                next_idx += 1
            x0 += W + padding
            x1 += W + padding
        y0 += H + padding
        y1 += H + padding
    return grid


@pytest.mark.parametrize("N,padding", [(1, 1), (5, 1), (9, 0), (10, 3), (16, 2)])
def test_visualize_grid_matches_cs231n(N, padding):
    Xs = _imgs(N, H=4, W=3, C=3)
    grid = visualize_grid(Xs, padding=padding)
    A = int(np.ceil(np.sqrt(N)))
    assert grid.shape == (A * 4 + (A - 1) * padding, A * 3 + (A - 1) * padding, 3)
    np.testing.assert_allclose(grid, _cs231n_visualize_grid(Xs, padding=padding), rtol=1e-14)
    assert grid.min() == 0.0 and grid.max() == 255.0


def test_visualize_grid_each_tile_rescaled_on_its_own():
    Xs = np.stack([np.full((2, 2, 1), 0.0), np.full((2, 2, 1), 0.0)])
    Xs[0, 0, 0, 0] = 1.0
    Xs[1, 1, 1, 0] = 100.0
    grid = visualize_grid(Xs, ubound=1.0, padding=1)
    assert grid.shape == (5, 5, 1)
    assert grid[0, 0, 0] == 1.0 and grid[1, 4, 0] == 1.0
    assert grid[:, 2].sum() == 0 and grid[2, :].sum() == 0  # padding row/column
    assert grid[3:, :].sum() == 0                           # unused tiles


def test_visualize_grid_constant_image_and_int_input():
    Xs = np.ones((2, 2, 2, 1), dtype=np.uint8)
    grid = visualize_grid(Xs)
    assert grid.dtype == np.float64 and not np.isnan(grid).any() and grid.max() == 0.0
    f32 = visualize_grid(_imgs(3).astype(np.float32))
    assert f32.dtype == np.float32


def test_vis_grid():
    Xs = _imgs(5, H=2, W=3, C=1, seed=1)
    G = vis_grid(Xs)
    assert G.shape == (3 * 2 + 3, 3 * 3 + 3, 1)
    assert G.min() == 0.0 and G.max() == 1.0
    lo, hi = Xs.min(), Xs.max()
    # image 4 sits in tile row 1, column 1; borders stay at the global minimum
    np.testing.assert_allclose(G[3:5, 4:7], (Xs[4] - lo) / (hi - lo), rtol=1e-14)
    np.testing.assert_allclose(G[2, :], 0.0)
    assert np.all(G[6:, 8:] == 0)


def test_vis_nn():
    rows = [[np.full((2, 2, 3), float(3 * r + c)) for c in range(3)] for r in range(2)]
    G = vis_nn(rows)
    assert G.shape == (2 * 2 + 2, 3 * 2 + 3, 3)
    # the table spans [0, 5]; borders start at 1 -> 0.2 after the rescale
    np.testing.assert_allclose(G[0:2, 0:2], 0.0)
    np.testing.assert_allclose(G[3:5, 6:8], 1.0)
    np.testing.assert_allclose(G[2, :], 0.2)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"4-D \(N, H, W, C\), got shape \(3, 4\)"):
        visualize_grid(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        vis_grid([[1.0]])
    with pytest.raises(ValueError, match="no images"):
        vis_grid(np.zeros((0, 2, 2, 1)))
    with pytest.raises(ValueError, match="padding"):
        visualize_grid(_imgs(2), padding=-1)
    with pytest.raises(ValueError, match="non-empty"):
        vis_nn([])
    with pytest.raises(ValueError, match=r"rows\[1\] has 1 images but rows\[0\] has 2"):
        vis_nn([[np.zeros((2, 2, 1))] * 2, [np.zeros((2, 2, 1))]])
    with pytest.raises(ValueError, match=r"rows\[0\]\[1\] has shape \(3, 2, 1\)"):
        vis_nn([[np.zeros((2, 2, 1)), np.zeros((3, 2, 1))]])


def test_no_matplotlib_import():
    code = "import sys, nnc.vis_utils; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr

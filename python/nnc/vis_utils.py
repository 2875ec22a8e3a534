"""Tile many small images into one, as in CS231n's vis_utils.py (NumPy only;
show the result with any plotting library, e.g. ``plt.imshow(grid.astype('uint8'))``).

Images are channels last here, as in CS231n: to look at conv filters W of
shape (F, C, HH, WW), call ``visualize_grid(W.transpose(0, 2, 3, 1))``.
"""
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

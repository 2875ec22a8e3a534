"""CS231n's im2col helpers (``cs231n/im2col.py`` and the Cython
``im2col_cython`` module that ``fast_layers`` star-exports), in NumPy.

Columns are ordered (C, field_height, field_width) down the rows and
(output pixel, image) along the columns, as in CS231n, so code written
against the originals gets the same matrices. nnc's own convolutions do not
use these: they are here so that notebooks calling them keep running.
"""
import numpy as np

__all__ = ["get_im2col_indices", "im2col_indices", "col2im_indices", "im2col_cython",
           "col2im_cython", "col2im_6d_cython"]


def get_im2col_indices(x_shape, field_height, field_width, padding=1, stride=1):
    """Index arrays (k, i, j) into the zero-padded x such that
    ``x_padded[:, k, i, j]`` holds every window as a column.

    Inputs:
    - x_shape: (N, C, H, W)
    - field_height, field_width: window size; padding, stride: ints

    Returns k (C*fh*fw, 1), i and j (C*fh*fw, H'*W').
    """
    N, C, H, W = x_shape
    if (H + 2 * padding - field_height) % stride or (W + 2 * padding - field_width) % stride:
        raise ValueError(f"the {field_height}x{field_width} field with padding {padding} and "
                         f"stride {stride} does not tile x of shape {tuple(x_shape)}")
    out_height = (H + 2 * padding - field_height) // stride + 1
    out_width = (W + 2 * padding - field_width) // stride + 1
    i0 = np.tile(np.repeat(np.arange(field_height), field_width), C)
    i1 = stride * np.repeat(np.arange(out_height), out_width)
    j0 = np.tile(np.arange(field_width), field_height * C)
    j1 = stride * np.tile(np.arange(out_width), out_height)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), field_height * field_width).reshape(-1, 1)
    return k, i, j


def im2col_indices(x, field_height, field_width, padding=1, stride=1):
    """Windows of x (N, C, H, W) as columns: (C*fh*fw, H'*W'*N)."""
    p = padding
    x_padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="constant")
    k, i, j = get_im2col_indices(x.shape, field_height, field_width, padding, stride)
    cols = x_padded[:, k, i, j]
    C = x.shape[1]
    return cols.transpose(1, 2, 0).reshape(field_height * field_width * C, -1)


def col2im_indices(cols, x_shape, field_height=3, field_width=3, padding=1, stride=1):
    """Adjoint of ``im2col_indices``: columns (C*fh*fw, H'*W'*N) summed back
    into an array of shape x_shape (N, C, H, W) (overlaps add up)."""
    N, C, H, W = x_shape
    H_padded, W_padded = H + 2 * padding, W + 2 * padding
    x_padded = np.zeros((N, C, H_padded, W_padded), dtype=cols.dtype)
    k, i, j = get_im2col_indices(x_shape, field_height, field_width, padding, stride)
    cols_reshaped = cols.reshape(C * field_height * field_width, -1, N).transpose(2, 0, 1)
    np.add.at(x_padded, (slice(None), k, i, j), cols_reshaped)
    if padding == 0:
        return x_padded
    return x_padded[:, :, padding:-padding, padding:-padding]


def im2col_cython(x, field_height, field_width, padding, stride):
    """The Cython original's signature; same columns as ``im2col_indices``."""
    return im2col_indices(x, field_height, field_width, padding, stride)


def col2im_cython(cols, N, C, H, W, field_height, field_width, padding, stride):
    """The Cython original's signature; same result as ``col2im_indices``."""
    return col2im_indices(cols, (N, C, H, W), field_height, field_width, padding, stride)


def col2im_6d_cython(cols, N, C, H, W, HH, WW, pad, stride):
    """Adjoint of the strided-window view of ``conv_forward_strides``: cols
    (C, HH, WW, N, out_h, out_w) summed into x of shape (N, C, H, W)."""
    out_h = (H + 2 * pad - HH) // stride + 1
    out_w = (W + 2 * pad - WW) // stride + 1
    if cols.shape != (C, HH, WW, N, out_h, out_w):
        raise ValueError(f"cols has shape {cols.shape}, expected {(C, HH, WW, N, out_h, out_w)}")
    x_padded = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for hh in range(HH):
        for ww in range(WW):
            x_padded[:, :, hh:hh + stride * out_h:stride, ww:ww + stride * out_w:stride] += \
                cols[:, hh, ww].transpose(1, 0, 2, 3)
    if pad == 0:
        return x_padded
    return x_padded[:, :, pad:-pad, pad:-pad]

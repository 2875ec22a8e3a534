"""The NumPy reference backend: the ground truth the native backend is
tested against. Plain vectorized NumPy; caches are plain tuples."""
import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    if dout.shape != (x.shape[0], w.shape[1]):
        raise ValueError(f"affine_backward: dout has shape {dout.shape}, "
                         f"expected {(x.shape[0], w.shape[1])}")
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# --- convolution and pooling ---
# Shapes and parameters were checked by the public functions (the window
# tiles the padded input, so the // below are exact). Caches keep the user's
# conv_param/pool_param dicts as CS231n does.


def _conv_params(conv_param):
    return int(conv_param["stride"]), int(conv_param["pad"])


def _pool_params(pool_param):
    return (int(pool_param["pool_height"]), int(pool_param["pool_width"]),
            int(pool_param["stride"]))


def _conv_out_size(x, w, stride, pad):
    H, W = x.shape[2:]
    HH, WW = w.shape[2:]
    return 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride


def _pad(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x


def _unpad(xp, pad):
    return xp[:, :, pad:xp.shape[2] - pad, pad:xp.shape[3] - pad] if pad else xp


def _check_dout(op, dout, expected):
    if dout.shape != expected:
        raise ValueError(f"{op}: dout has shape {dout.shape}, expected {expected}")


def conv_forward_naive(x, w, b, conv_param):
    """The teaching loop: one output position at a time, vectorized over the
    batch and the filters."""
    stride, pad = _conv_params(conv_param)
    N = x.shape[0]
    F, C, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    xp = _pad(x, pad)
    out = np.empty((N, F, Hout, Wout), dtype=np.result_type(x, w, b))
    for i in range(Hout):
        for j in range(Wout):
            window = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = _conv_params(conv_param)
    F, C, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    _check_dout("conv_backward_naive", dout, (x.shape[0], F, Hout, Wout))
    xp = _pad(x, pad)
    dxp = np.zeros(xp.shape, dtype=np.result_type(dout, w))
    dw = np.zeros(w.shape, dtype=np.result_type(dout, x))
    for i in range(Hout):
        for j in range(Wout):
            hs, ws = slice(i * stride, i * stride + HH), slice(j * stride, j * stride + WW)
            g = dout[:, :, i, j]                                     # (N, F)
            dxp[:, :, hs, ws] += np.tensordot(g, w, axes=([1], [0]))  # (N, C, HH, WW)
            dw += np.tensordot(g, xp[:, :, hs, ws], axes=([0], [0]))  # (F, C, HH, WW)
    db = dout.sum(axis=(0, 2, 3))
    return _unpad(dxp, pad), dw, db


def max_pool_forward_naive(x, pool_param):
    """The teaching loop: one output position at a time. Ties go to the first
    maximum of the window in row-major order (np.argmax)."""
    ph, pw, stride = _pool_params(pool_param)
    N, C, H, W = x.shape
    Hout, Wout = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    out = np.empty((N, C, Hout, Wout), dtype=x.dtype)
    for i in range(Hout):
        for j in range(Wout):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = _pool_params(pool_param)
    N, C, H, W = x.shape
    Hout, Wout = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    _check_dout("max_pool_backward_naive", dout, (N, C, Hout, Wout))
    dx = np.zeros(x.shape, dtype=np.result_type(dout, x))
    n_idx, c_idx = np.ogrid[:N, :C]
    for i in range(Hout):
        for j in range(Wout):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            first_max = window.reshape(N, C, ph * pw).argmax(axis=2)
            # each (n, c) appears once per window, so += does not lose updates
            dx[n_idx, c_idx, i * stride + first_max // pw, j * stride + first_max % pw] += \
                dout[:, :, i, j]
    return dx


def _im2col_indices(C, H, W, HH, WW, stride, Hout, Wout):
    """CS231n's im2col indices into the padded input: rows (c, kh, kw),
    columns (oh, ow)."""
    kh = np.repeat(np.arange(HH), WW)
    kw = np.tile(np.arange(WW), HH)
    rows = np.tile(kh, C)[:, None] + stride * np.repeat(np.arange(Hout), Wout)[None, :]
    cols = np.tile(kw, C)[:, None] + stride * np.tile(np.arange(Wout), Hout)[None, :]
    chan = np.repeat(np.arange(C), HH * WW)[:, None]
    return chan, rows, cols


def conv_forward_im2col(x, w, b, conv_param):
    """im2col by fancy indexing, then one matrix product for the batch."""
    stride, pad = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    chan, rows, cols = _im2col_indices(C, H, W, HH, WW, stride, Hout, Wout)
    x_cols = _pad(x, pad)[:, chan, rows, cols]                   # (N, C*HH*WW, Hout*Wout)
    out = np.matmul(w.reshape(F, -1), x_cols) + b[:, None]       # (N, F, Hout*Wout)
    return out.reshape(N, F, Hout, Wout), (x, w, b, conv_param)


def conv_backward_im2col(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    _check_dout("conv_backward_im2col", dout, (N, F, Hout, Wout))
    chan, rows, cols = _im2col_indices(C, H, W, HH, WW, stride, Hout, Wout)
    x_cols = _pad(x, pad)[:, chan, rows, cols]                   # (N, K, P)
    dout_r = dout.reshape(N, F, Hout * Wout)
    dw = np.einsum("nfp,nkp->fk", dout_r, x_cols).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3))
    dx_cols = np.matmul(w.reshape(F, -1).T, dout_r)               # (N, K, P)
    # col2im: overlapping windows add up; np.add.at does not drop repeats
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dx_cols.dtype)
    np.add.at(dxp, (slice(None), chan, rows, cols), dx_cols)
    return _unpad(dxp, pad), dw, db


def _windows(xp, HH, WW, stride, Hout, Wout):
    """Read-only view (N, C, Hout, Wout, HH, WW) of every window of xp."""
    sN, sC, sH, sW = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, shape=(xp.shape[0], xp.shape[1], Hout, Wout, HH, WW),
        strides=(sN, sC, stride * sH, stride * sW, sH, sW), writeable=False)


def conv_forward_strides(x, w, b, conv_param):
    """Windows as a strided view of the padded input, contracted with w."""
    stride, pad = _conv_params(conv_param)
    F, C, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    win = _windows(_pad(x, pad), HH, WW, stride, Hout, Wout)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))     # (N, Hout, Wout, F)
    out = out.transpose(0, 3, 1, 2) + b[None, :, None, None]
    return np.ascontiguousarray(out), (x, w, b, conv_param)


def conv_backward_strides(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    _check_dout("conv_backward_strides", dout, (N, F, Hout, Wout))
    xp = _pad(x, pad)
    win = _windows(xp, HH, WW, stride, Hout, Wout)
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))   # (F, C, HH, WW)
    db = dout.sum(axis=(0, 2, 3))
    dwin = np.tensordot(dout, w, axes=([1], [0]))                # (N, Hout, Wout, C, HH, WW)
    # col2im as one strided add per kernel offset: no loop over output pixels
    dxp = np.zeros(xp.shape, dtype=dwin.dtype)
    hs, ws = stride * (Hout - 1) + 1, stride * (Wout - 1) + 1
    for kh in range(HH):
        for kw in range(WW):
            dxp[:, :, kh:kh + hs:stride, kw:kw + ws:stride] += \
                dwin[:, :, :, :, kh, kw].transpose(0, 3, 1, 2)
    return _unpad(dxp, pad), dw, db


def max_pool_forward_reshape(x, pool_param):
    """Windows that tile the input exactly (pool_height == pool_width ==
    stride, dividing H and W) are a reshape of x."""
    ph, pw, stride = _pool_params(pool_param)
    N, C, H, W = x.shape
    blocks = x.reshape(N, C, H // ph, ph, W // pw, pw).transpose(0, 1, 2, 4, 3, 5)
    flat = blocks.reshape(N, C, H // ph, W // pw, ph * pw)
    first_max = flat.argmax(axis=4)
    out = np.take_along_axis(flat, first_max[..., None], axis=4)[..., 0]
    return out, (x.shape, pool_param, first_max)


def max_pool_backward_reshape(dout, cache):
    x_shape, pool_param, first_max = cache
    ph, pw, stride = _pool_params(pool_param)
    N, C, H, W = x_shape
    _check_dout("max_pool_backward_reshape", dout, first_max.shape)
    dflat = np.zeros(first_max.shape + (ph * pw,), dtype=dout.dtype)
    np.put_along_axis(dflat, first_max[..., None], dout[..., None], axis=4)
    dx = dflat.reshape(N, C, H // ph, W // pw, ph, pw).transpose(0, 1, 2, 4, 3, 5)
    return dx.reshape(x_shape)


def max_pool_forward_im2col(x, pool_param):
    """Any window and stride: one column of ph*pw values per output."""
    ph, pw, stride = _pool_params(pool_param)
    N, C, H, W = x.shape
    Hout, Wout = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    cols = _windows(x, ph, pw, stride, Hout, Wout).reshape(N, C, Hout, Wout, ph * pw)
    first_max = cols.argmax(axis=4)
    out = np.take_along_axis(cols, first_max[..., None], axis=4)[..., 0]
    return out, (x.shape, pool_param, first_max)


def max_pool_backward_im2col(dout, cache):
    x_shape, pool_param, first_max = cache
    ph, pw, stride = _pool_params(pool_param)
    N, C, H, W = x_shape
    Hout, Wout = first_max.shape[2:]
    _check_dout("max_pool_backward_im2col", dout, first_max.shape)
    # flat index of each output's max in x; overlapping windows may share one,
    # so the scatter is a bincount (a sum), not an assignment
    rows = stride * np.arange(Hout)[:, None] + first_max // pw
    cols = stride * np.arange(Wout)[None, :] + first_max % pw
    planes = np.arange(N * C).reshape(N, C, 1, 1) * (H * W)
    flat = planes + rows * W + cols
    dx = np.bincount(flat.ravel(), weights=dout.ravel(), minlength=N * C * H * W)
    return dx.astype(dout.dtype, copy=False).reshape(x_shape)


def max_pool_forward_fast(x, pool_param):
    """The reshape method when the windows tile x, im2col otherwise; the
    cache records which one ran."""
    ph, pw, stride = _pool_params(pool_param)
    H, W = x.shape[2:]
    if ph == pw == stride and H % ph == 0 and W % pw == 0:
        out, cache = max_pool_forward_reshape(x, pool_param)
        return out, ("reshape", cache)
    out, cache = max_pool_forward_im2col(x, pool_param)
    return out, ("im2col", cache)


def max_pool_backward_fast(dout, cache):
    method, inner = cache
    if method == "reshape":
        return max_pool_backward_reshape(dout, inner)
    return max_pool_backward_im2col(dout, inner)

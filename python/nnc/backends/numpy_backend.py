"""The NumPy reference backend: the ground truth the native backend is
tested against. Plain vectorized NumPy; caches are plain tuples.

Two rules keep its results those of the native backend for every input:
hyperparameters are used as Python floats (a NumPy float64 eps or learning
rate would otherwise turn float32 arithmetic into float64, NumPy's promotion
of array and NumPy scalar), and results are arrays, also of 0-d inputs
(a ufunc of a 0-d array gives a NumPy scalar; ``_a`` turns it back).
"""
import numpy as np

from .. import _checks as ck

_a = np.asarray


# x is reshaped to (N, D) with D = w.shape[0], not -1, which NumPy cannot
# resolve for an empty batch.

def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], w.shape[0]) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], w.shape[0]).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# --- normalization ---


def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    eps = float(bn_param.get("eps", 1e-5))
    momentum = float(bn_param.get("momentum", 0.9))
    D = x.shape[1]
    running_mean = bn_param.get("running_mean")
    running_var = bn_param.get("running_var")
    if running_mean is None:
        running_mean = np.zeros(D, dtype=x.dtype)
    if running_var is None:
        running_var = np.zeros(D, dtype=x.dtype)

    if mode == "train":
        # The staged computational graph that batchnorm_backward walks back.
        mu = x.mean(axis=0)
        xmu = x - mu
        sq = xmu ** 2
        var = sq.mean(axis=0)  # biased: x.var(axis=0)
        sqrtvar = np.sqrt(var + eps)
        ivar = 1.0 / sqrtvar
        xhat = xmu * ivar
        out = gamma * xhat + beta
        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var = momentum * running_var + (1 - momentum) * var
        cache = ("train", xhat, gamma, xmu, ivar, sqrtvar, var, eps)
    else:
        # Constant statistics: the layer is an affine map of x.
        ivar = 1.0 / np.sqrt(running_var + eps)
        xhat = (x - running_mean) * ivar
        out = gamma * xhat + beta
        cache = ("test", xhat, gamma, ivar)

    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def _batchnorm_backward_test(dout, cache):
    _, xhat, gamma, ivar = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = dout * (gamma * ivar)
    return dx, dgamma, dbeta


def batchnorm_backward(dout, cache):
    if cache[0] == "test":
        return _batchnorm_backward_test(dout, cache)
    _, xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    # out = gamma * xhat + beta
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    # xhat = xmu * ivar
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    # ivar = 1 / sqrtvar, sqrtvar = sqrt(var + eps)
    dsqrtvar = -divar / sqrtvar ** 2
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    # var = mean(sq), sq = xmu ** 2
    dsq = np.ones_like(xmu) * dvar / N
    dxmu2 = 2 * xmu * dsq
    # xmu = x - mu, mu = mean(x)
    dx1 = dxmu1 + dxmu2
    dmu = -dx1.sum(axis=0)
    dx2 = np.ones_like(xmu) * dmu / N
    dx = dx1 + dx2
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    if cache[0] == "test":
        return _batchnorm_backward_test(dout, cache)
    _, xhat, gamma, _, ivar, _, _, _ = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = (gamma * ivar / N) * (N * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    eps = float(ln_param.get("eps", 1e-5))
    mu = x.mean(axis=1, keepdims=True)
    xmu = x - mu
    var = (xmu ** 2).mean(axis=1, keepdims=True)
    ivar = 1.0 / np.sqrt(var + eps)
    xhat = xmu * ivar
    out = gamma * xhat + beta
    return out, (xhat, gamma, ivar)


def layernorm_backward(dout, cache):
    xhat, gamma, ivar = cache
    D = xhat.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dx = (ivar / D) * (D * dxhat - dxhat.sum(axis=1, keepdims=True)
                       - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
    return dx, dgamma, dbeta


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    # Every pixel of a channel is one more sample of that channel's feature.
    N, C, H, W = x.shape
    x2 = x.transpose(0, 2, 3, 1).reshape(-1, C)
    out2, cache = batchnorm_forward(x2, gamma, beta, bn_param)
    return out2.reshape(N, H, W, C).transpose(0, 3, 1, 2), (x.shape, cache)


def spatial_batchnorm_backward(dout, cache):
    shape, bn_cache = cache
    N, C, H, W = shape
    dx2, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1).reshape(-1, C),
                                                bn_cache)
    return dx2.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    eps = float(gn_param.get("eps", 1e-5))
    N, C, H, W = x.shape
    xg = x.reshape(N, G, -1)
    mu = xg.mean(axis=2, keepdims=True)
    xmu = xg - mu
    var = (xmu ** 2).mean(axis=2, keepdims=True)
    ivar = 1.0 / np.sqrt(var + eps)
    xhat = (xmu * ivar).reshape(N, C, H, W)
    out = gamma.reshape(1, C, 1, 1) * xhat + beta.reshape(1, C, 1, 1)
    return out, (G, xhat, gamma, beta.shape, ivar)


def spatial_groupnorm_backward(dout, cache):
    G, xhat, gamma, beta_shape, ivar = cache
    N, C, H, W = xhat.shape
    M = (C // G) * H * W
    dbeta = dout.sum(axis=(0, 2, 3)).reshape(beta_shape)
    dgamma = (dout * xhat).sum(axis=(0, 2, 3)).reshape(gamma.shape)
    dxhat = (dout * gamma.reshape(1, C, 1, 1)).reshape(N, G, M)
    xh = xhat.reshape(N, G, M)
    dx = (ivar / M) * (M * dxhat - dxhat.sum(axis=2, keepdims=True)
                       - xh * (dxhat * xh).sum(axis=2, keepdims=True))
    return dx.reshape(N, C, H, W), dgamma, dbeta

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
    # The naive loops are not registry ops (their caches are plain tuples), so
    # the registry's dout check does not reach them.
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


def conv_backward_weights(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = _conv_params(conv_param)
    F, C, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    win = _windows(_pad(x, pad), HH, WW, stride, Hout, Wout)
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))   # (F, C, HH, WW)
    return dw, dout.sum(axis=(0, 2, 3))


def conv_backward_strides(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout, Wout = _conv_out_size(x, w, stride, pad)
    xp = _pad(x, pad)
    dw, db = conv_backward_weights(dout, cache)
    dwin = np.tensordot(dout, w, axes=([1], [0]))                # (N, Hout, Wout, C, HH, WW)
    # col2im as one strided add per kernel offset: no loop over output pixels
    dxp = np.zeros(xp.shape, dtype=dwin.dtype)
    hs, ws = stride * (Hout - 1) + 1, stride * (Wout - 1) + 1
    for kh in range(HH):
        for kw in range(WW):
            dxp[:, :, kh:kh + hs:stride, kw:kw + ws:stride] += \
                dwin[:, :, :, :, kh, kw].transpose(0, 3, 1, 2)
    return _unpad(dxp, pad), dw, db


def conv_pool_forward(x, w, b, conv_param, pool_param):
    """conv_forward_strides, then max_pool_forward_fast."""
    a, conv_cache = conv_forward_strides(x, w, b, conv_param)
    out, pool_cache = max_pool_forward_fast(a, pool_param)
    return out, (conv_cache, pool_cache)


def conv_pool_backward(dout, cache):
    conv_cache, pool_cache = cache
    return conv_backward_strides(max_pool_backward_fast(dout, pool_cache), conv_cache)


def conv_pool_backward_weights(dout, cache):
    conv_cache, pool_cache = cache
    return conv_backward_weights(max_pool_backward_fast(dout, pool_cache), conv_cache)


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

# --- activations, dropout, losses, optimizers (family: elem) ---

def relu_forward(x):
    return _a(np.maximum(0, x)), (x,)


def relu_backward(dout, cache):
    (x,) = cache
    return np.where(x > 0, dout, 0)


def tanh_forward(x):
    out = _a(np.tanh(x))
    return out, (out,)


def tanh_backward(dout, cache):
    (out,) = cache
    return _a(dout * (1 - out ** 2))


def sigmoid_forward(x):
    # exp(-|x|) <= 1 never overflows; for x < 0, sigmoid(x) = z / (1 + z).
    z = np.exp(-np.abs(x))
    out = _a(np.where(x >= 0, 1, z) / (1 + z))
    return out, (out,)


def sigmoid_backward(dout, cache):
    (out,) = cache
    return _a(dout * out * (1 - out))


def dropout_forward(x, dropout_param):
    # p as a Python float: a NumPy float32 p would make (rand < p) / p float32.
    p, mode = float(dropout_param["p"]), dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    if mode == "train":
        mask = ((np.random.rand(*x.shape) < p) / p).astype(x.dtype, copy=False)
        return x * mask, ("train", mask, x.shape)
    return x, ("test", None, x.shape)


def dropout_backward(dout, cache):
    mode, mask, shape = cache
    if mode == "train":
        return dout * mask
    return dout


def svm_loss(x, y):
    N = x.shape[0]
    rows = np.arange(N)
    correct = x[rows, y]
    margins = np.maximum(0, x - correct[:, np.newaxis] + 1.0)
    margins[rows, y] = 0
    loss = np.sum(margins) / N
    positive = margins > 0
    dx = np.zeros_like(x)
    dx[positive] = 1
    dx[rows, y] -= np.sum(positive, axis=1)
    dx /= N
    return float(loss), dx


def softmax_loss(x, y):
    N = x.shape[0]
    rows = np.arange(N)
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = -np.sum(log_probs[rows, y]) / N
    dx = np.exp(log_probs)
    dx[rows, y] -= 1
    dx /= N
    return float(loss), dx


def mse_loss(x, y):
    N = x.shape[0]
    diff = x - y
    loss = 0.5 * np.sum(diff ** 2) / N
    return float(loss), (diff / N).astype(x.dtype, copy=False)


# The update rules are CS231n's optim.py: sgd updates w in place, the others
# return new arrays and store new state arrays in config.

def sgd(w, dw, config):
    w -= float(config["learning_rate"]) * dw
    return w, config


def sgd_momentum(w, dw, config):
    lr, mu = float(config["learning_rate"]), float(config["momentum"])
    v = _a(mu * config["velocity"] - lr * dw)
    next_w = _a(w + v)
    config["velocity"] = v
    return next_w, config


def sgd_nesterov_momentum(w, dw, config):
    lr, mu = float(config["learning_rate"]), float(config["momentum"])
    v_old = config["velocity"]
    v = _a(mu * v_old - lr * dw)
    next_w = _a(w + v + mu * (v - v_old))
    config["velocity"] = v
    return next_w, config


def rmsprop(w, dw, config):
    lr, decay, eps = (float(config[k]) for k in ("learning_rate", "decay_rate", "epsilon"))
    cache = _a(decay * config["cache"] + (1 - decay) * dw ** 2)
    next_w = _a(w - lr * dw / (np.sqrt(cache) + eps))
    config["cache"] = cache
    return next_w, config


def adam(w, dw, config):
    lr, beta1, beta2, eps = (float(config[k]) for k in ("learning_rate", "beta1", "beta2",
                                                        "epsilon"))
    t = config["t"] + 1
    m = _a(beta1 * config["m"] + (1 - beta1) * dw)
    mt = m / float(1 - beta1 ** t)   # float: t may be a NumPy integer
    v = _a(beta2 * config["v"] + (1 - beta2) * (dw ** 2))
    vt = v / float(1 - beta2 ** t)
    next_w = _a(w - lr * mt / (np.sqrt(vt) + eps))
    config["m"], config["v"], config["t"] = m, v, t
    return next_w, config


# --- embeddings, binary cross-entropy ---

def embedding_forward(idx, W):
    ck.index_range("embedding_forward", idx, W.shape[0])
    return W[idx], (idx, W.shape[0])


def embedding_backward(dout, cache):
    idx, V = cache
    D = dout.shape[-1]
    dW = np.zeros((V, D), dtype=dout.dtype)
    # np.add.at adds unbuffered, in index order, so repeated indices all count
    # (reshape by idx.size, not -1, which is ambiguous when D == 0)
    np.add.at(dW, idx.reshape(-1), dout.reshape(idx.size, D))
    return dW


def bce_loss(x, y):
    # max(x, 0) - x*y + log1p(exp(-|x|)) with z = exp(-|x|) <= 1 and
    # q = z / (1 + z) = sigmoid(-|x|); for x >= 0, x*(1 - y) and (1 - y) - q
    # avoid the cancellation of max(x, 0) - x*y and sigmoid(x) - y for y near 1.
    n = x.size
    z = np.exp(-np.abs(x))
    q = z / (1 + z)
    pos = x >= 0
    loss = np.sum(np.where(pos, x * (1 - y), -x * y) + np.log1p(z), dtype=np.float64) / n
    dx = _a(np.where(pos, (1 - y) - q, q - y) / n)
    return float(loss), dx.astype(x.dtype, copy=False)

# --- ops of the object-layer API (nnc.nn): gelu, leaky_relu, bce, NHWC conv and pool ---

_GELU_C = float(np.sqrt(2.0 / np.pi))   # a Python float keeps float32 inputs float32
_GELU_A = 0.044715


def gelu_forward(x):
    # Beyond |x| = 1e4, tanh is +-1 to every digit: the clip changes no value
    # and keeps x**3 from overflowing.
    xc = np.clip(x, -1e4, 1e4)
    t = np.tanh(_GELU_C * (xc + _GELU_A * xc ** 3))
    return _a(0.5 * x * (1 + t)), (xc, t)


def gelu_backward(dout, cache):
    xc, t = cache
    du = _GELU_C * (1 + 3 * _GELU_A * xc ** 2)
    return _a(dout * (0.5 * (1 + t) + 0.5 * xc * (1 - t ** 2) * du))


def leaky_relu_forward(x, negative_slope):
    return np.where(x > 0, x, x * negative_slope), (x, negative_slope)


def leaky_relu_backward(dout, cache):
    x, negative_slope = cache
    return np.where(x > 0, dout, dout * negative_slope)





def _pad_hw(x, pad):
    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x


def _windows_nhwc(xp, HH, WW, stride, Hout, Wout):
    """Read-only view (N, Hout, Wout, HH, WW, C) of every window of xp (N, H, W, C)."""
    sN, sH, sW, sC = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, shape=(xp.shape[0], Hout, Wout, HH, WW, xp.shape[3]),
        strides=(sN, stride * sH, stride * sW, sH, sW, sC), writeable=False)


def _conv_nhwc_geometry(x, w, conv_param):
    stride, pad = _conv_params(conv_param)
    HH, WW = w.shape[:2]
    Hout = 1 + (x.shape[1] + 2 * pad - HH) // stride
    Wout = 1 + (x.shape[2] + 2 * pad - WW) // stride
    return stride, pad, HH, WW, Hout, Wout


def conv_nhwc_forward(x, w, b, conv_param):
    """Windows as a strided view of the padded input, contracted with w over (kh, kw, c)."""
    stride, pad, HH, WW, Hout, Wout = _conv_nhwc_geometry(x, w, conv_param)
    win = _windows_nhwc(_pad_hw(x, pad), HH, WW, stride, Hout, Wout)
    out = np.tensordot(win, w, axes=([3, 4, 5], [0, 1, 2])) + b    # (N, Hout, Wout, F)
    return out, (x, w, b, conv_param)


def conv_nhwc_backward_weights(dout, cache):
    x, w, b, conv_param = cache
    stride, pad, HH, WW, Hout, Wout = _conv_nhwc_geometry(x, w, conv_param)
    win = _windows_nhwc(_pad_hw(x, pad), HH, WW, stride, Hout, Wout)
    dw = np.tensordot(win, dout, axes=([0, 1, 2], [0, 1, 2]))     # (HH, WW, C, F)
    return dw, dout.sum(axis=(0, 1, 2))


def conv_nhwc_backward(dout, cache):
    x, w, b, conv_param = cache
    stride, pad, HH, WW, Hout, Wout = _conv_nhwc_geometry(x, w, conv_param)
    xp = _pad_hw(x, pad)
    dw, db = conv_nhwc_backward_weights(dout, cache)
    dwin = np.tensordot(dout, w, axes=([3], [3]))                 # (N, Hout, Wout, HH, WW, C)
    # col2im as one strided add per kernel offset; padded rows and columns
    # that no window reaches keep a zero gradient
    dxp = np.zeros(xp.shape, dtype=dwin.dtype)
    hs, ws = stride * (Hout - 1) + 1, stride * (Wout - 1) + 1
    for kh in range(HH):
        for kw in range(WW):
            dxp[:, kh:kh + hs:stride, kw:kw + ws:stride, :] += dwin[:, :, :, kh, kw, :]
    if pad:
        dxp = dxp[:, pad:pad + x.shape[1], pad:pad + x.shape[2], :]
    return dxp, dw, db


def max_pool_nhwc_forward(x, pool_param):
    """One column of ph*pw values per output and channel; the first maximum wins."""
    ph, pw, stride = _pool_params(pool_param)
    N, H, W, C = x.shape
    Hout, Wout = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    win = _windows_nhwc(x, ph, pw, stride, Hout, Wout)               # (N, Hout, Wout, ph, pw, C)
    cols = win.transpose(0, 1, 2, 5, 3, 4).reshape(N, Hout, Wout, C, ph * pw)
    first_max = cols.argmax(axis=4)
    out = np.take_along_axis(cols, first_max[..., None], axis=4)[..., 0]
    return out, (x.shape, pool_param, first_max)


def max_pool_nhwc_backward(dout, cache):
    x_shape, pool_param, first_max = cache
    ph, pw, stride = _pool_params(pool_param)
    N, H, W, C = x_shape
    Hout, Wout = first_max.shape[1:3]
    # flat index in x of each output's maximum; overlapping windows may share
    # one, so the scatter is a bincount (a sum), not an assignment
    rows = stride * np.arange(Hout)[:, None, None] + first_max // pw
    cols = stride * np.arange(Wout)[:, None] + first_max % pw
    flat = ((np.arange(N)[:, None, None, None] * H + rows) * W + cols) * C + np.arange(C)
    dx = np.bincount(flat.ravel(), weights=dout.ravel(), minlength=N * H * W * C)
    return dx.astype(dout.dtype, copy=False).reshape(x_shape)


def affine_backward_weights(dout, cache):
    x, w, b = cache
    return x.reshape(x.shape[0], w.shape[0]).T @ dout, dout.sum(axis=0)

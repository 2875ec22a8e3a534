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


# --- normalization ---


def _check_dout(op, dout, shape):
    if dout.shape != shape:
        raise ValueError(f"{op}: dout has shape {dout.shape}, expected {shape} (the shape of x)")


def _mode(param, name):
    mode = param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"{name}['mode'] must be 'train' or 'test', got {mode!r}")
    return mode


def batchnorm_forward(x, gamma, beta, bn_param):
    mode = _mode(bn_param, "bn_param")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
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
    _check_dout("batchnorm_backward", dout, xhat.shape)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = dout * (gamma * ivar)
    return dx, dgamma, dbeta


def batchnorm_backward(dout, cache):
    if cache[0] == "test":
        return _batchnorm_backward_test(dout, cache)
    _, xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    _check_dout("batchnorm_backward", dout, xhat.shape)
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
    _check_dout("batchnorm_backward_alt", dout, xhat.shape)
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = (gamma * ivar / N) * (N * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    xmu = x - mu
    var = (xmu ** 2).mean(axis=1, keepdims=True)
    ivar = 1.0 / np.sqrt(var + eps)
    xhat = xmu * ivar
    out = gamma * xhat + beta
    return out, (xhat, gamma, ivar)


def layernorm_backward(dout, cache):
    xhat, gamma, ivar = cache
    _check_dout("layernorm_backward", dout, xhat.shape)
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
    _check_dout("spatial_batchnorm_backward", dout, shape)
    N, C, H, W = shape
    dx2, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1).reshape(-1, C),
                                                bn_cache)
    return dx2.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    eps = gn_param.get("eps", 1e-5)
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
    _check_dout("spatial_groupnorm_backward", dout, xhat.shape)
    N, C, H, W = xhat.shape
    M = (C // G) * H * W
    dbeta = dout.sum(axis=(0, 2, 3)).reshape(beta_shape)
    dgamma = (dout * xhat).sum(axis=(0, 2, 3)).reshape(gamma.shape)
    dxhat = (dout * gamma.reshape(1, C, 1, 1)).reshape(N, G, M)
    xh = xhat.reshape(N, G, M)
    dx = (ivar / M) * (M * dxhat - dxhat.sum(axis=2, keepdims=True)
                       - xh * (dxhat * xh).sum(axis=2, keepdims=True))
    return dx.reshape(N, C, H, W), dgamma, dbeta

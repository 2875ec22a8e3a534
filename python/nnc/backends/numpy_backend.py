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


# --- activations, dropout, losses, optimizers (family: elem) ---

def _check_dout(op, dout, shape):
    if dout.shape != shape:
        raise ValueError(f"{op}: dout has shape {dout.shape} but the forward input had shape {shape}")


def relu_forward(x):
    return np.maximum(0, x), (x,)


def relu_backward(dout, cache):
    (x,) = cache
    _check_dout("relu_backward", dout, x.shape)
    return np.where(x > 0, dout, 0)


def tanh_forward(x):
    out = np.tanh(x)
    return out, (out,)


def tanh_backward(dout, cache):
    (out,) = cache
    _check_dout("tanh_backward", dout, out.shape)
    return dout * (1 - out ** 2)


def sigmoid_forward(x):
    # exp(-|x|) <= 1 never overflows; for x < 0, sigmoid(x) = z / (1 + z).
    z = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1, z) / (1 + z)
    return out, (out,)


def sigmoid_backward(dout, cache):
    (out,) = cache
    _check_dout("sigmoid_backward", dout, out.shape)
    return dout * out * (1 - out)


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
    _check_dout("dropout_backward", dout, shape)
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
    w -= config["learning_rate"] * dw
    return w, config


def sgd_momentum(w, dw, config):
    v = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
    next_w = w + v
    config["velocity"] = v
    return next_w, config


def sgd_nesterov_momentum(w, dw, config):
    mu = config["momentum"]
    v_old = config["velocity"]
    v = mu * v_old - config["learning_rate"] * dw
    next_w = w + v + mu * (v - v_old)
    config["velocity"] = v
    return next_w, config


def rmsprop(w, dw, config):
    decay = config["decay_rate"]
    cache = decay * config["cache"] + (1 - decay) * dw ** 2
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache
    return next_w, config


def adam(w, dw, config):
    beta1, beta2, t = config["beta1"], config["beta2"], config["t"] + 1
    m = beta1 * config["m"] + (1 - beta1) * dw
    mt = m / (1 - beta1 ** t)
    v = beta2 * config["v"] + (1 - beta2) * (dw ** 2)
    vt = v / (1 - beta2 ** t)
    next_w = w - config["learning_rate"] * mt / (np.sqrt(vt) + config["epsilon"])
    config["m"], config["v"], config["t"] = m, v, t
    return next_w, config

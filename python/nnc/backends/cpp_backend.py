"""The native backend: thin wrappers that call the C++ kernels in ``nnc._nnc``
and pack what they return into CS231n caches. The binding validates dtypes
and shapes; the math is all in cpp/."""
import numpy as np
import scipy_openblas32  # noqa: F401  preloads libscipy_openblas.so (RTLD_GLOBAL) for _nnc

from .. import _nnc


def affine_forward(x, w, b):
    out = _nnc.affine_forward(x.reshape(x.shape[0], -1), w, b)
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx, dw, db = _nnc.affine_backward(dout, x.reshape(x.shape[0], -1), w)
    return dx.reshape(x.shape), dw, db


# --- activations, dropout, losses, optimizers (family: elem) ---

def relu_forward(x):
    return _nnc.relu_forward(x), (x,)


def relu_backward(dout, cache):
    (x,) = cache
    return _nnc.relu_backward(dout, x)


def tanh_forward(x):
    out = _nnc.tanh_forward(x)
    return out, (out,)


def tanh_backward(dout, cache):
    (out,) = cache
    return _nnc.tanh_backward(dout, out)


def sigmoid_forward(x):
    out = _nnc.sigmoid_forward(x)
    return out, (out,)


def sigmoid_backward(dout, cache):
    (out,) = cache
    return _nnc.sigmoid_backward(dout, out)


def _require_float(a, name):
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")


def dropout_forward(x, dropout_param):
    # The mask is drawn from NumPy's global generator exactly as the reference
    # draws np.random.rand(*x.shape): seed the same way, hand the MT19937
    # state to the kernel, and store the state it advanced back, so masks and
    # every later np.random call match the numpy backend bit for bit.
    p, mode = float(dropout_param["p"]), dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    _require_float(x, "x")
    if mode != "train":
        return x, ("test", None, p, x.shape)
    state = np.random.get_state(legacy=False)
    if state["bit_generator"] != "MT19937":
        # np.random.set_bit_generator() installed another generator: draw
        # with NumPy, apply the mask natively (x * keep / p is the backward
        # kernel's formula too).
        keep = (np.random.rand(*x.shape) < p).astype(np.uint8)
        return _nnc.dropout_backward(x, keep, p), ("train", keep, p, x.shape)
    key = np.array(state["state"]["key"], dtype=np.uint32)
    out, keep, pos = _nnc.dropout_forward_train(x, p, key, int(state["state"]["pos"]))
    state["state"]["key"], state["state"]["pos"] = key, pos
    np.random.set_state(state)
    return out, ("train", keep, p, x.shape)


def dropout_backward(dout, cache):
    mode, keep, p, shape = cache
    if mode == "train":
        return _nnc.dropout_backward(dout, keep, p)
    _require_float(dout, "dout")
    if dout.shape != shape:
        raise ValueError(f"dropout_backward: dout has shape {dout.shape} but the forward input "
                         f"had shape {shape}")
    return dout


def _labels(y):
    return y.astype(np.int64, copy=False) if y.dtype.kind in "iu" else y


def svm_loss(x, y):
    return _nnc.svm_loss(x, _labels(y))


def softmax_loss(x, y):
    return _nnc.softmax_loss(x, _labels(y))


def mse_loss(x, y):
    N = x.shape[0]
    loss, dx = _nnc.mse_loss(x.reshape(N, -1), y.reshape(N, -1))
    return loss, dx.reshape(x.shape)


# The kernels update w and the state arrays in place (one fused pass, no
# temporaries); next_w is w itself. The binding refuses (TypeError) arrays it
# could only update through a copy; this says which one and why.

def _in_place(w, config, *state):
    for name, a in [("w", w)] + [(f"config[{k!r}]", config[k]) for k in state]:
        if not (a.flags.c_contiguous and a.flags.writeable):
            raise TypeError(f"{name} must be a C-contiguous, writable array: the cpp backend "
                            f"updates it in place (got shape {a.shape}, strides {a.strides}, "
                            f"writeable={a.flags.writeable})")


def sgd(w, dw, config):
    _in_place(w, config)
    _nnc.sgd(w, dw, float(config["learning_rate"]))
    return w, config


def sgd_momentum(w, dw, config):
    _in_place(w, config, "velocity")
    _nnc.sgd_momentum(w, config["velocity"], dw, float(config["learning_rate"]),
                      float(config["momentum"]))
    return w, config


def sgd_nesterov_momentum(w, dw, config):
    _in_place(w, config, "velocity")
    _nnc.sgd_nesterov_momentum(w, config["velocity"], dw, float(config["learning_rate"]),
                               float(config["momentum"]))
    return w, config


def rmsprop(w, dw, config):
    _in_place(w, config, "cache")
    _nnc.rmsprop(w, config["cache"], dw, float(config["learning_rate"]),
                 float(config["decay_rate"]), float(config["epsilon"]))
    return w, config


def adam(w, dw, config):
    _in_place(w, config, "m", "v")
    beta1, beta2, t = config["beta1"], config["beta2"], config["t"] + 1
    # The bias corrections are the reference's own Python expressions.
    _nnc.adam(w, config["m"], config["v"], dw, float(config["learning_rate"]), float(beta1),
              float(beta2), float(config["epsilon"]), float(1 - beta1 ** t), float(1 - beta2 ** t))
    config["t"] = t
    return w, config

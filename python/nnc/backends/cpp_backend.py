"""The native backend: thin wrappers that call the C++ kernels in ``nnc._nnc``
and pack what they return into CS231n caches. The public functions validated
the arguments (once, for both backends); the bindings re-check only what
protects memory. The math is all in cpp/."""
import ctypes
import importlib.util
import os

import numpy as np


def _preload_openblas():
    """Load scipy-openblas32's library with RTLD_GLOBAL before _nnc, as
    ``import scipy_openblas32`` would, without that module's 50 ms of imports.
    The extension's rpath also points there; this covers layouts it misses."""
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nnc's cpp backend needs the scipy-openblas32 package")
    libdir = os.path.join(spec.submodule_search_locations[0], "lib")
    for name in os.listdir(libdir):
        if name.startswith("libscipy_openblas") and ".so" in name:
            ctypes.CDLL(os.path.join(libdir, name), mode=ctypes.RTLD_GLOBAL)


_preload_openblas()
from .. import _checks, _nnc  # noqa: E402


# x is reshaped to (N, D) with D = w.shape[0], not -1, which NumPy cannot
# resolve for an empty batch.

def affine_forward(x, w, b):
    out = _nnc.affine_forward(x.reshape(x.shape[0], w.shape[0]), w, b)
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx, dw, db = _nnc.affine_backward(dout, x.reshape(x.shape[0], w.shape[0]), w)
    return dx.reshape(x.shape), dw, db


# --- normalization ---
# Forward kernels return float64 (mean, rstd) per normalized group; backward
# uses them with x (xhat is recomputed, never stored).


def _running_stats(bn_param, x, n):
    """bn_param's running statistics (zeros on first use), which the kernel
    updates in place; the public function checked their dtype and layout."""
    return [bn_param[key] if bn_param.get(key) is not None else np.zeros(n, dtype=x.dtype)
            for key in ("running_mean", "running_var")]


def _batchnorm(train_kernel, test_kernel, x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    eps = float(bn_param.get("eps", 1e-5))
    running_mean, running_var = _running_stats(bn_param, x, x.shape[1])
    if mode == "train":
        momentum = float(bn_param.get("momentum", 0.9))
        out, mean, rstd = train_kernel(x, gamma, beta, running_mean, running_var, eps, momentum)
    else:
        out, mean, rstd = test_kernel(x, gamma, beta, running_mean, running_var, eps)
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, (mode == "train", x, gamma, mean, rstd)


def batchnorm_forward(x, gamma, beta, bn_param):
    return _batchnorm(_nnc.batchnorm_forward_train, _nnc.batchnorm_forward_test,
                      x, gamma, beta, bn_param)


def batchnorm_backward(dout, cache):
    train, x, gamma, mean, rstd = cache
    return _nnc.batchnorm_backward(dout, x, gamma, mean, rstd, train)


def batchnorm_backward_alt(dout, cache):
    # The native kernel is the closed form already: both names share it.
    return batchnorm_backward(dout, cache)


def layernorm_forward(x, gamma, beta, ln_param):
    out, mean, rstd = _nnc.layernorm_forward(x, gamma, beta, float(ln_param.get("eps", 1e-5)))
    return out, (x, gamma, mean, rstd)


def layernorm_backward(dout, cache):
    x, gamma, mean, rstd = cache
    return _nnc.layernorm_backward(dout, x, gamma, mean, rstd)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    return _batchnorm(_nnc.spatial_batchnorm_forward_train, _nnc.spatial_batchnorm_forward_test,
                      x, gamma, beta, bn_param)


def spatial_batchnorm_backward(dout, cache):
    train, x, gamma, mean, rstd = cache
    return _nnc.spatial_batchnorm_backward(dout, x, gamma, mean, rstd, train)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    # gamma/beta may be (C,) or CS231n's (1, C, 1, 1): the kernel takes (C,).
    out, mean, rstd = _nnc.groupnorm_forward(x, gamma.reshape(-1), beta.reshape(-1), G,
                                             float(gn_param.get("eps", 1e-5)))
    return out, (G, x, gamma, beta.shape, mean, rstd)


def spatial_groupnorm_backward(dout, cache):
    G, x, gamma, beta_shape, mean, rstd = cache
    dx, dgamma, dbeta = _nnc.groupnorm_backward(dout, x, gamma.reshape(-1), mean, rstd, G)
    return dx, dgamma.reshape(gamma.shape), dbeta.reshape(beta_shape)

# --- convolution and pooling ---
# Every conv name runs the same kernel (im2col + GEMM, or Winograd for 3x3
# stride-1 kernels, as nnc.set_conv_algorithm says, read once per call) and
# every pool name the same pooling kernel. The public functions checked the
# arguments; the binding checks only what keeps memory safe.

from .. import _settings  # noqa: E402


def conv_forward_im2col(x, w, b, conv_param):
    out = _nnc.conv_forward(x, w, b, conv_param["stride"], conv_param["pad"],
                            _settings._conv_algo_code())
    return out, (x, w, b, conv_param)


def conv_backward_im2col(dout, cache):
    x, w, b, conv_param = cache
    return _nnc.conv_backward(dout, x, w, conv_param["stride"], conv_param["pad"],
                              _settings._conv_algo_code())


conv_forward_strides = conv_forward_im2col
conv_backward_strides = conv_backward_im2col


def conv_backward_weights(dout, cache):
    x, w, b, conv_param = cache
    return _nnc.conv_backward_weights(dout, x, w, conv_param["stride"], conv_param["pad"],
                                      _settings._conv_algo_code())


def conv_pool_forward(x, w, b, conv_param, pool_param):
    pool = (pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"])
    out, argmax = _nnc.conv_pool_forward(x, w, b, conv_param["stride"], conv_param["pad"], *pool,
                                         _settings._conv_algo_code())
    return out, (x, w, conv_param, pool, argmax)


def conv_pool_backward(dout, cache):
    x, w, conv_param, pool, argmax = cache
    return _nnc.conv_pool_backward(dout, argmax, x, w, conv_param["stride"], conv_param["pad"],
                                   *pool, _settings._conv_algo_code())


def conv_pool_backward_weights(dout, cache):
    x, w, conv_param, pool, argmax = cache
    return _nnc.conv_pool_backward_weights(dout, argmax, x, w, conv_param["stride"],
                                           conv_param["pad"], *pool, _settings._conv_algo_code())


def max_pool_forward_im2col(x, pool_param):
    out, argmax = _nnc.max_pool_forward(x, pool_param["pool_height"], pool_param["pool_width"],
                                        pool_param["stride"])
    return out, (x.shape, pool_param, argmax)


def max_pool_backward_im2col(dout, cache):
    x_shape, pool_param, argmax = cache
    return _nnc.max_pool_backward(dout, argmax, x_shape[2], x_shape[3])


max_pool_forward_reshape = max_pool_forward_fast = max_pool_forward_im2col
max_pool_backward_reshape = max_pool_backward_fast = max_pool_backward_im2col

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


# The global generator's MT19937 state, as a view (key: uint32[624] over the
# bit generator's own memory; pos: its int next to it) that the kernel
# advances in place. np.random.get_state() and set_state() copy the 624 words
# through Python and took 80 us each, 0.16 ms of every 10,000-value dropout
# (the kernel itself: 25 us). The views come from the documented
# MT19937.ctypes.state_address; the layout (key, then pos) is checked against
# get_state() once per bit generator, and a mismatch keeps the copying path.
_mt_views = (None, None)  # (bit generator, (key, pos) or None)


def _global_mt19937_views():
    """(bit_generator, key, pos) of np.random's global MT19937, or None where
    it is another generator or NumPy predates get_bit_generator (1.25)."""
    global _mt_views
    get = getattr(np.random, "get_bit_generator", None)
    if get is None:
        return None
    bg = get()
    if bg is not _mt_views[0]:
        views = None
        if type(bg) is np.random.MT19937:
            address = bg.ctypes.state_address
            key = np.ctypeslib.as_array((ctypes.c_uint32 * 624).from_address(address))
            pos = ctypes.c_int.from_address(address + key.nbytes)
            state = bg.state["state"]
            if np.array_equal(key, state["key"]) and pos.value == state["pos"]:
                views = key, pos
        _mt_views = (bg, views)
    return None if _mt_views[1] is None else (bg, *_mt_views[1])


def dropout_forward(x, dropout_param):
    # The mask is drawn from NumPy's global generator exactly as the reference
    # draws np.random.rand(*x.shape): seed the same way, let the kernel
    # advance the MT19937 state, so masks and every later np.random call
    # match the numpy backend bit for bit.
    p, mode = float(dropout_param["p"]), dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    if mode != "train":
        return x, ("test", None, p, x.shape)
    views = _global_mt19937_views()
    if views is not None:
        bg, key, pos = views
        with bg.lock:  # NumPy's own draws hold it (and may release the GIL)
            out, keep, pos.value = _nnc.dropout_forward_train(x, p, key, pos.value)
        return out, ("train", keep, p, x.shape)
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
# temporaries); next_w is w itself. The public functions made sure that w and
# the state arrays can be updated in place and that dw has w's dtype.

def sgd(w, dw, config):
    _nnc.sgd(w, dw, float(config["learning_rate"]))
    return w, config


def sgd_momentum(w, dw, config):
    _nnc.sgd_momentum(w, config["velocity"], dw, float(config["learning_rate"]),
                      float(config["momentum"]))
    return w, config


def sgd_nesterov_momentum(w, dw, config):
    _nnc.sgd_nesterov_momentum(w, config["velocity"], dw, float(config["learning_rate"]),
                               float(config["momentum"]))
    return w, config


def rmsprop(w, dw, config):
    _nnc.rmsprop(w, config["cache"], dw, float(config["learning_rate"]),
                 float(config["decay_rate"]), float(config["epsilon"]))
    return w, config


def adam(w, dw, config):
    beta1, beta2, t = float(config["beta1"]), float(config["beta2"]), config["t"] + 1
    # The bias corrections are the reference's own Python expressions (in
    # Python floats, as the reference takes the hyperparameters).
    _nnc.adam(w, config["m"], config["v"], dw, float(config["learning_rate"]), float(beta1),
              float(beta2), float(config["epsilon"]), float(1 - beta1 ** t), float(1 - beta2 ** t))
    config["t"] = t
    return w, config


# --- embeddings, binary cross-entropy ---
# The kernels take int64 indices (converted once here; the cache keeps the
# converted array for the backward pass).

def embedding_forward(idx, W):
    as_int64 = idx.astype(np.int64, copy=False)
    try:   # the kernel checks the range [0, V) as it reads
        out = _nnc.embedding_forward(as_int64, W)
    except IndexError:
        # the reference's message, which names the index in the caller's
        # dtype (uint64 above 2**63 wraps to negative as int64)
        _checks.index_range("embedding_forward", idx, W.shape[0])
        raise
    return out, (as_int64, W.shape[0])


def embedding_backward(dout, cache):
    idx, V = cache
    return _nnc.embedding_backward(dout, idx, V)
# --- ops of the object-layer API (nnc.nn): gelu, leaky_relu, bce, NHWC conv and pool ---
# Caches keep x (the kernels recompute what the backward needs from it).

def gelu_forward(x):
    return _nnc.gelu_forward(x), (x,)


def gelu_backward(dout, cache):
    (x,) = cache
    return _nnc.gelu_backward(dout, x)


def leaky_relu_forward(x, negative_slope):
    return _nnc.leaky_relu_forward(x, negative_slope), (x, negative_slope)


def leaky_relu_backward(dout, cache):
    x, negative_slope = cache
    return _nnc.leaky_relu_backward(dout, x, negative_slope)


def bce_loss(x, y):
    return _nnc.bce_loss(x, y)


def conv_nhwc_forward(x, w, b, conv_param):
    out = _nnc.conv_nhwc_forward(x, w, b, conv_param["stride"], conv_param["pad"],
                                 _settings._conv_algo_code())
    return out, (x, w, b, conv_param)


def conv_nhwc_backward(dout, cache):
    x, w, b, conv_param = cache
    return _nnc.conv_nhwc_backward(dout, x, w, conv_param["stride"], conv_param["pad"],
                                   _settings._conv_algo_code())


def max_pool_nhwc_forward(x, pool_param):
    out, argmax = _nnc.max_pool_nhwc_forward(x, pool_param["pool_height"],
                                             pool_param["pool_width"], pool_param["stride"])
    return out, (x.shape, pool_param, argmax)


def max_pool_nhwc_backward(dout, cache):
    x_shape, pool_param, argmax = cache
    return _nnc.max_pool_nhwc_backward(dout, argmax, x_shape[1], x_shape[2])


def conv_nhwc_backward_weights(dout, cache):
    x, w, b, conv_param = cache
    return _nnc.conv_nhwc_backward_weights(dout, x, w, conv_param["stride"], conv_param["pad"],
                                           _settings._conv_algo_code())


def affine_backward_weights(dout, cache):
    x, w, b = cache
    return _nnc.affine_backward_weights(dout, x.reshape(x.shape[0], w.shape[0]))

"""CS231n layers: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> grads``.

Every function here dispatches at call time to the active backend
(``nnc.set_backend``), so a swap reaches names imported before it. The
``*_naive`` functions are the teaching loops and always run in NumPy.

Array inputs may have any real dtype and follow NumPy's promotion, on both
backends: integers compute in float64, float32 with float64 in float64,
float16 in float32. A backward converts ``dout`` to the forward output's
dtype. Batchnorm's running statistics are updated in place and must already
have the input's (promoted) dtype.
"""

import numpy as np

from . import _checks as ck
from .backends import backward as _backward
from .backends import backward_op, forward_op, op
from .backends import call as _call
from .backends import forward as _forward
from .backends import numpy_backend as _np_backend

# What ``from nnc.layers import *`` gives: CS231n's layers.py names (np
# included, as its star import exports it) and nnc's additions.
__all__ = [
    "np",
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "dropout_forward", "dropout_backward",
    "conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive",
    "svm_loss", "softmax_loss", "mse_loss",
    "embedding_forward", "embedding_backward", "one_hot", "bce_loss", "softmax", "log_softmax",
    "gelu_forward", "gelu_backward", "leaky_relu_forward", "leaky_relu_backward",
]


@forward_op
def affine_forward(x, w, b):
    """Affine (fully connected) layer.

    Inputs:
    - x: (N, d_1, ..., d_k); each example is flattened to D = d_1 * ... * d_k
    - w: (D, M)
    - b: (M,)

    Returns (out, cache): out of shape (N, M), out = x.reshape(N, D) @ w + b.
    """
    x = ck.array(x, "x", min_ndim=1)
    w = ck.array(w, "w", ndim=2)
    b = ck.array(b, "b", ndim=1)
    x, w, b = ck.promote(x, w, b)
    D = 1
    for d in x.shape[1:]:
        D *= d
    if w.shape[0] != D:
        raise ValueError(f"affine_forward: x of shape {x.shape} flattens to D={D} features "
                         f"but w has shape {w.shape}")
    if b.shape[0] != w.shape[1]:
        raise ValueError(f"affine_forward: b has shape {b.shape} but w has shape {w.shape}")
    return _forward(affine_forward, x, w, b)


@backward_op
def affine_backward(dout, cache):
    """Backward pass of ``affine_forward``.

    Inputs:
    - dout: upstream gradient, (N, M)
    - cache: from affine_forward

    Returns (dx, dw, db): dx (N, d_1, ..., d_k), dw (D, M), db (M,).
    """
    return _backward(affine_backward, dout, cache)


# --- normalization ---


def _norm_inputs(x, gamma, beta, ndim):
    """x of the layer's ndim with a non-empty batch; gamma and beta arrays.
    Returns the three in their compute dtype."""
    x = ck.array(x, "x", ndim=ndim)
    ck.batch(x)
    gamma = ck.array(gamma, "gamma")
    beta = ck.array(beta, "beta")
    return ck.promote(x, gamma, beta)


@forward_op
def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass for batch normalization.

    In train mode each feature is normalized with the minibatch mean and
    (biased, uncorrected) variance, then scaled and shifted:
    out = gamma * (x - mean) / sqrt(var + eps) + beta. Exponentially decaying
    running averages of the statistics are kept in bn_param,

        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var = momentum * running_var + (1 - momentum) * sample_var

    and test mode normalizes with them instead of the batch statistics.

    Inputs:
    - x: data of shape (N, D)
    - gamma: scale parameter of shape (D,)
    - beta: shift parameter of shape (D,)
    - bn_param: dict with the keys
      - mode: 'train' or 'test'; required
      - eps: constant for numeric stability (default 1e-5)
      - momentum: constant for the running mean / variance (default 0.9)
      - running_mean: (D,) running mean of the features; created as zeros of
        x's dtype on first use and updated in the dict
      - running_var: (D,) running variance of the features; likewise
      The cpp backend updates running_mean/running_var in place, so they must
      be C-contiguous writable arrays of x's dtype.

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: values needed in the backward pass
    """
    x, gamma, beta = _norm_inputs(x, gamma, beta, 2)
    D = x.shape[1]
    ck.vector(gamma, "gamma", D, f"(one per feature of x, shape {x.shape})")
    ck.vector(beta, "beta", D, f"(one per feature of x, shape {x.shape})")
    ck.bn_param(bn_param, "bn_param", D, x.dtype)
    return _forward(batchnorm_forward, x, gamma, beta, bn_param)


@backward_op
def batchnorm_backward(dout, cache):
    """Backward pass for batch normalization, walking the computational graph
    of the forward pass stage by stage (the cpp backend uses the closed form).

    A cache from test mode backpropagates through the affine map the layer
    then is (the running statistics are constants).

    Inputs:
    - dout: upstream derivatives, of shape (N, D)
    - cache: from batchnorm_forward

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, D)
    - dgamma: gradient with respect to gamma, of shape (D,)
    - dbeta: gradient with respect to beta, of shape (D,)
    """
    return _backward(batchnorm_backward, dout, cache)


@backward_op
def batchnorm_backward_alt(dout, cache):
    """Backward pass for batch normalization in the simplified closed form

        dx = gamma / sqrt(var + eps) * (dout - mean(dout) - xhat * mean(dout * xhat))

    (means over the batch, xhat the normalized x). Same inputs and outputs as
    batchnorm_backward: dout (N, D) -> dx (N, D), dgamma (D,), dbeta (D,).
    """
    return _backward(batchnorm_backward_alt, dout, cache)


@forward_op
def layernorm_forward(x, gamma, beta, ln_param):
    """Forward pass for layer normalization.

    Each data point (row) is normalized with its own mean and (biased)
    variance over its D features, then scaled and shifted per feature. Train
    and test time behave the same and no running statistics are kept.

    Inputs:
    - x: data of shape (N, D)
    - gamma: scale parameter of shape (D,)
    - beta: shift parameter of shape (D,)
    - ln_param: dict with the key
      - eps: constant for numeric stability (default 1e-5)
      (other keys, such as 'mode', are ignored)

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: values needed in the backward pass
    """
    x, gamma, beta = _norm_inputs(x, gamma, beta, 2)
    D = x.shape[1]
    if D == 0:
        raise ValueError(f"layernorm_forward: x has no features to normalize (shape {x.shape})")
    ck.vector(gamma, "gamma", D, f"(one per feature of x, shape {x.shape})")
    ck.vector(beta, "beta", D, f"(one per feature of x, shape {x.shape})")
    ck.param_dict(ln_param, "ln_param")
    ck.eps_param(ln_param, "ln_param")
    return _forward(layernorm_forward, x, gamma, beta, ln_param)


@backward_op
def layernorm_backward(dout, cache):
    """Backward pass for layer normalization.

    Inputs:
    - dout: upstream derivatives, of shape (N, D)
    - cache: from layernorm_forward

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, D)
    - dgamma: gradient with respect to gamma, of shape (D,)
    - dbeta: gradient with respect to beta, of shape (D,)
    """
    return _backward(layernorm_backward, dout, cache)


def _check_planes(op, x):
    if x.shape[1] * x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"{op}: x has no channels or pixels to normalize (shape {x.shape})")


@forward_op
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass for spatial batch normalization.

    Each channel is normalized over the batch and every spatial position
    (statistics over axes (0, 2, 3)); otherwise as batchnorm_forward, with
    running statistics of shape (C,).

    Inputs:
    - x: input data of shape (N, C, H, W)
    - gamma: scale parameter of shape (C,)
    - beta: shift parameter of shape (C,)
    - bn_param: dict with the keys
      - mode: 'train' or 'test'; required
      - eps: constant for numeric stability (default 1e-5)
      - momentum: constant for the running mean / variance (default 0.9)
      - running_mean: (C,) running mean of the channels (zeros on first use)
      - running_var: (C,) running variance of the channels (zeros on first use)

    Returns a tuple of:
    - out: output data, of shape (N, C, H, W)
    - cache: values needed for the backward pass
    """
    x, gamma, beta = _norm_inputs(x, gamma, beta, 4)
    _check_planes("spatial_batchnorm_forward", x)
    C = x.shape[1]
    ck.vector(gamma, "gamma", C, f"(one per channel of x, shape {x.shape})")
    ck.vector(beta, "beta", C, f"(one per channel of x, shape {x.shape})")
    ck.bn_param(bn_param, "bn_param", C, x.dtype)
    return _forward(spatial_batchnorm_forward, x, gamma, beta, bn_param)


@backward_op
def spatial_batchnorm_backward(dout, cache):
    """Backward pass for spatial batch normalization.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H, W)
    - cache: from spatial_batchnorm_forward

    Returns a tuple of:
    - dx: gradient with respect to inputs, of shape (N, C, H, W)
    - dgamma: gradient with respect to scale parameter, of shape (C,)
    - dbeta: gradient with respect to shift parameter, of shape (C,)
    """
    return _backward(spatial_batchnorm_backward, dout, cache)


@forward_op
def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Forward pass for spatial group normalization.

    The C channels are split into G groups of C // G adjacent channels; each
    (data point, group) is normalized with the mean and (biased) variance of
    its C // G * H * W values, then every channel is scaled and shifted by
    its own gamma and beta. Train and test time behave the same.

    Inputs:
    - x: input data of shape (N, C, H, W)
    - gamma: scale parameter of shape (1, C, 1, 1) (or (C,))
    - beta: shift parameter of shape (1, C, 1, 1) (or (C,))
    - G: integer number of groups to split into, should be a divisor of C
    - gn_param: dict with the key
      - eps: constant for numeric stability (default 1e-5)

    Returns a tuple of:
    - out: output data, of shape (N, C, H, W)
    - cache: values needed for the backward pass
    """
    x, gamma, beta = _norm_inputs(x, gamma, beta, 4)
    _check_planes("spatial_groupnorm_forward", x)
    C = x.shape[1]
    G = ck.positive_int(G, "G")
    if C % G != 0:
        raise ValueError(f"spatial_groupnorm_forward: G={G} groups do not divide the C={C} "
                         f"channels of x (shape {x.shape})")
    for a, name in ((gamma, "gamma"), (beta, "beta")):
        if a.shape not in ((1, C, 1, 1), (C,)):
            raise ValueError(f"{name} has shape {a.shape}, expected (1, {C}, 1, 1) or ({C},) "
                             f"(one per channel of x, shape {x.shape})")
    ck.param_dict(gn_param, "gn_param")
    ck.eps_param(gn_param, "gn_param")
    return _forward(spatial_groupnorm_forward, x, gamma, beta, G, gn_param)


@backward_op
def spatial_groupnorm_backward(dout, cache):
    """Backward pass for spatial group normalization.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H, W)
    - cache: from spatial_groupnorm_forward

    Returns a tuple of:
    - dx: gradient with respect to inputs, of shape (N, C, H, W)
    - dgamma: gradient with respect to scale parameter, of gamma's shape
      ((1, C, 1, 1) or (C,))
    - dbeta: gradient with respect to shift parameter, of beta's shape
    """
    return _backward(spatial_groupnorm_backward, dout, cache)

# --- convolution and pooling (naive) ---
# The naive functions are the CS231n teaching loops and always run in NumPy.
# The checks below are shared with nnc.fast_layers, so every conv and pool
# function rejects the same inputs with the same messages on both backends.

def _param_int(params, key, pname, minimum):
    if key not in params:
        raise ValueError(f"{pname} is missing the key {key!r} (got keys {sorted(params)})")
    v = params[key]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{pname}[{key!r}] must be an int, got {v!r}")
    if v < minimum:
        raise ValueError(f"{pname}[{key!r}] must be >= {minimum}, got {v}")
    return int(v)


def _params_dict(params, pname):
    if not isinstance(params, dict):
        raise TypeError(f"{pname} must be a dict, got {type(params).__name__}")
    return params


# The axis order of x and w in each layout, spelled out in messages for the
# channels-last functions (whose users may not expect it).
_X_AXES = {"NCHW": "", "NHWC": " (N, H, W, C)"}
_W_AXES = {"NCHW": "", "NHWC": " (HH, WW, C, F)"}


def _check_conv(fn, x, w, b, conv_param, layout="NCHW"):
    """Validates a conv forward call; returns x, w, b in their compute dtype.
    NCHW: x (N, C, H, W), w (F, C, HH, WW), and the filter must tile the
    padded input (CS231n's assert). NHWC: x (N, H, W, C), w (HH, WW, C, F),
    and output sizes round down."""
    x = ck.array(x, "x", ndim=4)
    w = ck.array(w, "w", ndim=4)
    b = ck.array(b, "b", ndim=1)
    _params_dict(conv_param, "conv_param")
    stride = _param_int(conv_param, "stride", "conv_param", 1)
    pad = _param_int(conv_param, "pad", "conv_param", 0)
    ck.batch(x)
    if layout == "NHWC":
        (_, H, W, C), (HH, WW, Cw, F) = x.shape, w.shape
    else:
        (_, C, H, W), (F, Cw, HH, WW) = x.shape, w.shape
    xa, wa = _X_AXES[layout], _W_AXES[layout]
    if 0 in x.shape or 0 in w.shape:
        raise ValueError(f"{fn}: x of shape {x.shape} and w of shape {w.shape} must have no "
                         f"zero-size dimension")
    if Cw != C:
        raise ValueError(f"{fn}: x has shape {x.shape}{xa} with C={C} channels but w has shape "
                         f"{w.shape}{wa} with C={Cw}")
    if b.shape != (F,):
        raise ValueError(f"{fn}: b has shape {b.shape} but w has shape {w.shape}; "
                         f"b must have shape ({F},)")
    for name, size, k in (("H", H, HH), ("W", W, WW)):
        if k > size + 2 * pad:
            raise ValueError(f"{fn}: the {HH}x{WW} filter (w shape {w.shape}) does not fit in "
                             f"the padded input: {name}={size} + 2*pad={2 * pad} < {k}")
        if layout == "NCHW" and (size + 2 * pad - k) % stride:
            raise ValueError(f"{fn}: the filter does not tile the input: ({name}={size} + "
                             f"2*pad={2 * pad} - {k}) % stride={stride} != 0 "
                             f"(x shape {x.shape}, w shape {w.shape})")
    return ck.promote(x, w, b)


def _check_pool(fn, x, pool_param, layout="NCHW"):
    """Validates a pool forward call; returns (x in its compute dtype,
    pool_height, pool_width, stride). NCHW: x (N, C, H, W), and the window
    must tile the input; NHWC: x (N, H, W, C), output sizes round down."""
    x = ck.array(x, "x", ndim=4)
    _params_dict(pool_param, "pool_param")
    ck.batch(x)
    if layout == "NHWC":
        _, H, W, C = x.shape
    else:
        _, C, H, W = x.shape
    xa = _X_AXES[layout]
    if C == 0:
        raise ValueError(f"{fn}: x of shape {x.shape}{xa} has no channels")
    ph, pw, stride = _check_pool_window(fn, pool_param, H, W, f"x of shape {x.shape}{xa}",
                                        tile=layout == "NCHW")
    return ck.promote(x)[0], ph, pw, stride


def _check_pool_window(fn, pool_param, H, W, what, tile=True):
    """pool_height, pool_width and stride of the dict pool_param, checked
    against an H x W input (`what` names it in the messages): the window must
    fit, and with `tile` it must tile the input."""
    _params_dict(pool_param, "pool_param")
    ph = _param_int(pool_param, "pool_height", "pool_param", 1)
    pw = _param_int(pool_param, "pool_width", "pool_param", 1)
    stride = _param_int(pool_param, "stride", "pool_param", 1)
    for name, size, k in (("H", H, ph), ("W", W, pw)):
        if k > size:
            raise ValueError(f"{fn}: the {ph}x{pw} pool window does not fit in {what}: "
                             f"{name}={size} < {k}")
        if tile and (size - k) % stride:
            raise ValueError(f"{fn}: the pool window does not tile {what}: ({name}={size} - "
                             f"{k}) % stride={stride} != 0")
    return ph, pw, stride


def _check_naive_cache(fn, cache, length):
    if not isinstance(cache, tuple) or len(cache) != length:
        raise TypeError(f"{fn}: cache must be the cache returned by the matching forward "
                        f"function, got {type(cache).__name__}")


def conv_forward_naive(x, w, b, conv_param):
    """Convolutional layer (cross-correlation, zero padding), as loops.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, HH, WW)
    - b: (F,)
    - conv_param: dict with 'stride' (int >= 1) and 'pad' (int >= 0); the
      filter must tile the padded input: (H + 2*pad - HH) % stride == 0, same for W.

    Returns (out, cache): out (N, F, H', W') with H' = 1 + (H + 2*pad - HH) // stride,
    W' = 1 + (W + 2*pad - WW) // stride; cache = (x, w, b, conv_param).
    """
    x, w, b = _check_conv("conv_forward_naive", x, w, b, conv_param)
    return _np_backend.conv_forward_naive(x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Backward pass of ``conv_forward_naive``.

    Inputs:
    - dout: (N, F, H', W')
    - cache: from conv_forward_naive

    Returns (dx, dw, db): dx (N, C, H, W), dw (F, C, HH, WW), db (F,).
    """
    dout = ck.array(dout, "dout", ndim=4)
    _check_naive_cache("conv_backward_naive", cache, 4)
    return _np_backend.conv_backward_naive(dout, cache)


def max_pool_forward_naive(x, pool_param):
    """Max-pooling layer, as loops. Ties go to the first maximum of a window
    in row-major order (as np.argmax).

    Inputs:
    - x: (N, C, H, W)
    - pool_param: dict with 'pool_height', 'pool_width', 'stride' (ints >= 1);
      the window must tile the input: (H - pool_height) % stride == 0, same for W.

    Returns (out, cache): out (N, C, H', W') with H' = 1 + (H - pool_height) // stride,
    W' = 1 + (W - pool_width) // stride; cache = (x, pool_param).
    """
    x = _check_pool("max_pool_forward_naive", x, pool_param)[0]
    return _np_backend.max_pool_forward_naive(x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Backward pass of ``max_pool_forward_naive``: each output's gradient goes
    to the first maximum of its window (summed where windows overlap).

    Inputs:
    - dout: (N, C, H', W')
    - cache: from max_pool_forward_naive

    Returns dx: (N, C, H, W).
    """
    dout = ck.array(dout, "dout", ndim=4)
    _check_naive_cache("max_pool_backward_naive", cache, 2)
    return _np_backend.max_pool_backward_naive(dout, cache)

# --- activations, dropout, losses ---

@forward_op
def relu_forward(x):
    """Rectified linear unit.

    Input:
    - x: array of any shape

    Returns (out, cache): out = max(0, x), same shape and dtype as x.
    """
    x = ck.promote(ck.array(x, "x"))[0]
    return _forward(relu_forward, x)


@backward_op
def relu_backward(dout, cache):
    """Backward pass of ``relu_forward``.

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from relu_forward

    Returns dx: dout where x > 0, else 0.
    """
    return _backward(relu_backward, dout, cache)


@forward_op
def tanh_forward(x):
    """Hyperbolic tangent.

    Input:
    - x: array of any shape

    Returns (out, cache): out = tanh(x), same shape and dtype as x.
    """
    x = ck.promote(ck.array(x, "x"))[0]
    return _forward(tanh_forward, x)


@backward_op
def tanh_backward(dout, cache):
    """Backward pass of ``tanh_forward``: dx = dout * (1 - out**2).

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from tanh_forward

    Returns dx, same shape as x.
    """
    return _backward(tanh_backward, dout, cache)


@forward_op
def sigmoid_forward(x):
    """Logistic sigmoid, numerically stable: no overflow warning for any x.

    Input:
    - x: array of any shape

    Returns (out, cache): out = 1 / (1 + exp(-x)), same shape and dtype as x.
    """
    x = ck.promote(ck.array(x, "x"))[0]
    return _forward(sigmoid_forward, x)


@backward_op
def sigmoid_backward(dout, cache):
    """Backward pass of ``sigmoid_forward``: dx = dout * out * (1 - out).

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from sigmoid_forward

    Returns dx, same shape as x.
    """
    return _backward(sigmoid_backward, dout, cache)


@forward_op
def dropout_forward(x, dropout_param):
    """Inverted dropout.

    Inputs:
    - x: array of shape (N, ...), N > 0
    - dropout_param: dict with
      - 'p': probability of KEEPING each value, in (0, 1]
      - 'mode': 'train' or 'test'
      - 'seed' (optional): if present, np.random.seed(seed) is called first
        (also in test mode), which makes the mask reproducible

    Train mode draws mask = (np.random.rand(*x.shape) < p) / p (cast to
    x.dtype) from NumPy's global generator and returns out = x * mask. Both
    backends draw the same mask and leave np.random in the same state, so the
    same seed gives the same results on either backend. Test mode returns x
    itself (not a copy), as CS231n does.

    Returns (out, cache): out has x's shape and dtype.
    """
    ck.dropout_param(dropout_param)
    x = ck.array(x, "x", min_ndim=1)
    ck.batch(x)
    x = ck.promote(x)[0]
    return _forward(dropout_forward, x, dropout_param)


@backward_op
def dropout_backward(dout, cache):
    """Backward pass of ``dropout_forward``.

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from dropout_forward

    Returns dx: dout * mask in train mode; dout itself in test mode.
    """
    return _backward(dropout_backward, dout, cache)


@op
def svm_loss(x, y):
    """Multiclass SVM (hinge) loss with margin 1, averaged over the batch.

    Inputs:
    - x: scores (N, C), N > 0
    - y: integer labels (N,), 0 <= y[i] < C

    Returns (loss, dx): loss a Python float, dx (N, C) in x's dtype.
    """
    x = ck.array(x, "x", ndim=2)
    ck.batch(x)
    y = ck.labels(y, x.shape[0], x.shape[1])
    x = ck.promote(x)[0]
    return _call(svm_loss, x, y)


@op
def softmax_loss(x, y):
    """Softmax cross-entropy loss, averaged over the batch, computed by
    log-sum-exp (any finite logits, however large, give a finite loss).

    Inputs:
    - x: logits (N, C), N > 0
    - y: integer labels (N,), 0 <= y[i] < C

    Returns (loss, dx): loss a Python float, dx (N, C) in x's dtype.
    """
    x = ck.array(x, "x", ndim=2)
    ck.batch(x)
    y = ck.labels(y, x.shape[0], x.shape[1])
    x = ck.promote(x)[0]
    return _call(softmax_loss, x, y)


@op
def mse_loss(x, y):
    """Mean squared error for regression, halved and averaged over the batch
    (the CS231n-style homework convention):
    loss = 0.5 * sum((x - y)**2) / N, dx = (x - y) / N.

    Inputs:
    - x: predictions (N, ...), N > 0
    - y: targets, same shape as x

    Returns (loss, dx): loss a Python float, dx of x's shape and dtype.
    """
    x = ck.array(x, "x", min_ndim=1)
    ck.batch(x)
    y = ck.array(y, "y")
    ck.same_shape(x, y, "x", "y")
    x, y = ck.promote(x, y)
    return _call(mse_loss, x, y)

# --- embeddings, binary cross-entropy, softmax ---


def one_hot(idx, V, dtype=np.float64):
    """One-hot encoding of integer indices.

    Inputs:
    - idx: integer array of any shape (d_1, ..., d_k), values in [0, V)
    - V: number of classes (rows of an embedding matrix), an int >= 1
    - dtype: dtype of the result

    Returns out of shape (d_1, ..., d_k, V): out[..., v] = 1 where idx == v, else 0.
    So one_hot(idx, V) @ W == embedding_forward(idx, W)[0] for W of shape (V, D).
    """
    V = ck.positive_int(V, "V")
    idx = ck.index_range("one_hot", ck.indices("one_hot", idx), V)
    out = np.zeros(idx.shape + (V,), dtype=dtype)
    np.put_along_axis(out, idx[..., np.newaxis].astype(np.intp), 1, axis=-1)
    return out


@forward_op
def embedding_forward(idx, W):
    """Word embedding lookup: each index selects a row of W.

    Inputs:
    - idx: integer array (N, T) of indices in [0, V), any integer dtype
      (N sequences of T words, say)
    - W: (V, D) embedding matrix, one D-dimensional vector per index

    Returns (out, cache): out (N, T, D) with out[n, t] = W[idx[n, t]].
    Raises IndexError for an index outside [0, V), TypeError for
    non-integer indices.
    """
    W = ck.array(W, "W", ndim=2)
    W = ck.promote(W)[0]
    # the range [0, V) is checked by the backend (the cpp kernel checks it as it
    # converts, so a second pass here would double a small lookup's checks)
    idx = ck.indices("embedding_forward", idx, ndim=2)
    return _forward(embedding_forward, idx, W)


@backward_op
def embedding_backward(dout, cache):
    """Backward pass of ``embedding_forward``: a scatter-add of the upstream
    rows into the rows of W they were read from, summed where an index
    repeats. Deterministic: every row is summed in token order, on both
    backends and for any thread count.

    Inputs:
    - dout: upstream gradient (N, T, D)
    - cache: from embedding_forward

    Returns dW (V, D): dW[v] = sum of dout[n, t] over all (n, t) with
    idx[n, t] == v (zero rows for indices that do not occur). idx gets no
    gradient.
    """
    return _backward(embedding_backward, dout, cache)
# --- ops of the object-layer API (nnc.nn): gelu, leaky_relu, bce_loss ---


@forward_op
def gelu_forward(x):
    """GELU in its tanh approximation (the CSCI566 course's, and PyTorch's
    ``GELU(approximate='tanh')``):
    out = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3))).

    Input:
    - x: floating-point array of any shape

    Returns (out, cache): out of x's shape and dtype.
    """
    x = ck.promote(ck.array(x, "x"))[0]
    return _forward(gelu_forward, x)


@backward_op
def gelu_backward(dout, cache):
    """Backward pass of ``gelu_forward``, the derivative of the same tanh
    approximation: with t = tanh(u), u = sqrt(2/pi) * (x + 0.044715 * x**3),
    dx = dout * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * sqrt(2/pi) * (1 + 3 * 0.044715 * x**2)).

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from gelu_forward

    Returns dx, same shape as x.
    """
    return _backward(gelu_backward, dout, cache)


@forward_op
def leaky_relu_forward(x, negative_slope=0.01):
    """Leaky rectified linear unit: out = x where x > 0, else negative_slope * x.

    Inputs:
    - x: floating-point array of any shape
    - negative_slope: finite real number, the slope for x <= 0 (default 0.01)

    Returns (out, cache): out of x's shape and dtype.
    """
    x = ck.promote(ck.array(x, "x"))[0]
    slope = ck.real(negative_slope, "negative_slope")
    if not np.isfinite(slope):
        raise ValueError(f"negative_slope must be a finite number, got {negative_slope!r}")
    return _forward(leaky_relu_forward, x, slope)


@backward_op
def leaky_relu_backward(dout, cache):
    """Backward pass of ``leaky_relu_forward``.

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from leaky_relu_forward

    Returns dx: dout where x > 0, else negative_slope * dout.
    """
    return _backward(leaky_relu_backward, dout, cache)


@op
def bce_loss(x, y):
    """Binary cross-entropy on logits (sigmoid + cross-entropy in one,
    numerically stable), averaged over ALL elements of x:

        loss = mean(max(x, 0) - x * y + log(1 + exp(-|x|)))
        dx = (sigmoid(x) - y) / x.size

    Finite, without overflow or log(0), for logits of any size (1e4 and beyond).

    Inputs:
    - x: logits, floating point, any non-empty shape
    - y: targets in [0, 1] (probabilities or 0/1 labels), same shape as x

    Returns (loss, dx): loss a Python float, dx of x's shape and dtype.
    """
    x = ck.array(x, "x")
    if x.size == 0:
        raise ValueError(f"bce_loss: x is empty (shape {x.shape})")
    y = ck.array(y, "y")
    ck.same_shape(x, y, "x", "y")
    inside = (y >= 0) & (y <= 1)   # False for NaN too
    if not inside.all():
        where = tuple(int(i) for i in np.argwhere(~inside)[0])
        raise ValueError(f"bce_loss: y must hold targets in [0, 1], got y{list(where)} = "
                         f"{y[where]}")
    x, y = ck.promote(x, y)
    return _call(bce_loss, x, y)


def _last_axis(fn, x):
    x = ck.array(x, "x", min_ndim=1)
    if x.shape[-1] == 0:
        raise ValueError(f"{fn}: x has an empty last axis (shape {x.shape})")
    return ck.promote(x)[0]


def softmax(x):
    """Softmax over the last axis, shifted by the row maximum, so logits of
    any finite size (1e4 and beyond) give no overflow.

    Input:
    - x: logits, floating point, shape (..., C) with C > 0

    Returns probs of x's shape and (compute) dtype; each row sums to 1.
    A plain NumPy function on both backends (not an op: it has no backward;
    training uses softmax_loss, which computes it natively).
    """
    x = _last_axis("softmax", x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    """Log of the softmax over the last axis, by log-sum-exp: exact for
    logits of any finite size, where log(softmax(x)) would give -inf for
    probabilities that underflow.

    Input:
    - x: logits, floating point, shape (..., C) with C > 0

    Returns log-probabilities of x's shape and (compute) dtype.
    """
    x = _last_axis("log_softmax", x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@op
def affine_backward_weights(dout, cache):
    """The weight gradients of ``affine_forward`` without dx, for a network's
    first layer, whose input gradient nothing uses (PyTorch skips it likewise
    for an input that does not require grad). Checked like a backward:
    ``dout`` against the forward's output, ``cache`` against the backend.

    Inputs:
    - dout: upstream gradient, (N, M)
    - cache: from affine_forward

    Returns (dw, db): dw (D, M), db (M,).
    """
    return _backward(affine_backward_weights, dout, cache)

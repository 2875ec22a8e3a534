"""CS231n layers: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> grads``.

Every function here dispatches at call time to the active backend
(``nnc.set_backend``), so a swap reaches names imported before it. The
``*_naive`` functions are the teaching loops and always run in NumPy.
"""
import numpy as np

from . import _checks as ck
from .backends import numpy_backend as _np_backend
from .backends import backward as _backward
from .backends import forward as _forward


def affine_forward(x, w, b):
    """Affine (fully connected) layer.

    Inputs:
    - x: (N, d_1, ..., d_k); each example is flattened to D = d_1 * ... * d_k
    - w: (D, M)
    - b: (M,)

    Returns (out, cache): out of shape (N, M), out = x.reshape(N, D) @ w + b.
    """
    ck.array(x, "x", min_ndim=1)
    ck.array(w, "w", ndim=2)
    ck.array(b, "b", ndim=1)
    D = 1
    for d in x.shape[1:]:
        D *= d
    if w.shape[0] != D:
        raise ValueError(f"affine_forward: x of shape {x.shape} flattens to D={D} features "
                         f"but w has shape {w.shape}")
    if b.shape[0] != w.shape[1]:
        raise ValueError(f"affine_forward: b has shape {b.shape} but w has shape {w.shape}")
    return _forward("affine_forward", x, w, b)


def affine_backward(dout, cache):
    """Backward pass of ``affine_forward``.

    Inputs:
    - dout: upstream gradient, (N, M)
    - cache: from affine_forward

    Returns (dx, dw, db): dx (N, d_1, ..., d_k), dw (D, M), db (M,).
    """
    ck.array(dout, "dout", ndim=2)
    return _backward("affine_backward", dout, cache)


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


def _check_conv(fn, x, w, b, conv_param):
    """Validates a conv forward call; returns (stride, pad, Hout, Wout)."""
    ck.array(x, "x", ndim=4)
    ck.array(w, "w", ndim=4)
    ck.array(b, "b", ndim=1)
    _params_dict(conv_param, "conv_param")
    stride = _param_int(conv_param, "stride", "conv_param", 1)
    pad = _param_int(conv_param, "pad", "conv_param", 0)
    ck.batch(x)
    N, C, H, W = x.shape
    F, Cw, HH, WW = w.shape
    if 0 in x.shape or 0 in w.shape:
        raise ValueError(f"{fn}: x of shape {x.shape} and w of shape {w.shape} must have no "
                         f"zero-size dimension")
    if Cw != C:
        raise ValueError(f"{fn}: x has shape {x.shape} with C={C} channels but w has shape "
                         f"{w.shape} with {Cw}")
    if b.shape != (F,):
        raise ValueError(f"{fn}: b has shape {b.shape} but w has shape {w.shape}; "
                         f"b must have shape ({F},)")
    for name, size, k in (("H", H, HH), ("W", W, WW)):
        if k > size + 2 * pad:
            raise ValueError(f"{fn}: the {HH}x{WW} filter (w shape {w.shape}) does not fit in "
                             f"the padded input: {name}={size} + 2*pad={2 * pad} < {k}")
        if (size + 2 * pad - k) % stride:
            raise ValueError(f"{fn}: the filter does not tile the input: ({name}={size} + "
                             f"2*pad={2 * pad} - {k}) % stride={stride} != 0 "
                             f"(x shape {x.shape}, w shape {w.shape})")
    return stride, pad, 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride


def _check_pool(fn, x, pool_param):
    """Validates a pool forward call; returns (pool_height, pool_width, stride)."""
    ck.array(x, "x", ndim=4)
    _params_dict(pool_param, "pool_param")
    ph = _param_int(pool_param, "pool_height", "pool_param", 1)
    pw = _param_int(pool_param, "pool_width", "pool_param", 1)
    stride = _param_int(pool_param, "stride", "pool_param", 1)
    ck.batch(x)
    N, C, H, W = x.shape
    if C == 0:
        raise ValueError(f"{fn}: x of shape {x.shape} has no channels")
    for name, size, k in (("H", H, ph), ("W", W, pw)):
        if k > size:
            raise ValueError(f"{fn}: the {ph}x{pw} pool window does not fit in x of shape "
                             f"{x.shape}: {name}={size} < {k}")
        if (size - k) % stride:
            raise ValueError(f"{fn}: the pool window does not tile the input: ({name}={size} - "
                             f"{k}) % stride={stride} != 0 (x shape {x.shape})")
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
    _check_conv("conv_forward_naive", x, w, b, conv_param)
    return _np_backend.conv_forward_naive(x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Backward pass of ``conv_forward_naive``.

    Inputs:
    - dout: (N, F, H', W')
    - cache: from conv_forward_naive

    Returns (dx, dw, db): dx (N, C, H, W), dw (F, C, HH, WW), db (F,).
    """
    ck.array(dout, "dout", ndim=4)
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
    _check_pool("max_pool_forward_naive", x, pool_param)
    return _np_backend.max_pool_forward_naive(x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Backward pass of ``max_pool_forward_naive``: each output's gradient goes
    to the first maximum of its window (summed where windows overlap).

    Inputs:
    - dout: (N, C, H', W')
    - cache: from max_pool_forward_naive

    Returns dx: (N, C, H, W).
    """
    ck.array(dout, "dout", ndim=4)
    _check_naive_cache("max_pool_backward_naive", cache, 2)
    return _np_backend.max_pool_backward_naive(dout, cache)

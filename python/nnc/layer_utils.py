"""Common layer sandwiches, as in CS231n's layer_utils.py.

Each ``*_forward`` returns (out, cache) and each ``*_backward(dout, cache)``
returns the gradients of its inputs in argument order. They are built from
the public layer functions, so they run on the active backend
(``nnc.set_backend``); convolution uses ``conv_forward_fast`` and pooling
``max_pool_forward_fast``. Argument checks happen in those layer functions.
"""
from . import fast_layers as _fast_layers
from . import layers as _layers
from .fast_layers import *  # noqa: F401,F403  (CS231n's layer_utils star-imports both)
from .fast_layers import (conv_backward_fast, conv_forward_fast, conv_pool_backward_weights,
                          conv_pool_forward, max_pool_backward_fast, max_pool_forward_fast)
from .layers import *  # noqa: F401,F403
from .layers import (affine_backward, affine_backward_weights, affine_forward, batchnorm_backward,
                     batchnorm_forward, layernorm_backward, layernorm_forward, relu_backward,
                     relu_forward, spatial_batchnorm_backward, spatial_batchnorm_forward)

__all__ = [
    "affine_relu_forward", "affine_relu_backward", "affine_bn_relu_forward",
    "affine_bn_relu_backward", "affine_ln_relu_forward", "affine_ln_relu_backward",
    "conv_relu_forward", "conv_relu_backward", "conv_bn_relu_forward", "conv_bn_relu_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
] + _layers.__all__ + [n for n in _fast_layers.__all__ if n not in _layers.__all__]


def affine_relu_forward(x, w, b):
    """Affine transform followed by a ReLU.

    Inputs:
    - x: (N, d_1, ..., d_k), flattened to (N, D)
    - w: (D, M)
    - b: (M,)

    Returns (out, cache): out (N, M).
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward pass of ``affine_relu_forward``: dout (N, M) ->
    (dx (N, d_1, ..., d_k), dw (D, M), db (M,))."""
    return _affine_relu_backward(dout, cache, affine_backward)


# The classifiers' first layer: nothing uses the gradient of the images, so
# its backward computes the weight gradients only (dx is None), which skips
# the input-gradient GEMM (and, for a conv, col2im): about a third of an
# affine layer's backward and half of a conv's. dw and db are the same bits.
# (ThreeLayerConvNet's conv is _conv_pool_relu_*, below.)

def _affine_weights(dout, fc_cache):
    return (None,) + tuple(affine_backward_weights(dout, fc_cache))


def _affine_relu_backward(dout, cache, affine_bwd):
    fc_cache, relu_cache = cache
    return affine_bwd(relu_backward(dout, relu_cache), fc_cache)


def _affine_norm_relu_backward(dout, cache, norm_bwd, affine_bwd):
    fc_cache, norm_cache, relu_cache = cache
    da, dgamma, dbeta = norm_bwd(relu_backward(dout, relu_cache), norm_cache)
    dx, dw, db = affine_bwd(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


def _conv_relu_pool_backward(dout, cache, conv_bwd):
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_bwd(relu_backward(ds, relu_cache), conv_cache)


# The classifiers' conv - ReLU - pool with the ReLU after the pool: a max
# commutes with ReLU (it is monotone), so the output and every gradient are
# the same bits, and the ReLU and its backward touch a pool window's worth
# fewer values (4x for 2x2). Where a window's max is <= 0 both orders give it
# a zero gradient; elsewhere both route it to the window's first maximum.

# The conv and the pool are one op (conv_pool_forward), and the backward gives
# dw and db only: the classifiers use it as their first layer.

def _conv_pool_relu_forward(x, w, b, conv_param, pool_param):
    p, conv_pool_cache = conv_pool_forward(x, w, b, conv_param, pool_param)
    out, relu_cache = relu_forward(p)
    return out, (conv_pool_cache, relu_cache)


def _conv_pool_relu_backward_weights(dout, cache):
    conv_pool_cache, relu_cache = cache
    return conv_pool_backward_weights(relu_backward(dout, relu_cache), conv_pool_cache)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """Affine - batchnorm - ReLU.

    Inputs:
    - x: (N, d_1, ..., d_k), flattened to (N, D)
    - w: (D, M); b: (M,)
    - gamma, beta: (M,) batchnorm scale and shift
    - bn_param: batchnorm dict ('mode' 'train'/'test', optional 'eps',
      'momentum'; its running statistics are updated in train mode)

    Returns (out, cache): out (N, M).
    """
    a, fc_cache = affine_forward(x, w, b)
    a_bn, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(a_bn)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache):
    """Backward pass of ``affine_bn_relu_forward``: dout (N, M) ->
    (dx (N, d_1, ..., d_k), dw (D, M), db (M,), dgamma (M,), dbeta (M,))."""
    return _affine_norm_relu_backward(dout, cache, batchnorm_backward, affine_backward)


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """Affine - layernorm - ReLU.

    Inputs:
    - x: (N, d_1, ..., d_k), flattened to (N, D)
    - w: (D, M); b: (M,)
    - gamma, beta: (M,) layernorm scale and shift
    - ln_param: layernorm dict (optional 'eps')

    Returns (out, cache): out (N, M).
    """
    a, fc_cache = affine_forward(x, w, b)
    a_ln, ln_cache = layernorm_forward(a, gamma, beta, ln_param)
    out, relu_cache = relu_forward(a_ln)
    return out, (fc_cache, ln_cache, relu_cache)


def affine_ln_relu_backward(dout, cache):
    """Backward pass of ``affine_ln_relu_forward``: dout (N, M) ->
    (dx (N, d_1, ..., d_k), dw (D, M), db (M,), dgamma (M,), dbeta (M,))."""
    return _affine_norm_relu_backward(dout, cache, layernorm_backward, affine_backward)


def conv_relu_forward(x, w, b, conv_param):
    """Convolution followed by a ReLU.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, HH, WW); b: (F,)
    - conv_param: dict with 'stride' and 'pad'

    Returns (out, cache): out (N, F, H', W'), H' = 1 + (H + 2*pad - HH) // stride,
    W' = 1 + (W + 2*pad - WW) // stride.
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Backward pass of ``conv_relu_forward``: dout (N, F, H', W') ->
    (dx (N, C, H, W), dw (F, C, HH, WW), db (F,))."""
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return conv_backward_fast(da, conv_cache)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """Convolution - spatial batchnorm - ReLU.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, HH, WW); b: (F,)
    - gamma, beta: (F,) spatial batchnorm scale and shift
    - conv_param: dict with 'stride' and 'pad'
    - bn_param: batchnorm dict ('mode', optional 'eps', 'momentum'; running
      statistics updated in train mode)

    Returns (out, cache): out (N, F, H', W') as in ``conv_relu_forward``.
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Backward pass of ``conv_bn_relu_forward``: dout (N, F, H', W') ->
    (dx (N, C, H, W), dw (F, C, HH, WW), db (F,), dgamma (F,), dbeta (F,))."""
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """Convolution - ReLU - max pool.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, HH, WW); b: (F,)
    - conv_param: dict with 'stride' and 'pad'
    - pool_param: dict with 'pool_height', 'pool_width', 'stride'

    Returns (out, cache): out (N, F, H'', W''), the pooled conv output
    (H'' = 1 + (H' - pool_height) // pool_stride, H' as in ``conv_relu_forward``).
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache):
    """Backward pass of ``conv_relu_pool_forward``: dout (N, F, H'', W'') ->
    (dx (N, C, H, W), dw (F, C, HH, WW), db (F,))."""
    return _conv_relu_pool_backward(dout, cache, conv_backward_fast)

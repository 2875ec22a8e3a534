"""Fast convolution and max-pooling with the CS231n ``fast_layers`` names.

Every function dispatches at call time to the active backend. In NumPy each
name is its own vectorized method (im2col by fancy indexing, strided windows,
reshape pooling); in the cpp backend all conv names run the same kernel
(per-thread im2col + OpenBLAS GEMM) and all pool names the same pooling
kernel. Shapes and semantics are those of ``conv_forward_naive`` and
``max_pool_forward_naive`` in ``nnc.layers``, with which they agree.
"""
import numpy as np  # noqa: F401  (exported, as the original's star import does)

from . import im2col as _im2col
from .backends import backward as _backward
from .backends import backward_op, forward_op, op
from .backends import forward as _forward
from .im2col import *  # noqa: F401,F403  (the original star-exports cs231n.im2col and the Cython helpers)
from .layers import _check_conv, _check_pool, _check_pool_window

__all__ = [
    "np",
    "conv_forward_im2col", "conv_backward_im2col", "conv_forward_strides", "conv_backward_strides",
    "conv_forward_fast", "conv_backward_fast", "conv_backward_weights",
    "conv_pool_forward", "conv_pool_backward", "conv_pool_backward_weights",
    "max_pool_forward_fast", "max_pool_backward_fast", "max_pool_forward_reshape",
    "max_pool_backward_reshape", "max_pool_forward_im2col", "max_pool_backward_im2col",
    "conv_nhwc_forward", "conv_nhwc_backward", "max_pool_nhwc_forward", "max_pool_nhwc_backward",
] + _im2col.__all__


@forward_op
def conv_forward_im2col(x, w, b, conv_param):
    """Convolution by im2col and one matrix product.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, HH, WW)
    - b: (F,)
    - conv_param: dict with 'stride' (int >= 1) and 'pad' (int >= 0); the
      filter must tile the padded input: (H + 2*pad - HH) % stride == 0, same for W.

    Returns (out, cache): out (N, F, H', W') with H' = 1 + (H + 2*pad - HH) // stride,
    W' = 1 + (W + 2*pad - WW) // stride.
    """
    x, w, b = _check_conv("conv_forward_im2col", x, w, b, conv_param)
    return _forward(conv_forward_im2col, x, w, b, conv_param)


@backward_op
def conv_backward_im2col(dout, cache):
    """Backward pass of ``conv_forward_im2col``.

    Inputs:
    - dout: (N, F, H', W')
    - cache: from conv_forward_im2col

    Returns (dx, dw, db): dx (N, C, H, W), dw (F, C, HH, WW), db (F,).
    """
    return _backward(conv_backward_im2col, dout, cache)


@forward_op
def conv_forward_strides(x, w, b, conv_param):
    """Convolution over a strided view of the windows; same inputs and
    outputs as ``conv_forward_im2col``."""
    x, w, b = _check_conv("conv_forward_strides", x, w, b, conv_param)
    return _forward(conv_forward_strides, x, w, b, conv_param)


@backward_op
def conv_backward_strides(dout, cache):
    """Backward pass of ``conv_forward_strides``: (dout (N, F, H', W'), cache)
    -> (dx (N, C, H, W), dw (F, C, HH, WW), db (F,))."""
    return _backward(conv_backward_strides, dout, cache)


conv_forward_fast = conv_forward_strides
conv_backward_fast = conv_backward_strides


@op
def conv_backward_weights(dout, cache):
    """The weight gradients of a conv forward (``conv_forward_fast``,
    ``conv_forward_im2col`` or ``conv_forward_strides``) without dx, for a
    network's first layer, whose input gradient nothing uses (PyTorch skips
    it likewise for an input that does not require grad): on the cpp backend
    it saves the dx GEMM and col2im, about half of the backward. Checked
    like a backward.

    Inputs:
    - dout: (N, F, H', W')
    - cache: from the conv forward

    Returns (dw, db): dw (F, C, HH, WW), db (F,), the same as the backward's.
    """
    return _backward(conv_backward_weights, dout, cache)


@forward_op
def conv_pool_forward(x, w, b, conv_param, pool_param):
    """A conv forward followed by a max pool, for a network's first layer
    (an nnc extension): the same values as ``max_pool_forward_fast`` of
    ``conv_forward_fast``. On the cpp backend a 2x2 stride-2 pool after the
    direct conv kernel pools each block of conv output rows while it is in
    cache, and the conv output is never stored.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, HH, WW)
    - b: (F,)
    - conv_param: dict with 'stride' and 'pad', as conv_forward_fast's
    - pool_param: dict with 'pool_height', 'pool_width', 'stride'; the window
      must tile the conv output (H', W') as in max_pool_forward_fast

    Returns (out, cache): out (N, F, H'', W''), the pooled conv output, with
    H'' = 1 + (H' - pool_height) // stride, W'' likewise; the cache is for
    conv_pool_backward and conv_pool_backward_weights.
    """
    fn = "conv_pool_forward"
    x, w, b = _check_conv(fn, x, w, b, conv_param)
    stride, pad = conv_param["stride"], conv_param["pad"]
    Hc = 1 + (x.shape[2] + 2 * pad - w.shape[2]) // stride
    Wc = 1 + (x.shape[3] + 2 * pad - w.shape[3]) // stride
    _check_pool_window(fn, pool_param, Hc, Wc,
                       f"the conv output of shape {(x.shape[0], w.shape[0], Hc, Wc)}")
    return _forward(conv_pool_forward, x, w, b, conv_param, pool_param)


@backward_op
def conv_pool_backward(dout, cache):
    """Backward pass of ``conv_pool_forward``: the gradients of its inputs.

    Inputs:
    - dout: (N, F, H'', W''), the gradient of conv_pool_forward's out
    - cache: from conv_pool_forward

    Returns (dx, dw, db): dx (N, C, H, W), dw (F, C, HH, WW), db (F,).
    """
    return _backward(conv_pool_backward, dout, cache)


@op
def conv_pool_backward_weights(dout, cache):
    """The weight gradients of ``conv_pool_forward`` without dx (as
    ``conv_backward_weights``), from the pool's dout; checked like a
    backward. On the cpp backend, where the conv's dw is the direct kernel
    and the pool 2x2 with stride 2, the pool's backward is folded into that
    kernel's transpose of dout, and the conv output's gradient is never
    stored.

    Inputs:
    - dout: (N, F, H'', W''), the gradient of conv_pool_forward's out
    - cache: from conv_pool_forward

    Returns (dw, db): dw (F, C, HH, WW), db (F,).
    """
    return _backward(conv_pool_backward_weights, dout, cache)


@forward_op
def max_pool_forward_reshape(x, pool_param):
    """Max pooling for windows that tile the input exactly: pool_height ==
    pool_width == stride, dividing H and W (ValueError otherwise).

    Inputs:
    - x: (N, C, H, W)
    - pool_param: dict with 'pool_height', 'pool_width', 'stride'

    Returns (out, cache): out (N, C, H / stride, W / stride).
    """
    x, ph, pw, stride = _check_pool("max_pool_forward_reshape", x, pool_param)
    H, W = x.shape[2:]
    if not (ph == pw == stride and H % ph == 0 and W % pw == 0):
        raise ValueError(f"max_pool_forward_reshape: the {ph}x{pw} windows with stride {stride} "
                         f"do not tile x of shape {x.shape} exactly; it needs pool_height == "
                         f"pool_width == stride dividing H and W (max_pool_forward_fast "
                         f"handles any window)")
    return _forward(max_pool_forward_reshape, x, pool_param)


@backward_op
def max_pool_backward_reshape(dout, cache):
    """Backward pass of ``max_pool_forward_reshape``: dout (N, C, H', W') ->
    dx (N, C, H, W), the gradient routed to each window's first maximum."""
    return _backward(max_pool_backward_reshape, dout, cache)


@forward_op
def max_pool_forward_im2col(x, pool_param):
    """Max pooling for any window and stride, overlapping windows included.
    Ties go to the first maximum in row-major window order (as np.argmax).

    Inputs:
    - x: (N, C, H, W)
    - pool_param: dict with 'pool_height', 'pool_width', 'stride'; the window
      must tile the input: (H - pool_height) % stride == 0, same for W.

    Returns (out, cache): out (N, C, H', W') with H' = 1 + (H - pool_height) // stride,
    W' = 1 + (W - pool_width) // stride.
    """
    x = _check_pool("max_pool_forward_im2col", x, pool_param)[0]
    return _forward(max_pool_forward_im2col, x, pool_param)


@backward_op
def max_pool_backward_im2col(dout, cache):
    """Backward pass of ``max_pool_forward_im2col``: dout (N, C, H', W') ->
    dx (N, C, H, W); where windows overlap the gradients add up."""
    return _backward(max_pool_backward_im2col, dout, cache)


@forward_op
def max_pool_forward_fast(x, pool_param):
    """Max pooling by the fastest method that applies (the NumPy backend uses
    reshape when the windows tile x and im2col otherwise). Same inputs and
    outputs as ``max_pool_forward_im2col``."""
    x = _check_pool("max_pool_forward_fast", x, pool_param)[0]
    return _forward(max_pool_forward_fast, x, pool_param)


@backward_op
def max_pool_backward_fast(dout, cache):
    """Backward pass of ``max_pool_forward_fast``: dout (N, C, H', W') -> dx (N, C, H, W)."""
    return _backward(max_pool_backward_fast, dout, cache)


# --- channels-last (NHWC) convolution and max pooling, for nnc.nn ---
# The layout of the CSCI566 course (and TensorFlow): images (N, H, W, C) and
# filters (HH, WW, C, F). Output sizes round down, as in PyTorch and the
# course: rows and columns that the last window does not reach are ignored.
# They share the NCHW functions' checks (layout="NHWC").


@forward_op
def conv_nhwc_forward(x, w, b, conv_param):
    """Convolution of channels-last images (cross-correlation, zero padding).

    Inputs:
    - x: (N, H, W, C)
    - w: (HH, WW, C, F)
    - b: (F,)
    - conv_param: dict with 'stride' (int >= 1) and 'pad' (int >= 0); the
      filter must fit in the padded input: HH <= H + 2*pad, WW <= W + 2*pad.

    Returns (out, cache): out (N, H', W', F) with H' = 1 + (H + 2*pad - HH) // stride,
    W' = 1 + (W + 2*pad - WW) // stride (rounded down: input rows and columns
    the last window does not reach are ignored).
    """
    x, w, b = _check_conv("conv_nhwc_forward", x, w, b, conv_param, layout="NHWC")
    return _forward(conv_nhwc_forward, x, w, b, conv_param)


@backward_op
def conv_nhwc_backward(dout, cache):
    """Backward pass of ``conv_nhwc_forward``.

    Inputs:
    - dout: (N, H', W', F)
    - cache: from conv_nhwc_forward

    Returns (dx, dw, db): dx (N, H, W, C), dw (HH, WW, C, F), db (F,).
    """
    return _backward(conv_nhwc_backward, dout, cache)


@forward_op
def max_pool_nhwc_forward(x, pool_param):
    """Max pooling of channels-last images, no padding; windows may overlap.
    Ties go to the first maximum of a window in row-major order (as np.argmax).

    Inputs:
    - x: (N, H, W, C)
    - pool_param: dict with 'pool_height', 'pool_width', 'stride' (ints >= 1);
      the window must fit in the input: pool_height <= H, pool_width <= W.

    Returns (out, cache): out (N, H', W', C) with H' = 1 + (H - pool_height) // stride,
    W' = 1 + (W - pool_width) // stride (rounded down).
    """
    x = _check_pool("max_pool_nhwc_forward", x, pool_param, layout="NHWC")[0]
    return _forward(max_pool_nhwc_forward, x, pool_param)


@backward_op
def max_pool_nhwc_backward(dout, cache):
    """Backward pass of ``max_pool_nhwc_forward``: each output's gradient goes
    to the first maximum of its window; where windows overlap the gradients add up.

    Inputs:
    - dout: (N, H', W', C)
    - cache: from max_pool_nhwc_forward

    Returns dx: (N, H, W, C).
    """
    return _backward(max_pool_nhwc_backward, dout, cache)


@op
def conv_nhwc_backward_weights(dout, cache):
    """The weight gradients of ``conv_nhwc_forward`` without dx, for a
    network's first layer, whose input gradient nothing uses (PyTorch skips
    it likewise for an input that does not require grad): it saves about
    half of the backward. Checked like a backward.

    Inputs:
    - dout: (N, H', W', F)
    - cache: from conv_nhwc_forward

    Returns (dw, db): dw (HH, WW, C, F), db (F,).
    """
    return _backward(conv_nhwc_backward_weights, dout, cache)

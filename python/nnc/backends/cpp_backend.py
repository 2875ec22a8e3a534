"""The native backend: thin wrappers that call the C++ kernels in ``nnc._nnc``
and pack what they return into CS231n caches. The binding validates dtypes
and shapes; the math is all in cpp/."""
import scipy_openblas32  # noqa: F401  preloads libscipy_openblas.so (RTLD_GLOBAL) for _nnc

from .. import _nnc


def affine_forward(x, w, b):
    out = _nnc.affine_forward(x.reshape(x.shape[0], -1), w, b)
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx, dw, db = _nnc.affine_backward(dout, x.reshape(x.shape[0], -1), w)
    return dx.reshape(x.shape), dw, db


# --- convolution and pooling ---
# Every conv name runs the same kernel (per-thread im2col + GEMM) and every
# pool name the same pooling kernel; the public functions checked the
# arguments, the binding checks them again.


def conv_forward_im2col(x, w, b, conv_param):
    out = _nnc.conv_forward(x, w, b, conv_param["stride"], conv_param["pad"])
    return out, (x, w, b, conv_param)


def conv_backward_im2col(dout, cache):
    x, w, b, conv_param = cache
    return _nnc.conv_backward(dout, x, w, conv_param["stride"], conv_param["pad"])


conv_forward_strides = conv_forward_im2col
conv_backward_strides = conv_backward_im2col


def max_pool_forward_im2col(x, pool_param):
    out, argmax = _nnc.max_pool_forward(x, pool_param["pool_height"], pool_param["pool_width"],
                                        pool_param["stride"])
    return out, (x.shape, pool_param, argmax)


def max_pool_backward_im2col(dout, cache):
    x_shape, pool_param, argmax = cache
    return _nnc.max_pool_backward(dout, argmax, x_shape[2], x_shape[3])


max_pool_forward_reshape = max_pool_forward_fast = max_pool_forward_im2col
max_pool_backward_reshape = max_pool_backward_fast = max_pool_backward_im2col

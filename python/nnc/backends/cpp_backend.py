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

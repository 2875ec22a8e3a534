"""The native backend: thin wrappers that call the C++ kernels in ``nnc._nnc``
and pack what they return into CS231n caches. The binding validates dtypes
and shapes; the math is all in cpp/."""
import ctypes
import importlib.util
import os


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
from .. import _nnc  # noqa: E402


def affine_forward(x, w, b):
    out = _nnc.affine_forward(x.reshape(x.shape[0], -1), w, b)
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx, dw, db = _nnc.affine_backward(dout, x.reshape(x.shape[0], -1), w)
    return dx.reshape(x.shape), dw, db

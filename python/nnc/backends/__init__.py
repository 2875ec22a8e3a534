"""The backend registry: which backends exist, which one is active, and
call-time dispatch of every op to the active one.

A backend is a module whose functions carry the op names of ``OPS``. Forward
ops return ``(out, cache)`` with a plain tuple cache; the registry tags that
cache with the backend's name, so a backward pass can refuse a cache made by
another backend instead of misreading it.
"""
import contextlib
import os

from . import numpy_backend

# Every op a backend may implement. The *_naive teaching loops are not here:
# they always run in NumPy.
OPS = (
    "affine_forward", "affine_backward",
    "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward",
    "sigmoid_forward", "sigmoid_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "dropout_forward", "dropout_backward",
    "svm_loss", "softmax_loss", "mse_loss",
    "conv_forward_im2col", "conv_backward_im2col",
    "conv_forward_strides", "conv_backward_strides",
    "max_pool_forward_fast", "max_pool_backward_fast",
    "max_pool_forward_reshape", "max_pool_backward_reshape",
    "max_pool_forward_im2col", "max_pool_backward_im2col",
    "sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam",
)

_BACKENDS = {"numpy": numpy_backend}
try:  # the native backend exists only when the extension was built and loads
    from . import cpp_backend

    _BACKENDS["cpp"] = cpp_backend
except ImportError as _err:  # pragma: no cover - depends on the build
    CPP_IMPORT_ERROR = _err
else:
    CPP_IMPORT_ERROR = None


class Cache(tuple):
    """A forward pass's cache: the backend's own tuple, plus ``.backend``,
    the name of the backend that made it. Unpacks like the CS231n tuple."""

    def __new__(cls, backend, items):
        self = super().__new__(cls, items)
        self.backend = backend
        return self


def available_backends():
    """Names of the usable backends: ``['numpy', 'cpp']``, or ``['numpy']``
    when the native extension is not built."""
    return list(_BACKENDS)


def _check_name(name):
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available backends: {available_backends()}")
    return name


_active = "cpp" if "cpp" in _BACKENDS else "numpy"
if os.environ.get("NNC_BACKEND"):
    _active = _check_name(os.environ["NNC_BACKEND"])


def get_backend():
    """Name of the active backend."""
    return _active


def set_backend(name):
    """Make ``name`` ('numpy' or 'cpp') the active backend for every later call."""
    global _active
    _active = _check_name(name)


@contextlib.contextmanager
def use_backend(name):
    """``with use_backend('numpy'): ...`` runs the block on that backend and
    restores the previous one on exit, also when the block raises."""
    global _active
    previous = _active
    set_backend(name)
    try:
        yield name
    finally:
        _active = previous


def implemented_ops(backend=None):
    """Sorted op names that ``backend`` (default: the active one) implements."""
    mod = _BACKENDS[_check_name(backend or _active)]
    return sorted(op for op in OPS if hasattr(mod, op))


def missing_ops(backend=None):
    """Ops of the reference that ``backend`` does not implement (never silently filled in)."""
    return sorted(set(implemented_ops("numpy")) - set(implemented_ops(backend)))


def _lookup(op):
    fn = getattr(_BACKENDS[_active], op, None)
    if fn is None:
        raise NotImplementedError(
            f"{op} is not implemented by the {_active!r} backend; "
            f"use nnc.use_backend('numpy') for it (nnc.missing_ops({_active!r}) lists the gaps)")
    return fn


def call(op, *args, **kwargs):
    """Run ``op`` on the active backend (ops without caches: losses, optimizers)."""
    return _lookup(op)(*args, **kwargs)


def forward(op, *args, **kwargs):
    """Run a forward ``op`` on the active backend and tag its cache."""
    out, cache = _lookup(op)(*args, **kwargs)
    return out, Cache(_active, cache)


def backward(op, dout, cache, *args):
    """Run a backward ``op`` on the active backend after checking that the
    cache came from a forward pass of the same backend."""
    if not isinstance(cache, Cache):
        raise TypeError(f"{op}: cache must be the cache returned by the matching forward "
                        f"function, got {type(cache).__name__}")
    if cache.backend != _active:
        raise ValueError(f"{op}: cache was made by the {cache.backend!r} backend but the active "
                         f"backend is {_active!r}; run forward and backward on the same backend")
    return _lookup(op)(dout, tuple(cache), *args)

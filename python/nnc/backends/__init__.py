"""The op registry: which ops exist, which backends exist, which one is
active, and call-time dispatch of every op to the active backend.

An op is declared once, by decorating its public function (in ``layers``,
``fast_layers`` or ``optim``) with ``forward_op``, ``backward_op`` or ``op``;
the op's name is the function's name and the registry is the set of declared
ops. The public function validates what the user passed, then hands the
checked arguments to ``forward``/``backward``/``call`` together with itself,
which run the function of the same name in the active backend module:

    @forward_op
    def relu_forward(x):
        x = ck.promote(ck.array(x, "x"))[0]
        return forward(relu_forward, x)      # -> numpy_backend.relu_forward(x)

Forward ops return ``(out, cache)``; the registry wraps the backend's tuple
cache in a ``Cache`` that records the backend and the output's shape and
dtype, so that ``backward`` checks ``dout`` once, here, for every op, and
refuses a cache made by another backend instead of misreading it.

The active backend is context-local (a ``contextvars.ContextVar``):
``use_backend`` in one thread does not switch the backend of another, while
``set_backend`` sets the process-wide default.
"""
import contextlib
import contextvars
import os

import numpy as np

from . import numpy_backend

_BACKENDS = {"numpy": numpy_backend}
try:  # the native backend exists only when the extension was built and loads
    from . import cpp_backend

    _BACKENDS["cpp"] = cpp_backend
except ImportError as _err:  # pragma: no cover - depends on the build
    CPP_IMPORT_ERROR = _err
else:
    CPP_IMPORT_ERROR = None

# op name -> "forward", "backward" or "call", in declaration order.
_OPS = {}


def _declare(kind):
    def declare(fn):
        name = fn.__name__
        if name in _OPS:
            raise RuntimeError(f"op {name!r} is declared twice")
        _OPS[name] = kind
        return fn
    declare.__name__ = f"{kind}_op"
    return declare


forward_op = _declare("forward")     # returns (out, cache)
backward_op = _declare("backward")   # takes (dout, cache)
op = _declare("call")                # anything else: losses, update rules


def declared_ops(kind=None):
    """Names of every declared op (or of those of one ``kind``), in declaration order."""
    return [name for name, k in _OPS.items() if kind is None or k == kind]


def verify():
    """Fails at import time when a backend and the declared ops disagree: an op
    missing from the reference, or a public backend function that declares
    nothing (a typo in its name). The *_naive teaching loops are not ops:
    they always run in NumPy."""
    missing = [name for name in _OPS if not hasattr(numpy_backend, name)]
    if missing:
        raise RuntimeError(f"the numpy reference backend lacks the declared ops {missing}")
    for backend, mod in _BACKENDS.items():
        stray = [name for name, v in vars(mod).items()
                 if callable(v) and not name.startswith("_") and getattr(v, "__module__", None)
                 == mod.__name__ and name not in _OPS and not name.endswith("_naive")]
        if stray:
            raise RuntimeError(f"the {backend} backend defines {stray}, which are not declared ops")


class Cache(tuple):
    """A forward pass's cache: the backend's own tuple, plus ``.backend``
    (the name of the backend that made it) and ``.out_shape``/``.out_dtype``
    (what ``dout`` must look like). Unpacks like the CS231n tuple."""

    def __new__(cls, backend, items, out_shape, out_dtype):
        self = super().__new__(cls, items)
        self.backend = backend
        self.out_shape = out_shape
        self.out_dtype = out_dtype
        return self


def available_backends():
    """Names of the usable backends: ``['numpy', 'cpp']``, or ``['numpy']``
    when the native extension is not built."""
    return list(_BACKENDS)


def _check_name(name):
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available backends: {available_backends()}")
    return name


_default = "cpp" if "cpp" in _BACKENDS else "numpy"
if os.environ.get("NNC_BACKEND"):
    _default = _check_name(os.environ["NNC_BACKEND"])
# None: follow the process default. A new thread starts with an empty context.
_active = contextvars.ContextVar("nnc_backend", default=None)


def get_backend():
    """Name of the active backend in this thread (context)."""
    return _active.get() or _default


def set_backend(name):
    """Make ``name`` ('numpy' or 'cpp') the process-wide default backend, and
    the active one here at once (also inside a ``use_backend`` block, which
    still restores what it found when it exits)."""
    global _default
    _default = _check_name(name)
    if _active.get() is not None:
        _active.set(name)


@contextlib.contextmanager
def use_backend(name):
    """``with use_backend('numpy'): ...`` runs the block on that backend in
    this thread (context) only, and restores the previous one on exit, also
    when the block raises."""
    token = _active.set(_check_name(name))
    try:
        yield name
    finally:
        _active.reset(token)


def implemented_ops(backend=None):
    """Sorted op names that ``backend`` (default: the active one) implements."""
    mod = _BACKENDS[_check_name(backend or get_backend())]
    return sorted(name for name in _OPS if hasattr(mod, name))


def missing_ops(backend=None):
    """Declared ops that ``backend`` does not implement (never silently filled in)."""
    return sorted(set(_OPS) - set(implemented_ops(backend)))


def _impl(fn, backend):
    impl = getattr(_BACKENDS[backend], fn.__name__, None)
    if impl is None:
        raise NotImplementedError(
            f"{fn.__name__} is not implemented by the {backend!r} backend; "
            f"use nnc.use_backend('numpy') for it (nnc.missing_ops({backend!r}) lists the gaps)")
    return impl


def call(fn, *args):
    """Run the op ``fn`` (a declared public function) on the active backend."""
    return _impl(fn, get_backend())(*args)


def forward(fn, *args):
    """Run the forward op ``fn`` on the active backend and wrap its cache."""
    backend = get_backend()
    out, cache = _impl(fn, backend)(*args)
    return out, Cache(backend, cache, out.shape, out.dtype)


def backward(fn, dout, cache):
    """Run the backward op ``fn`` on the active backend, after checking that
    ``cache`` came from a forward pass of that backend and that ``dout`` has
    the forward output's shape. ``dout`` is converted to the output's dtype
    (as autograd does): gradients come back in the dtype of the forward pass."""
    op = fn.__name__
    backend = get_backend()
    if not isinstance(cache, Cache):
        raise TypeError(f"{op}: cache must be the cache returned by the matching forward "
                        f"function, got {type(cache).__name__}")
    if cache.backend != backend:
        raise ValueError(f"{op}: cache was made by the {cache.backend!r} backend but the active "
                         f"backend is {backend!r}; run forward and backward on the same backend")
    if not isinstance(dout, np.ndarray):
        if not hasattr(dout, "__dlpack__"):
            raise TypeError(f"{op}: dout must be a numpy.ndarray, got {type(dout).__name__}")
        from .._checks import from_dlpack

        dout = from_dlpack(dout, f"{op}: dout")
    if dout.dtype.kind not in "fiu":
        raise TypeError(f"{op}: dout must hold real numbers, got dtype {dout.dtype}")
    if dout.shape != cache.out_shape:
        if dout.ndim != len(cache.out_shape):
            raise ValueError(f"{op}: dout must be {len(cache.out_shape)}-D like the forward "
                             f"output, got shape {dout.shape}")
        raise ValueError(f"{op}: dout has shape {dout.shape}, expected {cache.out_shape}")
    if dout.dtype != cache.out_dtype:
        dout = dout.astype(cache.out_dtype)
    return _impl(fn, backend)(dout, tuple(cache))

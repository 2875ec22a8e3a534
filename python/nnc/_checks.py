"""Argument checks shared by the public functions of both backends.

Each raises TypeError/ValueError naming the argument and the shapes, before
any work starts. Kept cheap: they run on every call.
"""
import functools

import numpy as np


def array(x, name, min_ndim=None, ndim=None):
    """``x`` as an ndarray of real numbers with the required ndim. A CPU array
    of another library that exports ``__dlpack__`` (a PyTorch tensor, a JAX
    array) comes back as an ndarray viewing the same memory, with no copy."""
    if not isinstance(x, np.ndarray):
        x = from_dlpack(x, name)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dims, got shape {x.shape}")
    return x


def from_dlpack(x, name):
    """The ndarray view of a DLPack exporter ``x`` (TypeError for anything
    else, and for what NumPy cannot view: another device, a tensor that
    requires grad, an unsupported dtype)."""
    if not hasattr(x, "__dlpack__"):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__} (any CPU "
                        f"array with __dlpack__ works too)")
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError) as e:
        raise TypeError(f"{name}: cannot use the {type(x).__name__} without a copy through "
                        f"DLPack ({e}); pass a NumPy array or a detached CPU tensor") from None


def real(v, name):
    """A real scalar (int, float or NumPy number; not bool), as a float."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    return float(v)


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def compute_dtype(*arrays):
    """The dtype an op computes in for these (already checked) arrays: NumPy's
    promotion of their dtypes, as NumPy's arithmetic on them would give.
    Integers alone give float64, float16 gives float32 (neither backend
    computes in half precision); wider floats are refused on both backends."""
    dt = arrays[0].dtype
    # The common call, float32 or float64 arrays of one dtype, skips
    # result_type (a third of a small op's Python time); native dtypes are
    # singletons, so identity is equality here.
    if (dt is _F32 or dt is _F64) and all(a.dtype is dt for a in arrays):
        return dt
    dt = np.result_type(*arrays)
    if dt.kind in "iub":
        return np.dtype(np.float64)
    if dt == np.float16:
        return np.dtype(np.float32)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"nnc computes in float32 or float64; got arrays of dtypes "
                        f"{[str(a.dtype) for a in arrays]}")
    return dt


def promote(*arrays):
    """The arrays converted to their ``compute_dtype`` (no copy where they have it)."""
    dt = arrays[0].dtype
    if dt is _F32 or dt is _F64:   # the common call, as in compute_dtype: no generator
        for a in arrays:
            if a.dtype is not dt:
                break
        else:
            return arrays
    dt = compute_dtype(*arrays)
    return tuple(a if a.dtype is dt else a.astype(dt, copy=False) for a in arrays)


def batch(x, name="x"):
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {x.shape})")


def same_shape(a, b, name_a, name_b):
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}")


def labels(y, N, C, name="y"):
    """Integer class labels of shape (N,) in [0, C)."""
    if not isinstance(y, np.ndarray):
        y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (N,):
        raise ValueError(f"{name} must have shape ({N},) to match x, got {y.shape}")
    if N and (y.min() < 0 or y.max() >= C):
        raise ValueError(f"{name} must lie in [0, {C}), got values in [{y.min()}, {y.max()}]")
    return y


def positive_int(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {v!r}")
    if v <= 0:
        raise ValueError(f"{name} must be positive, got {v}")
    return int(v)


def mode(m, name="mode"):
    if m not in ("train", "test"):
        raise ValueError(f"{name} must be 'train' or 'test', got {m!r}")
    return m


# --- normalization ---


def param_dict(p, name):
    """A layer's parameter dict (bn_param, ln_param, gn_param)."""
    if not isinstance(p, dict):
        raise TypeError(f"{name} must be a dict, got {type(p).__name__}")
    return p


def eps_param(p, name):
    """``p['eps']`` (default 1e-5): a finite number >= 0."""
    eps = real(p.get("eps", 1e-5), f"{name}['eps']")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"{name}['eps'] must be a finite number >= 0, got {eps!r}")
    return eps


def bn_param(p, name, n, dtype):
    """A batchnorm parameter dict for ``n`` features or channels of an input
    computed in ``dtype``: 'mode' is required; eps, momentum in [0, 1] and
    running statistics of shape (n,) and that dtype are optional."""
    param_dict(p, name)
    mode(p.get("mode"), f"{name}['mode']")
    eps_param(p, name)
    momentum = real(p.get("momentum", 0.9), f"{name}['momentum']")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{name}['momentum'] must lie in [0, 1], got {momentum!r}")
    for key in ("running_mean", "running_var"):
        if p.get(key) is not None:
            updated_in_place(p[key], f"{name}[{key!r}]", dtype, (n,))
    return p


def vector(a, name, n, what):
    """``a`` is an array of shape (n,); ``what`` says where n comes from."""
    array(a, name)
    if a.shape != (n,):
        raise ValueError(f"{name} has shape {a.shape}, expected ({n},) {what}")
    return a


def updated_in_place(a, name, dtype, shape):
    """An array an op updates in place (running statistics, optimizer state):
    exactly ``dtype`` and ``shape``, C-contiguous, writable, on both backends
    (the native one writes into it, so it cannot be converted)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but the input has dtype {np.dtype(dtype)}; "
                        f"it is updated in place, so the dtypes must match")
    if a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if not a.flags.c_contiguous:
        raise TypeError(f"{name} must be C-contiguous (strides {a.strides}): it is updated in "
                        f"place")
    if not a.flags.writeable:
        raise TypeError(f"{name} must be writable (it is read-only): it is updated in place")
    return a

# --- activations, dropout, losses, optimizers ---

def floating(x, name, min_ndim=None, ndim=None):
    """``x`` as an ndarray of floating-point numbers with the required ndim."""
    array(x, name, min_ndim=min_ndim, ndim=ndim)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    return x


def dropout_param(dp):
    """CS231n's dropout_param: 'p' (keep probability in (0, 1]) and 'mode'
    ('train' or 'test') are required, 'seed' is optional. Returns (p, mode)."""
    if not isinstance(dp, dict):
        raise TypeError(f"dropout_param must be a dict, got {type(dp).__name__}")
    for key in ("p", "mode"):
        if key not in dp:
            raise ValueError(f"dropout_param must have the key {key!r}, got keys {sorted(dp)}")
    p = real(dp["p"], "dropout_param['p']")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"dropout_param['p'] is the keep probability and must be in (0, 1], got {p}")
    return p, mode(dp["mode"], "dropout_param['mode']")


def optim_config(config):
    """An optimizer's config: None (a new dict) or the caller's dict, which
    the rule fills with defaults and state as CS231n does."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    return config


def state_array(a, name, w):
    """An optimizer state array (velocity, cache, m, v): like w in shape and
    dtype, and updatable in place."""
    if isinstance(a, np.ndarray) and a.shape != w.shape:
        raise ValueError(f"{name} has shape {a.shape} but w has shape {w.shape}; they must match")
    return updated_in_place(a, name, w.dtype, w.shape)


@functools.lru_cache(maxsize=None)
def _index_dtype_facts(dtype):
    """(the unsigned dtype of the same width, the largest value) of an
    integer dtype: looked up once per dtype (np.iinfo and a dtype from its
    string took a third of a small lookup's time)."""
    if dtype.kind == "u":
        return dtype, np.inf  # unsigned indices have no negative end to check
    return np.dtype(dtype.str.replace("i", "u")), np.iinfo(dtype).max


def indices(fn, idx, name="idx", ndim=None):
    """Integer indices as an ndarray (any integer dtype, not copied):
    TypeError for anything but integers, ValueError for another ndim. The
    range is ``index_range``'s."""
    if not isinstance(idx, np.ndarray):
        idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {name} must hold integer indices, got dtype {idx.dtype}")
    if ndim is not None and idx.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D (N, T), got shape {idx.shape}")
    return idx


def index_range(fn, idx, V, name="idx"):
    """``idx`` (integers) unchanged, or IndexError naming the first value
    outside [0, V) and where it is."""
    # One pass instead of min() and max(): seen as unsigned integers of the
    # same width, negative indices are huge, so max() >= V catches both ends.
    # Not when V exceeds the dtype's largest value (int8 indices into 500
    # rows: -10 is 246 unsigned): then only negative indices can be out of
    # range, and min() < 0 finds them.
    unsigned, largest = _index_dtype_facts(idx.dtype)
    if V > largest:
        out_of_range = idx.size and idx.min() < 0
    else:
        out_of_range = idx.size and idx.view(unsigned).max() >= V
    if out_of_range:
        where = tuple(int(i) for i in np.argwhere((idx < 0) | (idx >= V))[0])
        raise IndexError(f"{fn}: {name}{list(where)} = {idx[where]} is out of range for V={V} "
                         f"rows; indices must lie in [0, {V})")
    return idx

"""Argument checks shared by the public functions of both backends.

Each raises TypeError/ValueError naming the argument and the shapes, before
any work starts. Kept cheap: they run on every call.
"""
import numpy as np


def array(x, name, min_ndim=None, ndim=None):
    """``x`` as an ndarray of real numbers with the required ndim."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dims, got shape {x.shape}")
    return x


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


def _real(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    return float(v)


def eps_param(p, name):
    """``p['eps']`` (default 1e-5): a finite number >= 0."""
    eps = _real(p.get("eps", 1e-5), f"{name}['eps']")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"{name}['eps'] must be a finite number >= 0, got {eps!r}")
    return eps


def bn_param(p, name, n):
    """A batchnorm parameter dict for ``n`` features or channels: 'mode' is
    required; eps, momentum in [0, 1] and running statistics of shape (n,) optional."""
    param_dict(p, name)
    mode(p.get("mode"), f"{name}['mode']")
    eps_param(p, name)
    momentum = _real(p.get("momentum", 0.9), f"{name}['momentum']")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{name}['momentum'] must lie in [0, 1], got {momentum!r}")
    for key in ("running_mean", "running_var"):
        if p.get(key) is not None:
            a = p[key]
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{name}[{key!r}] must be a numpy.ndarray, got {type(a).__name__}")
            if a.shape != (n,):
                raise ValueError(f"{name}[{key!r}] has shape {a.shape}, expected ({n},) "
                                 f"(one entry per feature/channel)")
    return p


def vector(a, name, n, what):
    """``a`` is an array of shape (n,); ``what`` says where n comes from."""
    array(a, name)
    if a.shape != (n,):
        raise ValueError(f"{name} has shape {a.shape}, expected ({n},) {what}")
    return a


def updated_in_place(a, name, dtype, shape):
    """An array a native kernel updates in place (running statistics,
    optimizer state): exactly ``dtype`` and ``shape``, C-contiguous, writable."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but the input has dtype {np.dtype(dtype)}; "
                        f"the native backend updates it in place, so the dtypes must match")
    if a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if not a.flags.c_contiguous:
        raise TypeError(f"{name} must be C-contiguous (strides {a.strides}): the native backend "
                        f"updates it in place")
    if not a.flags.writeable:
        raise TypeError(f"{name} is read-only: the native backend updates it in place")
    return a

# --- activations, dropout, losses, optimizers ---

def floating(x, name, min_ndim=None, ndim=None):
    """``x`` as an ndarray of floating-point numbers with the required ndim."""
    array(x, name, min_ndim=min_ndim, ndim=ndim)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    return x


def real(v, name):
    """A real scalar (int, float or NumPy number; not bool), as a float."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    return float(v)


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
    """An optimizer state array (velocity, cache, m, v) shaped like w."""
    floating(a, name)
    if a.shape != w.shape:
        raise ValueError(f"{name} has shape {a.shape} but w has shape {w.shape}; they must match")
    return a

"""First-order update rules with the CS231n ``optim.py`` API:

    next_w, config = rule(w, dw, config)

- w: parameters, a float32 or float64 array of any shape
- dw: gradient of the loss with respect to w, same shape (any real dtype;
  converted to w's dtype)
- config: dict of hyperparameters and state, or None for the defaults. The
  rule fills in missing hyperparameters, creates its state arrays with
  ``np.zeros_like(w)`` on the first call and keeps them in ``config`` for the
  next one, so pass the returned config back each step.

Always continue with the returned ``next_w`` and ``config``. Which arrays are
updated in place depends on the backend:
- cpp: one fused pass that updates w and the state arrays in place, with no
  temporaries; ``next_w`` is ``w`` itself and the state arrays stay the same
  objects.
- numpy: CS231n's reference. ``sgd`` updates w in place and returns it; the
  other rules return a new next_w and store new state arrays in config.
On both backends w and the state arrays must therefore be C-contiguous,
writable and of one dtype (float32 or float64): otherwise TypeError, never a
silent update of a copy. Both backends return the same values.
"""
import numpy as np

from . import _checks as ck
from .backends import call as _call
from .backends import op

__all__ = ["sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam", "np"]


def _setup(w, dw, config, defaults, state):
    """Validate, then fill config with missing hyperparameters (defaults) and
    zero state arrays (state). Nothing is written to config if a check fails.
    Returns (w, dw in w's dtype, config), w and dw as ndarrays."""
    w = ck.array(w, "w")
    if w.dtype not in (np.float32, np.float64):
        raise TypeError(f"w must be a floating-point array of float32 or float64 (it is updated "
                        f"in place), got dtype {w.dtype}")
    ck.updated_in_place(w, "w", w.dtype, w.shape)
    dw = ck.array(dw, "dw")
    ck.same_shape(w, dw, "w", "dw")
    config = ck.optim_config(config)
    for key in defaults:
        if key == "t" and key in config:
            t = config["t"]
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
                raise TypeError(f"config['t'] must be an int, got {t!r}")
            if t < 0:
                raise ValueError(f"config['t'] must be >= 0, got {t}")
        elif key in config:
            ck.real(config[key], f"config[{key!r}]")
    for key in ("beta1", "beta2"):
        if key in config and not 0.0 <= config[key] < 1.0:
            raise ValueError(f"config[{key!r}] must be in [0, 1), got {config[key]}")
    for key in state:
        if key in config:
            ck.state_array(config[key], f"config[{key!r}]", w)
    for key, value in defaults.items():
        config.setdefault(key, value)
    for key in state:
        if key not in config:
            config[key] = np.zeros_like(w)
    return w, dw.astype(w.dtype, copy=False), config


@op
def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: w -= learning_rate * dw.

    config:
    - learning_rate: scalar learning rate (default 1e-2)

    Both backends update w in place and return it as next_w.
    """
    w, dw, config = _setup(w, dw, config, {"learning_rate": 1e-2}, ())
    return _call(sgd, w, dw, config)


@op
def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with momentum:
    v = momentum * v - learning_rate * dw; next_w = w + v.

    config:
    - learning_rate: scalar learning rate (default 1e-2)
    - momentum: scalar in [0, 1) (default 0.9); 0 reduces to sgd
    - velocity: array like w (created as zeros)

    cpp updates w and velocity in place (next_w is w); numpy returns new
    arrays (see the module docstring).
    """
    w, dw, config = _setup(w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",))
    return _call(sgd_momentum, w, dw, config)


@op
def sgd_nesterov_momentum(w, dw, config=None):
    """Nesterov momentum, written in the updated-velocity form:
    v_old = v; v = momentum * v - learning_rate * dw;
    next_w = w + v + momentum * (v - v_old).

    config:
    - learning_rate: scalar learning rate (default 1e-2)
    - momentum: scalar in [0, 1) (default 0.9)
    - velocity: array like w (created as zeros)

    cpp updates w and velocity in place (next_w is w); numpy returns new
    arrays (see the module docstring).
    """
    w, dw, config = _setup(w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",))
    return _call(sgd_nesterov_momentum, w, dw, config)


@op
def rmsprop(w, dw, config=None):
    """RMSProp: a per-parameter learning rate from a moving average of
    squared gradients:
    cache = decay_rate * cache + (1 - decay_rate) * dw**2;
    next_w = w - learning_rate * dw / (sqrt(cache) + epsilon).

    config:
    - learning_rate: scalar learning rate (default 1e-2)
    - decay_rate: scalar in [0, 1], decay of the squared-gradient cache (default 0.99)
    - epsilon: small scalar that avoids division by zero (default 1e-8)
    - cache: array like w (created as zeros)

    cpp updates w and cache in place (next_w is w); numpy returns new arrays
    (see the module docstring).
    """
    w, dw, config = _setup(w, dw, config,
                    {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}, ("cache",))
    return _call(rmsprop, w, dw, config)


@op
def adam(w, dw, config=None):
    """Adam: moving averages of the gradient and its square, with bias
    correction. t is incremented BEFORE the bias correction:
    t += 1; m = beta1 * m + (1 - beta1) * dw; v = beta2 * v + (1 - beta2) * dw**2;
    next_w = w - learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + epsilon).

    config:
    - learning_rate: scalar learning rate (default 1e-3)
    - beta1: decay of the first moment, in [0, 1) (default 0.9)
    - beta2: decay of the second moment, in [0, 1) (default 0.999)
    - epsilon: small scalar that avoids division by zero (default 1e-8)
    - m, v: arrays like w (created as zeros)
    - t: iteration number (default 0)

    cpp updates w, m and v in place (next_w is w); numpy returns new arrays
    (see the module docstring). Both set config['t'] to t + 1.
    """
    w, dw, config = _setup(w, dw, config,
                    {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                     "t": 0}, ("m", "v"))
    return _call(adam, w, dw, config)

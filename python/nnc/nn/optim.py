"""Optimizers of the CSCI566 course over a ``sequential`` (``model.net``).

``step()`` updates every parameter of every layer from that layer's current
``params`` and ``grads`` dicts (read at each step, so they may be replaced
wholesale), IN PLACE: the arrays stay the same objects, so ``net.params``
and anything else holding them see the new values. The updates are the
public rules of ``nnc.optim``, which on the cpp backend are fused native
kernels (one pass over w, dw and the state).

Weight decay is decoupled and not scaled by the learning rate, as the
course's expected values require: theta <- theta - update - weight_decay * theta.
"""
import numpy as np

from .. import _checks as ck
from .. import optim as rules


def _rate(v, name, minimum=0.0):
    v = ck.real(v, name)
    if not (np.isfinite(v) and v >= minimum):
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {v!r}")
    return v


class Optimizer:
    """Base: ``net`` (a sequential) and ``lr``; ``step()`` calls
    ``update(layer)`` for each layer of ``net.layers``."""

    def __init__(self, net, lr=1e-4):
        if not hasattr(net, "layers"):
            raise TypeError(f"net must be a sequential (model.net), got {type(net).__name__}")
        self.net = net
        self.lr = _rate(lr, "lr")

    def step(self):
        for layer in self.net.layers:
            self.update(layer)

    def _params_and_grads(self, layer):
        for n, dv in layer.grads.items():
            if dv is None:
                raise ValueError(f"the gradient of {n!r} is None: run a backward pass before "
                                 f"optimizer.step()")
            yield n, layer.params[n], dv

    def _apply(self, rule, n, w, dv, config):
        """One update rule on parameter n; w is updated in place (the numpy
        backend's rules return new arrays: copied back into w)."""
        try:
            next_w, config = rule(w, dv, config)
        except (TypeError, ValueError) as e:
            raise type(e)(f"parameter {n!r}: {e}") from None
        if next_w is not w:
            w[...] = next_w
        return config

    def _decay(self, n, w, weight_decay):
        """w -= weight_decay * w (decoupled; read before this step's update)."""
        if weight_decay:
            self._apply(rules.sgd, n, w, w, {"learning_rate": weight_decay})


class SGD(Optimizer):
    """theta <- theta - lr * grad - weight_decay * theta."""

    def __init__(self, net, lr=1e-4, weight_decay=0.0):
        super().__init__(net, lr)
        self.weight_decay = _rate(weight_decay, "weight_decay")

    def update(self, layer):
        for n, w, dv in self._params_and_grads(layer):
            self._decay(n, w, self.weight_decay)
            self._apply(rules.sgd, n, w, dv, {"learning_rate": self.lr})


class SGDM(Optimizer):
    """SGD with momentum (CS231n's form): v <- momentum * v - lr * grad;
    theta <- theta + v. The velocities are ``self.velocity``, keyed by name."""

    def __init__(self, net, lr=1e-4, momentum=0.9):
        super().__init__(net, lr)
        self.momentum = _rate(momentum, "momentum")
        self.velocity = {}

    def update(self, layer):
        for n, w, dv in self._params_and_grads(layer):
            if n not in self.velocity:
                self.velocity[n] = np.zeros_like(w)
            config = {"learning_rate": self.lr, "momentum": self.momentum,
                      "velocity": self.velocity[n]}
            self.velocity[n] = self._apply(rules.sgd_momentum, n, w, dv, config)["velocity"]


class RMSProp(Optimizer):
    """cache <- decay * cache + (1 - decay) * grad**2;
    theta <- theta - lr * grad / (sqrt(cache) + eps). The caches are
    ``self.cache``, keyed by name."""

    def __init__(self, net, lr=1e-2, decay=0.99, eps=1e-8):
        super().__init__(net, lr)
        self.decay = _rate(decay, "decay")
        if self.decay > 1:
            raise ValueError(f"decay must lie in [0, 1], got {decay!r}")
        self.eps = _rate(eps, "eps")
        self.cache = {}

    def update(self, layer):
        for n, w, dv in self._params_and_grads(layer):
            if n not in self.cache:
                self.cache[n] = np.zeros_like(w)
            config = {"learning_rate": self.lr, "decay_rate": self.decay, "epsilon": self.eps,
                      "cache": self.cache[n]}
            self.cache[n] = self._apply(rules.rmsprop, n, w, dv, config)["cache"]


class Adam(Optimizer):
    """Adam with decoupled weight decay. ``t`` is incremented once per step(),
    before the bias correction; the moments are ``self.mt`` and ``self.vt``,
    dicts keyed by parameter name:

        t += 1
        mt <- beta1 * mt + (1 - beta1) * grad;  vt <- beta2 * vt + (1 - beta2) * grad**2
        theta <- theta - lr * (mt / (1 - beta1**t)) / (sqrt(vt / (1 - beta2**t)) + eps)
                       - weight_decay * theta
    """

    def __init__(self, net, lr=1e-3, beta1=0.9, beta2=0.999, t=0, eps=1e-8, weight_decay=0.0):
        super().__init__(net, lr)
        self.beta1, self.beta2 = _rate(beta1, "beta1"), _rate(beta2, "beta2")
        for name, b in (("beta1", self.beta1), ("beta2", self.beta2)):
            if b >= 1:
                raise ValueError(f"{name} must lie in [0, 1), got {b!r}")
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"t must be an int >= 0, got {t!r}")
        self.t = int(t)
        self.eps = _rate(eps, "eps")
        self.weight_decay = _rate(weight_decay, "weight_decay")
        self.mt = {}
        self.vt = {}

    def step(self):
        self.t += 1
        super().step()

    def update(self, layer):
        for n, w, dv in self._params_and_grads(layer):
            if n not in self.mt:
                self.mt[n] = np.zeros_like(w)
                self.vt[n] = np.zeros_like(w)
            self._decay(n, w, self.weight_decay)   # Adam's step does not read w
            # nnc.optim.adam increments the t it is given: hand it t - 1
            config = {"learning_rate": self.lr, "beta1": self.beta1, "beta2": self.beta2,
                      "epsilon": self.eps, "m": self.mt[n], "v": self.vt[n], "t": self.t - 1}
            config = self._apply(rules.adam, n, w, dv, config)
            self.mt[n], self.vt[n] = config["m"], config["v"]

"""Fully connected classifiers, as in CS231n's classifiers/fc_net.py.

Both models keep their learnable parameters in ``self.params`` (name ->
array) and expose ``loss(X, y=None)``: without labels it returns the class
scores (test mode), with labels ``(loss, grads)`` where ``grads`` has one
array per parameter, shaped like it. Layers run on the active backend.
"""
import numpy as np

from .. import _checks as ck
from .. import layer_utils as _layer_utils
from ..optim import sgd
from ..layer_utils import *  # noqa: F401,F403  (CS231n's fc_net.py star-imports layers and
from ..layer_utils import (_affine_norm_relu_backward, _affine_relu_backward,  # layer_utils)
                           _affine_weights, affine_bn_relu_forward, affine_ln_relu_forward,
                           affine_relu_forward)
from ..layers import (affine_backward, affine_forward, batchnorm_backward, dropout_backward,
                      dropout_forward, layernorm_backward, softmax_loss)

__all__ = ["FullyConnectedNet", "TwoLayerNet"] + _layer_utils.__all__


def _dim(v, name, cls):
    return ck.positive_int(v, f"{cls}: {name}")


def _nonneg(v, name, cls):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
        raise TypeError(f"{cls}: {name} must be a number, got {v!r}")
    if not v >= 0:  # also refuses nan
        raise ValueError(f"{cls}: {name} must be >= 0, got {v}")
    return v


def _float_dtype(dtype, cls):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{cls}: dtype must be np.float32 or np.float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{cls}: dtype must be np.float32 or np.float64, got {dt}")
    return dt.type


def _reg_loss(params, reg, names):
    """0.5 * reg * sum of the squared entries of the named weights."""
    # a dot product reads each weight once; np.sum(w * w) first writes w * w
    # out, which for a ThreeLayerConvNet's W2 (8192 x 100) is 6x slower
    if reg == 0:   # the models' default: no pass over the weights for a term of 0
        return 0.0
    return 0.5 * reg * sum(np.vdot(params[n].ravel(), params[n].ravel()) for n in names)


def _add_reg_grad(grads, params, reg, names):
    """grads[n] += reg * params[n] for the named weights: the gradient of
    _reg_loss. The gradients are the backward ops' fresh arrays, so they are
    updated in place, by optim.sgd with learning rate -reg: on the cpp backend
    one pass, where grads[n] + reg * params[n] makes two passes and two
    temporaries (3.3 MB each for a ThreeLayerConvNet's W2). On the numpy
    backend both give the same bits. With reg 0 the gradients stay as they
    are (g + 0 * w is g for finite weights, up to the sign of a zero): the
    no-op passes over a FullyConnectedNet's weights (W1 alone 1.2 MB) took
    about 0.2 ms a step."""
    if reg == 0:
        return
    for n in names:
        g, w = grads[n], params[n]
        if g.dtype == w.dtype and g.flags.c_contiguous and g.flags.writeable:
            sgd(g, w, {"learning_rate": -reg})
        else:
            grads[n] = g + reg * w


class TwoLayerNet:
    """affine - relu - affine - softmax, with L2 regularization.

    Parameters (float64):
    - W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)
    with D = input_dim, H = hidden_dim, C = num_classes. Weights are drawn
    as ``weight_scale * np.random.randn`` (W1 then W2), biases are zero.
    The loss adds 0.5 * reg * (sum W1^2 + sum W2^2).
    """

    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3,
                 reg=0.0):
        cls = "TwoLayerNet"
        input_dim = _dim(input_dim, "input_dim", cls)
        hidden_dim = _dim(hidden_dim, "hidden_dim", cls)
        num_classes = _dim(num_classes, "num_classes", cls)
        _nonneg(weight_scale, "weight_scale", cls)
        self.reg = _nonneg(reg, "reg", cls)
        self.params = {
            "W1": weight_scale * np.random.randn(input_dim, hidden_dim),
            "b1": np.zeros(hidden_dim),
            "W2": weight_scale * np.random.randn(hidden_dim, num_classes),
            "b2": np.zeros(num_classes),
        }

    def loss(self, X, y=None):
        """Scores, or loss and gradients, for a minibatch.

        Inputs:
        - X: (N, d_1, ..., d_k) with d_1 * ... * d_k = D; cast to the dtype of W1
        - y: (N,) integer labels in [0, C), or None

        Returns:
        - y is None: scores (N, C)
        - otherwise (loss, grads): loss a float, grads a dict with the keys
          and shapes of self.params
        """
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        X = np.asarray(X).astype(W1.dtype, copy=False)  # e.g. float32 data, float64 params
        h, cache1 = affine_relu_forward(X, W1, b1)
        scores, cache2 = affine_forward(h, W2, b2)
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        loss += _reg_loss(self.params, self.reg, ("W1", "W2"))
        grads = {}
        dh, grads["W2"], grads["b2"] = affine_backward(dscores, cache2)
        # the inputs' gradient is not needed: dw and db only
        _, grads["W1"], grads["b1"] = _affine_relu_backward(dh, cache1, _affine_weights)
        _add_reg_grad(grads, self.params, self.reg, ("W1", "W2"))
        return loss, grads


class FullyConnectedNet:
    """A fully connected network with any number of hidden layers:

        {affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax

    Parameters (all of ``dtype``), for layer i = 1..L:
    - Wi (D_{i-1}, D_i), bi (D_i,) with D_0 = input_dim, D_1..D_{L-1} =
      hidden_dims, D_L = num_classes
    - gammai, betai (D_i,) for the L - 1 hidden layers when normalization is set
    Weights are drawn as ``weight_scale * np.random.randn(D_{i-1}, D_i)`` in
    layer order; biases and betas are zeros, gammas ones. Only the W's enter
    the regularization term 0.5 * reg * sum_i sum Wi^2.

    Other state:
    - dropout_param: {'mode': 'train', 'p': keep} (+ 'seed') when dropout is used
    - bn_params: one dict per hidden layer (the batchnorm/layernorm param;
      batchnorm keeps its running statistics there), empty without normalization
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                 normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None,
                 dropout=None):
        """
        Inputs:
        - hidden_dims: list of the sizes of the hidden layers (may be empty)
        - input_dim: D, the size of a flattened input
        - num_classes: C
        - dropout_keep_ratio: probability of keeping each hidden unit, in (0, 1];
          1 means no dropout
        - normalization: None, 'batchnorm' or 'layernorm'
        - reg: L2 regularization strength
        - weight_scale: standard deviation of the initial weights
        - dtype: np.float32 or np.float64; parameters and inputs use it
        - seed: if not None, passed to the dropout layers so their masks are
          reproducible
        - dropout: older CS231n name of dropout_keep_ratio (same meaning)
        """
        cls = "FullyConnectedNet"
        if dropout is not None:
            if dropout_keep_ratio != 1 and dropout_keep_ratio != dropout:
                raise ValueError(f"{cls}: dropout={dropout!r} and dropout_keep_ratio="
                                 f"{dropout_keep_ratio!r} disagree; dropout is the older name "
                                 "of dropout_keep_ratio, give one of them")
            dropout_keep_ratio = dropout
        if isinstance(dropout_keep_ratio, (bool, np.bool_)) or not isinstance(
                dropout_keep_ratio, (int, float, np.integer, np.floating)):
            raise TypeError(f"{cls}: dropout_keep_ratio must be a number in (0, 1], got "
                            f"{dropout_keep_ratio!r}")
        if not 0 < dropout_keep_ratio <= 1:
            raise ValueError(f"{cls}: dropout_keep_ratio is the probability of keeping a unit "
                             f"and must lie in (0, 1] (1 = no dropout), got {dropout_keep_ratio}")
        if normalization not in (None, "batchnorm", "layernorm"):
            raise ValueError(f"{cls}: normalization must be None, 'batchnorm' or 'layernorm', "
                             f"got {normalization!r}")
        try:
            hidden_dims = list(hidden_dims)
        except TypeError:
            raise TypeError(f"{cls}: hidden_dims must be a list of ints, got "
                            f"{hidden_dims!r}") from None
        dims = ([_dim(input_dim, "input_dim", cls)]
                + [_dim(h, f"hidden_dims[{i}]", cls) for i, h in enumerate(hidden_dims)]
                + [_dim(num_classes, "num_classes", cls)])
        _nonneg(weight_scale, "weight_scale", cls)

        self.normalization = normalization
        self.use_dropout = dropout_keep_ratio != 1
        self.reg = _nonneg(reg, "reg", cls)
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = _float_dtype(dtype, cls)
        self.params = {}
        for i in range(1, self.num_layers + 1):
            d_in, d_out = dims[i - 1], dims[i]
            self.params[f"W{i}"] = weight_scale * np.random.randn(d_in, d_out)
            self.params[f"b{i}"] = np.zeros(d_out)
            if normalization is not None and i < self.num_layers:
                self.params[f"gamma{i}"] = np.ones(d_out)
                self.params[f"beta{i}"] = np.zeros(d_out)
        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout_keep_ratio}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self.bn_params = []
        if normalization is not None:
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]

    def loss(self, X, y=None):
        """Scores, or loss and gradients, for a minibatch.

        Inputs:
        - X: (N, d_1, ..., d_k) with d_1 * ... * d_k = input_dim; cast to self.dtype
        - y: (N,) integer labels in [0, C), or None

        Returns:
        - y is None: scores (N, C); batchnorm and dropout run in test mode
        - otherwise (loss, grads): loss a float, grads a dict with the keys
          and shapes of self.params (train mode)
        """
        X = np.asarray(X).astype(self.dtype, copy=False)
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        for bn_param in self.bn_params:
            bn_param["mode"] = mode

        caches = []
        h = X
        for i in range(1, self.num_layers):
            W, b = self.params[f"W{i}"], self.params[f"b{i}"]
            if self.normalization == "batchnorm":
                h, cache = affine_bn_relu_forward(h, W, b, self.params[f"gamma{i}"],
                                                  self.params[f"beta{i}"], self.bn_params[i - 1])
            elif self.normalization == "layernorm":
                h, cache = affine_ln_relu_forward(h, W, b, self.params[f"gamma{i}"],
                                                  self.params[f"beta{i}"], self.bn_params[i - 1])
            else:
                h, cache = affine_relu_forward(h, W, b)
            drop_cache = None
            if self.use_dropout:
                h, drop_cache = dropout_forward(h, self.dropout_param)
            caches.append((cache, drop_cache))
        L = self.num_layers
        scores, last_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        if mode == "test":
            return scores

        loss, dscores = softmax_loss(scores, y)
        weights = [f"W{i}" for i in range(1, L + 1)]
        loss += _reg_loss(self.params, self.reg, weights)

        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, last_cache)
        for i in range(L - 1, 0, -1):
            cache, drop_cache = caches[i - 1]
            if self.use_dropout:
                dh = dropout_backward(dh, drop_cache)
            # the first layer's input gradient is not needed: dw and db only
            affine_bwd = _affine_weights if i == 1 else affine_backward
            if self.normalization == "batchnorm":
                dh, dW, db, dgamma, dbeta = _affine_norm_relu_backward(
                    dh, cache, batchnorm_backward, affine_bwd)
            elif self.normalization == "layernorm":
                dh, dW, db, dgamma, dbeta = _affine_norm_relu_backward(
                    dh, cache, layernorm_backward, affine_bwd)
            else:
                dh, dW, db = _affine_relu_backward(dh, cache, affine_bwd)
            grads[f"W{i}"], grads[f"b{i}"] = dW, db
            if self.normalization is not None:
                grads[f"gamma{i}"], grads[f"beta{i}"] = dgamma, dbeta
        _add_reg_grad(grads, self.params, self.reg, weights)
        return loss, grads

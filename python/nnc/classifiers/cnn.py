"""A small convolutional network, as in CS231n's classifiers/cnn.py."""
import numpy as np

from .. import layer_utils as _layer_utils
# CS231n's cnn.py star-imports layers, fast_layers and layer_utils
from ..layer_utils import *  # noqa: F401,F403
from ..layer_utils import (_conv_pool_relu_backward_weights, _conv_pool_relu_forward,
                           affine_relu_backward, affine_relu_forward)
from ..layers import affine_backward, affine_forward, softmax_loss
from .fc_net import _add_reg_grad, _dim, _float_dtype, _nonneg, _reg_loss

__all__ = ["ThreeLayerConvNet"] + _layer_utils.__all__


class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax

    Works on minibatches of shape (N, C, H, W). The convolution has stride 1
    and zero padding (filter_size - 1) // 2, so an odd filter_size keeps H and
    W; the pool has 2x2 windows with stride 2.

    Parameters (all of ``dtype``), with F = num_filters, fs = filter_size,
    Hc = H + 2*pad - fs + 1, Wc likewise (the conv output; Hc = H for odd fs):
    - W1 (F, C, fs, fs), b1 (F,)
    - W2 (F * (Hc // 2) * (Wc // 2), hidden_dim), b2 (hidden_dim,)
    - W3 (hidden_dim, num_classes), b3 (num_classes,)
    Weights are drawn as ``weight_scale * np.random.randn`` (W1, W2, W3 in that
    order), biases are zero. The loss adds 0.5 * reg * (sum W1^2 + W2^2 + W3^2).
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32):
        """
        Inputs:
        - input_dim: (C, H, W), the shape of one input
        - num_filters: F, filters of the convolution
        - filter_size: fs, width and height of the filters
        - hidden_dim: units of the hidden affine layer
        - num_classes: scores produced by the last affine layer
        - weight_scale: standard deviation of the initial weights
        - reg: L2 regularization strength
        - dtype: np.float32 or np.float64; parameters and inputs use it
        """
        cls = "ThreeLayerConvNet"
        try:
            C, H, W = input_dim
        except (TypeError, ValueError):
            raise ValueError(f"{cls}: input_dim must be (C, H, W), got {input_dim!r}") from None
        C, H, W = (_dim(v, f"input_dim[{i}]", cls) for i, v in enumerate((C, H, W)))
        F = _dim(num_filters, "num_filters", cls)
        fs = _dim(filter_size, "filter_size", cls)
        hidden_dim = _dim(hidden_dim, "hidden_dim", cls)
        num_classes = _dim(num_classes, "num_classes", cls)
        _nonneg(weight_scale, "weight_scale", cls)
        self.reg = _nonneg(reg, "reg", cls)
        self.dtype = _float_dtype(dtype, cls)

        pad = (fs - 1) // 2
        Hc, Wc = H + 2 * pad - fs + 1, W + 2 * pad - fs + 1
        if Hc < 2 or Wc < 2 or Hc % 2 or Wc % 2:
            raise ValueError(f"{cls}: with input_dim {tuple(input_dim)} and filter_size {fs} the "
                             f"conv output is {Hc}x{Wc}, but the 2x2 max pool with stride 2 "
                             "needs an even height and width of at least 2")
        self.conv_param = {"stride": 1, "pad": pad}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        self.params = {
            "W1": weight_scale * np.random.randn(F, C, fs, fs),
            "b1": np.zeros(F),
            "W2": weight_scale * np.random.randn(F * (Hc // 2) * (Wc // 2), hidden_dim),
            "b2": np.zeros(hidden_dim),
            "W3": weight_scale * np.random.randn(hidden_dim, num_classes),
            "b3": np.zeros(num_classes),
        }
        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def loss(self, X, y=None):
        """Scores, or loss and gradients, for a minibatch.

        Inputs:
        - X: (N, C, H, W), cast to self.dtype
        - y: (N,) integer labels in [0, num_classes), or None

        Returns:
        - y is None: scores (N, num_classes)
        - otherwise (loss, grads): loss a float, grads a dict with the keys
          and shapes of self.params
        """
        X = np.asarray(X).astype(self.dtype, copy=False)
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        W3, b3 = self.params["W3"], self.params["b3"]

        # conv - relu - pool, with the relu after the pool (the same bits, 4x less
        # relu), the conv and the pool one op
        out1, cache1 = _conv_pool_relu_forward(X, W1, b1, self.conv_param, self.pool_param)
        out2, cache2 = affine_relu_forward(out1, W2, b2)
        scores, cache3 = affine_forward(out2, W3, b3)
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        loss += _reg_loss(self.params, self.reg, ("W1", "W2", "W3"))
        grads = {}
        dout2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dout1, grads["W2"], grads["b2"] = affine_relu_backward(dout2, cache2)
        # the images' gradient is not needed: dw and db only
        grads["W1"], grads["b1"] = _conv_pool_relu_backward_weights(dout1, cache1)
        _add_reg_grad(grads, self.params, self.reg, ("W1", "W2", "W3"))
        return loss, grads

"""The CSCI566 course's models: a ``Module`` holding a ``sequential`` in
``self.net``. Constructors draw the weights from NumPy's global generator in
layer order, so ``np.random.seed(s)`` before one gives the course's initial
weights. The ``dtype`` argument of the course's signatures is accepted and,
as in the course, not used: parameters are float64 (``model.net.astype``
converts them)."""
import numpy as np

from .. import _checks as ck
from .layers import ConvLayer2D, MaxPoolingLayer, dropout, fc, flatten, gelu, sequential

REGULARIZATIONS = ("none", "l1", "l2")


def check_regularization(regularization, reg_lambda):
    """The (regularization, reg_lambda) pair of Module.backward and train_net."""
    if regularization not in REGULARIZATIONS:
        raise ValueError(f"regularization must be one of {list(REGULARIZATIONS)}, "
                         f"got {regularization!r}")
    lam = ck.real(reg_lambda, "reg_lambda")
    if not np.isfinite(lam):
        raise ValueError(f"reg_lambda must be a finite number, got {reg_lambda!r}")
    return lam


class Module:
    """A network: ``self.net`` is a sequential.

    - forward(feat, is_training=True, seed=None): runs the layers in order;
      the training flag and seed go to dropout layers only
    - backward(dprev, regularization="none", reg_lambda=0.0, input_grad=True):
      runs the layers backwards from dprev (the loss's gradient with respect
      to the output), then adds the gradient of an "l1" or "l2" penalty on
      every weight and bias (see sequential.apply_l1_regularization /
      apply_l2_regularization); returns the gradient with respect to the
      input. input_grad=False (nnc's addition, which train_net uses) skips
      that gradient: the first layer with parameters computes only its weight
      gradients and the layers before it are not run backwards; returns None.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, feat, is_training=True, seed=None):
        output = feat
        for layer in self.net.layers:
            if isinstance(layer, dropout):
                output = layer.forward(output, is_training, seed)
            else:
                output = layer.forward(output)
        self.net.gather_params()
        return output

    def backward(self, dprev, regularization="none", reg_lambda=0.0, input_grad=True):
        lam = check_regularization(regularization, reg_lambda)   # before anything changes
        layers = self.net.layers
        first = 0   # the first layer run backwards
        if not input_grad:
            first = next((i for i, layer in enumerate(layers) if layer.params), len(layers))
        for i in range(len(layers) - 1, first - 1, -1):
            layer = layers[i]
            if i == first and not input_grad and isinstance(layer, (fc, ConvLayer2D)):
                dprev = layer.backward(dprev, input_grad=False)
            else:
                dprev = layer.backward(dprev)
        if not input_grad:
            dprev = None
        self.net.gather_grads()
        if regularization == "l1":
            self.net.apply_l1_regularization(lam)
        elif regularization == "l2":
            self.net.apply_l2_regularization(lam)
        return dprev


class TestFCGeLU(Module):
    """flatten -> fc1 (15 -> 5) -> gelu."""
    __test__ = False   # a model, not a pytest test class

    def __init__(self, keep_prob=0, dtype=np.float32, seed=None):
        self.net = sequential(
            flatten(name="flatten"),
            fc(15, 5, init_scale=0.002, name="fc1"),
            gelu(name="gelu"),
        )


class SmallFullyConnectedNetwork(Module):
    """fc1 (4 -> 30) -> gelu1 -> fc2 (30 -> 7), init_scale 0.02."""

    def __init__(self, keep_prob=0, dtype=np.float32, seed=None):
        self.net = sequential(
            fc(4, 30, init_scale=0.02, name="fc1"),
            gelu(name="gelu1"),
            fc(30, 7, init_scale=0.02, name="fc2"),
        )


class DropoutNet(Module):
    """flatten -> fc1 (15 -> 20) -> gelu1 -> fc2 (20 -> 30) -> gelu2 -> fc3
    (30 -> 10) -> gelu3 -> dropout(keep_prob, seed), init_scale 5e-2."""

    def __init__(self, keep_prob=0, dtype=np.float32, seed=None):
        self.dropout = dropout
        self.seed = seed
        self.net = sequential(
            flatten(name="flatten"),
            fc(15, 20, init_scale=5e-2, name="fc1"),
            gelu(name="gelu1"),
            fc(20, 30, init_scale=5e-2, name="fc2"),
            gelu(name="gelu2"),
            fc(30, 10, init_scale=5e-2, name="fc3"),
            gelu(name="gelu3"),
            dropout(keep_prob, seed=seed),
        )


class TinyNet(Module):
    """flatten -> fc1 (3072 -> 512) -> gelu1 -> fc2 (512 -> 20), init_scale
    0.01: CIFAR images (N, 32, 32, 3) to 20 class scores."""

    def __init__(self, keep_prob=0, dtype=np.float32, seed=None):
        self.net = sequential(
            flatten(name="flatten"),
            fc(3072, 512, init_scale=0.01, name="fc1"),
            gelu(name="gelu1"),
            fc(512, 20, init_scale=0.01, name="fc2"),
        )


class FullyConnectedNetwork(Module):
    """flatten -> fc1 (3072 -> 100) -> gelu1 -> fc2 ... fc5 (100 -> 100, each
    followed by gelu2 ... gelu5) -> fc6 (100 -> 20), init_scale 0.1."""

    def __init__(self, keep_prob=0, dtype=np.float32, seed=None):
        layers = [flatten(name="flatten"), fc(3072, 100, init_scale=0.1, name="fc1"),
                  gelu(name="gelu1")]
        for i in range(2, 6):
            layers += [fc(100, 100, init_scale=0.1, name=f"fc{i}"), gelu(name=f"gelu{i}")]
        layers.append(fc(100, 20, init_scale=0.1, name="fc6"))
        self.net = sequential(*layers)


class TestCNN(Module):
    """conv (3x3, 3 -> 3 filters, stride 1, pad 0) -> maxpool (2, stride 2) ->
    flatten -> fc (27 -> 5), init_scale 0.02 (for 8x8 RGB images, NHWC)."""
    __test__ = False   # a model, not a pytest test class

    def __init__(self, dtype=np.float32, seed=None):
        self.net = sequential(
            ConvLayer2D(3, 3, 3, stride=1, padding=0, init_scale=0.02, name="conv"),
            MaxPoolingLayer(2, 2, name="maxpool"),
            flatten(name="flatten"),
            fc(27, 5, init_scale=0.02, name="fc"),
        )


class SmallConvolutionalNetwork(Module):
    """For CIFAR images (N, 32, 32, 3), NHWC:

    conv1 (5x5, 3 -> 16, pad 2) -> gelu1 -> maxpool1 (2/2)      32x32x16 -> 16x16x16
    conv2 (3x3, 16 -> 32, pad 1) -> gelu2 -> maxpool2 (2/2)     16x16x32 -> 8x8x32
    flatten -> fc1 (2048 -> 128) -> gelu3 -> fc2 (128 -> num_classes)

    init_scale 0.02 for the convs, 0.01 for the fcs. num_classes (nnc's
    addition) defaults to the course's 20 CIFAR-100 superclasses; keep_prob
    below 1 (and above 0) adds dropout before fc2.
    """

    def __init__(self, keep_prob=0, dtype=np.float32, seed=None, num_classes=20):
        layers = [
            ConvLayer2D(3, 5, 16, stride=1, padding=2, init_scale=0.02, name="conv1"),
            gelu(name="gelu1"),
            MaxPoolingLayer(2, 2, name="maxpool1"),
            ConvLayer2D(16, 3, 32, stride=1, padding=1, init_scale=0.02, name="conv2"),
            gelu(name="gelu2"),
            MaxPoolingLayer(2, 2, name="maxpool2"),
            flatten(name="flatten"),
            fc(8 * 8 * 32, 128, init_scale=0.01, name="fc1"),
            gelu(name="gelu3"),
        ]
        if 0 < keep_prob < 1:
            layers.append(dropout(keep_prob, seed=seed))
        layers.append(fc(128, num_classes, init_scale=0.01, name="fc2"))
        self.net = sequential(*layers)

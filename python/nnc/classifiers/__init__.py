"""CS231n's classifiers: ``TwoLayerNet`` and ``FullyConnectedNet`` (fc_net),
``ThreeLayerConvNet`` (cnn). Each has ``params`` (name -> array) and
``loss(X, y=None)``: scores without y, (loss, grads) with y."""
from .cnn import ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet

__all__ = ["TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet"]

"""CS231n's classifiers: ``TwoLayerNet`` and ``FullyConnectedNet`` (fc_net),
``ThreeLayerConvNet`` (cnn), ``WordModel`` (word_model: next-word prediction). Each has ``params`` (name -> array) and
``loss(X, y=None)``: scores without y, (loss, grads) with y."""
from .cnn import ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet
from .word_model import WordModel

__all__ = ["TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "WordModel"]

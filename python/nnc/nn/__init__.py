"""The object-layer API of the CSCI566-style assignments, on nnc's ops.

    from nnc.nn import *

gives the layers (``flatten``, ``fc``, ``gelu``, ``relu``, ``tanh``,
``sigmoid``, ``leaky_relu``, ``dropout``, ``ConvLayer2D``,
``MaxPoolingLayer``, ``embedding``), the ``sequential`` container, the losses (``softmax``,
``cross_entropy``, ``mse``, ``bce``), ``Module`` and the course's models,
the optimizers (``SGD``, ``SGDM``, ``RMSProp``, ``Adam``), ``train_net`` and
``compute_acc``, and converters to PyTorch's layouts. Images are NHWC.

The layers call nnc's public ops, so they run on the active backend
(``nnc.use_backend``); nothing here calls a backend directly.
"""
from .convert import (conv_weight_from_torch, conv_weight_to_torch, fc_weight_from_torch,
                      fc_weight_to_torch, from_torch_state_dict, nchw_to_nhwc, nhwc_to_nchw,
                      to_torch, to_torch_state_dict)
from .embedding import embedding
from .layers import (ConvLayer2D, Layer, MaxPoolingLayer, bce, cross_entropy, dropout, fc,
                     flatten, gelu, leaky_relu, mse, relu, sequential, sigmoid, softmax, tanh)
from .models import (DropoutNet, FullyConnectedNetwork, Module, SmallConvolutionalNetwork,
                     SmallFullyConnectedNetwork, TestCNN, TestFCGeLU, TinyNet)
from .optim import SGD, SGDM, Adam, Optimizer, RMSProp
from .train import DataLoader, compute_acc, train_net

__all__ = [
    # layers and container
    "Layer", "flatten", "fc", "gelu", "relu", "tanh", "sigmoid", "leaky_relu", "dropout",
    "ConvLayer2D", "MaxPoolingLayer", "embedding", "sequential",
    # losses
    "softmax", "cross_entropy", "mse", "bce",
    # models
    "Module", "TestFCGeLU", "SmallFullyConnectedNetwork", "DropoutNet", "TinyNet",
    "FullyConnectedNetwork", "TestCNN", "SmallConvolutionalNetwork",
    # optimizers and training
    "Optimizer", "SGD", "SGDM", "RMSProp", "Adam", "DataLoader", "compute_acc", "train_net",
    # PyTorch layouts
    "nhwc_to_nchw", "nchw_to_nhwc", "conv_weight_to_torch", "conv_weight_from_torch",
    "fc_weight_to_torch", "fc_weight_from_torch", "to_torch_state_dict",
    "from_torch_state_dict", "to_torch",
]

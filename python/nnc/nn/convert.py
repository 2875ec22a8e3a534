"""Moving on to PyTorch: layout converters, and a trained ``sequential``
exported as a state_dict that an equivalent ``torch.nn.Sequential`` loads.

nnc.nn is NHWC with conv filters (k, k, C_in, C_out) and fc weights
(in, out); PyTorch is NCHW with conv filters (C_out, C_in, k, k) and Linear
weights (out, in). A flatten differs too: nnc flattens (H, W, C), PyTorch
(C, H, W), so the fc after it has its input rows reordered. torch itself is
needed only by ``to_torch``.
"""
import numpy as np

from .layers import (ConvLayer2D, MaxPoolingLayer, dropout, fc, flatten, gelu, leaky_relu, relu,
                     sigmoid, tanh)


def nhwc_to_nchw(x):
    """Images (N, H, W, C) -> (N, C, H, W), a contiguous copy."""
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def nchw_to_nhwc(x):
    """Images (N, C, H, W) -> (N, H, W, C), a contiguous copy."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def conv_weight_to_torch(w):
    """Conv filters (k, k, C_in, C_out) -> (C_out, C_in, k, k)."""
    return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))


def conv_weight_from_torch(w):
    """Conv filters (C_out, C_in, k, k) -> (k, k, C_in, C_out)."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def fc_weight_to_torch(w):
    """fc weights (in, out) -> Linear weights (out, in)."""
    return np.ascontiguousarray(np.transpose(w))


def fc_weight_from_torch(w):
    """Linear weights (out, in) -> fc weights (in, out)."""
    return np.ascontiguousarray(np.transpose(w))


def _walk(net, input_shape):
    """(index, layer, hwc) for each layer, hwc being the (H, W, C) of the image
    a flatten before this fc flattened (else None); checks input_shape."""
    shape = None if input_shape is None else tuple(int(v) for v in input_shape)
    if shape is not None and len(shape) not in (1, 3):
        raise ValueError(f"input_shape must be (H, W, C) for images or (D,) for vectors, "
                         f"got {input_shape}")
    hwc = None
    for i, layer in enumerate(net.layers):
        if isinstance(layer, (ConvLayer2D, MaxPoolingLayer)):
            if shape is None or len(shape) != 3:
                raise ValueError(f"layer {i} ({layer.name!r}) takes images: pass input_shape "
                                 f"(H, W, C)")
            shape = tuple(layer.get_output_size((1,) + shape)[1:])
        elif isinstance(layer, flatten):
            hwc = shape if shape is not None and len(shape) == 3 else None
            shape = None if shape is None else (int(np.prod(shape)),)
        yield i, layer, (hwc if isinstance(layer, fc) else None)
        if isinstance(layer, fc):
            hwc, shape = None, (layer.output_dim,)


def to_torch_state_dict(net, input_shape=None):
    """The parameters of ``net`` as the state_dict of the equivalent
    ``torch.nn.Sequential`` (``to_torch`` builds it): keys "i.weight" and
    "i.bias", i being the layer's index in net.layers, values NumPy arrays in
    PyTorch's layouts (wrap them with torch.from_numpy to load them).

    - input_shape: (H, W, C) of one input image when the network takes images,
      needed to reorder the fc after a flatten; None (or (D,)) for vectors
    """
    sd = {}
    for i, layer, hwc in _walk(net, input_shape):
        if isinstance(layer, ConvLayer2D):
            sd[f"{i}.weight"] = conv_weight_to_torch(layer.params[layer.w_name])
            sd[f"{i}.bias"] = np.array(layer.params[layer.b_name])
        elif isinstance(layer, fc):
            w = layer.params[layer.w_name]
            if hwc is not None:   # rows (h, w, c) -> columns (c, h, w)
                H, W, C = hwc
                w = w.reshape(H, W, C, -1).transpose(2, 0, 1, 3).reshape(H * W * C, -1)
            sd[f"{i}.weight"] = fc_weight_to_torch(w)
            sd[f"{i}.bias"] = np.array(layer.params[layer.b_name])
    return sd


def from_torch_state_dict(net, state_dict, input_shape=None):
    """The inverse of ``to_torch_state_dict``: {nnc parameter name: array}
    for ``net.load``, from a state_dict (tensors or arrays) of the equivalent
    torch.nn.Sequential."""
    def arr(v):
        return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)

    params = {}
    for i, layer, hwc in _walk(net, input_shape):
        if isinstance(layer, ConvLayer2D):
            params[layer.w_name] = conv_weight_from_torch(arr(state_dict[f"{i}.weight"]))
            params[layer.b_name] = arr(state_dict[f"{i}.bias"]).copy()
        elif isinstance(layer, fc):
            w = fc_weight_from_torch(arr(state_dict[f"{i}.weight"]))
            if hwc is not None:   # rows (c, h, w) -> (h, w, c)
                H, W, C = hwc
                w = np.ascontiguousarray(w.reshape(C, H, W, -1).transpose(1, 2, 0, 3)
                                         .reshape(H * W * C, -1))
            params[layer.w_name] = w
            params[layer.b_name] = arr(state_dict[f"{i}.bias"]).copy()
    return params


def to_torch(net, input_shape=None):
    """A ``torch.nn.Sequential`` computing what ``net`` computes, on NCHW
    images (``nhwc_to_nchw``) or vectors, with net's parameters loaded, in
    their dtype. Layers map one to one (so the state_dict keys are the layer
    indices): ConvLayer2D -> Conv2d, MaxPoolingLayer -> MaxPool2d, flatten ->
    Flatten, fc -> Linear, gelu -> GELU(approximate="tanh"), relu, tanh,
    sigmoid, leaky_relu -> their torch modules, dropout -> Dropout(1 - keep_prob)
    (Dropout(0) for keep_prob 0 or 1)."""
    import torch
    from torch import nn

    modules = []
    for _, layer, _ in _walk(net, input_shape):
        if isinstance(layer, ConvLayer2D):
            modules.append(nn.Conv2d(layer.input_channels, layer.number_filters,
                                     layer.kernel_size, stride=layer.stride,
                                     padding=layer.padding))
        elif isinstance(layer, MaxPoolingLayer):
            modules.append(nn.MaxPool2d(layer.pool_size, stride=layer.stride))
        elif isinstance(layer, flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, fc):
            modules.append(nn.Linear(layer.input_dim, layer.output_dim))
        elif isinstance(layer, gelu):
            modules.append(nn.GELU(approximate="tanh"))
        elif isinstance(layer, relu):
            modules.append(nn.ReLU())
        elif isinstance(layer, tanh):
            modules.append(nn.Tanh())
        elif isinstance(layer, sigmoid):
            modules.append(nn.Sigmoid())
        elif isinstance(layer, leaky_relu):
            modules.append(nn.LeakyReLU(layer.negative_slope))
        elif isinstance(layer, dropout):
            p = layer.keep_prob
            modules.append(nn.Dropout(0.0 if p in (0.0, 1.0) else 1.0 - p))
        else:
            raise TypeError(f"to_torch: no PyTorch module for layer {layer.name!r} "
                            f"({type(layer).__name__})")
    dtype = torch.float64 if any(v.dtype == np.float64 for v in net.params.values()) \
        else torch.float32
    model = nn.Sequential(*modules).to(dtype)
    sd = to_torch_state_dict(net, input_shape)
    model.load_state_dict({k: torch.from_numpy(v).to(dtype) for k, v in sd.items()}, strict=True)
    return model

"""Object layers of the CSCI566-style assignments, on nnc's functional ops.

Every layer has ``name``, ``params`` and ``grads`` (dicts, ``{}`` for layers
without weights; parameter names are ``name + "_w"`` and ``name + "_b"``,
gradients start as ``None``). ``forward(feat)`` keeps the cache of the op it
ran in ``meta``; ``backward(dprev)`` uses it up, writes ``grads`` and returns
the gradient with respect to the input. A backward with no forward before it
raises ``ValueError``.

The layers call the public ops (``nnc.layers``, ``nnc.fast_layers``), so they
run on the active backend (``nnc.use_backend``). They read ``self.params`` on
every call, so a notebook may replace or perturb the arrays in place (the
gradient checks do). Images are NHWC: (N, H, W, C), conv filters (k, k, C, F).
"""
import numpy as np

from .. import _checks as ck
from .. import fast_layers as FL
from .. import layers as L


class Layer:
    """What every layer shares: the ``meta`` cache and the no-forward check.
    A layer of your own needs ``name``, ``params``, ``grads``, ``forward`` and
    ``backward``; deriving from Layer is optional."""

    def __init__(self, name):
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name
        self.params = {}
        self.grads = {}
        self.meta = None

    def _take_meta(self):
        """The forward pass's cache, which a backward uses up (as in the course)."""
        meta, self.meta = self.meta, None
        if meta is None:
            raise ValueError(f"No forward function called before for this module! "
                             f"({type(self).__name__} {self.name!r}: run forward before backward)")
        return meta

    def __repr__(self):
        shapes = ", ".join(f"{n}: {None if v is None else v.shape}" for n, v in self.params.items())
        return f"{type(self).__name__}({self.name!r}{', ' + shapes if shapes else ''})"


class flatten(Layer):
    """(N, d_1, ..., d_k) -> (N, d_1 * ... * d_k), in C order (for NHWC images:
    H, then W, then C)."""

    def __init__(self, name="flatten"):
        super().__init__(name)

    def forward(self, feat):
        ck.array(feat, "feat", min_ndim=1)
        self.meta = feat.shape
        return feat.reshape(feat.shape[0], -1)

    def backward(self, dprev):
        return np.reshape(dprev, self._take_meta())


class fc(Layer):
    """Fully connected layer: out = feat @ w + b.

    - weights ``name_w`` (input_dim, output_dim), drawn as
      ``init_scale * np.random.randn`` from NumPy's global generator
    - bias ``name_b`` (output_dim,), zeros

    forward: feat (N, input_dim) -> (N, output_dim).
    """

    def __init__(self, input_dim, output_dim, init_scale=0.002, name="fc"):
        super().__init__(name)
        self.input_dim = ck.positive_int(input_dim, "input_dim")
        self.output_dim = ck.positive_int(output_dim, "output_dim")
        init_scale = ck.real(init_scale, "init_scale")
        self.w_name, self.b_name = name + "_w", name + "_b"
        self.params[self.w_name] = init_scale * np.random.randn(self.input_dim, self.output_dim)
        self.params[self.b_name] = np.zeros(self.output_dim)
        self.grads[self.w_name] = None
        self.grads[self.b_name] = None

    def forward(self, feat):
        ck.array(feat, "feat")
        if feat.ndim != 2 or feat.shape[1] != self.input_dim:
            raise ValueError(f"fc {self.name!r}: the input must be 2-D with input_dim="
                             f"{self.input_dim} features, but got shape {feat.shape} (weights "
                             f"{self.params[self.w_name].shape}); add a flatten layer before it "
                             f"for images")
        out, self.meta = L.affine_forward(feat, self.params[self.w_name], self.params[self.b_name])
        return out

    def backward(self, dprev, input_grad=True):
        """dprev (N, output_dim) -> dfeat (N, input_dim); grads of w and b.
        input_grad=False (nnc's addition, for a first layer) skips dfeat and
        returns None."""
        meta = self._take_meta()
        if not input_grad:
            dfeat, (dw, db) = None, L.affine_backward_weights(dprev, meta)
        else:
            dfeat, dw, db = L.affine_backward(dprev, meta)
        self.grads[self.w_name], self.grads[self.b_name] = dw, db
        return dfeat


class _Activation(Layer):
    """An elementwise layer over one forward/backward op pair."""
    _forward = _backward = None   # set by each subclass

    def forward(self, feat):
        out, self.meta = type(self)._forward(feat)
        return out

    def backward(self, dprev):
        return type(self)._backward(dprev, self._take_meta())


class gelu(_Activation):
    """GELU, tanh approximation, in forward and backward:
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))."""
    _forward, _backward = staticmethod(L.gelu_forward), staticmethod(L.gelu_backward)

    def __init__(self, name="gelu"):
        super().__init__(name)


class relu(_Activation):
    """max(0, x)."""
    _forward, _backward = staticmethod(L.relu_forward), staticmethod(L.relu_backward)

    def __init__(self, name="relu"):
        super().__init__(name)


class tanh(_Activation):
    """tanh(x)."""
    _forward, _backward = staticmethod(L.tanh_forward), staticmethod(L.tanh_backward)

    def __init__(self, name="tanh"):
        super().__init__(name)


class sigmoid(_Activation):
    """1 / (1 + exp(-x)), without overflow."""
    _forward, _backward = staticmethod(L.sigmoid_forward), staticmethod(L.sigmoid_backward)

    def __init__(self, name="sigmoid"):
        super().__init__(name)


class leaky_relu(Layer):
    """x where x > 0, else negative_slope * x."""

    def __init__(self, negative_slope=0.01, name="leaky_relu"):
        super().__init__(name)
        self.negative_slope = ck.real(negative_slope, "negative_slope")

    def forward(self, feat):
        out, self.meta = L.leaky_relu_forward(feat, self.negative_slope)
        return out

    def backward(self, dprev):
        return L.leaky_relu_backward(dprev, self._take_meta())


class dropout(Layer):
    """Inverted dropout with the course's keep-probability convention.

    - keep_prob: probability of KEEPING a unit, in [0, 1]; 0 and 1 both mean
      no dropout (the course's convention)
    - seed: seeds the layer's own generator, ``np.random.RandomState(seed)``
      (None: fresh entropy); NumPy's global generator is never used

    forward(feat, is_training=True, seed=None): in training, kept = (a uniform
    draw from the layer's generator) < keep_prob and out = feat * kept /
    keep_prob; at test time (or with no dropout) out is feat itself. A seed
    passed here re-creates the generator first, so a seeded forward is
    reproducible; backward uses the stored mask.
    """

    def __init__(self, keep_prob, seed=None, name="dropout"):
        super().__init__(name)
        keep_prob = ck.real(keep_prob, "keep_prob")
        if not 0.0 <= keep_prob <= 1.0:
            raise ValueError(f"Keep Prob = {keep_prob} is not within [0, 1]: keep_prob is the "
                             f"probability of keeping a unit (0 or 1 means no dropout)")
        self.keep_prob = keep_prob
        self.rng = np.random.RandomState(seed)
        self.kept = None
        self.is_training = False

    def forward(self, feat, is_training=True, seed=None):
        ck.array(feat, "feat")
        if seed is not None:
            self.rng = np.random.RandomState(seed)
        p = self.keep_prob
        if is_training and 0.0 < p < 1.0:
            feat = ck.promote(feat)[0]
            # the mask is drawn in float64 and divided by p before the cast, as
            # nnc.layers.dropout_forward does, so float32 and float64 agree
            self.kept = ((self.rng.rand(*feat.shape) < p) / p).astype(feat.dtype)
            out = feat * self.kept
        else:
            self.kept = None
            out = feat
        self.is_training = is_training
        self.meta = feat.shape
        return out

    def backward(self, dprev):
        self._take_meta()
        dfeat = dprev if self.kept is None else dprev * self.kept
        self.is_training = False
        return dfeat


def _int_arg(v, name, minimum):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


class ConvLayer2D(Layer):
    """2-D convolution of NHWC images (cross-correlation, zero padding).

    - weights ``name_w`` (kernel_size, kernel_size, input_channels,
      number_filters), drawn as ``init_scale * np.random.randn``
    - bias ``name_b`` (number_filters,), zeros

    forward: img (N, H, W, input_channels) -> (N, H', W', number_filters) with
    H' = (H + 2*padding - kernel_size) // stride + 1, W' likewise.
    """

    def __init__(self, input_channels, kernel_size, number_filters, stride=1, padding=0,
                 init_scale=0.02, name="conv"):
        super().__init__(name)
        self.input_channels = _int_arg(input_channels, "input_channels", 1)
        self.kernel_size = _int_arg(kernel_size, "kernel_size", 1)
        self.number_filters = _int_arg(number_filters, "number_filters", 1)
        self.stride = _int_arg(stride, "stride", 1)
        self.padding = _int_arg(padding, "padding", 0)
        init_scale = ck.real(init_scale, "init_scale")
        self.w_name, self.b_name = name + "_w", name + "_b"
        k = self.kernel_size
        self.params[self.w_name] = init_scale * np.random.randn(k, k, self.input_channels,
                                                                self.number_filters)
        self.params[self.b_name] = np.zeros(self.number_filters)
        self.grads[self.w_name] = None
        self.grads[self.b_name] = None

    def get_output_size(self, input_size):
        """[N, H', W', number_filters] for an input of shape input_size (N, H, W, C)."""
        if len(input_size) != 4:
            raise ValueError(f"input_size must be a 4-D shape (N, H, W, C), got {input_size}")
        N, H, W, _ = (int(v) for v in input_size)
        k, s, p = self.kernel_size, self.stride, self.padding
        return [N, (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1, self.number_filters]

    def forward(self, img):
        ck.array(img, "img")
        if img.ndim != 4 or img.shape[3] != self.input_channels:
            raise ValueError(f"ConvLayer2D {self.name!r}: expected a batch of NHWC images "
                             f"(N, H, W, {self.input_channels}), but received shape {img.shape}")
        out, self.meta = FL.conv_nhwc_forward(img, self.params[self.w_name],
                                              self.params[self.b_name],
                                              {"stride": self.stride, "pad": self.padding})
        return out

    def backward(self, dprev, input_grad=True):
        """dprev (N, H', W', F) -> dimg (N, H, W, C); grads of w and b.
        input_grad=False (nnc's addition, for a first layer) skips dimg,
        about half of the work, and returns None."""
        meta = self._take_meta()
        if not input_grad:
            dimg, (dw, db) = None, FL.conv_nhwc_backward_weights(dprev, meta)
        else:
            dimg, dw, db = FL.conv_nhwc_backward(dprev, meta)
        self.grads[self.w_name], self.grads[self.b_name] = dw, db
        return dimg


class MaxPoolingLayer(Layer):
    """Max pooling of NHWC images over pool_size x pool_size windows, no
    padding; windows may overlap (stride < pool_size).

    forward: img (N, H, W, C) -> (N, H', W', C), H' = (H - pool_size) // stride + 1.
    """

    def __init__(self, pool_size, stride, name="maxpool"):
        super().__init__(name)
        self.pool_size = _int_arg(pool_size, "pool_size", 1)
        self.stride = _int_arg(stride, "stride", 1)

    def get_output_size(self, input_size):
        """[N, H', W', C] for an input of shape input_size (N, H, W, C)."""
        if len(input_size) != 4:
            raise ValueError(f"input_size must be a 4-D shape (N, H, W, C), got {input_size}")
        N, H, W, C = (int(v) for v in input_size)
        k, s = self.pool_size, self.stride
        return [N, (H - k) // s + 1, (W - k) // s + 1, C]

    def forward(self, img):
        ck.array(img, "img")
        if img.ndim != 4:
            raise ValueError(f"MaxPoolingLayer {self.name!r}: expected a batch of NHWC images "
                             f"(N, H, W, C), but received shape {img.shape}")
        k = self.pool_size
        out, self.meta = FL.max_pool_nhwc_forward(
            img, {"pool_height": k, "pool_width": k, "stride": self.stride})
        return out

    def backward(self, dprev):
        return FL.max_pool_nhwc_backward(dprev, self._take_meta())


# --- the container ---------------------------------------------------------------


class sequential:
    """Layers run in order, with their parameters looked up by name.

    ``params`` and ``grads`` are flat dicts {name: array} over every layer;
    they hold the layers' own arrays (``gather_params``/``gather_grads``
    refresh them after a layer replaced one). Layer names must be unique.
    """

    def __init__(self, *layers):
        self.params = {}
        self.grads = {}
        self.layers = []
        self.paramName2Indices = {}
        self.layer_names = {}
        for i, layer in enumerate(layers):
            missing = [a for a in ("name", "params", "grads", "forward", "backward")
                       if not hasattr(layer, a)]
            if missing:
                raise TypeError(f"sequential: argument {i} ({type(layer).__name__}) is not a "
                                f"layer: it has no {', '.join(missing)}")
            if layer.name in self.layer_names:
                raise ValueError(f"Existing name {layer.name}! Layer names in a sequential must "
                                 f"be unique (layers {self.layer_names[layer.name]} and {i})")
            for n, v in layer.params.items():
                if n in self.paramName2Indices:
                    raise ValueError(f"sequential: parameter {n!r} of layer {i} is also a "
                                     f"parameter of layer {self.paramName2Indices[n]}")
                self.params[n] = v
                self.paramName2Indices[n] = i
            for n, v in layer.grads.items():
                self.grads[n] = v
            self.layer_names[layer.name] = i
            self.layers.append(layer)

    def _layer_of(self, name):
        if name not in self.paramName2Indices:
            raise KeyError(f"no parameter named {name!r}; the parameters are "
                           f"{list(self.paramName2Indices)}")
        return self.layers[self.paramName2Indices[name]]

    def assign(self, name, val):
        """Make ``val`` (an array of the parameter's shape) the parameter ``name``."""
        layer = self._layer_of(name)
        _check_value(name, val, layer.params.get(name))
        layer.params[name] = val
        self.params[name] = val

    def assign_grads(self, name, val):
        """Make ``val`` the gradient of the parameter ``name``."""
        layer = self._layer_of(name)
        _check_value(name, val, layer.params.get(name))
        layer.grads[name] = val
        self.grads[name] = val

    def get_params(self, name):
        return self._layer_of(name).params[name]

    def get_grads(self, name):
        return self._layer_of(name).grads[name]

    def gather_params(self):
        """Refresh ``params`` from every layer."""
        for layer in self.layers:
            self.params.update(layer.params)

    def gather_grads(self):
        """Refresh ``grads`` from every layer."""
        for layer in self.layers:
            self.grads.update(layer.grads)

    def _grads_to_regularize(self):
        pairs = []
        for layer in self.layers:
            for n, g in layer.grads.items():
                if g is None:
                    raise ValueError(f"the gradient of {n!r} is None: run a backward pass "
                                     f"before regularizing")
                pairs.append((layer, n, g))
        return pairs

    def apply_l1_regularization(self, lam):
        """grad += lam * sign(param), for every weight and bias (the gradient of
        lam * sum |param|). The gradient arrays are updated in place."""
        lam = ck.real(lam, "lam")
        for layer, n, g in self._grads_to_regularize():
            g += lam * np.sign(layer.params[n])
        self.gather_grads()

    def apply_l2_regularization(self, lam):
        """grad += lam * param, for every weight and bias: the gradient of
        (lam / 2) * sum param**2. The course writes the penalty as
        lam * ||param||^2; nnc leaves out the factor 2 so that L2 with
        lam = weight_decay / lr takes exactly SGD's weight-decay steps.
        The gradient arrays are updated in place."""
        lam = ck.real(lam, "lam")
        for layer, n, g in self._grads_to_regularize():
            g += lam * layer.params[n]
        self.gather_grads()

    def load(self, pretrained):
        """Copy every array of ``pretrained`` ({name: array}) whose name is a
        parameter of this network, printing one line per array as the course
        does. Names it does not know are ignored; a shape that differs raises
        ValueError before anything is loaded."""
        if not hasattr(pretrained, "keys"):
            raise TypeError(f"pretrained must be a dict of arrays, got {type(pretrained).__name__}")
        for layer in self.layers:
            for n, v in layer.params.items():
                if n in pretrained:
                    _check_value(n, pretrained[n], v)
        for layer in self.layers:
            for n in list(layer.params):
                if n in pretrained:
                    layer.params[n] = np.array(pretrained[n], copy=True)
                    self.params[n] = layer.params[n]
                    print("Loading Params: {} Shape: {}".format(n, layer.params[n].shape))

    def astype(self, dtype):
        """Convert every parameter to ``dtype`` (float32 or float64), in place of
        the old arrays; returns self. The course's models hold float64 (they
        come from np.random.randn); float32 runs about twice as fast."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for layer in self.layers:
            for n, v in layer.params.items():
                layer.params[n] = np.ascontiguousarray(v, dtype=dtype)
        self.gather_params()
        return self


def _check_value(name, val, current):
    if not isinstance(val, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(val).__name__}")
    if current is not None and val.shape != current.shape:
        raise ValueError(f"{name} has shape {current.shape}, got an array of shape {val.shape}")


# --- losses ------------------------------------------------------------------------


def softmax(feat):
    """Softmax over the last axis of feat (any shape), computed stably."""
    ck.array(feat, "feat", min_ndim=1)
    e = np.exp(feat - np.max(feat, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


class _Loss:
    """A loss: ``forward(feat, target)`` returns the loss (a float) and keeps
    the gradient, which an argument-free ``backward()`` hands out once."""

    def __init__(self, size_average=True):
        if not isinstance(size_average, (bool, np.bool_)):
            raise TypeError(f"size_average must be True or False, got {size_average!r}")
        self.size_average = bool(size_average)
        self.dfeat = None

    def backward(self):
        dfeat, self.dfeat = self.dfeat, None
        if dfeat is None:
            raise ValueError(f"No forward function called before for this module! "
                             f"({type(self).__name__}: run forward before backward)")
        return dfeat


class cross_entropy(_Loss):
    """Softmax cross-entropy: the mean over the batch of -log softmax(feat)[i, label_i]
    (the sum when size_average=False).

    forward(feat (N, C) scores, label (N,) integers in [0, C)) -> loss;
    backward() -> dfeat (N, C).
    """

    def forward(self, feat, label):
        loss, dfeat = L.softmax_loss(feat, label)
        if not self.size_average:
            n = feat.shape[0]
            loss, dfeat = loss * n, dfeat * n
        self.dfeat = dfeat
        return loss


class mse(_Loss):
    """Mean squared error over every element, as PyTorch's MSELoss:
    mean((pred - target)**2) (the sum when size_average=False).

    forward(pred (N, ...), target of pred's shape) -> loss; backward() -> dpred.
    """

    def forward(self, pred, target):
        half_sum_over_n, dpred = L.mse_loss(pred, target)   # 0.5 * sum / N, (pred - target) / N
        n = pred.shape[0]
        scale = 2.0 * n / (pred.size if self.size_average else 1)
        self.dfeat = dpred * scale
        return half_sum_over_n * scale


class bce(_Loss):
    """Binary cross-entropy on logits, as PyTorch's BCEWithLogitsLoss: the mean
    over every element of -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))
    (the sum when size_average=False), without overflow for any logit.

    forward(logits (N, ...), target of the same shape, in [0, 1]) -> loss;
    backward() -> dlogits.
    """

    def forward(self, logits, target):
        loss, dlogits = L.bce_loss(logits, target)
        if not self.size_average:
            loss, dlogits = loss * logits.size, dlogits * logits.size
        self.dfeat = dlogits
        return loss

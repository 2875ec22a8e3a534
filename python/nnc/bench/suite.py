"""The op registry shared by the tests and the benchmarks.

Each ``Op`` is data: how to build its inputs for a shape and dtype, which
declared op runs it with which inputs (one generic adapter calls the public
function, so it runs on whatever backend is active), and, optionally, the
same work in PyTorch and its FLOP and byte counts. ``CASES`` names the benchmark shapes; each op's
``test_shapes`` are small shapes with tails on purpose (N=1, odd and prime
sizes, channel counts that are not multiples of the SIMD width) for the
backend-equivalence tests.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


def public_op(name):
    """The public function of a declared op (from nnc.layers, fast_layers or optim)."""
    from nnc import fast_layers, layers, optim

    for module in (layers, fast_layers, optim):
        fn = getattr(module, name, None)
        if fn is not None:
            return fn
    raise KeyError(f"no public op named {name!r}")


@dataclass
class Op:
    """A benchmark/test case family described as data: the declared op that
    runs it (``fn``, with the input keys ``args`` it takes), its backward op
    (``bwd``, fed ``inp['dout']`` and the forward's cache), and what else it
    reports (``extra``: more outputs read from the inputs afterwards, such as
    the running statistics a batchnorm updates). ``run`` replaces ``fn``
    for whole training steps, which are not single ops."""
    name: str
    make: Callable                      # (shape, dtype, seed) -> dict of inputs
    fn: Optional[str] = None            # forward op name (a forward_op or an op)
    args: tuple = ()                    # input keys passed to fn, in order
    bwd: Optional[str] = None           # backward op name
    extra: Optional[Callable] = None    # (inp) -> more outputs after the forward
    run: Optional[Callable] = None      # (inp) -> outputs, for whole steps
    needs: tuple = ()                   # more registry op names it calls (steps)
    test_shapes: list = field(default_factory=list)
    torch: Optional[Callable] = None    # (inp, backward: bool) -> zero-arg callable
    flops: Optional[Callable] = None    # (shape) -> forward FLOPs
    backward_flops: float = 2.0         # the backward's FLOPs per forward FLOP (dw only: 1)
    nbytes: Optional[Callable] = None   # (shape, itemsize) -> bytes a forward moves
    is_step: bool = False               # a whole update (optimizer / training step)

    def __post_init__(self):
        # aliases (conv_forward_fast is conv_forward_strides) by their op names
        self.needs = tuple(public_op(n).__name__ for n in (self.fn, self.bwd) if n) + \
            tuple(self.needs)
        self.backward = self._backward if self.bwd else None

    def forward(self, inp):
        """Runs the op on the active backend: (tuple of outputs, cache or None)."""
        if self.run is not None:
            return tuple(self.run(inp)), None
        fn = public_op(self.fn)
        outs, cache = _outputs(fn.__name__, fn(*(inp[k] for k in self.args)), inp)
        if self.extra is not None:
            outs += tuple(self.extra(inp))
        return outs, cache

    def _backward(self, inp, cache):
        grads = public_op(self.bwd)(inp["dout"], cache)
        return grads if isinstance(grads, tuple) else (grads,)


def _outputs(name, result, inp):
    """A declared op's result as (outputs, cache): forwards give (out, cache),
    losses (loss, dx), update rules (next_w, config) whose state arrays count
    as outputs too."""
    from nnc.backends import declared_ops

    if name in declared_ops("forward"):
        out, cache = result
        return (out,), cache
    first, second = result
    if isinstance(second, dict):    # an update rule: continue from next_w
        inp["w"] = first
        return (first,) + tuple(v for k, v in sorted(second.items())
                                if isinstance(v, np.ndarray)), None
    return (np.asarray(first), second), None


@dataclass
class Case:
    name: str
    op: str
    shape: tuple
    quick: bool = False


def _rng(seed):
    return np.random.default_rng(seed)


def _randn(rng, shape, dtype, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def _t(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


def _torch_fwd_bwd(fn, inputs, dout, backward):
    """Callable running ``fn(*inputs)`` in torch, plus backward with ``dout``."""
    import torch

    ts = [_t(a).requires_grad_(backward) for a in inputs]
    g = _t(dout)

    def run():
        if backward:
            for t in ts:
                t.grad = None
            fn(*ts).backward(g)
        else:
            with torch.no_grad():
                fn(*ts)
    return run


# --- convolution --------------------------------------------------------------
# shape = (N, C, H, W, F, HH, WW, stride, pad)

def _conv_out(shape):
    N, C, H, W, F, HH, WW, s, p = shape
    return N, F, (H + 2 * p - HH) // s + 1, (W + 2 * p - WW) // s + 1


def _conv_make(shape, dtype, seed):
    N, C, H, W, F, HH, WW, s, p = shape
    rng = _rng(seed)
    return dict(x=_randn(rng, (N, C, H, W), dtype), w=_randn(rng, (F, C, HH, WW), dtype, 0.1),
                b=_randn(rng, (F,), dtype), conv_param={"stride": s, "pad": p},
                dout=_randn(rng, _conv_out(shape), dtype))


def _conv_torch(inp, backward):
    import torch.nn.functional as F

    s, p = inp["conv_param"]["stride"], inp["conv_param"]["pad"]
    return _torch_fwd_bwd(lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p),
                          (inp["x"], inp["w"], inp["b"]), inp["dout"], backward)


def _conv_flops(shape):
    N, F, Ho, Wo = _conv_out(shape)
    C, HH, WW = shape[1], shape[5], shape[6]
    return 2.0 * N * F * Ho * Wo * C * HH * WW


# --- conv + max-pool (a first layer, one op) ---------------------------------------
# shape = the conv's (N, C, H, W, F, HH, WW, stride, pad) + the pool's (ph, pw, stride)

def _pool_out(shape):
    N, F, Hc, Wc = _conv_out(shape[:9])
    ph, pw, ps = shape[9:]
    return N, F, (Hc - ph) // ps + 1, (Wc - pw) // ps + 1


def _conv_pool_make(shape, dtype, seed):
    inp = _conv_make(shape[:9], dtype, seed)
    ph, pw, ps = shape[9:]
    inp["pool_param"] = {"pool_height": ph, "pool_width": pw, "stride": ps}
    inp["dout"] = _randn(_rng(seed + 1), _pool_out(shape), dtype)
    return inp


def _conv_pool_torch(inp, backward, with_dx=True):
    import torch.nn.functional as F

    s, p = inp["conv_param"]["stride"], inp["conv_param"]["pad"]
    pp = inp["pool_param"]
    k, ps = (pp["pool_height"], pp["pool_width"]), pp["stride"]
    if with_dx:
        return _torch_fwd_bwd(
            lambda x, w, b: F.max_pool2d(F.conv2d(x, w, b, stride=s, padding=p), k, ps),
            (inp["x"], inp["w"], inp["b"]), inp["dout"], backward)
    x = _t(inp["x"])    # a first layer: the images need no gradient
    return _torch_fwd_bwd(lambda w, b: F.max_pool2d(F.conv2d(x, w, b, stride=s, padding=p), k, ps),
                          (inp["w"], inp["b"]), inp["dout"], backward)


# --- max-pool -------------------------------------------------------------------
# shape = (N, C, H, W, ph, pw, stride)

def _pool_make(shape, dtype, seed):
    N, C, H, W, ph, pw, s = shape
    rng = _rng(seed)
    Ho, Wo = (H - ph) // s + 1, (W - pw) // s + 1
    return dict(x=_randn(rng, (N, C, H, W), dtype),
                pool_param={"pool_height": ph, "pool_width": pw, "stride": s},
                dout=_randn(rng, (N, C, Ho, Wo), dtype))


def _pool_torch(inp, backward):
    import torch.nn.functional as F

    pp = inp["pool_param"]
    k, s = (pp["pool_height"], pp["pool_width"]), pp["stride"]
    return _torch_fwd_bwd(lambda x: F.max_pool2d(x, k, s), (inp["x"],), inp["dout"], backward)


def _pool_bytes(shape, itemsize):
    N, C, H, W, ph, pw, s = shape
    return itemsize * N * C * (H * W + ((H - ph) // s + 1) * ((W - pw) // s + 1))


# --- normalization ----------------------------------------------------------------

def _bn_make(shape, dtype, seed):
    rng = _rng(seed)
    D = shape[1]
    return dict(x=_randn(rng, shape, dtype, 3.0, 5.0), gamma=_randn(rng, (D,), dtype, 0.5, 1.0),
                beta=_randn(rng, (D,), dtype), param={"mode": "train"},
                dout=_randn(rng, shape, dtype))


def _bn_torch(inp, backward):
    import torch.nn.functional as F

    D = inp["x"].shape[1]
    rm, rv = _t(np.zeros(D, inp["x"].dtype)), _t(np.ones(D, inp["x"].dtype))
    return _torch_fwd_bwd(lambda x, g, b: F.batch_norm(x, rm, rv, g, b, training=True,
                                                       momentum=0.1, eps=1e-5),
                          (inp["x"], inp["gamma"], inp["beta"]), inp["dout"], backward)


def _norm_bytes(shape, itemsize):
    return 2.0 * itemsize * float(np.prod(shape))   # read x, write out


def _ln_torch(inp, backward):
    import torch.nn.functional as F

    D = inp["x"].shape[1]
    return _torch_fwd_bwd(lambda x, g, b: F.layer_norm(x, (D,), g, b, eps=1e-5),
                          (inp["x"], inp["gamma"], inp["beta"]), inp["dout"], backward)


def _gn_make(shape, dtype, seed):
    N, C, H, W, G = shape
    inp = _bn_make((N, C, H, W), dtype, seed)
    inp["gamma"] = inp["gamma"].reshape(1, C, 1, 1)     # CS231n's layout
    inp["beta"] = inp["beta"].reshape(1, C, 1, 1)
    inp["G"] = G
    return inp


# --- affine, activations, dropout, loss -------------------------------------------

def _affine_make(shape, dtype, seed):
    N, D, M = shape
    rng = _rng(seed)
    return dict(x=_randn(rng, (N, D), dtype), w=_randn(rng, (D, M), dtype, D ** -0.5),
                b=_randn(rng, (M,), dtype), dout=_randn(rng, (N, M), dtype))


def _affine_torch(inp, backward):
    import torch

    return _torch_fwd_bwd(torch.addmm, (inp["b"], inp["x"], inp["w"]), inp["dout"], backward)


def _ew_make(shape, dtype, seed):
    rng = _rng(seed)
    return dict(x=_randn(rng, shape, dtype), dout=_randn(rng, shape, dtype),
                param={"mode": "train", "p": 0.7, "seed": 42})


def _relu_torch(inp, backward):
    import torch

    return _torch_fwd_bwd(torch.relu, (inp["x"],), inp["dout"], backward)


def _ew_bytes(shape, itemsize):
    return 2.0 * itemsize * float(np.prod(shape))


def _dropout_torch(inp, backward):
    import torch.nn.functional as F

    return _torch_fwd_bwd(lambda x: F.dropout(x, p=1 - inp["param"]["p"], training=True),
                          (inp["x"],), inp["dout"], backward)


def _softmax_make(shape, dtype, seed):
    N, C = shape
    rng = _rng(seed)
    return dict(x=_randn(rng, (N, C), dtype), y=rng.integers(0, C, size=N))


def _softmax_torch(inp, backward):
    import torch.nn.functional as F

    y = _t(inp["y"]).long()
    x = _t(inp["x"]).requires_grad_(True)

    def run():   # loss and gradient, as nnc's softmax_loss returns both
        x.grad = None
        F.cross_entropy(x, y).backward()
    return run


def _softmax_bytes(shape, itemsize):
    return 2.0 * itemsize * float(np.prod(shape))


# --- embedding lookup, binary cross-entropy -------------------------------------------
# embedding shape = (N, T, V, D): idx (N, T) into W (V, D)

def _emb_make(shape, dtype, seed):
    N, T, V, D = shape
    rng = _rng(seed)
    return dict(idx=rng.integers(0, V, size=(N, T)), W=_randn(rng, (V, D), dtype),
                dout=_randn(rng, (N, T, D), dtype))


def _emb_torch(inp, backward):
    import torch.nn.functional as F

    idx = _t(inp["idx"])
    return _torch_fwd_bwd(lambda W: F.embedding(idx, W), (inp["W"],), inp["dout"], backward)


def _emb_bytes(shape, itemsize):
    N, T, V, D = shape
    return 2.0 * itemsize * N * T * D + 8.0 * N * T   # read the rows and idx, write out


def _bce_make(shape, dtype, seed):
    rng = _rng(seed)
    y = rng.random(shape).astype(dtype)
    y[rng.random(shape) < 0.5] = 1.0
    return dict(x=_randn(rng, shape, dtype, 3.0), y=y)


def _bce_torch(inp, backward):
    import torch.nn.functional as F

    y = _t(inp["y"])
    x = _t(inp["x"]).requires_grad_(True)

    def run():   # loss and gradient, as nnc's bce_loss returns both
        x.grad = None
        F.binary_cross_entropy_with_logits(x, y).backward()
    return run


# --- optimizer steps ----------------------------------------------------------------

def _optim_make(shape, dtype, seed):
    rng = _rng(seed)
    (n,) = shape
    return dict(w=_randn(rng, (n,), dtype), dw=_randn(rng, (n,), dtype, 1e-2),
                config={"learning_rate": 1e-3})


def _make_optim_torch(rule):
    def build(inp, backward):
        import torch

        p = torch.nn.Parameter(_t(inp["w"].copy()))
        p.grad = _t(inp["dw"])
        if rule == "adam":
            opt = torch.optim.Adam([p], lr=1e-3)
        else:
            opt = torch.optim.SGD([p], lr=1e-3, momentum=0.9)

        def run():
            opt.step()
        return run
    return build


def _adam_bytes(shape, itemsize):
    return 7.0 * itemsize * shape[0]     # read w, dw, m, v; write w, m, v


def _momentum_bytes(shape, itemsize):
    return 5.0 * itemsize * shape[0]     # read w, dw, v; write w, v


# --- whole training steps (Solver._step: loss, gradients, update) -------------------

def _convnet_make(shape, dtype, seed):
    from nnc.classifiers import ThreeLayerConvNet
    from nnc.solver import Solver

    N, C, H, W = shape
    np.random.seed(seed)
    model = ThreeLayerConvNet(input_dim=(C, H, W), num_filters=32, filter_size=7,
                              hidden_dim=100, num_classes=10, weight_scale=1e-2, dtype=dtype)
    rng = _rng(seed)
    data = dict(X_train=_randn(rng, shape, dtype), y_train=rng.integers(0, 10, size=N),
                X_val=_randn(rng, (10, C, H, W), dtype), y_val=rng.integers(0, 10, size=10))
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    batch_size=N, verbose=False)
    return dict(solver=solver, data=data, seed=seed)


def _fcnet_make(shape, dtype, seed):
    from nnc.classifiers import FullyConnectedNet
    from nnc.solver import Solver

    N, D = shape
    np.random.seed(seed)
    model = FullyConnectedNet([100] * 5, input_dim=D, num_classes=10, normalization="batchnorm",
                              weight_scale=5e-2, dtype=dtype)
    rng = _rng(seed)
    data = dict(X_train=_randn(rng, shape, dtype), y_train=rng.integers(0, 10, size=N),
                X_val=_randn(rng, (10, D), dtype), y_val=rng.integers(0, 10, size=10))
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    batch_size=N, verbose=False)
    return dict(solver=solver, data=data, seed=seed)


def _solver_step(inp):
    np.random.seed(inp["seed"])     # the batch draw, identical for every backend
    inp["solver"]._step()
    return (np.asarray(inp["solver"].loss_history[-1]),)


def _wordmodel_make(shape, dtype, seed):
    from nnc.classifiers import WordModel
    from nnc.solver import Solver

    N, V, D, P = shape   # batch, vocabulary, embedding and hidden sizes; context 3
    model = WordModel(vocab_size=V, embed_dim=D, hidden_dim=P, dtype=dtype, seed=seed)
    rng = _rng(seed)
    data = dict(X_train=rng.integers(0, V, size=(N, 3)), y_train=rng.integers(0, V, size=N),
                X_val=rng.integers(0, V, size=(10, 3)), y_val=rng.integers(0, V, size=10))
    solver = Solver(model, data, update_rule="sgd_momentum",
                    optim_config={"learning_rate": 0.15, "momentum": 0.85}, batch_size=N,
                    verbose=False)
    return dict(solver=solver, data=data, seed=seed, shape=shape)


def _wordmodel_torch(inp, backward):
    import torch
    from torch import nn

    X, y = inp["data"]["X_train"], inp["data"]["y_train"]
    N, V, D, P = inp["shape"]
    dt = torch.float32 if inp["solver"].model.dtype == np.float32 else torch.float64
    net = nn.Sequential(nn.Embedding(V, D), nn.Flatten(), nn.Linear(3 * D, P), nn.Sigmoid(),
                        nn.Linear(P, V)).to(dt)
    opt = torch.optim.SGD(net.parameters(), lr=0.15, momentum=0.85)
    Xt, yt = _t(X), _t(y).long()

    def run():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(Xt), yt).backward()
        opt.step()
    return run


def _wordmodel_flops(shape):
    N, V, D, P = shape
    return 2.0 * N * (3 * D * P + P * V)


def _convnet_torch(inp, backward):
    import torch
    from torch import nn

    X, y = inp["data"]["X_train"], inp["data"]["y_train"]
    C, H, W = X.shape[1:]
    dt = torch.float32 if X.dtype == np.float32 else torch.float64
    net = nn.Sequential(nn.Conv2d(C, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(32 * (H // 2) * (W // 2), 100), nn.ReLU(),
                        nn.Linear(100, 10)).to(dt)
    return _torch_train_step(net, X, y)


def _fcnet_torch(inp, backward):
    import torch
    from torch import nn

    X, y = inp["data"]["X_train"], inp["data"]["y_train"]
    dt = torch.float32 if X.dtype == np.float32 else torch.float64
    layers, d = [], X.shape[1]
    for _ in range(5):
        layers += [nn.Linear(d, 100), nn.BatchNorm1d(100), nn.ReLU()]
        d = 100
    net = nn.Sequential(*layers, nn.Linear(d, 10)).to(dt)
    return _torch_train_step(net, X, y)


def _torch_train_step(net, X, y):
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = _t(X), _t(y).long()

    def run():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(Xt), yt).backward()
        opt.step()
    return run


def _convnet_flops(shape):
    N, C, H, W = shape
    conv = _conv_flops((N, C, H, W, 32, 7, 7, 1, 3))
    fc = 2.0 * N * (32 * (H // 2) * (W // 2) * 100 + 100 * 10)
    return conv + fc


# --- the registry --------------------------------------------------------------------

CONV_TEST_SHAPES = [
    (1, 1, 5, 5, 1, 1, 1, 1, 0), (2, 3, 7, 7, 4, 3, 3, 1, 1), (3, 5, 11, 13, 7, 3, 3, 2, 1),
    (2, 3, 13, 11, 5, 5, 5, 1, 2), (1, 17, 9, 9, 3, 7, 7, 1, 3), (2, 4, 8, 12, 6, 3, 5, 1, 1),
    (4, 2, 9, 9, 3, 3, 3, 3, 0), (3, 3, 9, 9, 5, 1, 1, 2, 0), (2, 3, 7, 7, 2, 3, 3, 2, 3),
    # rows that fill the direct kernel's blocks (AVX-512): its forward and dx under auto
    (2, 6, 5, 32, 9, 3, 3, 1, 1), (1, 5, 6, 30, 7, 5, 5, 1, 2), (2, 10, 6, 16, 12, 3, 3, 1, 1),
]

# (conv) + (pool): the direct forward with the pool fused (C <= 4, W' >= 16,
# or rows that fill its blocks; 2x2 pools), the direct dw (N = 1 splits its
# taps), overlapping pools and strides, which pool a stored conv output
CONV_POOL_TEST_SHAPES = [
    (2, 8, 6, 32, 9, 3, 3, 1, 1, 2, 2, 2),
    (2, 3, 8, 8, 4, 3, 3, 1, 1, 2, 2, 2), (1, 3, 16, 16, 5, 5, 5, 1, 2, 2, 2, 2),
    (3, 3, 32, 32, 17, 7, 7, 1, 3, 2, 2, 2), (2, 3, 20, 20, 9, 3, 3, 1, 1, 2, 2, 2),
    (2, 5, 11, 11, 3, 3, 3, 2, 1, 3, 3, 1), (2, 2, 9, 9, 4, 3, 3, 1, 0, 3, 3, 2),
    (2, 1, 16, 18, 3, 3, 3, 1, 1, 2, 2, 2),
    (2, 3, 15, 47, 5, 3, 3, 2, 1, 2, 2, 2),   # stride 2: the direct forward with its pool
]

def _running_stats(inp):
    return inp["param"]["running_mean"], inp["param"]["running_var"]


OPS = {op.name: op for op in [
    Op("conv", _conv_make, "conv_forward_fast", ("x", "w", "b", "conv_param"),
       "conv_backward_fast", test_shapes=CONV_TEST_SHAPES, torch=_conv_torch, flops=_conv_flops),
    Op("conv_pool", _conv_pool_make, "conv_pool_forward",
       ("x", "w", "b", "conv_param", "pool_param"), "conv_pool_backward",
       test_shapes=CONV_POOL_TEST_SHAPES, torch=_conv_pool_torch,
       flops=lambda s: _conv_flops(s[:9])),
    Op("conv_pool_weights", _conv_pool_make, "conv_pool_forward",
       ("x", "w", "b", "conv_param", "pool_param"), "conv_pool_backward_weights",
       test_shapes=CONV_POOL_TEST_SHAPES,
       torch=lambda inp, backward: _conv_pool_torch(inp, backward, with_dx=False),
       flops=lambda s: _conv_flops(s[:9]), backward_flops=1.0),
    Op("max_pool", _pool_make, "max_pool_forward_fast", ("x", "pool_param"),
       "max_pool_backward_fast",
       test_shapes=[(1, 1, 2, 2, 2, 2, 2), (2, 3, 8, 8, 2, 2, 2), (3, 5, 7, 9, 3, 3, 2),
                    (1, 17, 7, 7, 3, 3, 1), (2, 3, 6, 9, 2, 3, 1), (2, 2, 13, 13, 5, 5, 4)],
       torch=_pool_torch, nbytes=_pool_bytes),
    Op("batchnorm", _bn_make, "batchnorm_forward", ("x", "gamma", "beta", "param"),
       "batchnorm_backward", extra=_running_stats,
       test_shapes=[(2, 1), (7, 5), (64, 33), (13, 4099)], torch=_bn_torch, nbytes=_norm_bytes),
    Op("spatial_batchnorm", _bn_make, "spatial_batchnorm_forward",
       ("x", "gamma", "beta", "param"), "spatial_batchnorm_backward", extra=_running_stats,
       test_shapes=[(1, 3, 5, 7), (2, 13, 7, 11), (5, 17, 3, 3), (2, 3, 1, 1)],
       torch=_bn_torch, nbytes=_norm_bytes),
    Op("layernorm", _bn_make, "layernorm_forward", ("x", "gamma", "beta", "param"),
       "layernorm_backward",
       test_shapes=[(1, 5), (7, 3), (33, 17), (5, 4099)], torch=_ln_torch, nbytes=_norm_bytes),
    Op("spatial_groupnorm", _gn_make, "spatial_groupnorm_forward",
       ("x", "gamma", "beta", "G", "param"), "spatial_groupnorm_backward",
       test_shapes=[(1, 4, 5, 7, 2), (2, 6, 7, 11, 3), (3, 5, 3, 3, 1), (2, 6, 4, 4, 6)]),
    Op("affine", _affine_make, "affine_forward", ("x", "w", "b"), "affine_backward",
       test_shapes=[(1, 1, 1), (1, 7, 3), (17, 33, 9), (64, 129, 65)],
       torch=_affine_torch, flops=lambda s: 2.0 * s[0] * s[1] * s[2]),
    Op("relu", _ew_make, "relu_forward", ("x",), "relu_backward",
       test_shapes=[(1, 1), (3, 7), (17, 33), (1, 1000003)], torch=_relu_torch,
       nbytes=_ew_bytes),
    Op("dropout", _ew_make, "dropout_forward", ("x", "param"), "dropout_backward",
       test_shapes=[(1, 1), (3, 7), (17, 33), (1, 100003)], torch=_dropout_torch,
       nbytes=_ew_bytes),
    Op("softmax_loss", _softmax_make, "softmax_loss", ("x", "y"),
       test_shapes=[(1, 2), (7, 3), (50, 10), (33, 1001)], torch=_softmax_torch,
       nbytes=_softmax_bytes),
    Op("embedding", _emb_make, "embedding_forward", ("idx", "W"), "embedding_backward",
       test_shapes=[(1, 1, 1, 1), (7, 5, 13, 3), (5, 11, 2, 17), (200, 3, 250, 32),
                    (64, 33, 500, 65)],
       torch=_emb_torch, nbytes=_emb_bytes),
    Op("bce_loss", _bce_make, "bce_loss", ("x", "y"),
       test_shapes=[(1,), (7, 3), (200, 1), (33, 1001)], torch=_bce_torch,
       nbytes=_softmax_bytes),
    Op("adam", _optim_make, "adam", ("w", "dw", "config"),
       test_shapes=[(1,), (7,), (1000003,)], torch=_make_optim_torch("adam"),
       nbytes=_adam_bytes, is_step=True),
    Op("sgd_momentum", _optim_make, "sgd_momentum", ("w", "dw", "config"),
       test_shapes=[(1,), (7,), (1000003,)], torch=_make_optim_torch("sgd_momentum"),
       nbytes=_momentum_bytes, is_step=True),
    Op("convnet_step", _convnet_make, run=_solver_step,
       needs=("conv_pool_forward", "conv_pool_backward_weights", "relu_forward", "softmax_loss",
              "adam"),
       test_shapes=[(4, 3, 8, 8)], torch=_convnet_torch, flops=_convnet_flops, is_step=True),
    Op("wordmodel_step", _wordmodel_make, run=_solver_step,
       needs=("embedding_forward", "embedding_backward", "affine_forward", "sigmoid_forward",
              "softmax_loss", "sgd_momentum"),
       test_shapes=[(20, 13, 4, 6)], torch=_wordmodel_torch, flops=_wordmodel_flops,
       is_step=True),
    Op("fcnet_step", _fcnet_make, run=_solver_step,
       needs=("batchnorm_forward", "relu_forward", "softmax_loss", "adam"),
       test_shapes=[(6, 20)], torch=_fcnet_torch, is_step=True),
]}

CASES = [
    Case("seed002 conv", "conv", (100, 3, 31, 31, 25, 3, 3, 2, 1), quick=True),
    Case("convnet conv1", "conv", (200, 3, 32, 32, 32, 7, 7, 1, 3)),
    Case("convnet conv1 + pool, no dx", "conv_pool_weights",
         (200, 3, 32, 32, 32, 7, 7, 1, 3, 2, 2, 2)),
    Case("deep conv", "conv", (64, 64, 32, 32, 64, 3, 3, 1, 1), quick=True),
    Case("max-pool", "max_pool", (200, 32, 32, 32, 2, 2, 2), quick=True),
    Case("batchnorm", "batchnorm", (1024, 4096), quick=True),
    Case("spatial batchnorm", "spatial_batchnorm", (200, 32, 32, 32)),
    Case("layernorm", "layernorm", (1024, 4096)),
    Case("affine", "affine", (1024, 1024, 1024), quick=True),
    Case("relu", "relu", (1024, 4096)),
    Case("dropout", "dropout", (1024, 4096)),
    Case("softmax_loss", "softmax_loss", (4096, 1000)),
    Case("embedding (200,3) -> (250,32)", "embedding", (200, 3, 250, 32)),
    Case("embedding (4096,32) -> (50000,256)", "embedding", (4096, 32, 50000, 256), quick=True),
    Case("bce_loss", "bce_loss", (4096, 1000)),
    Case("adam 10M", "adam", (10_000_000,), quick=True),
    Case("sgd_momentum 10M", "sgd_momentum", (10_000_000,)),
    Case("ThreeLayerConvNet step", "convnet_step", (200, 3, 32, 32), quick=True),
    Case("FullyConnectedNet step", "fcnet_step", (200, 3072)),
    Case("WordModel step, batch 200", "wordmodel_step", (200, 250, 32, 256), quick=True),
]


def run_op(op, inp, backward=True):
    """Forward (and backward) of ``op`` on the active backend: a tuple of arrays."""
    outs, cache = op.forward(inp)
    if backward and op.backward is not None:
        outs = tuple(outs) + tuple(op.backward(inp, cache))
    return tuple(np.asarray(o) for o in outs)


# --- nnc.nn (issue 9): NHWC conv and pool, gelu, leaky_relu, bce, training steps ---------
# The NHWC cases take the NCHW cases' shape tuples, so a case and its NCHW
# twin time the same convolution side by side.

def _nhwc(a):
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


def _conv_nhwc_make(shape, dtype, seed):
    inp = _conv_make(shape, dtype, seed)
    inp["x"], inp["dout"] = _nhwc(inp["x"]), _nhwc(inp["dout"])
    inp["w"] = np.ascontiguousarray(np.transpose(inp["w"], (2, 3, 1, 0)))   # (HH, WW, C, F)
    return inp


def _conv_nhwc_torch(inp, backward):
    """PyTorch on the same channels-last data: NCHW views with NHWC strides
    (torch.channels_last), which PyTorch's CPU conv runs as NHWC."""
    import torch
    import torch.nn.functional as F

    s, p = inp["conv_param"]["stride"], inp["conv_param"]["pad"]
    x = _t(inp["x"]).permute(0, 3, 1, 2).requires_grad_(backward)
    w = _t(inp["w"]).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    w.requires_grad_(backward)
    b = _t(inp["b"]).requires_grad_(backward)
    g = _t(inp["dout"]).permute(0, 3, 1, 2)

    def run():
        if backward:
            x.grad = w.grad = b.grad = None
            F.conv2d(x, w, b, stride=s, padding=p).backward(g)
        else:
            with torch.no_grad():
                F.conv2d(x, w, b, stride=s, padding=p)
    return run


def _pool_nhwc_make(shape, dtype, seed):
    inp = _pool_make(shape, dtype, seed)
    inp["x"], inp["dout"] = _nhwc(inp["x"]), _nhwc(inp["dout"])
    return inp


def _pool_nhwc_torch(inp, backward):
    import torch.nn.functional as F

    pp = inp["pool_param"]
    k, s = (pp["pool_height"], pp["pool_width"]), pp["stride"]
    x = _t(inp["x"]).permute(0, 3, 1, 2).requires_grad_(backward)
    g = _t(inp["dout"]).permute(0, 3, 1, 2)

    def run():
        if backward:
            x.grad = None
            F.max_pool2d(x, k, s).backward(g)
        else:
            F.max_pool2d(x.detach(), k, s)
    return run


def _gelu_torch(inp, backward):
    import torch.nn.functional as F

    return _torch_fwd_bwd(lambda x: F.gelu(x, approximate="tanh"), (inp["x"],), inp["dout"],
                          backward)


def _leaky_make(shape, dtype, seed):
    inp = _ew_make(shape, dtype, seed)
    inp["slope"] = 0.1
    return inp


def _bce_make(shape, dtype, seed):
    rng = _rng(seed)
    return dict(x=_randn(rng, shape, dtype, 3.0), y=(rng.random(shape) < 0.5).astype(dtype))


# Training steps of nnc.nn models: forward, cross-entropy, backward, Adam, on
# CIFAR-shaped NHWC batches; shape = (batch,). Outputs: the loss and every
# parameter after the step (so validate compares whole updates).

def _nn_step_make(model_name):
    def make(shape, dtype, seed):
        import nnc.nn as nn

        (N,) = shape
        np.random.seed(seed)
        model = getattr(nn, model_name)()
        model.net.astype(dtype)
        rng = _rng(seed)
        return dict(model=model, loss=nn.cross_entropy(), opt=nn.Adam(model.net, 1e-3),
                    x=_randn(rng, (N, 32, 32, 3), dtype), y=rng.integers(0, 20, size=N))
    return make


def _nn_step(inp):
    """One iteration of train_net: forward, loss, backward without the data's
    gradient (as train_net, and PyTorch for data that does not require grad),
    Adam step. Returns the loss and the gradients the step was given (Adam
    does not change them), not the parameters after it: Adam's first update
    of a weight is lr * g / (|g| + eps), and where g is float32 rounding noise
    (a gradient of 2e-9 against a largest one of 0.04) two correct GEMMs'
    summation orders move it by up to lr (1.2e-4 at lr 1e-3). The adam op is
    checked against the reference on its own."""
    model, loss = inp["model"], inp["loss"]
    value = loss.forward(model.forward(inp["x"]), inp["y"])
    model.backward(loss.backward(), input_grad=False)
    inp["opt"].step()
    return (np.asarray(value),) + tuple(model.net.grads.values())


def _nn_step_torch(inp, backward):
    """The same network in PyTorch eager (nnc.nn.to_torch, same weights),
    Adam and cross-entropy, at PyTorch's best of NCHW and channels_last:
    both are timed briefly and the faster one is returned."""
    import time

    import torch
    from nnc.nn import nhwc_to_nchw, to_torch

    X, y = nhwc_to_nchw(inp["x"]), _t(inp["y"]).long()

    def build(memory_format):
        net = to_torch(inp["model"].net, input_shape=(32, 32, 3)).to(memory_format=memory_format)
        x = _t(X).contiguous(memory_format=memory_format)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def run():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        return run

    def best_of(run, reps=5):
        run()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        return best

    from nnc.nn import ConvLayer2D

    runs = [build(torch.contiguous_format)]
    if any(isinstance(layer, ConvLayer2D) for layer in inp["model"].net.layers):
        runs.append(build(torch.channels_last))   # only convs care about the layout
    return min(runs, key=best_of)


def _smallcnn_flops(shape):
    (N,) = shape
    return (_conv_flops((N, 3, 32, 32, 16, 5, 5, 1, 2))
            + _conv_flops((N, 16, 16, 16, 32, 3, 3, 1, 1)) + 2.0 * N * (2048 * 128 + 128 * 20))


NN_CONV_TEST_SHAPES = CONV_TEST_SHAPES + [(2, 3, 8, 9, 4, 4, 3, 2, 1), (3, 2, 7, 6, 3, 3, 5, 3, 2),
                                          # the direct forward / dx beyond few channels
                                          (2, 6, 5, 12, 16, 3, 3, 1, 1),
                                          (2, 16, 5, 12, 8, 3, 3, 1, 1)]

OPS.update({op.name: op for op in [
    Op("conv_nhwc", _conv_nhwc_make, "conv_nhwc_forward", ("x", "w", "b", "conv_param"),
       "conv_nhwc_backward", test_shapes=NN_CONV_TEST_SHAPES, torch=_conv_nhwc_torch,
       flops=_conv_flops),
    Op("max_pool_nhwc", _pool_nhwc_make, "max_pool_nhwc_forward", ("x", "pool_param"),
       "max_pool_nhwc_backward",
       test_shapes=[(1, 1, 2, 2, 2, 2, 2), (2, 3, 8, 8, 2, 2, 2), (3, 5, 7, 9, 3, 3, 2),
                    (1, 17, 7, 7, 3, 3, 1), (2, 3, 6, 9, 2, 3, 1), (2, 2, 13, 13, 5, 5, 4),
                    (2, 3, 9, 8, 4, 4, 2)],
       torch=_pool_nhwc_torch, nbytes=_pool_bytes),
    Op("gelu", _ew_make, "gelu_forward", ("x",), "gelu_backward",
       test_shapes=[(1, 1), (3, 7), (17, 33), (1, 1000003)], torch=_gelu_torch, nbytes=_ew_bytes),
    Op("leaky_relu", _leaky_make, "leaky_relu_forward", ("x", "slope"), "leaky_relu_backward",
       test_shapes=[(1, 1), (3, 7), (17, 33), (1, 100003)], nbytes=_ew_bytes),
    Op("bce_loss", _bce_make, "bce_loss", ("x", "y"),
       test_shapes=[(1, 1), (7, 3), (50, 10), (33, 1001)]),
    Op("smallcnn_step", _nn_step_make("SmallConvolutionalNetwork"), run=_nn_step,
       needs=("conv_nhwc_forward", "conv_nhwc_backward", "max_pool_nhwc_forward",
              "gelu_forward", "affine_forward", "softmax_loss", "adam"),
       test_shapes=[(3,)], torch=_nn_step_torch, flops=_smallcnn_flops, is_step=True),
    Op("tinynet_step", _nn_step_make("TinyNet"), run=_nn_step,
       needs=("affine_forward", "gelu_forward", "softmax_loss", "adam"),
       test_shapes=[(3,)], torch=_nn_step_torch,
       flops=lambda s: 2.0 * s[0] * (3072 * 512 + 512 * 20), is_step=True),
]})

CASES += [
    Case("course conv1 NCHW (100,3,32,32)·(16,3,5,5) p2", "conv", (100, 3, 32, 32, 16, 5, 5, 1, 2)),
    Case("course conv1 NHWC", "conv_nhwc", (100, 3, 32, 32, 16, 5, 5, 1, 2), quick=True),
    Case("course conv2 NCHW (100,16,16,16)·(32,16,3,3) p1", "conv",
         (100, 16, 16, 16, 32, 3, 3, 1, 1)),
    Case("course conv2 NHWC", "conv_nhwc", (100, 16, 16, 16, 32, 3, 3, 1, 1)),
    Case("deep conv NHWC", "conv_nhwc", (64, 64, 32, 32, 64, 3, 3, 1, 1)),
    Case("max-pool NHWC", "max_pool_nhwc", (200, 32, 32, 32, 2, 2, 2)),
    Case("course max-pool NHWC (100,32,32,16) 2x2/2", "max_pool_nhwc", (100, 16, 32, 32, 2, 2, 2)),
    Case("gelu", "gelu", (1024, 4096)),
    Case("SmallConvolutionalNetwork step, batch 10", "smallcnn_step", (10,), quick=True),
    Case("SmallConvolutionalNetwork step, batch 100", "smallcnn_step", (100,)),
    Case("TinyNet step, batch 100", "tinynet_step", (100,)),
]

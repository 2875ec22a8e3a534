"""The ``nnc`` command: one command from data to a trained model.

    nnc train --model convnet --data cifar10 --epochs 10 --out runs/convnet
    nnc train --model fcnet --hidden 100,100 --normalization batchnorm --data DIR
    nnc train --model small-cnn --data cifar100 --labels coarse   # nnc.nn, NHWC
    nnc train --model word --data synthetic-trigrams               # or a trigram .h5
    nnc train --resume runs/convnet          # go on after Ctrl-C (or train longer)
    nnc info                                 # the build info
    nnc bench --quick                        # python -m nnc.bench
    nnc sweep ...                            # nnc.sweep

``python -m nnc train ...`` is the same. A run writes into ``--out``:
history.json (losses, accuracies, learning rates, epoch times, the config and
nnc.build_info()), best.npz (the model at the best validation accuracy),
last.npz (everything needed to resume), and with matplotlib curves.png,
confusion.png and per_class.png (the test split) and filters.png (the first
layer's weights).

This module sits outside the core: no other nnc module imports it.
"""
import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import zipfile

import numpy as np

import nnc

# --- models ----------------------------------------------------------------------------
# One entry per model: what it is, the model-specific options it takes, its
# defaults, and build(cfg, input_shape, num_classes) -> model. A new model is
# one more entry here.


def _build_convnet(cfg, input_shape, num_classes):
    from .classifiers import ThreeLayerConvNet

    if len(input_shape) != 3:
        raise UsageError(f"--model convnet needs images (N, C, H, W), but the data has shape "
                         f"(N, {', '.join(map(str, input_shape))}); use fcnet or twolayer")
    return ThreeLayerConvNet(input_dim=tuple(input_shape), num_filters=cfg["filters"],
                             filter_size=cfg["filter_size"],
                             hidden_dim=_single_hidden(cfg, "convnet"),
                             num_classes=num_classes, weight_scale=cfg["weight_scale"],
                             reg=cfg["reg"], dtype=np.dtype(cfg["dtype"]).type)


def _build_fcnet(cfg, input_shape, num_classes):
    from .classifiers import FullyConnectedNet

    # No seed= for dropout: it would reseed NumPy's global generator on every
    # forward pass; the masks come from the one generator the run seeds.
    return FullyConnectedNet(_parse_hidden(cfg["hidden"]), input_dim=int(np.prod(input_shape)),
                             num_classes=num_classes, dropout_keep_ratio=cfg["dropout"],
                             normalization=cfg["normalization"], reg=cfg["reg"],
                             weight_scale=cfg["weight_scale"],
                             dtype=np.dtype(cfg["dtype"]).type)


def _build_twolayer(cfg, input_shape, num_classes):
    from .classifiers import TwoLayerNet

    model = TwoLayerNet(input_dim=int(np.prod(input_shape)),
                        hidden_dim=_single_hidden(cfg, "twolayer"), num_classes=num_classes,
                        weight_scale=cfg["weight_scale"], reg=cfg["reg"])
    # TwoLayerNet has no dtype argument; its loss follows the dtype of W1.
    model.params = {k: v.astype(cfg["dtype"]) for k, v in model.params.items()}
    return model


def _check_cifar_nhwc(input_shape, name):
    if tuple(input_shape) != (32, 32, 3):
        raise UsageError(f"--model {name} takes 32x32 RGB images (N, 32, 32, 3), but the data "
                         f"has shape (N, {', '.join(map(str, input_shape))})")


class _NetModel:
    """A nnc.nn Module (the course's object API, NHWC) in the Solver's protocol:
    ``params`` {name: array} (the layers' own names: conv1_w, fc1_b, ...) and
    ``loss(X, y)``: forward, cross_entropy, backward (no input gradient, as
    train_net). So the one loop of _Run, its update rules and its checkpoints
    train it. reg > 0 is nnc.nn's L2 (grad += reg * param on every weight and
    bias) and adds 0.5 * reg * sum param**2 to the loss."""

    def __init__(self, module, dtype, reg):
        self.module = module
        self.reg = float(reg)
        module.net.astype(dtype)
        self.params = dict(module.net.params)

    def _sync(self):
        # The Solver replaces the arrays in self.params; the layers read their own.
        net = self.module.net
        for layer in net.layers:
            for n in layer.params:
                layer.params[n] = self.params[n]
        net.gather_params()

    def loss(self, X, y=None):
        from .nn import cross_entropy

        self._sync()
        scores = self.module.forward(X, is_training=y is not None)
        if y is None:
            return scores
        ce = cross_entropy()
        loss = ce.forward(scores, y)
        self.module.backward(ce.backward(), regularization="l2" if self.reg else "none",
                             reg_lambda=self.reg, input_grad=False)
        if self.reg:
            loss += 0.5 * self.reg * sum(float(np.sum(w * w)) for w in self.params.values())
        grads = self.module.net.grads
        return loss, {n: grads[n] for n in self.params}


def _build_small_cnn(cfg, input_shape, num_classes):
    from .nn import SmallConvolutionalNetwork

    _check_cifar_nhwc(input_shape, "small-cnn")
    return _NetModel(SmallConvolutionalNetwork(num_classes=num_classes), cfg["dtype"], cfg["reg"])


def _build_tinynet(cfg, input_shape, num_classes):
    from .nn import TinyNet, fc, sequential

    _check_cifar_nhwc(input_shape, "tinynet")
    module = TinyNet()
    if num_classes != 20:  # the course's net scores the 20 CIFAR-100 superclasses
        module.net = sequential(*module.net.layers[:-1],
                                fc(512, num_classes, init_scale=0.01, name="fc2"))
    return _NetModel(module, cfg["dtype"], cfg["reg"])


def _build_word(cfg, input_shape, num_classes):
    from .classifiers import WordModel

    if len(input_shape) != 1:
        raise UsageError(f"--model word reads rows of word indices (N, context), but the data "
                         f"has shape (N, {', '.join(map(str, input_shape))})")
    return WordModel(vocab_size=num_classes, hidden_dim=_single_hidden(cfg, "word"),
                     context=input_shape[0], weight_scale=cfg["weight_scale"], reg=cfg["reg"],
                     dtype=np.dtype(cfg["dtype"]).type)


# Optional keys of an entry: "layout" "NHWC" (images channels last, for nnc.nn),
# "data" "words" (trigram data instead of images), "first_layer" (the parameter
# filters.png shows, default W1), "optim" (update-rule settings: rule -> config).
MODELS = {
    "convnet": {
        "help": "ThreeLayerConvNet: conv - relu - 2x2 max pool - affine - relu - affine",
        "options": ("hidden", "filters", "filter_size", "weight_scale"),
        "defaults": {"hidden": "100", "filters": 32, "filter_size": 7, "weight_scale": 1e-3},
        "build": _build_convnet,
    },
    "fcnet": {
        "help": "FullyConnectedNet: {affine - [norm] - relu - [dropout]} x L - affine",
        "options": ("hidden", "normalization", "dropout", "weight_scale"),
        "defaults": {"hidden": "100,100", "normalization": None, "dropout": 1.0,
                     "weight_scale": 1e-2},
        "build": _build_fcnet,
    },
    "twolayer": {
        "help": "TwoLayerNet: affine - relu - affine",
        "options": ("hidden", "weight_scale"),
        "defaults": {"hidden": "100", "weight_scale": 1e-3},
        "build": _build_twolayer,
    },
    "small-cnn": {
        "help": "nnc.nn SmallConvolutionalNetwork (NHWC): {conv - gelu - 2x2 max pool} x 2 - "
                "fc - gelu - fc",
        "options": (),
        "defaults": {},
        "layout": "NHWC",
        "first_layer": "conv1_w",
        "build": _build_small_cnn,
    },
    "tinynet": {
        "help": "nnc.nn TinyNet (NHWC): flatten - fc 512 - gelu - fc",
        "options": (),
        "defaults": {},
        "layout": "NHWC",
        "first_layer": "fc1_w",
        "build": _build_tinynet,
    },
    "word": {
        "help": "WordModel: 3 words - embedding - affine - sigmoid - affine over the vocabulary",
        "options": ("hidden", "weight_scale"),
        "defaults": {"hidden": "256", "weight_scale": 1e-2, "data": "synthetic-trigrams",
                     "update_rule": "sgd_momentum", "lr": 0.15, "batch_size": 200},
        "data": "words",
        "optim": {"sgd_momentum": {"momentum": 0.85},
                  "sgd_nesterov_momentum": {"momentum": 0.85}},
        "build": _build_word,
    },
}

# Options that only some models take: given to another model they are an error.
_MODEL_OPTIONS = ("hidden", "filters", "filter_size", "normalization", "dropout",
                  "weight_scale")

# Defaults of everything else (None: worked out from the data or the machine).
DEFAULTS = {
    "model": "convnet", "data": "cifar10", "labels": None, "keys": None,
    "epochs": 10, "batch_size": 100, "update_rule": "adam", "lr": 1e-3, "lr_decay": 0.95,
    "reg": 0.0, "num_train": None, "num_val": 1000, "dtype": "float32", "backend": None,
    "threads": None, "seed": None, "print_every": 0,
}

# What --resume lets a command line change; every other option must match the run.
_RESUME_MAY_CHANGE = ("epochs", "backend", "threads", "print_every")

CHECKPOINT = "last.npz"
BEST = "best.npz"
HISTORY = "history.json"
PLOTS = ("curves.png", "confusion.png", "per_class.png", "filters.png")
_MAX_PLOTTED_CLASSES = 100  # CIFAR-100 still gets confusion.png; the 250 words do not
_FORMAT = "nnc-train/1"


class UsageError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit ``code``."""

    def __init__(self, message, code=2):
        super().__init__(" ".join(str(message).split()))  # one line, whatever the cause said
        self.code = code


def _flag(key):
    return "--" + key.replace("_", "-")


def _parse_hidden(text):
    """'100,100' -> [100, 100]."""
    try:
        dims = [int(v) for v in str(text).split(",")]
    except ValueError:
        dims = []
    if not dims or min(dims) <= 0:
        raise UsageError(f"--hidden must be positive integers separated by commas, such as "
                         f"100,100; got {text!r}")
    return dims


def _single_hidden(cfg, model):
    dims = _parse_hidden(cfg["hidden"])
    if len(dims) != 1:
        raise UsageError(f"--model {model} has one hidden layer: give --hidden N, got "
                         f"{cfg['hidden']!r}")
    return dims[0]


# --- configuration ---------------------------------------------------------------------

def _given(args):
    """The train options the command line gave (argparse defaults are all None)."""
    keys = list(DEFAULTS) + list(_MODEL_OPTIONS)
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


_NAMED_DATA = ("cifar10", "cifar100", "synthetic-trigrams")


def _abs_data(spec):
    return spec if spec in _NAMED_DATA else os.path.abspath(spec)


def _check_number(cfg, key, low, low_ok, integer=False):
    v = cfg[key]
    ok = (isinstance(v, int) if integer else isinstance(v, (int, float)) and math.isfinite(v))
    ok = ok and (v >= low if low_ok else v > low)
    if not ok:
        kind = "an integer" if integer else "a number"
        raise UsageError(f"{_flag(key)} must be {kind} {'>=' if low_ok else '>'} {low}, "
                         f"got {v!r}")


def _new_config(given):
    """The full config of a new run from the options given."""
    name = given.get("model", DEFAULTS["model"])
    if name not in MODELS:
        raise UsageError(f"--model: unknown model {name!r}; known models: {', '.join(MODELS)}")
    entry = MODELS[name]
    for key in given:
        if key in _MODEL_OPTIONS and key not in entry["options"]:
            takes = ", ".join(_flag(k) for k in entry["options"]) or "none"
            raise UsageError(f"{_flag(key)} does not apply to --model {name} (it takes {takes})")
    cfg = dict(DEFAULTS)
    cfg.update(entry["defaults"])
    cfg.update(given)
    cfg["model"] = name
    cfg["data"] = _abs_data(cfg["data"])
    _validate(cfg)
    return cfg


def _validate(cfg):
    """Raise UsageError for the first option out of range (names the option and value)."""
    for key, low, low_ok, integer in (("epochs", 1, True, True), ("batch_size", 1, True, True),
                                      ("lr", 0, False, False), ("lr_decay", 0, False, False),
                                      ("reg", 0, True, False), ("weight_scale", 0, False, False),
                                      ("num_val", 1, True, True), ("print_every", 0, True, True),
                                      ("num_train", 1, True, True), ("threads", 1, True, True),
                                      ("filters", 1, True, True), ("filter_size", 1, True, True),
                                      ("seed", 0, True, True)):
        if cfg.get(key) is not None:
            _check_number(cfg, key, low, low_ok, integer)
    if cfg["seed"] is not None and cfg["seed"] >= 2 ** 32:
        raise UsageError(f"--seed must be below 2**32, got {cfg['seed']}")
    if "hidden" in cfg:
        _parse_hidden(cfg["hidden"])
        if cfg["model"] in ("convnet", "twolayer", "word"):   # before any data is loaded
            _single_hidden(cfg, cfg["model"])
    if "dropout" in cfg and not (isinstance(cfg["dropout"], (int, float))
                                 and 0 < cfg["dropout"] <= 1):
        raise UsageError(f"--dropout is the probability of keeping a unit, in (0, 1] (1: no "
                         f"dropout); got {cfg['dropout']!r}")
    from .solver import UPDATE_RULES

    if cfg["update_rule"] not in UPDATE_RULES:
        raise UsageError(f"--update-rule: unknown rule {cfg['update_rule']!r}; known rules: "
                         f"{', '.join(UPDATE_RULES)}")
    if cfg["dtype"] not in ("float32", "float64"):
        raise UsageError(f"--dtype must be float32 or float64, got {cfg['dtype']!r}")
    if cfg["backend"] is not None and cfg["backend"] not in nnc.available_backends():
        raise UsageError(f"--backend: {cfg['backend']!r} is not available here; available: "
                         f"{', '.join(nnc.available_backends())}")
    is_cifar100 = cfg["data"] == "cifar100" or (os.path.isdir(cfg["data"])
                                                and _cifar_kind(cfg["data"]) == "cifar100")
    if cfg["labels"] is not None and not is_cifar100:
        raise UsageError(f"--labels {cfg['labels']} applies to CIFAR-100 only (--data "
                         f"{cfg['data']})")
    if cfg["keys"] is not None and not _is_h5(cfg["data"]):
        raise UsageError(f"--keys applies to .h5 files only (--data {cfg['data']})")
    words = MODELS[cfg["model"]].get("data") == "words"
    if words and not (cfg["data"] == "synthetic-trigrams" or _is_h5(cfg["data"])):
        raise UsageError(f"--model {cfg['model']} reads word trigrams: --data "
                         f"synthetic-trigrams or a trigram .h5 file (trainx, traind, valx, vald, "
                         f"testx, testd, words), not {cfg['data']}")
    if words and cfg["keys"] is not None:
        raise UsageError(f"--keys does not apply to --model {cfg['model']} (a trigram .h5 file "
                         f"has fixed keys)")
    if not words and cfg["data"] == "synthetic-trigrams":
        raise UsageError(f"--data synthetic-trigrams is word data, for --model word (not "
                         f"{cfg['model']})")


def _resume_config(saved, given):
    """The saved run's config with the options --resume lets a command line change."""
    cfg = dict(saved)
    for key, value in given.items():
        if key == "data":
            value = _abs_data(value)
        if key in _RESUME_MAY_CHANGE:
            cfg[key] = value
        elif cfg.get(key) != value:
            raise UsageError(f"--resume: {_flag(key)} {value} differs from the run's "
                             f"{cfg.get(key)}; drop it to continue the run, or start a new run")
    _validate(cfg)
    return cfg


# --- data ------------------------------------------------------------------------------

def _is_h5(spec):
    return str(spec).lower().endswith((".h5", ".hdf5"))


def _cifar_kind(root):
    """'cifar10' or 'cifar100' from the files in the directory, else None."""
    if os.path.isfile(os.path.join(root, "data_batch_1")):
        return "cifar10"
    if all(os.path.isfile(os.path.join(root, n)) for n in ("train", "test")):
        return "cifar100"
    return None


_GET_IT = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python"),
}


def _datasets():
    """nnc.datasets, imported on first use (the tests replace it)."""
    from . import datasets

    return datasets


def _load_cifar(name, root, labels):
    """{'X_train' (N, 3, 32, 32) float32 0..255, 'y_train', 'X_test', 'y_test',
    'label_names'} through nnc.datasets (root None: the cache, downloading
    on first use)."""
    datasets = _datasets()
    tarball, folder = _GET_IT[name]
    how = (f"download {tarball} from https://www.cs.toronto.edu/~kriz/cifar.html, extract it "
           f"and pass --data path/to/{folder}")
    try:
        return datasets.load_cifar(name, root=root, layout="NCHW", labels=labels or "fine",
                                   dtype=np.float32)
    except datasets.DownloadError as e:  # says itself how to download by hand
        raise UsageError(f"--data {name}: {e}") from None
    except (OSError, ValueError, RuntimeError) as e:
        where = root if root is not None else f"the cache ({datasets.cache_dir()})"
        raise UsageError(f"--data: could not load {name} from {where}: {e}. Without a "
                         f"network: {how}") from None


def _images_first(X):
    """(N, D) stays; (N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in 1..4 and
    dim 1 not -> (N, C, H, W) (channels-last files); other 4-D stays NCHW."""
    if X.ndim == 3:
        return X[:, None]
    if X.ndim == 4 and X.shape[3] in (1, 2, 3, 4) and X.shape[1] not in (1, 2, 3, 4):
        return X.transpose(0, 3, 1, 2)
    return X


def _load_h5_data(path, keys):
    """The four arrays from an .h5 file. keys: 'X,y' (a test split is cut from
    the end) or 'X_train,y_train,X_test,y_test'; default: those four names if
    present, else X and y."""
    datasets = _datasets()
    names = None if keys is None else [k.strip() for k in keys.split(",")]
    if names is not None and len(names) not in (2, 4):
        raise UsageError(f"--keys takes X,y or X_train,y_train,X_test,y_test; got {keys!r}")
    try:
        arrays = datasets.load_h5(path, keys=names)
    except (OSError, KeyError, ValueError) as e:
        raise UsageError(f"--data {path}: {e}") from None
    if names is None:
        found = sorted(arrays)
        if set(_TRIGRAM_KEYS) <= set(arrays):
            raise UsageError(f"--data {path} holds word trigrams (trainx, traind, ...): train "
                             f"them with --model word")
        if all(k in arrays for k in ("X_train", "y_train", "X_test", "y_test")):
            names = ["X_train", "y_train", "X_test", "y_test"]
        elif "X" in arrays and "y" in arrays:
            names = ["X", "y"]
        else:
            raise UsageError(f"--data {path}: holds {', '.join(found)}; name the image and "
                             "label arrays with --keys X,y (or X_train,y_train,X_test,y_test)")
    missing = [k for k in names if k not in arrays]
    if missing:
        raise UsageError(f"--keys: {path} has no {', '.join(missing)} (it holds "
                         f"{', '.join(sorted(arrays))})")
    X, y = np.asarray(arrays[names[0]]), np.asarray(arrays[names[1]])
    if len(X) != len(y):
        raise UsageError(f"--data {path}: {names[0]} has {len(X)} rows but {names[1]} {len(y)}")
    if len(names) == 4:
        Xte, yte = np.asarray(arrays[names[2]]), np.asarray(arrays[names[3]])
    else:  # hold out the last tenth as the test split
        n_test = max(1, len(X) // 10)
        X, Xte, y, yte = X[:-n_test], X[-n_test:], y[:-n_test], y[-n_test:]
    label_names = arrays.get("label_names")
    if label_names is not None:
        label_names = [v.decode() if isinstance(v, bytes) else str(v) for v in label_names]
    return {"X_train": _images_first(X), "y_train": y, "X_test": _images_first(Xte),
            "y_test": yte, "label_names": label_names}


_TRIGRAM_KEYS = ("trainx", "traind", "valx", "vald", "testx", "testd", "words")


def _prepare_words(cfg):
    """Trigram splits for --model word: (N, 3) int64 word indices, 0-based, and
    the next words; the first num_train of the training split and the first
    num_val of the validation split; label_names are the words. No mean."""
    spec = cfg["data"]
    num_val = cfg["num_val"]
    if spec == "synthetic-trigrams":
        from . import datasets_synthetic

        num_train = cfg["num_train"] if cfg["num_train"] is not None else 100_000
        raw = datasets_synthetic.trigram_data(num_train, num_val, 10_000)
        source = "synthetic-trigrams (nnc.datasets_synthetic)"
    else:
        if not os.path.isfile(spec):
            raise UsageError(f"--data: no such file {spec!r}")
        try:
            arrays = _datasets().load_h5(spec)
        except (OSError, KeyError, ValueError) as e:
            raise UsageError(f"--data {spec}: {e}") from None
        missing = [k for k in _TRIGRAM_KEYS if k not in arrays]
        if missing:
            raise UsageError(f"--model word needs a trigram .h5 file; {spec} has no "
                             f"{', '.join(missing)} (it holds {', '.join(sorted(arrays))})")
        raw = {"X_train": arrays["trainx"], "y_train": arrays["traind"],
               "X_val": arrays["valx"], "y_val": arrays["vald"],
               "X_test": arrays["testx"], "y_test": arrays["testd"], "words": arrays["words"]}
        source = spec
    X, y = np.asarray(raw["X_train"]), np.asarray(raw["y_train"])
    num_train = cfg["num_train"] if cfg["num_train"] is not None else len(X)
    if num_train > len(X) or num_val > len(raw["X_val"]):
        raise UsageError(f"--num-train {num_train} / --num-val {num_val}: the data has "
                         f"{len(X)} training and {len(raw['X_val'])} validation trigrams")
    as_int = lambda A: np.ascontiguousarray(A, dtype=np.int64)  # noqa: E731
    return {"X_train": as_int(X[:num_train]), "y_train": as_int(y[:num_train]),
            "X_val": as_int(raw["X_val"][:num_val]), "y_val": as_int(raw["y_val"][:num_val]),
            "X_test": as_int(raw["X_test"]), "y_test": as_int(raw["y_test"]),
            "mean": None, "std": None, "source": source,
            "label_names": [str(w) for w in raw["words"]]}


def prepare_data(cfg):
    """The splits a run trains on, as the model's course makes them.

    The first num_train training images are X_train, the next num_val X_val.
    CS231n's models (NCHW; its get_CIFAR10_data): the mean image of X_train is
    subtracted from all three splits. nnc.nn's (NHWC; the CSCI566 course's
    CIFAR100_data): each channel is standardized with the mean and standard
    deviation of X_train, which the course's init scales expect (mean-
    subtracted pixels made TinyNet's first scores about 30 times too large,
    and its training diverge).

    Returns a dict: 'X_train' (num_train, ...), 'y_train' (num_train,),
    'X_val' (num_val, ...), 'y_val', 'X_test' (N_test, ...), 'y_test', in
    cfg['dtype'], plus 'mean' (the subtracted image, or for nnc.nn's models the
    per-channel means (C,)), 'std' (None, or the per-channel deviations (C,)
    the splits were divided by), 'label_names' (C strings) and 'source' (a
    description). Images are NCHW, or NHWC for the models whose entry says so;
    --model word: see _prepare_words.
    """
    entry = MODELS[cfg["model"]]
    if entry.get("data") == "words":
        return _prepare_words(cfg)
    spec = cfg["data"]
    if _is_h5(spec):
        if not os.path.isfile(spec):
            raise UsageError(f"--data: no such file {spec!r}")
        raw = _load_h5_data(spec, cfg["keys"])
        source = spec
    elif spec in ("cifar10", "cifar100"):
        raw = _load_cifar(spec, None, cfg["labels"])
        source = spec
    elif os.path.isdir(spec):
        kind = _cifar_kind(spec)
        for sub in ("cifar-10-batches-py", "cifar-100-python"):  # the parent of the folder
            if kind is None and os.path.isdir(os.path.join(spec, sub)):
                spec = os.path.join(spec, sub)
                kind = _cifar_kind(spec)
        if kind is None:
            raise UsageError(f"--data {spec}: holds neither CIFAR-10 batches (data_batch_1 ... "
                             "test_batch) nor CIFAR-100 (train, test)")
        raw = _load_cifar(kind, spec, cfg["labels"])
        source = f"{kind} {spec}"
    else:
        raise UsageError(f"--data: no such directory or file {spec!r}; give cifar10, cifar100, "
                         "a cifar-10-batches-py or cifar-100-python directory, or an .h5 file")

    X, y = raw["X_train"], np.asarray(raw["y_train"]).astype(np.int64)
    num_val = cfg["num_val"]
    num_train = cfg["num_train"] if cfg["num_train"] is not None else len(X) - num_val
    if num_train < 1 or num_train + num_val > len(X):
        raise UsageError(f"--num-train + --num-val = {num_train} + {num_val} = "
                         f"{num_train + num_val}, but the training data has {len(X)} images")
    dtype = np.dtype(cfg["dtype"])
    per_channel = entry.get("layout") == "NHWC" and np.ndim(X) == 4
    if per_channel:   # X is NCHW here
        mean = np.mean(X[:num_train], axis=(0, 2, 3), dtype=np.float64)
        std = np.std(X[:num_train], axis=(0, 2, 3), dtype=np.float64)
        if np.any(std == 0):
            raise UsageError(f"--data {spec}: the training images have a constant channel "
                             f"(std {std.tolist()}), which cannot be standardized")
        shift, scale = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
    else:
        mean = np.mean(X[:num_train], axis=0, dtype=np.float64)
        std, shift, scale = None, mean, 1.0
    split = lambda A: ((np.asarray(A, dtype=np.float64) - shift) / scale).astype(dtype)  # noqa: E731
    data = {"X_train": split(X[:num_train]), "y_train": y[:num_train],
            "X_val": split(X[num_train:num_train + num_val]),
            "y_val": y[num_train:num_train + num_val],
            "X_test": split(raw["X_test"]),
            "y_test": np.asarray(raw["y_test"]).astype(np.int64),
            "mean": mean.astype(dtype), "std": None if std is None else std.astype(dtype),
            "source": source}
    num_classes = int(max(data["y_train"].max(), data["y_test"].max(initial=0))) + 1
    names = raw.get("label_names")
    if names is None or len(names) < num_classes:
        names = [str(i) for i in range(num_classes)]
    data["label_names"] = [str(n) for n in names]
    if per_channel:
        for k in ("X_train", "X_val", "X_test"):
            data[k] = np.ascontiguousarray(data[k].transpose(0, 2, 3, 1))
    return data


# --- checkpoints -----------------------------------------------------------------------

_UMASK = os.umask(0)
os.umask(_UMASK)


def _write_atomic(path, write):
    """write(file) into a temporary file beside path, then rename it over path:
    a crash or Ctrl-C mid-write never leaves a truncated file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600; give it a new file's mode
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _save_npz(path, arrays, meta):
    arrays = dict(arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    _write_atomic(path, lambda f: np.savez(f, **arrays))


def _bn_params(model):
    return [d for d in getattr(model, "bn_params", None) or [] if isinstance(d, dict)]


def _model_arrays(params, bn_stats, prefix=""):
    """The key scheme of nnc.solver checkpoints: param/NAME, bn/I/STAT."""
    arrays = {f"{prefix}param/{k}": np.asarray(v) for k, v in params.items()}
    for i, stats in enumerate(bn_stats):
        for k, v in stats.items():
            arrays[f"{prefix}bn/{i}/{k}"] = np.asarray(v)
    return arrays


def _bn_snapshot(model):
    return [{k: np.array(d[k], copy=True) for k in ("running_mean", "running_var") if k in d}
            for d in _bn_params(model)]


def _read_model_arrays(f, prefix=""):
    params, bn = {}, {}
    for key in f.files:
        if not key.startswith(prefix):
            continue
        kind, _, rest = key[len(prefix):].partition("/")
        if kind == "param":
            params[rest] = f[key]
        elif kind == "bn":
            i, _, stat = rest.partition("/")
            bn.setdefault(int(i), {})[stat] = f[key]
    return params, [bn[i] for i in sorted(bn)]


def _set_model(model, params, bn_stats, where):
    want = {k: (v.shape, v.dtype) for k, v in model.params.items()}
    got = {k: (v.shape, v.dtype) for k, v in params.items()}
    if want != got:
        raise UsageError(f"{where}: its parameters do not fit the model the config builds "
                         f"(file: {got}; model: {want})")
    model.params = {k: np.array(v) for k, v in params.items()}  # writable, C-contiguous
    for d, stats in zip(_bn_params(model), bn_stats):
        d.update({k: np.array(v) for k, v in stats.items()})


def _build(cfg, input_shape, num_classes):
    """The model of cfg; its initial weights come from NumPy's global generator."""
    try:
        return MODELS[cfg["model"]]["build"](cfg, tuple(input_shape), int(num_classes))
    except (TypeError, ValueError) as e:
        raise UsageError(f"--model {cfg['model']}: {e}") from None


def load_model(path):
    """A model from a best.npz (or last.npz) written by ``nnc train``.

    Returns (model, meta): the model with the saved parameters (and batchnorm
    running statistics), and the file's metadata ('config', 'input_shape',
    'num_classes', 'label_names', 'val_acc', 'epoch', ...; 'mean' and 'std'
    are what the run subtracted from its inputs and divided them by, as
    prepare_data gives them). NumPy's global random state is left as it was.
    """
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        params, bn_stats = _read_model_arrays(f)
        for key in ("mean", "std"):
            if "data/" + key in f.files:
                meta[key] = f["data/" + key]
    state = np.random.get_state()
    try:
        model = _build(meta["config"], meta["input_shape"], meta["num_classes"])
    finally:
        np.random.set_state(state)  # building drew the initial weights
    _set_model(model, params, bn_stats, path)
    return model, meta


# --- training --------------------------------------------------------------------------

def _predict(model, X, batch_size=100):
    """argmax of the scores, in minibatches: (N,) int labels."""
    return np.concatenate([np.argmax(model.loss(X[i:i + batch_size]), axis=1)
                           for i in range(0, len(X), batch_size)])


class _StopOnInterrupt:
    """The first SIGINT asks the run to stop after the current step; a second
    one stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals need it
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Run:
    """One training run: a Solver for the minibatch steps and accuracy checks
    (so the numbers match Solver.train with the same seed), plus the state a
    checkpoint needs to continue it exactly."""

    def __init__(self, cfg, data, out, show_bar):
        from .solver import Solver

        self.cfg, self.data, self.out, self.show_bar = cfg, data, out, show_bar
        self.input_shape = list(data["X_train"].shape[1:])
        self.num_classes = len(data["label_names"])
        self.model = _build(cfg, self.input_shape, self.num_classes)
        optim = dict(MODELS[cfg["model"]].get("optim", {}).get(cfg["update_rule"], {}))
        optim["learning_rate"] = cfg["lr"]
        self.solver = Solver(self.model, data, update_rule=cfg["update_rule"],
                             optim_config=optim, lr_decay=cfg["lr_decay"],
                             batch_size=cfg["batch_size"], num_epochs=cfg["epochs"],
                             verbose=False, progress=False)
        self.ipe = max(len(data["X_train"]) // cfg["batch_size"], 1)
        self.iteration = 0
        self.lr_history, self.epoch_time, self.images_per_second = [], [], []
        self.epoch_elapsed = self.epoch_step_time = 0.0  # of the epoch under way
        self.best_epoch = 0
        self.bar = None

    # -- state on disk --

    def _meta(self):
        s = self.solver
        scalars = {p: {k: (v.item() if isinstance(v, np.generic) else v)
                       for k, v in c.items() if not isinstance(v, np.ndarray)}
                   for p, c in s.optim_configs.items()}
        return {"format": _FORMAT, "config": self.cfg, "input_shape": self.input_shape,
                "num_classes": self.num_classes, "label_names": self.data["label_names"],
                "iteration": self.iteration, "epoch": s.epoch,
                "iterations_per_epoch": self.ipe, "optim_configs": scalars,
                "loss_history": [float(v) for v in s.loss_history],
                "train_acc_history": list(s.train_acc_history),
                "val_acc_history": list(s.val_acc_history),
                "lr_history": list(self.lr_history), "epoch_time": list(self.epoch_time),
                "images_per_second": list(self.images_per_second),
                "epoch_elapsed": self.epoch_elapsed, "epoch_step_time": self.epoch_step_time,
                "best_val_acc": s.best_val_acc, "best_epoch": self.best_epoch}

    def save_checkpoint(self):
        """last.npz: the model, the optimizer state, NumPy's random state, the
        best model so far and the history; no pickles (allow_pickle=False)."""
        s = self.solver
        arrays = _model_arrays(self.model.params, _bn_snapshot(self.model))
        arrays.update(_model_arrays(s.best_params, s.best_bn_stats, prefix="best/"))
        for p, c in s.optim_configs.items():
            for k, v in c.items():
                if isinstance(v, np.ndarray):
                    arrays[f"optim/{p}/{k}"] = v
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        arrays["rng/keys"] = keys
        meta = self._meta()
        meta["rng"] = {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached)}
        _save_npz(os.path.join(self.out, CHECKPOINT), arrays, meta)

    def save_best(self, val_acc):
        meta = {"format": _FORMAT, "config": self.cfg, "input_shape": self.input_shape,
                "num_classes": self.num_classes, "label_names": self.data["label_names"],
                "val_acc": val_acc, "epoch": self.solver.epoch, "iteration": self.iteration}
        arrays = _model_arrays(self.model.params, _bn_snapshot(self.model))
        for key in ("mean", "std"):
            if self.data.get(key) is not None:
                arrays["data/" + key] = self.data[key]
        _save_npz(os.path.join(self.out, BEST), arrays, meta)

    def restore(self, path):
        """Continue from a last.npz (raises UsageError when it does not fit)."""
        s = self.solver
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                params, bn_stats = _read_model_arrays(f)
                best_params, best_bn = _read_model_arrays(f, prefix="best/")
                optim = {}
                for key in f.files:
                    if key.startswith("optim/"):
                        p, _, name = key[len("optim/"):].rpartition("/")
                        optim.setdefault(p, {})[name] = np.array(f[key])
                keys = np.array(f["rng/keys"])
            rng = meta["rng"]
            state = (rng["kind"], keys, rng["pos"], rng["has_gauss"], rng["cached_gaussian"])
            configs = {p: dict(c) for p, c in meta["optim_configs"].items()}
        except UsageError:
            raise
        except Exception as e:  # whatever a damaged file makes np.load or json raise
            raise UsageError(f"--resume: {path} is not a readable nnc train checkpoint "
                             f"({type(e).__name__}: {e})") from None
        _set_model(self.model, params, bn_stats, path)
        for p, arrays in optim.items():
            configs.setdefault(p, {}).update(arrays)
        if set(configs) != set(self.model.params):
            raise UsageError(f"--resume: {path} holds optimizer state for {sorted(configs)}, "
                             f"the model has {sorted(self.model.params)}")
        s.optim_configs = configs
        s.best_params = {k: np.array(v) for k, v in best_params.items()}
        s.best_bn_stats = best_bn
        s.loss_history = list(meta["loss_history"])
        s.train_acc_history = list(meta["train_acc_history"])
        s.val_acc_history = list(meta["val_acc_history"])
        s.best_val_acc = meta["best_val_acc"]
        s.epoch = meta["epoch"]
        self.iteration = meta["iteration"]
        self.lr_history = list(meta["lr_history"])
        self.epoch_time = list(meta["epoch_time"])
        self.images_per_second = list(meta["images_per_second"])
        self.epoch_elapsed = meta["epoch_elapsed"]
        self.epoch_step_time = meta["epoch_step_time"]
        self.best_epoch = meta["best_epoch"]
        if meta.get("iterations_per_epoch") != self.ipe:
            raise UsageError(f"--resume: {path} ran {meta.get('iterations_per_epoch')} "
                             f"iterations per epoch, the data now gives {self.ipe}")
        np.random.set_state(state)

    def history(self, status, extra=None):
        h = self._meta()
        for k in ("format", "optim_configs", "epoch_elapsed", "epoch_step_time"):
            h.pop(k)
        h.update({"status": status, "epochs": self.cfg["epochs"],
                  "data": {"source": self.data["source"],
                           "num_train": len(self.data["X_train"]),
                           "num_val": len(self.data["X_val"]),
                           "num_test": len(self.data["X_test"])},
                  "build_info": nnc.build_info()})
        h.update(extra or {})
        return h

    def write_history(self, status, extra=None):
        text = json.dumps(self.history(status, extra), indent=1)
        _write_atomic(os.path.join(self.out, HISTORY), lambda f: f.write(text.encode()))

    # -- the loop --

    def say(self, line):
        """A line on stdout, flushed (a pipe reader sees it at once), above the bar."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def train(self, stop):
        """Train up to cfg['epochs']; returns False when stop.requested cut it short
        (the checkpoint and the history are written then)."""
        from .solver import _epoch_bar

        s, cfg, ipe = self.solver, self.cfg, self.ipe
        total = cfg["epochs"] * ipe
        images = ipe * cfg["batch_size"]
        try:
            while self.iteration < total:
                epoch = self.iteration // ipe  # 0-based, the one under way
                if len(self.lr_history) <= epoch:  # its first step
                    lrs = [c["learning_rate"] for c in s.optim_configs.values()
                           if "learning_rate" in c]
                    self.lr_history.append(lrs[0] if lrs else None)
                if self.show_bar and self.bar is None:
                    self.bar = _epoch_bar(epoch + 1, cfg["epochs"], images,
                                          initial=(self.iteration % ipe) * cfg["batch_size"])
                t0 = time.perf_counter()
                s._step()
                dt = time.perf_counter() - t0
                self.iteration += 1
                self.epoch_step_time += dt
                loss = s.loss_history[-1]
                if self.bar is not None:
                    self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                    self.bar.update(cfg["batch_size"])
                if cfg["print_every"] and (self.iteration - 1) % cfg["print_every"] == 0:
                    self.say("(Iteration %d / %d) loss: %f" % (self.iteration, total, loss))

                epoch_end = self.iteration % ipe == 0
                if epoch_end:
                    self._close_bar()
                    s.epoch += 1
                    for c in s.optim_configs.values():
                        if "learning_rate" in c:
                            c["learning_rate"] *= cfg["lr_decay"]
                if self.iteration == 1 or epoch_end:  # the checks of Solver.train
                    self._check(epoch_end, dt)
                else:
                    self.epoch_elapsed += dt
                if stop.requested:
                    if not epoch_end:
                        self.save_checkpoint()
                    self.write_history("interrupted")
                    return False
        finally:
            self._close_bar()
        return True

    def _check(self, epoch_end, step_dt):
        s, cfg = self.solver, self.cfg
        t0 = time.perf_counter()
        train_acc = s.check_accuracy(s.X_train, s.y_train, num_samples=s.num_train_samples)
        val_acc = s.check_accuracy(s.X_val, s.y_val, num_samples=s.num_val_samples)
        s.train_acc_history.append(train_acc)
        s.val_acc_history.append(val_acc)
        improved = val_acc > s.best_val_acc or not s.best_params
        if improved:  # the first check always counts, as in Solver.train
            s.best_val_acc = val_acc
            s.best_params = {k: v.copy() for k, v in self.model.params.items()}
            s.best_bn_stats = _bn_snapshot(self.model)
            self.best_epoch = s.epoch
            self.save_best(val_acc)
        self.epoch_elapsed += step_dt + time.perf_counter() - t0
        # the mean loss of the epoch: one minibatch's loss is too noisy to compare
        loss = np.mean(s.loss_history[-self.ipe:]) if epoch_end else s.loss_history[-1]
        line = (f"epoch {s.epoch}/{cfg['epochs']}  loss {loss:.4f}  "
                f"train acc {train_acc:.3f}  val acc {val_acc:.3f}{' *' if improved else ''}")
        if epoch_end:
            ips = self.ipe * cfg["batch_size"] / max(self.epoch_step_time, 1e-9)
            self.epoch_time.append(self.epoch_elapsed)
            self.images_per_second.append(ips)
            line += f"  {ips:.0f} img/s  {self.epoch_elapsed:.1f} s"
            self.epoch_elapsed = self.epoch_step_time = 0.0
            self.save_checkpoint()
            self.write_history("running")
        self.say(line)

    def finish(self):
        """Best model back in place, the test split scored, the plots drawn.
        Returns the extra history entries."""
        from .vis_utils import confusion_matrix, per_class_accuracy

        s, data = self.solver, self.data
        self.model.params = {k: v.copy() for k, v in s.best_params.items()}
        for d, stats in zip(_bn_params(self.model), s.best_bn_stats):
            d.update({k: v.copy() for k, v in stats.items()})
        y_pred = _predict(self.model, data["X_test"])
        names = data["label_names"]
        acc = float(np.mean(y_pred == data["y_test"]))
        per_class = per_class_accuracy(data["y_test"], y_pred, len(names))
        test = {"accuracy": acc, "num_images": int(len(y_pred)),
                "per_class_accuracy": {n: (None if np.isnan(a) else float(a))
                                       for n, a in zip(names, per_class)}}
        if len(names) <= _MAX_PLOTTED_CLASSES:  # 250 x 250 counts would swamp history.json
            test["confusion_matrix"] = confusion_matrix(data["y_test"], y_pred,
                                                        len(names)).tolist()
        self.say(f"best val acc {s.best_val_acc:.3f} (epoch {self.best_epoch}); test acc "
                 f"{acc:.3f} on {len(y_pred)} images")
        if len(names) <= 20:
            width = max(len(n) for n in names)
            self.say("per-class test accuracy:")
            for n, a in zip(names, per_class):
                self.say(f"  {n:<{width}}  {'-' if np.isnan(a) else f'{a:.3f}'}")
        else:  # CIFAR-100: a table of 100 lines helps nobody; history.json has them
            order = np.argsort(np.nan_to_num(per_class, nan=2.0))
            self.say("lowest per-class test accuracy: " + ", ".join(
                f"{names[i]} {per_class[i]:.2f}" for i in order[:5]))
        written, skipped = self._plots(y_pred)
        return {"test": test, "plots": written, "skipped_outputs": skipped}

    def _first_layer_images(self):
        """(filters, layout) of the first layer (W1, or the entry's first_layer):
        a conv's own (NCHW, or HWCF for nnc.nn's), or an affine layer on image
        inputs seen as images (as CS231n shows TwoLayerNet's W1); else None."""
        entry = MODELS[self.cfg["model"]]
        W1 = self.model.params.get(entry.get("first_layer", "W1"))
        nhwc = entry.get("layout") == "NHWC"
        if W1 is None:
            return None
        if W1.ndim == 4:
            return W1, "HWCF" if nhwc else "NCHW"
        shape = self.input_shape
        if (W1.ndim == 2 and len(shape) == 3 and shape[-1 if nhwc else 0] in (1, 3)
                and W1.shape[0] == int(np.prod(shape))):
            return W1.T[:100].reshape(-1, *shape), "FHWC" if nhwc else "NCHW"  # 100 units
        return None

    def _plots(self, y_pred):
        try:
            import matplotlib

            if "matplotlib.pyplot" not in sys.modules:
                matplotlib.use("Agg")  # nnc train only writes files, it never opens a window
            import matplotlib.pyplot as plt
        except ImportError:
            self.say(f"matplotlib is not installed: skipped {', '.join(PLOTS)} "
                     "(pip install matplotlib)")
            return [], list(PLOTS)
        from .vis_utils import (plot_confusion_matrix, plot_filters, plot_history,
                                plot_per_class_accuracy)

        written, skipped = [], []
        filters = self._first_layer_images()
        y_test, names = self.data["y_test"], self.data["label_names"]
        jobs = [("curves.png", lambda p: plot_history(self.solver, p))]
        if len(names) <= _MAX_PLOTTED_CLASSES:
            jobs += [("confusion.png",
                      lambda p: plot_confusion_matrix(y_test, y_pred, names, p)),
                     ("per_class.png",
                      lambda p: plot_per_class_accuracy(y_test, y_pred, names, p))]
        else:
            skipped += ["confusion.png", "per_class.png"]
            self.say(f"skipped confusion.png and per_class.png: {len(names)} classes are too "
                     f"many to plot (history.json has the per-class accuracies)")
        if filters is not None:
            jobs.append(("filters.png", lambda p: plot_filters(filters[0], p,
                                                               layout=filters[1])))
        else:
            skipped.append("filters.png")
            self.say("skipped filters.png: the first layer is not a conv on images")
        for name, draw in jobs:
            plt.close(draw(os.path.join(self.out, name)))
            written.append(name)
        return written, skipped


def _apply_machine(cfg):
    """Backend and threads from cfg (filled in from the current ones when unset)."""
    if cfg["backend"] is not None:
        nnc.set_backend(cfg["backend"])
    cfg["backend"] = nnc.get_backend()
    if cfg["threads"] is not None:
        nnc.set_num_threads(cfg["threads"])
    cfg["threads"] = nnc.get_num_threads()


def _default_out(model):
    return os.path.join("runs", f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")


def _show_bar():
    from .solver import _show_progress

    return _show_progress(None)


def cmd_train(args):
    given = _given(args)
    saved = None
    if args.resume is not None:
        path = os.path.join(args.resume, CHECKPOINT)
        if not os.path.isfile(path):
            raise UsageError(f"--resume {args.resume}: no {CHECKPOINT} there (a run writes it "
                             "at each epoch end and on Ctrl-C)")
        try:
            if not zipfile.is_zipfile(path):  # else np.load tries it as a pickle
                raise ValueError("not an .npz (zip) file")
            with np.load(path, allow_pickle=False) as f:
                saved = json.loads(str(f["meta"]))
            if saved.get("format") != _FORMAT:
                raise ValueError(f"format {saved.get('format')!r}, not {_FORMAT!r}")
            cfg = _resume_config(saved["config"], given)
        except UsageError:
            raise
        except Exception as e:  # a damaged or foreign file
            raise UsageError(f"--resume: {path} is not a readable nnc train checkpoint "
                             f"({type(e).__name__}: {e})") from None
        out = args.out or args.resume
        forked = os.path.abspath(out) != os.path.abspath(args.resume)
        if forked and os.path.isfile(os.path.join(out, CHECKPOINT)):
            raise UsageError(f"--out {out} already holds a run ({CHECKPOINT}); pick another "
                             f"--out, or leave it out to go on in {args.resume}")
    else:
        cfg = _new_config(given)
        out = args.out or _default_out(cfg["model"])
        if os.path.isfile(os.path.join(out, CHECKPOINT)):
            raise UsageError(f"--out {out} already holds a run ({CHECKPOINT}): continue it with "
                             f"--resume {out}, or pick another --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a directory")

    data = prepare_data(cfg)
    _apply_machine(cfg)
    if cfg["seed"] is None:  # still reproducible: the seed is printed and saved
        cfg["seed"] = int.from_bytes(os.urandom(4), "little")
    np.random.seed(cfg["seed"])
    run = _Run(cfg, data, out, _show_bar())
    if saved is not None:
        run.restore(os.path.join(args.resume, CHECKPOINT))
    os.makedirs(out, exist_ok=True)  # only now: a mistake above leaves no empty directory
    if saved is not None and forked and os.path.isfile(os.path.join(args.resume, BEST)):
        shutil.copyfile(os.path.join(args.resume, BEST), os.path.join(out, BEST))

    entry = MODELS[cfg["model"]]
    run.say(f"nnc train: {cfg['model']} ({entry['help'].split(':')[0]}) on {data['source']}: "
            f"{len(data['X_train'])} train, {len(data['X_val'])} val, {len(data['X_test'])} "
            f"test {'trigrams' if entry.get('data') == 'words' else 'images'} of shape "
            f"{tuple(run.input_shape)}, {run.num_classes} classes")
    threads = f"{cfg['threads']} thread{'s' if cfg['threads'] != 1 else ''}"
    run.say(f"backend {cfg['backend']}, {threads}, {cfg['dtype']}, seed "
            f"{cfg['seed']}; {cfg['update_rule']} lr {cfg['lr']:g}, {cfg['epochs']} epochs of "
            f"{run.ipe} iterations x {cfg['batch_size']} images; output in {out}")
    if saved is not None:
        total = cfg["epochs"] * run.ipe
        if run.iteration > total:
            raise UsageError(f"--epochs {cfg['epochs']}: the run in {args.resume} has done "
                             f"{run.solver.epoch} epochs already")
        if run.iteration == total:
            run.say(f"the run has finished its {cfg['epochs']} epochs (pass --epochs N to train "
                    "longer): scoring the best model and drawing the plots again")
        else:
            run.say(f"resuming at epoch {run.solver.epoch}, iteration {run.iteration} of "
                    f"{total}")

    with _StopOnInterrupt() as stop:
        finished = run.train(stop)
    if not finished:
        print(f"nnc train: interrupted at epoch {run.solver.epoch}/{cfg['epochs']}, iteration "
              f"{run.iteration}/{cfg['epochs'] * run.ipe}; checkpoint and history in {out}; "
              f"continue with: nnc train --resume {out}", file=sys.stderr, flush=True)
        return 130
    run.write_history("finished", run.finish())
    run.say(f"wrote {out}: " + ", ".join(n for n in (HISTORY, BEST, CHECKPOINT) + PLOTS
                                         if os.path.isfile(os.path.join(out, n))))
    return 0


def cmd_info(args):
    info = nnc.build_info()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"nnc {nnc.__version__}")
    for k, v in info.items():
        print(f"  {k:12s} {v}")
    return 0


def _bench(argv):
    from .bench.__main__ import main as bench_main

    return bench_main(argv)


def _sweep(argv):
    try:
        from .sweep.cli import main as sweep_main
    except ImportError as e:
        raise UsageError(f"nnc sweep is not available in this install ({e})", code=1) from None
    return sweep_main(argv)


# Subcommands whose arguments go untouched to another module's main(argv).
_FORWARDED = {"bench": _bench, "sweep": _sweep}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse prints the usage and exits 2; one line that names the mistake is clearer.
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser():
    p = _Parser(prog="nnc", description="nnc: CS231n-style neural networks on the CPU.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    models = "; ".join(f"{k}: {v['help']}" for k, v in MODELS.items())
    t = sub.add_parser("train", help="train a model on CIFAR-10/100 or an .h5 file",
                       description="Train a model, with a progress bar, a checkpoint per epoch "
                                   "and plots. Ctrl-C stops after the current step and saves; "
                                   "--resume continues exactly where it stopped.",
                       epilog=f"Models: {models}.")
    a = t.add_argument
    a("--model", metavar="NAME", help=f"one of {', '.join(MODELS)} (default {DEFAULTS['model']})")
    a("--data", help="cifar10, cifar100 (downloaded into the cache), a cifar-10-batches-py "
                     "or cifar-100-python directory, or an .h5 file (default cifar10); for "
                     "--model word: synthetic-trigrams (default) or a trigram .h5 file")
    a("--labels", choices=["fine", "coarse"], help="CIFAR-100 labels (default fine)")
    a("--keys", help="the .h5 arrays: X,y (the last tenth becomes the test split) or "
                     "X_train,y_train,X_test,y_test")
    a("--hidden", metavar="SIZES", help="hidden layer sizes, e.g. 100,100 for fcnet (one size "
                                        "for twolayer, convnet and word; default 100,100 / 100 / 256)")
    a("--normalization", choices=["batchnorm", "layernorm"], help="fcnet only")
    a("--dropout", type=float, metavar="KEEP", help="fcnet only: keep probability in (0, 1]")
    a("--filters", type=int, metavar="N", help="convnet only: conv filters (default 32)")
    a("--filter-size", type=int, metavar="N", help="convnet only: conv kernel size (default 7)")
    a("--epochs", type=int, metavar="N", help="default 10")
    a("--batch-size", type=int, metavar="N", help="default 100 (word 200)")
    a("--update-rule", metavar="RULE", help="sgd, sgd_momentum, sgd_nesterov_momentum, "
                                            "rmsprop or adam (default adam; word: "
                                            "sgd_momentum, momentum 0.85)")
    a("--lr", type=float, metavar="X", help="learning rate (default 1e-3; word 0.15)")
    a("--lr-decay", type=float, metavar="X",
      help="learning rate factor after each epoch (default 0.95)")
    a("--reg", type=float, metavar="X", help="L2 regularization strength (default 0)")
    a("--weight-scale", type=float, metavar="X",
      help="std of the initial weights (default: 1e-3, fcnet and word 1e-2; small-cnn "
           "and tinynet keep the course's)")
    a("--num-train", type=int, metavar="N", help="training images (default: all but --num-val)")
    a("--num-val", type=int, metavar="N",
      help="validation images split off the training data (default 1000)")
    a("--dtype", help="float32 (default) or float64")
    a("--backend", metavar="NAME",
      help=f"one of {', '.join(nnc.available_backends())} (default: the current one)")
    a("--threads", type=int, metavar="N", help="threads for OpenMP and OpenBLAS (default: as now)")
    a("--seed", type=int, metavar="N", help="NumPy seed (default: a random one, printed and saved)")
    a("--print-every", type=int, metavar="N",
      help="print the loss every N iterations (default 0: never)")
    a("--out", metavar="DIR", help="output directory (default runs/MODEL-TIME; with --resume, "
                                   "the resumed one)")
    a("--resume", metavar="DIR", help="continue the run in DIR (its options apply; only "
                                      "--epochs, --backend, --threads, --print-every change)")
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("info", help="print the build info")
    i.add_argument("--json", action="store_true", help="as JSON")
    i.set_defaults(func=cmd_info)
    for name, what in (("bench", "microbenchmarks (python -m nnc.bench; see nnc bench -h)"),
                       ("sweep", "hyperparameter sweeps (nnc.sweep; see nnc sweep -h)")):
        sub.add_parser(name, help=what, add_help=False)
    return p


def main(argv=None):
    """Run the nnc command line; returns the exit code (0 ok, 2 a usage error,
    130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    try:
        if command in _FORWARDED:
            return _FORWARDED[command](argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return args.func(args)
    except UsageError as e:
        prog = "nnc" if command not in ("train", "info", "bench", "sweep") else f"nnc {command}"
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:  # outside the training loop (loading data, plotting)
        print("nnc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

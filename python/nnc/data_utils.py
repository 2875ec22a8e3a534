"""CIFAR-10 loading, as in CS231n's data_utils.py.

The data is the "CIFAR-10 python version" from
https://www.cs.toronto.edu/~kriz/cifar.html: a folder ``cifar-10-batches-py``
holding ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``, each a Python
pickle of a dict with ``'data'`` (uint8 array (N, 3072), rows are 3x32x32
images, channel-major) and ``'labels'`` (N ints in [0, 10)).

The batches are read with a restricted unpickler: it rebuilds numpy arrays and
plain containers and refuses every other global (os.system, eval, arbitrary
classes ...), so a tampered batch file cannot run code when it is loaded.
"""
import os
import pickle
import platform  # noqa: F401  (CS231n's data_utils star-exports it)

import numpy as np

# What ``from nnc.data_utils import *`` gives: the original's names (its
# imread, from imageio, is not re-exported) and nnc's CIFAR-100 loaders.
__all__ = ["load_pickle", "load_CIFAR_batch", "load_CIFAR10", "get_CIFAR10_data",
           "load_tiny_imagenet", "load_models", "load_imagenet_val", "CIFAR100", "CIFAR100_data",
           "np", "os", "pickle", "platform"]

ENV_VAR = "NNC_CIFAR10_DIR"
TRAIN_BATCHES = tuple(f"data_batch_{b}" for b in range(1, 6))
TEST_BATCH = "test_batch"

_WHERE_TO_GET = (
    "Download the CIFAR-10 python version (cifar-10-python.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html, extract it, and pass the extracted "
    "'cifar-10-batches-py' directory as cifar10_dir (or set the environment variable "
    f"{ENV_VAR} to it).")


# --- restricted unpickling ----------------------------------------------------

def _checked_dtype(dtype):
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing to unpickle an array of dtype {dtype}: "
                                     "CIFAR-10 batches hold no Python objects")
    return dtype


def _dtype(obj, align=False, copy=False):
    return _checked_dtype(np.dtype(obj, align, copy))


def _reconstruct(subtype, shape, dtype):
    # numpy's pickles start from an empty ndarray and fill it with __setstate__.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to reconstruct {subtype!r}: only numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _frombuffer(buf, dtype, shape, order):
    # numpy's protocol-5 reduction of contiguous arrays.
    return np.frombuffer(buf, dtype=_checked_dtype(dtype)).reshape(shape, order=order)


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 pickles bytes with protocol < 3 as _codecs.encode(str, 'latin1').
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "str"): str,
    ("builtins", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy arrays and plain
    containers need (``_ALLOWED_GLOBALS``); anything else is refused."""

    def find_class(self, module, name):
        if module == "__builtin__":  # Python 2 / protocol < 3 name of builtins
            module = "builtins"
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global '{module}.{name}': a CIFAR-10 batch holds only "
                "numpy arrays, lists, strings and dicts") from None


def load_pickle(f):
    """Unpickle a CIFAR-10 batch from the open binary file ``f`` with the
    restricted unpickler. Python 2 strings are decoded as latin-1 (so the
    original batches give str keys); bytes keys are decoded to str too.

    Returns a dict with str keys.
    """
    d = _RestrictedUnpickler(f, encoding="latin1").load()
    if not isinstance(d, dict):
        raise ValueError(f"expected a pickled dict, got {type(d).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


# --- CIFAR-10 -------------------------------------------------------------------

def load_CIFAR_batch(filename):
    """Load one CIFAR-10 batch file.

    Returns (X, Y):
    - X: float64 array (N, 32, 32, 3), pixel values 0..255 (channels last, as CS231n)
    - Y: int array (N,), labels in [0, 10)
    """
    with open(filename, "rb") as f:
        datadict = load_pickle(f)
    for key in ("data", "labels"):
        if key not in datadict:
            raise ValueError(f"{filename}: not a CIFAR-10 batch, no {key!r} entry "
                             f"(keys: {sorted(map(str, datadict))})")
    X = np.asarray(datadict["data"])
    Y = np.array(datadict["labels"])
    if X.ndim != 2 or X.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{filename}: 'data' must have shape (N, 3072), got {X.shape}")
    if Y.shape != (X.shape[0],):
        raise ValueError(f"{filename}: {X.shape[0]} images but 'labels' has shape {Y.shape}")
    X = X.reshape(X.shape[0], 3, 32, 32).transpose(0, 2, 3, 1).astype("float")
    return X, Y


def _check_dir(root):
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CIFAR-10 directory {root!r} does not exist. {_WHERE_TO_GET}")
    missing = [n for n in TRAIN_BATCHES + (TEST_BATCH,)
               if not os.path.isfile(os.path.join(root, n))]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 directory {root!r} lacks {', '.join(missing)}. "
                                f"{_WHERE_TO_GET}")


def load_CIFAR10(root):
    """Load all of CIFAR-10 from the ``cifar-10-batches-py`` directory ``root``.

    Returns (Xtr, Ytr, Xte, Yte): Xtr (N_train, 32, 32, 3) float64, Ytr (N_train,),
    Xte (N_test, 32, 32, 3) float64, Yte (N_test,). N_train is 50,000 and N_test
    10,000 for the full data set (fewer for a subset).
    """
    _check_dir(root)
    xs, ys = [], []
    for name in TRAIN_BATCHES:
        X, Y = load_CIFAR_batch(os.path.join(root, name))
        xs.append(X)
        ys.append(Y)
    Xtr = np.concatenate(xs)
    Ytr = np.concatenate(ys)
    Xte, Yte = load_CIFAR_batch(os.path.join(root, TEST_BATCH))
    return Xtr, Ytr, Xte, Yte


def _count(v, name, minimum):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


# Where get_CIFAR10_data looks when no directory is given, after the
# environment variable and nnc.datasets' cache: CS231n's own location,
# relative to the notebook's working directory.
CS231N_RELATIVE_DIR = os.path.join("cs231n", "datasets", "cifar-10-batches-py")


def _find_cifar10_dir():
    """The first CIFAR-10 directory that holds the batches: NNC_CIFAR10_DIR,
    then nnc.datasets' cache, then CS231n's relative location. Raises
    FileNotFoundError listing every place tried."""
    from . import datasets  # lazy: datasets imports this module

    tried = []
    if os.environ.get(ENV_VAR):
        tried.append((f"${ENV_VAR}", os.environ[ENV_VAR]))
    tried.append(("the nnc.datasets cache", os.path.join(os.fspath(datasets.cache_dir()),
                                                         datasets.CIFAR10_FOLDER)))
    tried.append(("CS231n's relative location", CS231N_RELATIVE_DIR))
    for _, path in tried:
        if all(os.path.isfile(os.path.join(path, n)) for n in TRAIN_BATCHES + (TEST_BATCH,)):
            return path
    places = "; ".join(f"{what}: {path}" for what, path in tried)
    raise FileNotFoundError(f"no CIFAR-10 directory found (tried {places}). Pass "
                            f"cifar10_dir=..., set {ENV_VAR}, or download it into the cache "
                            f"with nnc.datasets.fetch_cifar10(). {_WHERE_TO_GET}")


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000, subtract_mean=True,
                     *, cifar10_dir=None):
    """Load CIFAR-10 and prepare it for the classifiers, as CS231n does.

    Inputs:
    - num_training, num_validation: the first num_training training images
      form X_train, the next num_validation form X_val
    - num_test: the first num_test test images form X_test
    - subtract_mean: subtract the mean image of X_train from all three splits
    - cifar10_dir (keyword only): the ``cifar-10-batches-py`` directory. By
      default the first of: the environment variable NNC_CIFAR10_DIR, the
      cache of ``nnc.datasets`` (``fetch_cifar10()`` fills it), and CS231n's
      ``cs231n/datasets/cifar-10-batches-py`` relative to the working directory

    Returns a dict:
    - 'X_train' (num_training, 3, 32, 32) float64, 'y_train' (num_training,)
    - 'X_val' (num_validation, 3, 32, 32), 'y_val' (num_validation,)
    - 'X_test' (num_test, 3, 32, 32), 'y_test' (num_test,)

    Raises FileNotFoundError when no directory holds the data (saying which
    were tried and where to get it) and ValueError when more images are asked
    for than it holds.
    """
    if isinstance(num_training, (str, os.PathLike)):
        raise TypeError(f"num_training must be an int, got the path {num_training!r}; pass the "
                        f"directory by keyword: get_CIFAR10_data(cifar10_dir={num_training!r})")
    if cifar10_dir is None:
        cifar10_dir = _find_cifar10_dir()
    if not isinstance(cifar10_dir, (str, os.PathLike)):
        raise TypeError(f"cifar10_dir must be a path (str or os.PathLike), got {cifar10_dir!r}")
    num_training = _count(num_training, "num_training", 1)
    num_validation = _count(num_validation, "num_validation", 0)
    num_test = _count(num_test, "num_test", 0)

    X_train, y_train, X_test, y_test = load_CIFAR10(os.fspath(cifar10_dir))
    if num_training + num_validation > X_train.shape[0]:
        raise ValueError(f"asked for num_training + num_validation = {num_training} + "
                         f"{num_validation} = {num_training + num_validation} training images "
                         f"but {cifar10_dir!r} has only {X_train.shape[0]}")
    if num_test > X_test.shape[0]:
        raise ValueError(f"asked for num_test = {num_test} test images but {cifar10_dir!r} has "
                         f"only {X_test.shape[0]}")

    X_val = X_train[num_training:num_training + num_validation]
    y_val = y_train[num_training:num_training + num_validation]
    X_train = X_train[:num_training]
    y_train = y_train[:num_training]
    X_test = X_test[:num_test]
    y_test = y_test[:num_test]

    if subtract_mean:
        mean_image = np.mean(X_train, axis=0)
        X_train = X_train - mean_image
        X_val = X_val - mean_image
        X_test = X_test - mean_image

    # Channels first, as the layers expect (N, C, H, W).
    return {
        "X_train": X_train.transpose(0, 3, 1, 2).copy(), "y_train": y_train.copy(),
        "X_val": X_val.transpose(0, 3, 1, 2).copy(), "y_val": y_val.copy(),
        "X_test": X_test.transpose(0, 3, 1, 2).copy(), "y_test": y_test.copy(),
    }


# --- CIFAR-100 (the CSCI566 course) ---------------------------------------------

def CIFAR100(data_dir):
    """Load CIFAR-100 with its coarse labels, as the CSCI566 course does.

    Inputs:
    - data_dir: folder holding the course's ``train.mat``, ``test.mat`` and
      ``meta.mat`` (needs scipy: ``pip install "nnc[mat]"``); the python
      version (``train``, ``test``, ``meta``) is read too

    Returns (data_train, labels_train, data_test, labels_test, label_names),
    the raw data:
    - data_train: uint8 (N_train, 32, 32, 3), pixel values 0..255
    - labels_train: int64 (N_train,), coarse labels in [0, 20)
    - data_test, labels_test: likewise, (N_test, 32, 32, 3) and (N_test,)
    - label_names: list of the 20 coarse class names
    """
    # Imported here: nnc.datasets imports this module.
    from .datasets import load_cifar

    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path (str or os.PathLike), got {data_dir!r}")
    d = load_cifar("cifar100", root=data_dir, layout="NHWC", labels="coarse", dtype=np.uint8)
    return d["X_train"], d["y_train"], d["X_test"], d["y_test"], d["label_names"]


def CIFAR100_data(data_dir, num_training=40000, num_validation=10000):
    """Load CIFAR-100 (coarse labels) and standardize it, as the CSCI566 course does.

    The first num_training training images form data_train, the next
    num_validation data_val; all test images form data_test. Pixels are scaled
    to [0, 1], then each channel is standardized with the mean and standard
    deviation of data_train (the training split only).

    Inputs:
    - data_dir: folder holding ``train.mat``, ``test.mat``, ``meta.mat`` (see CIFAR100)
    - num_training (>= 1), num_validation (>= 0): sizes of the two splits

    Returns a dict:
    - 'data_train' float32 (num_training, 32, 32, 3), 'labels_train' int64 (num_training,)
    - 'data_val' float32 (num_validation, 32, 32, 3), 'labels_val' (num_validation,)
    - 'data_test' float32 (N_test, 32, 32, 3), 'labels_test' (N_test,)
    - 'label_names': list of the 20 coarse class names
    - 'mean_image', 'std_image': float32 (1, 1, 1, 3), the per-channel
      statistics used: data = (pixels / 255 - mean_image) / std_image
    """
    num_training = _count(num_training, "num_training", 1)
    num_validation = _count(num_validation, "num_validation", 0)
    data_train, labels_train, data_test, labels_test, label_names = CIFAR100(data_dir)
    if num_training + num_validation > data_train.shape[0]:
        raise ValueError(f"asked for num_training + num_validation = {num_training} + "
                         f"{num_validation} = {num_training + num_validation} training images "
                         f"but {data_dir!r} has only {data_train.shape[0]}")

    x_train = data_train[:num_training].astype(np.float32)
    x_train /= 255
    # float64 statistics: a float32 sum over 40M values loses digits. The
    # chunks keep the float64 temporaries small.
    mean = x_train.mean(axis=(0, 1, 2), dtype=np.float64)
    sq = np.zeros(3)
    for i in range(0, num_training, 1000):
        d = x_train[i:i + 1000] - mean
        sq += np.einsum("nhwc,nhwc->c", d, d)
    std = np.sqrt(sq / (num_training * 32 * 32))
    if np.any(std == 0):
        raise ValueError(f"the training images have constant channels (std {std.tolist()}); "
                         "cannot standardize them")
    mean_image = mean.astype(np.float32).reshape(1, 1, 1, 3)
    std_image = std.astype(np.float32).reshape(1, 1, 1, 3)

    def standardized(x):
        x = x.astype(np.float32)
        x /= 255
        x -= mean_image
        x /= std_image
        return x

    x_train -= mean_image
    x_train /= std_image
    return {
        "data_train": x_train, "labels_train": labels_train[:num_training].copy(),
        "data_val": standardized(data_train[num_training:num_training + num_validation]),
        "labels_val": labels_train[num_training:num_training + num_validation].copy(),
        "data_test": standardized(data_test), "labels_test": labels_test,
        "label_names": label_names, "mean_image": mean_image, "std_image": std_image,
    }


# --- the original's other loaders (assignment 3) ---------------------------------

def _imread(path):
    try:
        from imageio.v2 import imread
    except ImportError:
        try:
            from PIL import Image
        except ImportError:
            raise ImportError("load_tiny_imagenet reads JPEG files with imageio or Pillow: "
                              "pip install imageio") from None
        return np.asarray(Image.open(path))
    return imread(path)


def load_tiny_imagenet(path, dtype=np.float32, subtract_mean=True):
    """Load TinyImageNet (wnids.txt, words.txt, train/, val/, test/ under path),
    as CS231n's loader does.

    Returns a dict: 'class_names' (list of lists of words per class), 'X_train'
    (N_tr, 3, 64, 64) of dtype, 'y_train' (N_tr,), 'X_val', 'y_val', 'X_test'
    (N_te, 3, 64, 64), 'y_test' (None when test labels are absent), and
    'mean_image' (3, 64, 64), subtracted from every split if subtract_mean.
    """
    def images(files):
        X = np.zeros((len(files), 3, 64, 64), dtype=dtype)
        for i, f in enumerate(files):
            img = _imread(f)
            if img.ndim == 2:  # grayscale
                img = np.repeat(img[:, :, None], 3, axis=2)
            X[i] = img.transpose(2, 0, 1)
        return X

    with open(os.path.join(path, "wnids.txt")) as f:
        wnids = [x.strip() for x in f]
    wnid_to_label = {wnid: i for i, wnid in enumerate(wnids)}
    with open(os.path.join(path, "words.txt")) as f:
        words = dict(line.rstrip("\n").split("\t", 1) for line in f)
    class_names = [[w.strip() for w in words[wnid].split(",")] for wnid in wnids]

    X_train, y_train = [], []
    for wnid in wnids:
        with open(os.path.join(path, "train", wnid, f"{wnid}_boxes.txt")) as f:
            names = [line.split("\t")[0] for line in f]
        X_train.append(images([os.path.join(path, "train", wnid, "images", n) for n in names]))
        y_train.append(np.full(len(names), wnid_to_label[wnid], dtype=np.int64))
    X_train, y_train = np.concatenate(X_train), np.concatenate(y_train)

    with open(os.path.join(path, "val", "val_annotations.txt")) as f:
        pairs = [line.split("\t")[:2] for line in f]
    X_val = images([os.path.join(path, "val", "images", n) for n, _ in pairs])
    y_val = np.array([wnid_to_label[w] for _, w in pairs], dtype=np.int64)

    test_names = sorted(os.listdir(os.path.join(path, "test", "images")))
    X_test = images([os.path.join(path, "test", "images", n) for n in test_names])
    y_test = None
    annotations = os.path.join(path, "test", "test_annotations.txt")
    if os.path.isfile(annotations):
        with open(annotations) as f:
            label_of = dict(line.split("\t")[:2] for line in f)
        y_test = np.array([wnid_to_label[label_of[n]] for n in test_names], dtype=np.int64)

    mean_image = X_train.mean(axis=0)
    if subtract_mean:
        X_train -= mean_image[None]
        X_val -= mean_image[None]
        X_test -= mean_image[None]
    return {"class_names": class_names, "X_train": X_train, "y_train": y_train,
            "X_val": X_val, "y_val": y_val, "X_test": X_test, "y_test": y_test,
            "mean_image": mean_image}


def load_models(models_dir):
    """Load the pickled models in models_dir (each a dict with a 'model'
    entry) through the restricted unpickler: plain data only.

    Returns a dict mapping each file name to its 'model' entry.
    """
    models = {}
    for name in sorted(os.listdir(models_dir)):
        with open(os.path.join(models_dir, name), "rb") as f:
            try:
                models[name] = load_pickle(f)["model"]
            except (pickle.UnpicklingError, KeyError, ValueError) as e:
                raise ValueError(f"{os.path.join(models_dir, name)}: not a model file ({e})") \
                    from None
    return models


def load_imagenet_val(num=None, *, path=os.path.join("cs231n", "datasets", "imagenet_val_25.npz")):
    """Load CS231n's 25 ImageNet validation images.

    Inputs:
    - num: how many to return (default all)
    - path (keyword only): the .npz; default CS231n's relative location.
      Its label map is a pickled dict: only load a file you trust.

    Returns (X (num, 224, 224, 3) uint8, y (num,), class_names dict label -> name).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: run CS231n's get_imagenet_val.sh or pass "
                                f"path=...")
    with np.load(path, allow_pickle=True) as f:
        X, y, class_names = f["X"], f["y"], f["label_map"].item()
    if num is not None:
        X, y = X[:num], y[:num]
    return X, y, class_names

"""A sweep's data: a dict of arrays, or a loader spec that makes one.

Loader specs (what a TOML file's ``data`` table holds):
- CIFAR-10 (the default kind): ``{cifar10_dir = "...", num_training = 1000,
  num_validation = 500, subtract_mean = true}``, read with
  ``nnc.data_utils.get_CIFAR10_data`` (cifar10_dir defaults to
  ``NNC_CIFAR10_DIR``);
- synthetic: ``{kind = "synthetic", num_train = 200, num_val = 100, dim = 20,
  num_classes = 10, seed = 0}`` (``shape = [3, 8, 8]`` makes images), a
  separable Gaussian mix for tests and demos.

The driver loads the data once and sends it to each worker once.
"""
import numpy as np

from .spec import DATA_KEYS

_CIFAR_KEYS = ("cifar10_dir", "num_training", "num_validation", "subtract_mean")
_SYNTH_KEYS = ("num_train", "num_val", "dim", "num_classes", "shape", "seed", "separation")


def synthetic_data(num_train=200, num_val=100, dim=20, num_classes=10, shape=None, seed=0,
                   separation=3.0):
    """A separable mix of Gaussians, one per class: class means drawn with
    standard deviation ``separation``, unit noise around them.

    Returns a dict with X_train (num_train, dim) float64, y_train
    (num_train,) int64, X_val, y_val; with ``shape`` (e.g. (3, 8, 8)) the
    examples are arrays of that shape instead (dim is then its product).
    """
    for name, v in (("num_train", num_train), ("num_val", num_val), ("dim", dim),
                    ("num_classes", num_classes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"synthetic data: {name} must be an int >= 1, got {v!r}")
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        dim = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    means = separation * rng.standard_normal((num_classes, dim))

    def draw(n):
        y = rng.integers(0, num_classes, n)
        X = means[y] + rng.standard_normal((n, dim))
        return (X if shape is None else X.reshape((n,) + shape)), y

    X_train, y_train = draw(num_train)
    X_val, y_val = draw(num_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def load_data(source):
    """The four arrays of ``source`` (a dict of arrays, or a loader spec as in
    the module docstring), checked: keys, matching lengths, integer labels.
    Other keys of a dict of arrays (X_test, ...) are dropped: trials do not
    use them, and they would be sent to every worker for nothing."""
    if source is None:
        raise ValueError("the spec has no data: pass a dict with X_train, y_train, X_val, y_val "
                         "or a data table (cifar10_dir = ..., or kind = 'synthetic')")
    if not isinstance(source, dict):
        raise ValueError(f"data must be a dict of arrays or a loader spec, got "
                         f"{type(source).__name__}")
    if any(k in source for k in DATA_KEYS):
        data = source
    else:
        data = _load(source)
    missing = [k for k in DATA_KEYS if k not in data]
    if missing:
        raise ValueError(f"data lacks {', '.join(missing)} (it needs {', '.join(DATA_KEYS)})")
    data = {k: np.asarray(data[k]) for k in DATA_KEYS}
    for split in ("train", "val"):
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        if X.ndim < 2 or len(X) == 0:
            raise ValueError(f"data: X_{split} must be a non-empty (N, ...) array, got shape "
                             f"{X.shape}")
        if y.shape != (len(X),):
            raise ValueError(f"data: X_{split} has {len(X)} rows but y_{split} has shape "
                             f"{y.shape}")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError(f"data: y_{split} must hold integer labels >= 0, got dtype "
                             f"{y.dtype}")
    if data["X_train"].shape[1:] != data["X_val"].shape[1:]:
        raise ValueError(f"data: X_train examples have shape {data['X_train'].shape[1:]} but "
                         f"X_val examples {data['X_val'].shape[1:]}")
    return data


def _load(spec):
    spec = dict(spec)
    kind = spec.pop("kind", "cifar10")
    if kind == "synthetic":
        unknown = sorted(set(spec) - set(_SYNTH_KEYS))
        if unknown:
            raise ValueError(f"data: unknown synthetic setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(_SYNTH_KEYS)}")
        return synthetic_data(**spec)
    if kind == "cifar10":
        unknown = sorted(set(spec) - set(_CIFAR_KEYS))
        if unknown:
            raise ValueError(f"data: unknown CIFAR-10 setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(_CIFAR_KEYS)}")
        from ..data_utils import get_CIFAR10_data

        # The test split is never used by a sweep.
        return get_CIFAR10_data(num_test=0, **spec)
    raise ValueError(f"data: unknown kind {kind!r}; use 'cifar10' or 'synthetic'")


def data_shape(data):
    """(example shape, number of classes) of checked data."""
    num_classes = int(max(data["y_train"].max(), data["y_val"].max())) + 1
    return data["X_train"].shape[1:], num_classes

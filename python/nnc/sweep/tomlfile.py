"""Reading a sweep spec from a TOML file.

    name = "twolayer-lr-reg"        # optional label
    model = "twolayer"              # a name in nnc.sweep.MODELS
    seed = 0                        # the sweep seed
    # backend = "cpp"               # optional; default: the driver's backend

    [model_kwargs]                  # fixed constructor arguments
    hidden_dim = 100

    [data]                          # see nnc.sweep.data
    cifar10_dir = "cifar-10-batches-py"   # relative to this file
    num_training = 1000
    num_validation = 500

    [solver]                        # fixed Solver settings
    update_rule = "adam"
    num_epochs = 5
    batch_size = 100
    [solver.optim_config]
    learning_rate = 1e-3

    [grid]                          # every combination is a trial ...
    learning_rate = [1e-4, 1e-3]
    reg = [0.0, 1e-3]

    # [random]                      # ... or random search
    # n_trials = 20
    # learning_rate = {log_uniform = [1e-5, 1e-2]}
    # reg = {uniform = [0.0, 1e-2]}
    # hidden_dim = {choice = [50, 100, 200]}
"""
import os
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - depends on the Python version
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

from .spec import Spec

_TOP_KEYS = ("name", "model", "seed", "backend", "model_kwargs", "data", "solver", "grid",
             "random")


def load_toml(path):
    """The Spec in the TOML file ``path``; a syntax error or a bad field is
    one ValueError that names the file."""
    if tomllib is None:  # pragma: no cover - Python 3.9/3.10 without tomli
        raise ImportError("reading a TOML spec on Python < 3.11 needs tomli: "
                          "pip install tomli (or pip install 'nnc[dask]')")
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
    unknown = [k for k in doc if k not in _TOP_KEYS]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; a spec has "
                         f"{', '.join(_TOP_KEYS)}")
    if "model" not in doc:
        raise ValueError(f"{path}: no model; set model = one of twolayer, fcnet, convnet")

    data = doc.get("data")
    if isinstance(data, dict) and isinstance(data.get("cifar10_dir"), str):
        # Relative to the spec file, so a sweep runs the same from any directory.
        base = os.path.dirname(os.path.abspath(path))
        data = dict(data, cifar10_dir=os.path.join(base, os.path.expanduser(data["cifar10_dir"])))
    random = doc.get("random")
    n_trials = None
    if isinstance(random, dict):
        random = dict(random)
        n_trials = random.pop("n_trials", None)
    name = doc.get("name", os.path.splitext(os.path.basename(path))[0])
    try:
        return Spec(doc["model"], data, model_kwargs=doc.get("model_kwargs"),
                    solver=doc.get("solver"), grid=doc.get("grid"), random=random,
                    n_trials=n_trials, seed=doc.get("seed", 0), backend=doc.get("backend"),
                    name=name)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None

"""What a sweep is: a base config plus a search space, and the trials it expands to.

A spec names a model from ``MODELS``, fixed model kwargs, fixed Solver
settings (with their ``optim_config``), a data source, and either a ``grid``
(every combination, in key order, the last key varying fastest) or a
``random`` space (``n_trials`` draws from log-uniform and uniform ranges and
choices). Every name in the search space is routed to one place: a model
kwarg (anything the model's constructor takes, e.g. ``reg``, ``weight_scale``,
``hidden_dims``), a Solver kwarg (``SOLVER_KEYS``) or an optimizer config key
(``OPTIM_KEYS``). Anything else is an unknown hyperparameter.

Trial ``i`` gets its seed from the sweep seed and ``i`` alone
(``np.random.SeedSequence(seed).spawn``), so it does not matter which worker
runs it or when.
"""
import inspect
import itertools
import json
import math

import numpy as np

from ..classifiers import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
from ..solver import UPDATE_RULES

# --- the models --------------------------------------------------------------


def _flat_input(x_shape, num_classes):
    """Defaults for models that flatten each example (affine first layer)."""
    return {"input_dim": int(np.prod(x_shape)), "num_classes": num_classes}


def _image_input(x_shape, num_classes):
    """Defaults for models that take (C, H, W) images."""
    if len(x_shape) != 3:
        raise ValueError(f"model 'convnet' needs images of shape (C, H, W); the data's examples "
                         f"have shape {tuple(x_shape)}")
    return {"input_dim": [int(v) for v in x_shape], "num_classes": num_classes}


# name -> (class, function(example shape, num_classes) -> default kwargs from the data).
# A new model is one entry here; its constructor's parameters become its hyperparameters.
MODELS = {
    "twolayer": (TwoLayerNet, _flat_input),
    "fcnet": (FullyConnectedNet, _flat_input),
    "convnet": (ThreeLayerConvNet, _image_input),
}

# Solver settings a sweep may set. checkpoint_name, print_every and verbose are
# left out: workers do not write files or print.
SOLVER_KEYS = ("update_rule", "num_epochs", "batch_size", "lr_decay", "num_train_samples",
               "num_val_samples")
# What nnc.optim's update rules read from their config.
OPTIM_KEYS = ("learning_rate", "momentum", "decay_rate", "beta1", "beta2", "epsilon")

DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")


def model_params(model):
    """The keyword arguments the model's constructor takes (its hyperparameters)."""
    _check_model(model)
    cls = MODELS[model][0]
    return [p for p in inspect.signature(cls).parameters]


def _check_model(model):
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known models: {', '.join(MODELS)}")


def route(model, name):
    """Where hyperparameter ``name`` goes: 'model', 'solver' or 'optim'."""
    if name in model_params(model):
        return "model"
    if name in SOLVER_KEYS:
        return "solver"
    if name in OPTIM_KEYS:
        return "optim"
    raise ValueError(f"unknown hyperparameter {name!r} for model {model!r}; known: model kwargs "
                     f"{', '.join(model_params(model))}; Solver kwargs {', '.join(SOLVER_KEYS)}; "
                     f"optim_config keys {', '.join(OPTIM_KEYS)}")


# --- search-space distributions ------------------------------------------------


def log_uniform(low, high):
    """A random-search range sampled uniformly in log space (learning rates, reg)."""
    return {"log_uniform": [low, high]}


def uniform(low, high):
    """A random-search range sampled uniformly."""
    return {"uniform": [low, high]}


def choice(values):
    """A random-search choice among ``values`` (each equally likely)."""
    return {"choice": list(values)}


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_))


def _check_distribution(name, dist):
    what = f"random: {name!r}"
    if not isinstance(dist, dict) or len(dist) != 1:
        raise ValueError(f"{what} must be one of {{log_uniform = [low, high]}}, "
                         f"{{uniform = [low, high]}} or {{choice = [...]}}, got {dist!r}")
    (kind, arg), = dist.items()
    if kind == "choice":
        if not isinstance(arg, (list, tuple)) or len(arg) == 0:
            raise ValueError(f"{what}: choice needs a non-empty list of values, got {arg!r}")
        return
    if kind not in ("log_uniform", "uniform"):
        raise ValueError(f"{what}: unknown distribution {kind!r}; use log_uniform, uniform or "
                         "choice")
    if (not isinstance(arg, (list, tuple)) or len(arg) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in arg)):
        raise ValueError(f"{what}: {kind} needs [low, high], two finite numbers, got {arg!r}")
    low, high = arg
    if low >= high:
        raise ValueError(f"{what}: {kind} needs low < high, got low={low}, high={high}")
    if kind == "log_uniform" and low <= 0:
        raise ValueError(f"{what}: log_uniform needs low > 0, got low={low}")


def _sample(dist, rng):
    (kind, arg), = dist.items()
    if kind == "choice":
        return arg[int(rng.integers(len(arg)))]
    low, high = float(arg[0]), float(arg[1])
    if kind == "log_uniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


# --- seeds -----------------------------------------------------------------------


def trial_seeds(seed, index):
    """(training seed, sampling SeedSequence) of trial ``index``.

    The trial's SeedSequence is ``SeedSequence(seed).spawn(n)[index]``, built
    directly from its spawn key, so it depends on (seed, index) only. Its two
    children seed the random-search draws and the training (NumPy's global
    state, which the models and the Solver use); the training seed is a
    uint32 as ``np.random.seed`` needs.
    """
    trial = np.random.SeedSequence(seed, spawn_key=(index,))
    sample_seq, train_seq = trial.spawn(2)
    return int(train_seq.generate_state(1)[0]), sample_seq


# --- the spec ----------------------------------------------------------------------


def _json_value(where, value):
    """Return ``value`` as plain JSON data (lists, not tuples; numbers as Python
    numbers), so configs recorded in JSONL read back equal to the originals."""
    def plain(v):
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        raise TypeError
    try:
        return json.loads(json.dumps(value, default=plain))
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be plain data (numbers, strings, booleans, lists, "
                         f"dicts), got {value!r}") from None


class Spec:
    """A hyperparameter sweep.

    Inputs:
    - model: a name in ``MODELS`` ('twolayer', 'fcnet', 'convnet')
    - data: a dict of arrays with X_train, y_train, X_val, y_val, or a loader
      dict (see ``nnc.sweep.data.load_data``): ``{'cifar10_dir': ...,
      'num_training': 1000}`` or ``{'kind': 'synthetic', ...}``
    - model_kwargs: fixed constructor arguments of the model; input_dim and
      num_classes default to what the data says
    - solver: fixed Solver kwargs (``SOLVER_KEYS``) plus 'optim_config'
    - grid: name -> list of values; every combination is a trial
    - random: name -> ``log_uniform(lo, hi)``, ``uniform(lo, hi)`` or
      ``choice([...])`` (or the same as dicts); with n_trials draws
    - n_trials: number of random-search trials
    - seed: the sweep seed (an int >= 0); trial seeds derive from it
    - backend: 'cpp' or 'numpy' for every trial; None: the driver's backend
      when the sweep runs
    - name: a label for the output

    Every mistake raises one ValueError naming the field and the value.
    """

    def __init__(self, model, data=None, *, model_kwargs=None, solver=None, grid=None,
                 random=None, n_trials=None, seed=0, backend=None, name="sweep"):
        _check_model(model)
        self.model = model
        self.data = data
        self.name = str(name)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
                or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = int(seed)
        if backend is not None and backend not in ("cpp", "numpy"):
            raise ValueError(f"backend must be 'cpp', 'numpy' or None, got {backend!r}")
        self.backend = backend

        self.model_kwargs = _json_value("model_kwargs", dict(model_kwargs or {}))
        for k in self.model_kwargs:
            if k not in model_params(model):
                raise ValueError(f"model_kwargs: {k!r} is not an argument of model {model!r} "
                                 f"(its arguments: {', '.join(model_params(model))})")
        solver = _json_value("solver", dict(solver or {}))
        self.optim_config = solver.pop("optim_config", {})
        if not isinstance(self.optim_config, dict):
            raise ValueError(f"solver.optim_config must be a dict, got {self.optim_config!r}")
        for k in solver:
            if k not in SOLVER_KEYS:
                raise ValueError(f"solver: unknown Solver setting {k!r}; a sweep may set "
                                 f"{', '.join(SOLVER_KEYS)} and optim_config")
        for k in self.optim_config:
            if k not in OPTIM_KEYS:
                raise ValueError(f"solver.optim_config: unknown key {k!r}; known: "
                                 f"{', '.join(OPTIM_KEYS)}")
        self.solver = solver

        if grid is not None and random is not None:
            raise ValueError("give a grid or a random search space, not both")
        if grid is None and random is None:
            raise ValueError("the spec has no search space: give grid = {name: [values]} or "
                             "random = {name: distribution} with n_trials")
        if grid is not None:
            if not isinstance(grid, dict) or not grid:
                raise ValueError(f"grid is empty: give at least one name -> [values], got "
                                 f"{grid!r}")
            if n_trials is not None:
                raise ValueError("n_trials is for random search; a grid has one trial per "
                                 "combination")
            for k, values in grid.items():
                route(model, k)
                if not isinstance(values, (list, tuple)) or len(values) == 0:
                    raise ValueError(f"grid: {k!r} needs a non-empty list of values, got "
                                     f"{values!r}")
            self.kind = "grid"
            self.space = _json_value("grid", {k: list(v) for k, v in grid.items()})
            self.n_trials = math.prod(len(v) for v in self.space.values())
        else:
            if not isinstance(random, dict) or not random:
                raise ValueError(f"random is empty: give at least one name -> distribution, "
                                 f"got {random!r}")
            if isinstance(n_trials, (bool, np.bool_)) or not isinstance(
                    n_trials, (int, np.integer)) or n_trials < 1:
                raise ValueError(f"random search needs n_trials, an int >= 1, got {n_trials!r}")
            for k, dist in random.items():
                route(model, k)
                _check_distribution(k, dist)
            self.kind = "random"
            self.space = _json_value("random", dict(random))
            self.n_trials = int(n_trials)

        fixed = {"model": self.model_kwargs, "solver": self.solver, "optim": self.optim_config}
        for k in self.space:
            if k in fixed[route(model, k)]:
                raise ValueError(f"{k!r} is both fixed ({fixed[route(model, k)][k]!r}) and in the "
                                 f"{self.kind} search space; give it in one place")

        # Values the search space or base config will give to the Solver must
        # be valid before any trial runs.
        rules = [self.solver.get("update_rule", "sgd")]
        if "update_rule" in self.space:
            s = self.space["update_rule"]
            if self.kind == "random" and "choice" not in s:
                raise ValueError(f"random: 'update_rule' must be a choice, got {s!r}")
            rules = s if self.kind == "grid" else s["choice"]
        for r in rules:
            if r not in UPDATE_RULES:
                raise ValueError(f"update_rule {r!r} is not one of {', '.join(UPDATE_RULES)}")

        cls = MODELS[model][0]
        given = set(self.model_kwargs) | {k for k in self.space if route(model, k) == "model"}
        for p in inspect.signature(cls).parameters.values():
            if p.default is inspect.Parameter.empty and p.name not in given:
                raise ValueError(f"model {model!r} needs {p.name!r}: give it in model_kwargs or "
                                 "the search space")

    @classmethod
    def from_toml(cls, path):
        """Read a spec from a TOML file (the layout is in
        ``nnc.sweep.tomlfile``). A relative ``data.cifar10_dir`` is relative to
        the file."""
        from .tomlfile import load_toml

        return load_toml(path)

    def __len__(self):
        return self.n_trials

    def __repr__(self):
        return (f"Spec(model={self.model!r}, {self.kind}={self.space!r}, n_trials={self.n_trials}, "
                f"seed={self.seed})")

    def trials(self):
        """The trials as (index, hyperparams, seed), in index order. The same
        spec always gives the same list."""
        out = []
        if self.kind == "grid":
            names = list(self.space)
            combos = itertools.product(*(self.space[k] for k in names))
            for i, values in enumerate(combos):
                out.append((i, dict(zip(names, values)), trial_seeds(self.seed, i)[0]))
        else:
            for i in range(self.n_trials):
                seed, sample_seq = trial_seeds(self.seed, i)
                rng = np.random.default_rng(sample_seq)
                out.append((i, {k: _sample(d, rng) for k, d in self.space.items()}, seed))
        return out

    def configs(self, x_shape, num_classes, backend, num_threads):
        """The full trial configs for data whose examples have shape
        ``x_shape`` (without N) and ``num_classes`` labels: what ``run_trial``
        takes and what each record keeps under 'config'."""
        defaults = MODELS[self.model][1](tuple(x_shape), int(num_classes))
        out = []
        for index, hyper, seed in self.trials():
            model_kwargs = {**defaults, **self.model_kwargs}
            solver = dict(self.solver)
            optim = dict(self.optim_config)
            where = {"model": model_kwargs, "solver": solver, "optim": optim}
            for k, v in hyper.items():
                where[route(self.model, k)][k] = v
            out.append({
                "trial": index, "seed": seed, "hyperparams": hyper, "model": self.model,
                "model_kwargs": model_kwargs, "solver": solver, "optim_config": optim,
                "backend": backend, "num_threads": int(num_threads),
            })
        return out

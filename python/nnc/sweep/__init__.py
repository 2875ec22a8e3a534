"""Hyperparameter sweeps that run the same on a laptop and on a Dask cluster.

    import nnc.sweep as sweep
    spec = sweep.Spec("twolayer", data, model_kwargs={"hidden_dim": 100},
                      solver={"update_rule": "adam", "num_epochs": 5},
                      grid={"learning_rate": [1e-4, 1e-3], "reg": [0.0, 1e-3]})
    records = sweep.run(spec, out="runs/lr-reg")                  # serial
    records = sweep.run(spec, out="runs/lr-reg", runner="local", n_workers=2)
    sweep.print_table(records)
    model, meta = sweep.load_model("runs/lr-reg")

From the shell: ``nnc sweep SPEC.toml --runner local --workers 2`` or
``python -m nnc.sweep SPEC.toml`` (see ``nnc.sweep.tomlfile`` for the file
layout). Dask (``pip install 'nnc[dask]'``) is needed only by the 'local' and
'address' runners; nnc itself never imports this package.

Each trial's seed comes from the sweep seed and the trial index, each trial
runs with the same native thread count on every runner, and only the driver
writes results, so a grid gives the same records serially and on a cluster.
"""
from .data import load_data, synthetic_data
from .results import best, load, load_model, plot, print_table, table
from .runners import RUNNERS, SweepStopped, run
from .spec import MODELS, OPTIM_KEYS, SOLVER_KEYS, Spec, choice, log_uniform, uniform
from .tomlfile import load_toml
from .trial import RUN_FIELDS, run_trial

__all__ = [
    "Spec", "load_toml", "run", "run_trial", "load", "best", "table", "print_table", "plot",
    "load_model", "load_data", "synthetic_data", "log_uniform", "uniform", "choice", "MODELS",
    "SOLVER_KEYS", "OPTIM_KEYS", "RUNNERS", "RUN_FIELDS", "SweepStopped",
]

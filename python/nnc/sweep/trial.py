"""One trial: build the model, train it with the Solver, return a record.

Every runner calls ``run_trial``, in the driver (serial) or in a Dask worker,
so a trial's result depends on its config and the data only.
"""
import os
import socket
import sys
import threading
import time
import traceback

import numpy as np

import nnc

from ..solver import Solver
from .spec import MODELS

# The models and the Solver draw from NumPy's global random state, and the
# native thread count is per process, so two trials in one process must not
# overlap (a Dask worker with several threads would otherwise run them at once).
_LOCK = threading.Lock()

# Fields that describe where and when a trial ran, not what it computed.
RUN_FIELDS = ("wall_time", "worker", "host", "pid", "finished_at")


def _worker_name():
    dist = sys.modules.get("distributed")
    if dist is not None:
        try:
            return dist.get_worker().address
        except Exception:  # not inside a Dask worker
            pass
    return "serial"


def run_trial(config, data):
    """Train one trial and return its record (a dict of plain data).

    Inputs:
    - config: one entry of ``Spec.configs(...)``: trial, seed, hyperparams,
      model, model_kwargs, solver, optim_config, backend, num_threads
    - data: dict with X_train, y_train, X_val, y_val

    The record has trial, status ('ok' or 'error'), error (text or None),
    traceback, hyperparams, seed, config, best_val_acc, final_val_acc,
    final_train_acc, loss_history, train_acc_history, val_acc_history,
    wall_time (s), worker, host, pid, finished_at, nnc_version, build_info; and
    '_model' (the best parameters and batchnorm statistics, arrays) when the
    trial succeeded, which the driver removes before writing the record.

    An exception in the trial becomes an 'error' record; only
    KeyboardInterrupt and other BaseExceptions propagate. NumPy's global
    random state and the thread count are restored afterwards.
    """
    with _LOCK:
        return _run_locked(config, data)


def error_record(config, error, tb=None):
    """The record of a trial that did not get to return one (its worker was
    lost, or trial code outside ``run_trial`` raised): status 'error', no
    histories, made in the driver."""
    return {
        "trial": config["trial"], "status": "error", "error": error, "traceback": tb,
        "hyperparams": config["hyperparams"], "seed": config["seed"], "config": config,
        "best_val_acc": None, "final_val_acc": None, "final_train_acc": None,
        "loss_history": [], "train_acc_history": [], "val_acc_history": [],
        "wall_time": None, "worker": None, "host": None, "pid": None,
        "finished_at": time.time(), "nnc_version": nnc.__version__, "build_info": None,
    }


def _run_locked(config, data):
    record = {
        "trial": config["trial"], "status": "ok", "error": None, "traceback": None,
        "hyperparams": config["hyperparams"], "seed": config["seed"], "config": config,
    }
    saved_state = np.random.get_state()
    saved_threads = nnc.get_num_threads()
    solver = model = build = None
    t0 = time.perf_counter()
    try:
        nnc.set_num_threads(config["num_threads"])
        build = nnc.build_info()  # after the thread count is set, so it records it
        np.random.seed(config["seed"])
        with nnc.use_backend(config["backend"] or nnc.get_backend()):
            model = MODELS[config["model"]][0](**config["model_kwargs"])
            solver = Solver(model, data, optim_config=dict(config["optim_config"]),
                            verbose=False, **config["solver"])
            solver.train()
    except Exception as e:
        record.update(status="error", error=f"{type(e).__name__}: {e}",
                      traceback=traceback.format_exc())
    finally:
        np.random.set_state(saved_state)
        nnc.set_num_threads(saved_threads)
    wall = time.perf_counter() - t0

    hist = {"loss_history": [], "train_acc_history": [], "val_acc_history": []}
    if solver is not None:
        hist = {k: [float(v) for v in getattr(solver, k)] for k in hist}
    val = hist["val_acc_history"]
    record.update(
        best_val_acc=max(val) if val else None,
        final_val_acc=val[-1] if val else None,
        final_train_acc=hist["train_acc_history"][-1] if hist["train_acc_history"] else None,
        **hist,
        wall_time=wall, worker=_worker_name(), host=socket.gethostname(), pid=os.getpid(),
        finished_at=time.time(), nnc_version=nnc.__version__,
        build_info=build or nnc.build_info(),
    )
    if record["status"] == "ok":
        bn = [{k: np.array(d[k]) for k in ("running_mean", "running_var") if k in d}
              for d in getattr(model, "bn_params", None) or [] if isinstance(d, dict)]
        record["_model"] = {"params": dict(model.params), "bn": bn}
    return record

"""Running a sweep: the driver loop and its three runners.

- ``serial``: the trials one after another in this process (no extra
  dependency);
- ``local``: a ``dask.distributed.LocalCluster`` of worker processes that nnc
  starts and closes;
- ``address``: an existing Dask scheduler (``tcp://host:8786``) or a
  ``distributed.Client`` you pass in.

Whatever the runner, each trial is ``run_trial(config, data)`` and only this
(the driver) process writes results, so the records are the same: a trial's
result depends on its config (which holds its seed and thread count) and the
data, not on the worker or the order in which trials finish.
"""
import asyncio
import concurrent.futures
import contextlib
import importlib.util
import logging
import os
import sys
import time
import traceback
import uuid

import nnc

from .data import data_shape, load_data
from .results import (MODEL_FILE, RECORDS_FILE, RecordFile, best, better, load, read_model_meta,
                      save_model)
from .trial import error_record, run_trial

RUNNERS = ("serial", "local", "address")


class SweepStopped(RuntimeError):
    """The Dask side went away or the sweep ran out of time; what finished is
    recorded, and running the sweep again resumes it."""

# A trial's identity: what must match for a recorded trial to count on resume.
# (num_threads may change between runs: a sweep started serially can finish on a cluster.)
_IDENTITY = ("seed", "hyperparams", "model", "model_kwargs", "solver", "optim_config", "backend")

# How long the Dask runners wait for workers to come up or join, and for the
# scheduler to answer (seconds). A scheduler that is up answers at once.
WORKER_WAIT = 60
CONNECT_TIMEOUT = 10
# How often the Dask runners send the data again after losing it with a worker.
DATA_ATTEMPTS = 3


def _positive_int(v, name, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    return v


class _Progress:
    """A tqdm bar over trials (done, running, failed, ETA), or a line per
    trial when tqdm is not installed; silent when disabled."""

    def __init__(self, total, done, failed, enabled):
        self.total, self.done, self.failed, self.enabled = total, done, failed, enabled
        self.bar = None

    def start(self):
        """Start the clock and the bar: called when trials start running, so
        a cluster's start-up does not count in the rate and ETA."""
        self.start_done, self.t0 = self.done, time.perf_counter()
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=self.total, initial=self.done, unit="trial",
                                file=sys.stderr, dynamic_ncols=True)
                self._postfix(0)

    def _postfix(self, running):
        self.bar.set_postfix(running=running, failed=self.failed, refresh=True)

    def write(self, msg):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    def trial_done(self, rec, running):
        self.done += 1
        if rec["status"] != "ok":
            self.failed += 1
            self.write(f"trial {rec['trial']} failed: {rec['error']}")
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self._postfix(running)
            return
        new = self.done - self.start_done
        eta = (time.perf_counter() - self.t0) / new * (self.total - self.done)
        acc = rec.get("best_val_acc")
        self.write(f"[{self.done}/{self.total}] trial {rec['trial']} {rec['status']}"
                   + (f", best val acc {acc:.3f}" if acc is not None else "")
                   + f"; {running} running, {self.failed} failed, ETA {eta:.0f} s")

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run(spec, data=None, *, runner=None, n_workers=None, threads_per_worker=1, address=None,
        client=None, out=None, max_trials=None, retries=1, timeout=None, progress=True,
        trial_fn=run_trial):
    """Run the trials of ``spec`` that ``out`` does not hold yet; return the
    records of all its trials (old and new), sorted by trial index.

    Inputs:
    - spec: a ``Spec``
    - data: a dict of arrays (or loader spec) to use instead of ``spec.data``
    - runner: 'serial', 'local' or 'address'; default 'address' when address
      or client is given, else 'serial'
    - n_workers: worker processes of the 'local' runner; default: cores //
      threads_per_worker
    - threads_per_worker: native threads (``nnc.set_num_threads``) of each
      trial; default 1. Each worker runs one trial at a time, so n_workers *
      threads_per_worker should not exceed the cores. The serial runner uses
      the same count, so its results match a cluster's.
    - address: the scheduler of the 'address' runner, e.g. 'tcp://host:8786'
    - client: a ``distributed.Client`` for the 'address' runner (not closed
      here)
    - out: directory for trials.jsonl and best_model.npz; records already
      there are kept and their trials not run again (resume). None: nothing
      is written and the best model is not kept.
    - max_trials: run at most this many new trials (the lowest missing
      indices), then return
    - retries: Dask re-runs of a trial whose task raised (a trial's own error
      is recorded, not retried; a lost worker's trial is re-run by the
      scheduler)
    - timeout: seconds to wait for the Dask trials; None waits as long as it takes
    - progress: show a progress bar (stderr)
    - trial_fn: the function run per trial, ``run_trial`` or a wrapper of it

    A trial that raises is recorded with status 'error' and the sweep goes
    on. KeyboardInterrupt stops the sweep; what finished is in ``out``, and
    the same call resumes it. A script that uses runner 'local' needs the
    ``if __name__ == "__main__":`` guard: Dask starts its worker processes
    with spawn, which imports the script again.
    """
    if runner is None:
        runner = "address" if (address is not None or client is not None) else "serial"
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    threads_per_worker = _positive_int(threads_per_worker, "threads_per_worker")
    n_workers = _positive_int(n_workers, "n_workers", allow_none=True)
    max_trials = _positive_int(max_trials, "max_trials", allow_none=True)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    if runner == "address" and address is None and client is None:
        raise ValueError("runner 'address' needs address='tcp://host:8786' or client=Client(...)")
    if runner != "address" and (address is not None or client is not None):
        raise ValueError(f"address and client are for runner 'address', not {runner!r}")
    if runner != "local" and n_workers is not None:
        raise ValueError(f"n_workers is for runner 'local', not {runner!r} (an address "
                         "cluster has its own workers)")

    data = load_data(spec.data if data is None else data)
    x_shape, num_classes = data_shape(data)
    configs = spec.configs(x_shape, num_classes, spec.backend or nnc.get_backend(),
                           threads_per_worker)

    done = {}
    best_rec = None
    writer = None
    model_path = None
    if out is not None:
        out = os.fspath(out)
        os.makedirs(out, exist_ok=True)
        records_file = os.path.join(out, RECORDS_FILE)
        if os.path.exists(records_file):
            done = {r["trial"]: r for r in load(records_file)}
            _check_resume(done, configs, records_file)
        model_path = os.path.join(out, MODEL_FILE)
        if os.path.exists(model_path):
            best_rec = read_model_meta(model_path)
        else:
            # Without the file, only a trial better than every recorded one
            # writes it: best_model.npz never holds a model that is not the best.
            best_rec = next(iter(best(done.values())), None)
        writer = RecordFile(records_file)

    todo = [c for c in configs if c["trial"] not in done]
    if max_trials is not None:
        todo = todo[:max_trials]
    bar = _Progress(len(configs), len(done), sum(r["status"] != "ok" for r in done.values()),
                    progress)

    def finish(rec, running):
        nonlocal best_rec
        model = rec.pop("_model", None)
        if rec["trial"] in done:  # a re-run of a recorded trial: keep the first record
            return
        # The model before the record: a crash in between re-runs the trial
        # on resume, which rewrites the same parameters.
        if model is not None and model_path is not None and better(rec, best_rec):
            save_model(model_path, model, rec)
            best_rec = rec
        if writer is not None:
            writer.append(rec)
        done[rec["trial"]] = rec
        bar.trial_done(rec, running)

    try:
        if runner == "serial":
            bar.start()
            for n, c in enumerate(todo, 1):
                finish(_call(trial_fn, c, data), min(1, len(todo) - n))
        else:
            _run_dask(todo, data, runner, n_workers, threads_per_worker, address, client,
                      retries, timeout, trial_fn, finish, bar)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return [done[i] for i in sorted(done)]


def _call(trial_fn, config, data):
    """trial_fn in this process; an exception becomes an error record."""
    try:
        return trial_fn(config, data)
    except Exception as e:
        return error_record(config, f"{type(e).__name__}: {e}", traceback.format_exc())


def _check_resume(done, configs, path):
    """Refuse records of another sweep: resuming must not mix two sweeps."""
    by_index = {c["trial"]: c for c in configs}
    for i, rec in sorted(done.items()):
        if i not in by_index:
            raise ValueError(f"{path} holds trial {i} but this spec has only {len(configs)} "
                             "trials; pass another out directory, or delete the file to start "
                             "over")
        diff = [f"{k}: recorded {rec['config'].get(k)!r}, this spec {by_index[i][k]!r}"
                for k in _IDENTITY if rec["config"].get(k) != by_index[i][k]]
        if diff:
            raise ValueError(f"{path} holds trial {i} of a different sweep ({'; '.join(diff)}); "
                             "pass another out directory, or delete the file to start over")


def _import_distributed(runner):
    try:
        import distributed
    except ImportError:
        raise ImportError(f"runner {runner!r} needs Dask: pip install 'nnc[dask]'") from None
    return distributed


def _wait_for_workers(client, n):
    try:
        client.wait_for_workers(n, timeout=WORKER_WAIT)
    except (TimeoutError, asyncio.TimeoutError):
        address = client.scheduler.address
        raise SweepStopped(f"no Dask worker joined {address} within {WORKER_WAIT} s; start "
                           f"one with `dask worker {address} --nthreads 1`") from None


def _run_dask(todo, data, runner, n_workers, threads, address, client, retries, timeout,
              trial_fn, finish, bar):
    distributed = _import_distributed(runner)
    import dask

    with contextlib.ExitStack() as stack:
        if runner == "local":
            if n_workers is None:
                n_workers = max(1, (os.cpu_count() or 1) // threads)
            # One Dask thread per worker: the worker runs one trial at a time,
            # and the trial uses `threads` native threads. NumPy's own BLAS in
            # the worker gets the same count (Dask's default would be 1).
            env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
            has_bokeh = importlib.util.find_spec("bokeh") is not None
            # The active memory manager drops the extra copies that
            # scatter(broadcast=True) makes; our scheduler keeps them, so a dead
            # worker does not take the only copy of the data with it. The
            # scheduler's web server takes a free port: 8787 may be another
            # cluster's.
            with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}):
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, env=env,
                    dashboard_address=":0", silence_logs=logging.ERROR))
            client = stack.enter_context(distributed.Client(cluster))
            _wait_for_workers(client, n_workers)
        else:
            if client is None:
                client = stack.enter_context(distributed.Client(address, timeout=CONNECT_TIMEOUT))
            _wait_for_workers(client, 1)
            has_bokeh = True  # the scheduler's own dashboard, if it has one
        if has_bokeh and client.dashboard_link:
            bar.write(f"Dask dashboard: {client.dashboard_link}")

        bar.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        token = uuid.uuid4().hex[:8]
        remaining = list(todo)
        for attempt in range(DATA_ATTEMPTS):
            if attempt:
                bar.write(f"the data was lost with a worker; sending it again for the "
                          f"{len(remaining)} unfinished trial(s)")
                _wait_for_workers(client, 1)
            # The data goes to the workers once; trials refer to it by future.
            [data_future] = client.scatter([data], broadcast=True, hash=False)
            futures = {}
            for c in remaining:
                # A unique key per trial and run: Dask must not merge two trials
                # whose configs are equal, nor reuse a result of an earlier run.
                key = f"nnc-trial-{c['trial']}-{token}-{attempt}"
                futures[client.submit(trial_fn, c, data_future, key=key, retries=retries)] = c
            try:
                remaining = _collect(distributed, client, futures, deadline, timeout, finish)
            finally:
                client.cancel([f for f in futures if not f.done()] + [data_future])
            if not remaining:
                return
            if client.status != "running":  # the scheduler went away, not just a worker
                raise SweepStopped(f"lost the Dask scheduler {client.scheduler.address}; "
                                   f"{len(remaining)} trial(s) unfinished; what finished is "
                                   "recorded: run the sweep again to resume")
        raise SweepStopped(f"the data was lost {DATA_ATTEMPTS} times (workers keep dying); "
                           f"{len(remaining)} trial(s) unfinished; run the sweep again to resume")


def _collect(distributed, client, futures, deadline, timeout, finish):
    """Record the trials of ``futures`` as they finish; return the configs of
    those Dask cancelled (their data was lost, or the scheduler went away)."""
    pending = set(futures)
    lost = []
    while pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            distributed.wait(pending, timeout=left, return_when="FIRST_COMPLETED")
        except (TimeoutError, asyncio.TimeoutError):
            raise SweepStopped(f"the sweep did not finish within timeout={timeout} s; run it "
                               "again to resume") from None
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            pass  # some futures were cancelled: sorted out by their status below
        # ("lost": its result died with a worker; Dask computes it again or cancels it.)
        done = {f for f in pending if f.status not in ("pending", "lost")}
        pending -= done
        for f in sorted(done, key=lambda f: futures[f]["trial"]):
            c = futures[f]
            try:
                if f.cancelled():
                    raise concurrent.futures.CancelledError
                rec = f.result()
            except (asyncio.CancelledError, concurrent.futures.CancelledError):
                # Not the trial's fault: its data or its result was lost with a worker
                # before the result reached us. It runs again.
                lost.append(c)
                continue
            except Exception as e:  # the worker was lost too often, or the task raised
                rec = error_record(c, f"{type(e).__name__}: {e}")
            f.release()
            workers = len(client.scheduler_info().get("workers", {})) or 1
            finish(rec, min(workers, len(pending)))
    return lost

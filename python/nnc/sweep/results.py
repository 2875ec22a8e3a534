"""Sweep results: the JSONL file of records, the best model's .npz, tables and plots.

A sweep's output directory holds
- ``trials.jsonl``: one JSON record per finished trial, in finishing order,
  appended (and fsynced) by the driver as each trial finishes;
- ``best_model.npz``: the parameters of the best trial so far (highest best
  validation accuracy, lower trial index on a tie), loadable with
  ``np.load(path, allow_pickle=False)`` or ``load_model``.

Records are plain JSON. A trial whose loss diverged has NaN in its
histories, which Python's json writes and reads as ``NaN``.
"""
import json
import math
import os
import tempfile

import numpy as np

RECORDS_FILE = "trials.jsonl"
MODEL_FILE = "best_model.npz"


def records_path(path):
    """``path`` itself if it is a file name, else ``path/trials.jsonl``."""
    path = os.fspath(path)
    return os.path.join(path, RECORDS_FILE) if os.path.isdir(path) or not path.endswith(
        ".jsonl") else path


class RecordFile:
    """Appends records to a JSONL file, one line each, flushed and fsynced so a
    finished trial survives a crash of the driver right after it."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _drop_partial_line(path)
        self._f = open(path, "a", encoding="utf-8")

    def append(self, record):
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _drop_partial_line(path):
    """A driver killed mid-write can leave a last line without its newline;
    cut it off, so the next record starts on a line of its own (its trial is
    not recorded, so it runs again)."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        content = f.read()
        if content and not content.endswith(b"\n"):
            f.truncate(content.rfind(b"\n") + 1)


def load(path):
    """The records of a sweep (``path``: its output directory or its JSONL
    file), one per trial, sorted by trial index. A partial last line (a crash
    mid-write) is skipped; if a trial appears twice the first record counts."""
    path = records_path(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    records = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):  # the unterminated last line
                continue
            raise ValueError(f"{path}:{n}: not a JSON record ({e})") from None
        records.setdefault(rec["trial"], rec)
    return [records[i] for i in sorted(records)]


def _rank_key(rec):
    acc = rec.get("best_val_acc")
    if acc is None or (isinstance(acc, float) and math.isnan(acc)):
        acc = -1.0
    return (-acc, rec["trial"])


def best(records, k=1):
    """The k successful records with the highest best validation accuracy
    (ties: lower trial index first); k=None gives all of them, ranked."""
    ok = sorted((r for r in records if r.get("status") == "ok"), key=_rank_key)
    return ok if k is None else ok[:k]


def better(rec, than):
    """Whether record ``rec`` ranks above record ``than`` (or ``than`` is None)."""
    return than is None or _rank_key(rec) < _rank_key(than)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def table(records, k=None):
    """A text table of the records, best validation accuracy first; failed
    trials last with their error. k limits the successful rows."""
    ranked = best(records, k)
    failed = [r for r in records if r.get("status") != "ok"]
    names = []
    for r in records:
        for n in r.get("hyperparams", {}):
            if n not in names:
                names.append(n)
    header = ["rank", "trial"] + names + ["best val", "final val", "train", "time s", "status"]
    rows = []
    for rank, r in enumerate(ranked + failed, 1):
        h = r.get("hyperparams", {})
        acc = [r.get(k) for k in ("best_val_acc", "final_val_acc", "final_train_acc")]
        status = "ok" if r.get("status") == "ok" else f"error: {r.get('error')}"
        rows.append([str(rank) if r.get("status") == "ok" else "-", str(r["trial"])]
                    + [_fmt(h[n]) if n in h else "" for n in names]
                    + ["" if a is None else f"{a:.3f}" for a in acc]
                    + [f"{r.get('wall_time') or 0:.2f}", status])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    widths[-1] = 0  # the status column is last; do not pad it
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip()
             for row in [header] + rows]
    return "\n".join(lines)


def print_table(records, k=None):
    """Print ``table(records, k)``."""
    print(table(records, k))


def _log_axis(ax, which, values):
    """Log scale, or symlog when a value is 0 (reg = 0 is a common grid point)."""
    set_scale = ax.set_xscale if which == "x" else ax.set_yscale
    positive = [v for v in values if v > 0]
    if len(positive) == len(values):
        set_scale("log")
    else:
        set_scale("symlog", linthresh=min(positive) if positive else 1e-6)


def plot(records, path=None, top=5):
    """The CS231n picture of a sweep: validation accuracy over learning rate
    and regularization (log axes, color = best validation accuracy), and the
    train/validation accuracy curves of the ``top`` best trials.

    Needs matplotlib. With ``path`` the figure is saved there (no window is
    opened); returns the matplotlib Figure.
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plot needs matplotlib: pip install matplotlib") from None
    if path is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(12, 5))
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(12, 5))
    del matplotlib
    ax1, ax2 = fig.subplots(1, 2)

    ok = [r for r in records if r.get("status") == "ok"
          and r["config"]["optim_config"].get("learning_rate") is not None]
    if ok:
        lr = [r["config"]["optim_config"]["learning_rate"] for r in ok]
        reg = [r["config"]["model_kwargs"].get("reg", 0.0) for r in ok]
        acc = [r["best_val_acc"] for r in ok]
        sc = ax1.scatter(lr, reg, 100, c=acc, cmap="coolwarm")
        fig.colorbar(sc, ax=ax1, label="best validation accuracy")
        _log_axis(ax1, "x", lr)
        _log_axis(ax1, "y", reg)
    ax1.set_xlabel("learning rate (log)")
    ax1.set_ylabel("regularization strength (log)")
    ax1.set_title("validation accuracy")

    for r in best(records, top):
        h = ", ".join(f"{k}={_fmt(v)}" for k, v in r["hyperparams"].items())
        line, = ax2.plot(r["val_acc_history"], "-o", label=f"trial {r['trial']}: {h}")
        ax2.plot(r["train_acc_history"], "--", color=line.get_color())
    ax2.set_xlabel("check (epoch)")
    ax2.set_ylabel("accuracy (solid: val, dashed: train)")
    ax2.set_title(f"top {top} trials")
    if records:
        ax2.legend(fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def save_model(path, model, record):
    """Write the parameters ``model`` ({'params': name -> array, 'bn': [stats]},
    as a record's '_model') of ``record`` to ``path`` as .npz: arrays
    'param/<name>', 'bn/<i>/<stat>' and 'meta' (JSON: trial, seed,
    best_val_acc, config). Written to a temporary file and renamed, so the
    file is never half-written."""
    arrays = {f"param/{k}": np.asarray(v) for k, v in model["params"].items()}
    for i, stats in enumerate(model["bn"]):
        for k, v in stats.items():
            arrays[f"bn/{i}/{k}"] = np.asarray(v)
    meta = {k: record[k] for k in ("trial", "seed", "best_val_acc", "hyperparams", "config")}
    arrays["meta"] = np.array(json.dumps(meta))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_model_meta(path):
    """The 'meta' dict of a best-model .npz (trial, seed, best_val_acc, ...)."""
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["meta"]))


def load_model(path):
    """Rebuild the best model of a sweep from its .npz (``path``: the file or
    the sweep's output directory).

    Returns (model, meta): the model with the saved parameters (and batchnorm
    running statistics), ready for ``model.loss(X)``; meta as in
    ``read_model_meta``.
    """
    from .spec import MODELS

    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        arrays = {k: f[k] for k in f.files if k != "meta"}
    config = meta["config"]
    # Constructing the model draws its initial weights; keep the caller's random state.
    state = np.random.get_state()
    try:
        model = MODELS[config["model"]][0](**config["model_kwargs"])
    finally:
        np.random.set_state(state)
    model.params = {k.partition("/")[2]: v for k, v in arrays.items() if k.startswith("param/")}
    for key, v in arrays.items():
        if key.startswith("bn/"):
            _, i, stat = key.split("/")
            model.bn_params[int(i)][stat] = v
    return model, meta

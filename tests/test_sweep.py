"""nnc.sweep: specs and their errors, seeds by trial index, records, resume,
the CLI, and the Dask runners giving the serial runner's records bit for bit
(with a failing trial and a killed worker). Dask tests skip without
``distributed``."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nnc
import nnc.sweep as sw
from nnc.solver import Solver
from nnc.sweep.cli import main

# 200 training examples of a separable 10-class Gaussian mix in 20 dimensions:
# a trial of 2 epochs takes a few milliseconds.
DATA = sw.synthetic_data(num_train=200, num_val=100, dim=20, num_classes=10, seed=0)
GRID = {"learning_rate": [1e-3, 1e-2, 1e-1], "reg": [0.0, 1e-2]}
SOLVER = {"update_rule": "adam", "num_epochs": 2, "batch_size": 50}


def fc_spec(**kw):
    """A 6-trial fcnet grid with batchnorm and dropout, so the records depend
    on the seed through the initial weights, the minibatches and the masks."""
    args = dict(model_kwargs={"hidden_dims": [30, 30], "weight_scale": 1e-2,
                              "normalization": "batchnorm", "dropout_keep_ratio": 0.9},
                solver=SOLVER, grid=GRID, seed=7)
    args.update(kw)
    return sw.Spec("fcnet", DATA, **args)


# What build_info says of the process rather than of the build: the bytes
# its output-buffer cache holds (earlier tests in this process leave some)
# and the OpenMP libraries it has mapped (torch's, if a test imported it).
PROCESS_FIELDS = ("buffer_cache", "omp_runtimes")


def computed(records):
    """The records without where and when each trial ran."""
    out = [{k: v for k, v in r.items() if k not in sw.RUN_FIELDS} for r in records]
    for r in out:
        if r.get("build_info"):
            r["build_info"] = {k: v for k, v in r["build_info"].items()
                               if k not in PROCESS_FIELDS}
    return out


def jsonl_trials(out):
    with open(os.path.join(out, "trials.jsonl")) as f:
        return [json.loads(line)["trial"] for line in f]


@pytest.fixture(scope="module")
def serial_records():
    return sw.run(fc_spec(), progress=False)


# --- specs -----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(grid={"lr": [1e-3]}), "unknown hyperparameter 'lr'"),
    (dict(grid={}), "grid is empty"),
    (dict(grid={"reg": []}), "'reg' needs a non-empty list"),
    (dict(grid=None, random={"learning_rate": sw.log_uniform(1e-2, 1e-3)}, n_trials=3),
     "low < high"),
    (dict(grid=None, random={"learning_rate": sw.uniform(0.5, 0.5)}, n_trials=3),
     "low < high"),
    (dict(grid=None, random={"learning_rate": sw.log_uniform(0, 1e-3)}, n_trials=3),
     "log_uniform needs low > 0"),
    (dict(grid=None, random={"reg": sw.choice([])}, n_trials=3), "non-empty list"),
    (dict(grid=None, random={"reg": [0.0, 1e-3]}, n_trials=3), "must be one of"),
    (dict(grid=None, random={"reg": {"normal": [0, 1]}}, n_trials=3), "unknown distribution"),
    (dict(grid=None, random={"reg": sw.uniform(0, 1)}), "needs n_trials"),
    (dict(grid=None, random={"reg": sw.uniform(0, 1)}, n_trials=0), "needs n_trials"),
    (dict(random={"reg": sw.uniform(0, 1)}, n_trials=2), "not both"),
    (dict(grid=None), "no search space"),
    (dict(grid=GRID, n_trials=4), "n_trials is for random search"),
    (dict(solver={"epochs": 2}), "unknown Solver setting 'epochs'"),
    (dict(solver={"optim_config": {"learning_rte": 1e-3}}), "unknown key 'learning_rte'"),
    (dict(solver={}, grid={"update_rule": ["adam", "adamw"]}), "'adamw' is not one of"),
    (dict(model_kwargs={"hidden_dims": [10], "hidden_dim": 10}), "'hidden_dim' is not an arg"),
    (dict(model_kwargs={}), "model 'fcnet' needs 'hidden_dims'"),
    (dict(seed=-1), "seed must be an int >= 0"),
    (dict(solver={"optim_config": {"learning_rate": 1e-3}}), "'learning_rate' is both fixed"),
])
def test_spec_errors_are_one_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fc_spec(**kwargs)


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'resnet'; known models: twolayer, fcnet"):
        sw.Spec("resnet", DATA, grid={"reg": [0.0]})


def test_grid_order_routing_and_data_defaults():
    spec = fc_spec()
    assert len(spec) == 6
    trials = spec.trials()
    assert [h for _, h, _ in trials] == [{"learning_rate": lr, "reg": r}
                                         for lr in GRID["learning_rate"] for r in GRID["reg"]]
    c = spec.configs((20,), 10, "numpy", 1)[3]
    assert c["optim_config"] == {"learning_rate": 1e-2}
    assert c["model_kwargs"]["reg"] == 1e-2
    assert c["model_kwargs"]["input_dim"] == 20 and c["model_kwargs"]["num_classes"] == 10
    assert c["solver"] == SOLVER and c["backend"] == "numpy" and c["num_threads"] == 1
    # A Solver setting in the search space goes to the Solver.
    c = fc_spec(solver={"batch_size": 50}, grid={"num_epochs": [1, 3]}).configs(
        (20,), 10, "cpp", 2)[1]
    assert c["solver"]["num_epochs"] == 3 and c["num_threads"] == 2


def test_seeds_come_from_the_sweep_seed_and_the_trial_index():
    spec = sw.Spec("twolayer", DATA, grid={"reg": [0.0] * 5}, seed=3)
    seeds = [s for _, _, s in spec.trials()]
    children = np.random.SeedSequence(3).spawn(5)
    assert seeds == [int(c.spawn(2)[1].generate_state(1)[0]) for c in children]
    assert len(set(seeds)) == 5
    assert seeds != [s for _, _, s in sw.Spec("twolayer", DATA, grid={"reg": [0.0] * 5},
                                              seed=4).trials()]


def test_random_search_draws_in_range_and_per_index():
    space = {"learning_rate": sw.log_uniform(1e-5, 1e-1), "reg": sw.uniform(0.0, 0.1),
             "hidden_dim": sw.choice([10, 20])}
    few = sw.Spec("twolayer", DATA, random=space, n_trials=10, seed=1).trials()
    many = sw.Spec("twolayer", DATA, random=space, n_trials=40, seed=1).trials()
    assert many[:10] == few  # trial i does not depend on how many trials there are
    lrs = [h["learning_rate"] for _, h, _ in many]
    assert all(1e-5 <= v <= 1e-1 for v in lrs)
    assert min(lrs) < 1e-4 and max(lrs) > 1e-2  # spread over the decades, not uniform
    assert all(0 <= h["reg"] <= 0.1 for _, h, _ in many)
    assert {h["hidden_dim"] for _, h, _ in many} == {10, 20}


# --- TOML --------------------------------------------------------------------------

TOML = """
model = "twolayer"
seed = 5
data = {kind = "synthetic", num_train = 200, num_val = 100, dim = 20, num_classes = 10}

[model_kwargs]
hidden_dim = 30
weight_scale = 1e-2

[solver]
update_rule = "adam"
num_epochs = 2
batch_size = 50

[grid]
learning_rate = [1e-3, 1e-2]
reg = [0.0, 1e-2]
"""


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_toml_spec_equals_the_python_spec(tmp_path):
    spec = sw.Spec.from_toml(write(tmp_path / "lr.toml", TOML))
    py = sw.Spec("twolayer", {"kind": "synthetic"}, model_kwargs={"hidden_dim": 30,
                 "weight_scale": 1e-2}, solver=SOLVER,
                 grid={"learning_rate": [1e-3, 1e-2], "reg": [0.0, 1e-2]}, seed=5)
    assert spec.trials() == py.trials() and spec.name == "lr"
    rnd = write(tmp_path / "r.toml", """
        model = "twolayer"
        [data]
        cifar10_dir = "cifar"
        num_training = 10
        [random]
        n_trials = 4
        learning_rate = {log_uniform = [1e-4, 1e-2]}
        reg = {choice = [0.0, 0.1]}
    """)
    spec = sw.load_toml(rnd)
    assert spec.kind == "random" and len(spec) == 4
    assert spec.data["cifar10_dir"] == str(tmp_path / "cifar")  # relative to the file


@pytest.mark.parametrize("text, match", [
    ("model = 'twolayer'\n[grid\n", "not valid TOML"),
    ("model = 'twolayer'\nepochs = 3\n[grid]\nreg = [0.0]\n", "unknown key"),
    ("[grid]\nreg = [0.0]\n", "no model"),
    ("model = 'twolayer'\n[grid]\nlr = [0.1]\n", "unknown hyperparameter 'lr'"),
])
def test_toml_errors_name_the_file(tmp_path, text, match):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ValueError, match=match) as e:
        sw.load_toml(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("kwargs, match", [
    (dict(runner="cluster"), "runner must be one of serial, local, address"),
    (dict(n_workers=2), "n_workers is for runner 'local'"),
    (dict(runner="address"), "needs address="),
    (dict(threads_per_worker=0), "threads_per_worker must be an int >= 1"),
    (dict(max_trials=0), "max_trials must be an int >= 1"),
])
def test_run_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sw.run(fc_spec(), progress=False, **kwargs)


def test_data_errors():
    with pytest.raises(ValueError, match="lacks y_val"):
        sw.load_data({k: DATA[k] for k in ("X_train", "y_train", "X_val")})
    with pytest.raises(ValueError, match="unknown kind 'mnist'"):
        sw.load_data({"kind": "mnist"})
    with pytest.raises(ValueError, match="unknown synthetic setting"):
        sw.load_data({"kind": "synthetic", "n": 3})


# --- the serial runner and the results ----------------------------------------------


def test_serial_records_jsonl_and_best_model(tmp_path, serial_records):
    out = tmp_path / "run"
    state = np.random.get_state()[1].copy()
    threads = nnc.get_num_threads()
    records = sw.run(fc_spec(), out=out, progress=False)
    # The driver's global random state and thread count are left alone.
    assert np.array_equal(np.random.get_state()[1], state) and nnc.get_num_threads() == threads

    assert computed(records) == computed(serial_records)  # the same run after run
    assert [r["trial"] for r in records] == list(range(6))
    assert sw.load(out) == records
    r = records[0]
    assert r["status"] == "ok" and r["error"] is None and r["worker"] == "serial"
    assert r["nnc_version"] == nnc.__version__ and r["build_info"]["num_threads"] == 1
    assert len(r["loss_history"]) == 2 * 200 // 50 and len(r["val_acc_history"]) == 3
    assert r["best_val_acc"] == max(r["val_acc_history"])
    assert len({json.dumps(r["loss_history"]) for r in records}) == 6

    top = sw.best(records, 2)
    assert top[0]["best_val_acc"] >= top[1]["best_val_acc"]
    table = sw.table(records).splitlines()
    assert table[0].split()[:4] == ["rank", "trial", "learning_rate", "reg"]
    assert table[1].split()[1] == str(top[0]["trial"])

    # best_model.npz: plain arrays, and the model scores what its record says.
    with np.load(out / "best_model.npz", allow_pickle=False) as f:
        assert "param/W1" in f.files and "bn/0/running_mean" in f.files
    model, meta = sw.load_model(out)
    assert meta["trial"] == top[0]["trial"]
    acc = Solver(model, DATA, verbose=False).check_accuracy(DATA["X_val"], DATA["y_val"])
    assert acc == top[0]["best_val_acc"]


def test_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    spec = fc_spec(model_kwargs={"hidden_dims": [30]}, grid={"weight_scale": [1e-2, -1.0, 1e-2]})
    records = sw.run(spec, out=tmp_path, progress=False)
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert "weight_scale must be >= 0" in records[1]["error"]
    assert "Traceback" in records[1]["traceback"]
    last = sw.table(records).splitlines()[-1]  # failed trials come last, unranked
    assert last.split()[:2] == ["-", "1"] and "error: ValueError" in last


def test_resume_after_max_trials_gives_the_uninterrupted_records(tmp_path, serial_records):
    first = sw.run(fc_spec(), out=tmp_path, max_trials=3, progress=False)
    assert [r["trial"] for r in first] == [0, 1, 2]
    records = sw.run(fc_spec(), out=tmp_path, progress=False)
    assert computed(records) == computed(serial_records)
    assert sorted(jsonl_trials(tmp_path)) == list(range(6))


def test_resume_after_keyboard_interrupt(tmp_path, serial_records):
    def interrupted(config, data):
        if config["trial"] == 3:
            raise KeyboardInterrupt
        return sw.run_trial(config, data)

    with pytest.raises(KeyboardInterrupt):
        sw.run(fc_spec(), out=tmp_path, progress=False, trial_fn=interrupted)
    assert jsonl_trials(tmp_path) == [0, 1, 2]
    # A driver killed mid-write leaves a partial line; resume drops it.
    with open(tmp_path / "trials.jsonl", "a") as f:
        f.write('{"trial": 3, "status": "o')
    assert [r["trial"] for r in sw.load(tmp_path)] == [0, 1, 2]
    records = sw.run(fc_spec(), out=tmp_path, progress=False)
    assert computed(records) == computed(serial_records)
    assert jsonl_trials(tmp_path) == list(range(6))


def test_resume_refuses_another_sweep(tmp_path):
    sw.run(fc_spec(), out=tmp_path, max_trials=2, progress=False)
    with pytest.raises(ValueError, match="holds trial 0 of a different sweep"):
        sw.run(fc_spec(seed=8), out=tmp_path, progress=False)


def test_plot(tmp_path, serial_records):
    pytest.importorskip("matplotlib")
    fig = sw.plot(serial_records, tmp_path / "sweep.png", top=3)
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert len(fig.axes[1].get_legend().get_texts()) == 3


# --- the CLI ---------------------------------------------------------------------------


def test_cli_runs_and_resumes(tmp_path, capsys):
    spec = write(tmp_path / "lr.toml", TOML)
    out = tmp_path / "out"
    assert main([str(spec), "--out", str(out), "--max-trials", "2", "--no-progress"]) == 0
    assert "2 still to run" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress", "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "4 of 4 trials recorded" in text and "best model:" in text
    assert text.splitlines()[0].startswith("rank")
    assert len(sw.load(out)) == 4


def test_nnc_sweep_dispatches_here(tmp_path, capsys):
    nnc_cli = pytest.importorskip("nnc.cli")
    spec = write(tmp_path / "lr.toml", TOML)
    out = tmp_path / "out"
    assert nnc_cli.main(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 0
    assert "4 of 4 trials recorded" in capsys.readouterr().out
    assert nnc_cli.main(["sweep", str(spec), "--runner", "address"]) == 2
    assert capsys.readouterr().err.startswith("nnc sweep: error: --runner address needs")


@pytest.mark.parametrize("argv, match", [
    (["missing.toml"], "no such spec file: missing.toml"),
    (["{spec_bad}"], "unknown hyperparameter 'lr'"),
    (["{spec}", "--runner", "address"], "--runner address needs --address"),
    (["{spec}", "--threads-per-worker", "0"], "--threads-per-worker must be >= 1"),
    (["{spec}", "--workers", "2"], "--workers is for --runner local"),
])
def test_cli_mistakes_are_one_line(tmp_path, capsys, argv, match):
    spec = write(tmp_path / "ok.toml", TOML)
    bad = write(tmp_path / "bad.toml", "model = 'twolayer'\n[grid]\nlr = [0.1]\n")
    argv = [a.format(spec=spec, spec_bad=bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnc sweep: error:") and match in err and "\n" not in err


def test_python_m_nnc_sweep_and_imports(tmp_path):
    bad = write(tmp_path / "bad.toml", "model = 'twolayer'\n[grid]\nreg = []\n")
    p = subprocess.run([sys.executable, "-m", "nnc.sweep", str(bad)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"nnc sweep: error: {bad}: grid: 'reg' needs a "
                                             "non-empty list of values, got []"]
    # The core never imports the sweep package, and the sweep package needs no Dask to load.
    code = ("import sys, nnc; assert 'nnc.sweep' not in sys.modules; import nnc.sweep; "
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- Dask ------------------------------------------------------------------------------


def cluster(n_workers):
    """A LocalCluster with Dask's defaults (the active memory manager on), as
    a user's own cluster would be, and a client of it."""
    distributed = pytest.importorskip("distributed")
    import logging

    c = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                 dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = distributed.Client(c, timeout=60)
    client.wait_for_workers(n_workers, timeout=60)
    return c, client


@pytest.fixture(scope="module")
def dask_client():
    c, client = cluster(2)
    with c, client:
        yield client


def crash_once(marker, fail=None, crash=3):
    """A trial_fn that raises in trial ``fail`` and kills its worker process in
    trial ``crash`` on the first attempt only (the marker file says whether
    that attempt happened)."""
    def faulty(config, data):
        if config["trial"] == fail:
            raise RuntimeError("injected failure")
        if config["trial"] == crash and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies mid-trial
        return sw.run_trial(config, data)
    return faulty


def test_local_cluster_gives_the_serial_records(tmp_path, serial_records):
    pytest.importorskip("distributed")
    records = sw.run(fc_spec(), runner="local", n_workers=2, threads_per_worker=1,
                     out=tmp_path, timeout=120, progress=False)
    assert computed(records) == computed(serial_records)  # bit for bit, floats and all
    assert len({r["worker"] for r in records}) == 2  # both workers ran trials
    assert sorted(jsonl_trials(tmp_path)) == list(range(6))
    model, meta = sw.load_model(tmp_path)
    assert meta["trial"] == sw.best(serial_records)[0]["trial"]


def test_failing_trial_and_killed_worker(tmp_path, dask_client, serial_records):
    # With the active memory manager on, the data may or may not have a copy on
    # the surviving worker; either way every trial is recorded once.
    marker = str(tmp_path / "crashed-once")
    out = tmp_path / "out"
    records = sw.run(fc_spec(), client=dask_client, out=out, timeout=120, progress=False,
                     trial_fn=crash_once(marker, fail=1, crash=3))
    assert os.path.exists(marker)
    assert sorted(jsonl_trials(out)) == list(range(6))  # every trial recorded exactly once
    assert records[1]["status"] == "error" and "injected failure" in records[1]["error"]
    ok = [i for i in range(6) if i != 1]
    assert computed([records[i] for i in ok]) == computed([serial_records[i] for i in ok])


def test_data_lost_with_the_only_worker_is_sent_again(tmp_path, serial_records):
    marker = str(tmp_path / "crashed-once")
    c, client = cluster(1)
    with c, client:
        records = sw.run(fc_spec(), client=client, out=tmp_path, timeout=120, progress=False,
                         trial_fn=crash_once(marker, crash=2))
    assert os.path.exists(marker)
    assert sorted(jsonl_trials(tmp_path)) == list(range(6))
    assert computed(records) == computed(serial_records)


def test_address_runner_resumes_a_serial_sweep(tmp_path, dask_client, serial_records):
    sw.run(fc_spec(), out=tmp_path, max_trials=3, progress=False)
    address = dask_client.scheduler.address
    records = sw.run(fc_spec(), runner="address", address=address, out=tmp_path, timeout=120,
                     progress=False)
    assert computed(records) == computed(serial_records)
    assert all(r["worker"].startswith("tcp://") for r in records[3:])


def test_equal_configs_with_different_seeds_are_all_run(dask_client):
    spec = sw.Spec("twolayer", DATA, model_kwargs={"weight_scale": 1e-2}, solver=SOLVER,
                   random={"reg": sw.choice([0.0])}, n_trials=4)
    records = sw.run(spec, client=dask_client, timeout=120, progress=False)
    assert [r["hyperparams"] for r in records] == [{"reg": 0.0}] * 4
    assert len({r["seed"] for r in records}) == 4
    assert len({json.dumps(r["loss_history"]) for r in records}) == 4

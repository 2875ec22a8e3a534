"""`nnc train` end to end (in subprocesses, on the CIFAR-10 subset), its
interrupt and resume, its one-line errors; the other subcommands; and the
Solver's progress= keyword."""
import importlib.util
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnc
from nnc import cli
from nnc.solver import Solver

from conftest import cifar10_subset_dir, needs_cifar

REPO = Path(__file__).resolve().parents[1]


CIFAR = str(cifar10_subset_dir()) if cifar10_subset_dir() else None

# Small runs: one thread, so a busy machine slows them less and the numbers
# do not depend on the core count.
CONVNET = ["--model", "convnet", "--filters", "8", "--filter-size", "3", "--hidden", "32",
           "--num-train", "500", "--num-val", "200", "--epochs", "2", "--batch-size", "50",
           "--seed", "1", "--threads", "1"]
# batchnorm and dropout: the resume must carry the running statistics and the
# random state that draws the masks.
FCNET = ["--model", "fcnet", "--hidden", "50", "--normalization", "batchnorm",
         "--dropout", "0.9", "--num-train", "1500", "--num-val", "200", "--epochs", "3",
         "--batch-size", "25", "--seed", "5", "--threads", "1"]
PNG_SIZES = {"curves.png": (1000, 400), "confusion.png": (600, 600),
             "per_class.png": (800, 400), "filters.png": (500, 500)}
CONTROL = re.compile(r"[\r\x1b]")  # carriage returns (a bar) and ANSI escapes


def _train(args, out, cwd, **kw):
    cmd = [sys.executable, "-m", "nnc", "train", "--data", CIFAR, *args, "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, **kw)


def _history(out):
    with open(Path(out) / "history.json") as f:
        return json.load(f)


def _png_size(path):
    """(width, height) from the IHDR chunk; asserts the PNG signature."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def _one_line_error(stderr):
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def convnet_run(tmp_path_factory):
    if CIFAR is None:
        pytest.skip("CIFAR-10 subset not found")
    tmp = tmp_path_factory.mktemp("convnet")
    proc = _train(CONVNET, tmp / "run", tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, tmp / "run"


@pytest.fixture(scope="module")
def fcnet_runs(tmp_path_factory):
    """The same seeded command twice."""
    if CIFAR is None:
        pytest.skip("CIFAR-10 subset not found")
    tmp = tmp_path_factory.mktemp("fcnet")
    outs = []
    for name in ("a", "b"):
        proc = _train(FCNET, tmp / name, tmp)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(tmp / name)
    return outs


# --- a whole run ---------------------------------------------------------------------

def test_train_writes_history_and_best_model(convnet_run):
    proc, out = convnet_run
    h = _history(out)
    assert h["status"] == "finished" and h["epoch"] == 2 and h["epochs"] == 2
    ipe = 500 // 50
    assert len(h["loss_history"]) == 2 * ipe
    assert len(h["train_acc_history"]) == len(h["val_acc_history"]) == 3  # + the first check
    assert len(h["lr_history"]) == len(h["epoch_time"]) == len(h["images_per_second"]) == 2
    assert h["lr_history"] == [1e-3, 1e-3 * 0.95]
    assert h["config"]["model"] == "convnet" and h["config"]["seed"] == 1
    assert h["build_info"]["version"] == nnc.__version__
    assert h["best_val_acc"] == max(h["val_acc_history"])
    # per-class accuracy on the test split: in the history and printed
    per_class = h["test"]["per_class_accuracy"]
    assert list(per_class) == h["label_names"] and len(per_class) == 10
    counts = np.array(h["test"]["confusion_matrix"]).sum(axis=1)
    assert counts.sum() == h["test"]["num_images"] == 1017
    assert "per-class test accuracy:" in proc.stdout
    assert f"  airplane    {per_class['airplane']:.3f}" in proc.stdout

    # best.npz is a plain npz and gives back the reported validation accuracy exactly
    with np.load(out / "best.npz", allow_pickle=False) as f:
        assert "meta" in f.files and "param/W1" in f.files
    with np.load(out / "last.npz", allow_pickle=False) as f:
        assert "rng/keys" in f.files
    model, meta = cli.load_model(out / "best.npz")
    data = cli.prepare_data(meta["config"])
    before = nnc.get_num_threads()
    nnc.set_num_threads(1)
    try:
        acc = float(np.mean(cli._predict(model, data["X_val"]) == data["y_val"]))
    finally:
        nnc.set_num_threads(before)
    assert acc == h["best_val_acc"] == meta["val_acc"]
    np.testing.assert_array_equal(meta["mean"], data["mean"])


def test_train_writes_the_pictures(convnet_run):
    pytest.importorskip("matplotlib")
    _, out = convnet_run
    for name, size in PNG_SIZES.items():
        assert _png_size(out / name) == size, name
    assert _history(out)["plots"] == list(PNG_SIZES)


def test_output_to_a_pipe_has_no_control_characters(convnet_run):
    proc, _ = convnet_run
    assert not CONTROL.search(proc.stdout) and not CONTROL.search(proc.stderr)
    assert re.search(r"^epoch 2/2  loss \d\.\d{4}  train acc 0\.\d{3}  val acc 0\.\d{3}",
                     proc.stdout, re.M)


def test_seeded_runs_are_identical(fcnet_runs):
    a, b = (_history(o) for o in fcnet_runs)
    assert len(a["loss_history"]) == 3 * (1500 // 25)
    for key in ("loss_history", "train_acc_history", "val_acc_history", "lr_history", "test"):
        assert a[key] == b[key], key


@needs_cifar
def test_train_matches_solver_train(fcnet_runs):
    """The command line steps through the same Solver: Solver.train with the
    same seed, data and model gives the same numbers."""
    h = _history(fcnet_runs[0])
    cfg = h["config"]
    data = cli.prepare_data(cfg)
    before = nnc.get_num_threads()
    nnc.set_num_threads(1)
    try:
        np.random.seed(cfg["seed"])
        model = cli._build(cfg, data["X_train"].shape[1:], 10)
        solver = Solver(model, data, update_rule=cfg["update_rule"],
                        optim_config={"learning_rate": cfg["lr"]}, lr_decay=cfg["lr_decay"],
                        batch_size=cfg["batch_size"], num_epochs=cfg["epochs"], verbose=False)
        solver.train()
    finally:
        nnc.set_num_threads(before)
    assert [float(v) for v in solver.loss_history] == h["loss_history"]
    assert solver.val_acc_history == h["val_acc_history"]


# --- Ctrl-C and --resume -------------------------------------------------------------

@needs_cifar
def test_interrupt_then_resume_gives_the_uninterrupted_history(fcnet_runs, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nnc", "train", "--data", CIFAR, *FCNET, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        for line in proc.stdout:  # the first check's line: training is under way
            if line.startswith("epoch 0/3"):
                proc.send_signal(signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    message = _one_line_error(stderr)
    assert "interrupted" in message and f"--resume {out}" in message
    h = _history(out)
    assert h["status"] == "interrupted" and h["iteration"] < 3 * 60
    with np.load(out / "last.npz", allow_pickle=False) as f:
        assert json.loads(str(f["meta"]))["iteration"] == h["iteration"]

    resumed = subprocess.run([sys.executable, "-m", "nnc", "train", "--resume", str(out)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at epoch {h['epoch']}, iteration {h['iteration']}" in resumed.stdout
    got, want = _history(out), _history(fcnet_runs[0])
    for key in ("loss_history", "train_acc_history", "val_acc_history", "lr_history",
                "best_val_acc", "best_epoch", "test"):
        assert got[key] == want[key], key
    assert got["status"] == "finished" and len(got["epoch_time"]) == 3


@needs_cifar
def test_resume_refuses_a_changed_option(fcnet_runs, capsys):
    assert cli.main(["train", "--resume", str(fcnet_runs[0]), "--lr", "0.1"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "--lr 0.1 differs from the run's 0.001" in line


# --- mistakes: one line, no traceback ------------------------------------------------

BAD = [
    (["--model", "resnet"], "unknown model 'resnet'; known models: convnet, fcnet, twolayer, "
                            "small-cnn, tinynet, word"),
    (["--model", "word", "--data", "cifar10"], "--model word reads word trigrams: --data "
                                               "synthetic-trigrams or a trigram .h5 file"),
    (["--model", "fcnet", "--data", "synthetic-trigrams"],
     "--data synthetic-trigrams is word data, for --model word (not fcnet)"),
    (["--model", "small-cnn", "--hidden", "10"], "--hidden does not apply to --model small-cnn"),
    (["--model", "tinynet", "--weight-scale", "0.1"],
     "--weight-scale does not apply to --model tinynet"),
    (["--model", "word", "--filters", "8"], "--filters does not apply to --model word"),
    (["--model", "word", "--hidden", "10,10"], "--model word has one hidden layer"),
    (["--data", "/no/such/dir"], "--data: no such directory or file"),
    (["--dtype", "float16"], "--dtype must be float32 or float64, got 'float16'"),
    (["--epochs", "-2"], "--epochs must be an integer >= 1, got -2"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--model", "fcnet", "--hidden", "100,,5"], "--hidden must be positive integers"),
    (["--model", "fcnet", "--hidden", "0"], "--hidden must be positive integers"),
    (["--model", "twolayer", "--hidden", "10,10"], "one hidden layer"),
    (["--model", "convnet", "--dropout", "0.5"], "--dropout does not apply to --model convnet"),
    (["--model", "fcnet", "--dropout", "1.5"], "--dropout is the probability of keeping"),
    (["--lr", "nan"], "--lr must be a number > 0, got nan"),
    (["--update-rule", "lbfgs"], "unknown rule 'lbfgs'"),
    (["--backend", "cuda"], "--backend: 'cuda' is not available here"),
    (["--seed", "-1"], "--seed must be an integer >= 0"),
    (["--keys", "X,y"], "--keys applies to .h5 files only"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize("args,expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line(args, expected, capsys):
    assert cli.main(["train", *args]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert line.startswith("nnc train: error: ") and expected in line, line


@needs_cifar
def test_bad_data_sizes_and_model_shapes(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--data", CIFAR, "--num-train", "6000"]) == 2
    assert "6000 + 1000 = 7000, but the training data has 5170" in _one_line_error(
        capsys.readouterr().err)
    assert cli.main(["train", "--data", CIFAR, "--num-train", "100", "--filter-size", "4",
                     "--out", "never-made"]) == 2
    assert "filter_size 4" in _one_line_error(capsys.readouterr().err)
    assert not os.path.exists("never-made")


def test_corrupt_or_missing_checkpoint(tmp_path, capsys):
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    assert "no last.npz there" in _one_line_error(capsys.readouterr().err)
    (tmp_path / "last.npz").write_bytes(b"not a zip at all")
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a readable nnc train checkpoint" in _one_line_error(capsys.readouterr().err)
    np.savez(tmp_path / "last.npz", meta=np.array('{"format": "nnc-train/1"}'))
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a readable nnc train checkpoint" in _one_line_error(capsys.readouterr().err)


def test_no_data_says_how_to_point_at_a_directory(monkeypatch, capsys):
    """Offline: the error names --data DIR."""
    monkeypatch.delenv("NNC_CIFAR10_DIR", raising=False)

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(cli._datasets(), "load_cifar", offline)
    assert cli.main(["train", "--data", "cifar10"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "--data path/to/cifar-10-batches-py" in line, line


class _FakeDatasets:
    """Stands in for nnc.datasets (its interface): records the calls."""

    class DownloadError(OSError):
        pass

    def __init__(self, h5=None):
        self.calls, self.h5 = [], h5 or {}

    def load_cifar(self, name, root=None, layout="NCHW", labels="fine", dtype=np.float32):
        self.calls.append((name, root, layout, labels, dtype))
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, size=(60, 3, 4, 4)).astype(dtype)
        return {"X_train": X[:50], "y_train": np.arange(50) % 10, "X_test": X[50:],
                "y_test": np.arange(10), "label_names": [f"c{i}" for i in range(10)]}

    def load_h5(self, path, keys=None):
        self.calls.append((path, keys))
        return {k: v for k, v in self.h5.items() if keys is None or k in keys}

    def cache_dir(self):
        return "/cache"


def _cfg(**given):
    return cli._new_config(given)


def test_data_through_nnc_datasets(monkeypatch, tmp_path):
    fake = _FakeDatasets()
    monkeypatch.setattr(cli, "_datasets", lambda: fake)
    data = cli.prepare_data(_cfg(model="fcnet", data="cifar10", num_train=30, num_val=15,
                                 dtype="float64"))
    assert fake.calls == [("cifar10", None, "NCHW", "fine", np.float32)]
    raw = fake.load_cifar("cifar10")
    mean = raw["X_train"][:30].astype(np.float64).mean(axis=0)
    np.testing.assert_array_equal(data["X_train"], raw["X_train"][:30] - mean)
    np.testing.assert_array_equal(data["X_val"], raw["X_train"][30:45] - mean)  # right after
    np.testing.assert_array_equal(data["y_val"], raw["y_train"][30:45])
    assert data["X_test"].shape == (10, 3, 4, 4) and data["X_train"].dtype == np.float64
    assert data["label_names"][3] == "c3"

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(fake, "load_cifar", offline)
    with pytest.raises(cli.UsageError, match="could not load cifar100 from the cache "
                       r"\(/cache\): no network. Without a network: download "
                       "cifar-100-python.tar.gz .* pass --data path/to/cifar-100-python"):
        cli.prepare_data(_cfg(data="cifar100", labels="coarse"))


def test_nn_models_standardize_each_channel(monkeypatch, tmp_path):
    """small-cnn and tinynet get each channel standardized by the training
    split's mean and std (NHWC); a constant channel is a one-line error."""
    path = str(tmp_path / "d.h5")
    open(path, "wb").close()
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(40, 6, 6, 3), dtype=np.uint8)
    fake = _FakeDatasets({"X": X, "y": np.arange(40) % 4})
    monkeypatch.setattr(cli, "_datasets", lambda: fake)
    data = cli.prepare_data(_cfg(model="tinynet", data=path, keys="X,y", num_train=20,
                                 num_val=16))
    train = X[:20].astype(np.float64)
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    np.testing.assert_allclose(data["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(data["std"], std, rtol=1e-6)
    np.testing.assert_allclose(data["X_test"], (X[36:] - mean) / std, rtol=1e-5, atol=1e-6)
    X[:, :, :, 1] = 7
    with pytest.raises(cli.UsageError, match=r"constant channel \(std \[.*, 0\.0, .*\]\)"):
        cli.prepare_data(_cfg(model="tinynet", data=path, keys="X,y", num_train=20,
                              num_val=16))


def test_h5_data_keys_and_layout(monkeypatch, tmp_path):
    path = str(tmp_path / "d.h5")
    open(path, "wb").close()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 6, 6, 3), dtype=np.uint8)   # channels last
    fake = _FakeDatasets({"images": X, "labels": np.arange(40) % 4})
    monkeypatch.setattr(cli, "_datasets", lambda: fake)
    data = cli.prepare_data(_cfg(model="convnet", data=path, keys="images,labels",
                                 num_train=20, num_val=16))
    assert fake.calls == [(path, ["images", "labels"])]
    assert data["X_train"].shape == (20, 3, 6, 6) and data["X_test"].shape == (4, 3, 6, 6)
    np.testing.assert_allclose(data["X_test"] + data["mean"], X[36:].transpose(0, 3, 1, 2),
                               rtol=1e-6)
    assert data["label_names"] == ["0", "1", "2", "3"]
    with pytest.raises(cli.UsageError, match="holds images, labels; name the image and label "
                       "arrays with --keys X,y"):
        cli.prepare_data(_cfg(model="fcnet", data=path))
    with pytest.raises(cli.UsageError, match="--keys: .* has no y"):
        cli.prepare_data(_cfg(model="fcnet", data=path, keys="images,y"))
    with pytest.raises(cli.UsageError, match="--keys takes X,y or X_train,y_train,X_test"):
        cli.prepare_data(_cfg(model="fcnet", data=path, keys="images"))
    fake.h5 = {"X_train": X[:30, :, :, 0], "y_train": np.arange(30) % 4,   # grey (N, H, W)
               "X_test": X[30:, :, :, 0], "y_test": np.arange(10) % 4}
    data = cli.prepare_data(_cfg(model="fcnet", data=path, num_val=10))
    assert data["X_train"].shape == (20, 1, 6, 6) and len(data["y_test"]) == 10


def test_errors_from_a_subprocess_have_no_traceback(tmp_path):
    for args in (["train", "--model", "nope"], ["train", "--resume", str(tmp_path)],
                 ["train", "--epochs", "-1"]):
        proc = subprocess.run([sys.executable, "-m", "nnc", *args], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stdout == ""
        _one_line_error(proc.stderr)


# --- without matplotlib, in a terminal, the other commands ----------------------------

@needs_cifar
def test_without_matplotlib_it_trains_and_says_what_it_skipped(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from nnc.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "run"
    args = [*CONVNET[:-4], "--epochs", "1", "--threads", "1"]
    proc = subprocess.run([sys.executable, "-c", code, "train", "--data", CIFAR, *args,
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("matplotlib is not installed: skipped curves.png, confusion.png, per_class.png, "
            "filters.png") in proc.stdout
    assert not list(out.glob("*.png"))
    assert _history(out)["skipped_outputs"] == list(PNG_SIZES)
    assert (out / "best.npz").is_file()


@needs_cifar
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a Linux pty")
def test_a_terminal_gets_a_progress_bar(tmp_path):
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    args = ["--model", "fcnet", "--hidden", "20", "--num-train", "500", "--num-val", "100",
            "--epochs", "1", "--batch-size", "50", "--seed", "0", "--threads", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "nnc", "train", "--data", CIFAR, *args,
                             "--out", str(tmp_path / "run")], stdout=slave, stderr=slave,
                            cwd=tmp_path)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert re.search(r"epoch 1/1: +100%\|.*\| 500/500 \[.*img/s, loss=\d\.\d{4}\]", text), text
    assert "\nepoch 1/1  loss" in text.replace("\r\n", "\n")


def test_python_m_nnc_without_arguments_prints_the_build_info():
    proc = subprocess.run([sys.executable, "-m", "nnc"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == f"nnc {nnc.__version__}"
    info = nnc.build_info()
    shown = lines[1:1 + len(info)]
    assert [line[:15] for line in shown] == [f"  {k:12s} " for k in info]
    # the buffer cache's fill and the OpenMP libraries mapped (torch's, if a test
    # imported it here) differ between processes; the rest is the same
    differ = ("buffer_cache", "omp_runtimes")
    assert [line for line in shown if not line.startswith(tuple(f"  {k}" for k in differ))] == \
        [f"  {k:12s} {v}" for k, v in info.items() if k not in differ]
    assert "affine forward+backward" in proc.stdout


def test_info_bench_sweep(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"nnc {nnc.__version__}" and "num_threads" in out
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == nnc.__version__
    with pytest.raises(SystemExit) as e:  # bench takes its own arguments
        cli.main(["bench", "--help"])
    assert e.value.code == 0 and "--quick" in capsys.readouterr().out
    assert cli.main([]) == 0 and "train" in capsys.readouterr().out


def test_sweep_dispatches_lazily(monkeypatch, capsys):
    import types

    calls = []
    mod = types.ModuleType("nnc.sweep.cli")
    mod.main = lambda argv: calls.append(argv) or 7
    monkeypatch.setitem(sys.modules, "nnc.sweep", types.ModuleType("nnc.sweep"))
    monkeypatch.setitem(sys.modules, "nnc.sweep.cli", mod)
    assert cli.main(["sweep", "--trials", "3"]) == 7 and calls == [["--trials", "3"]]
    monkeypatch.setitem(sys.modules, "nnc.sweep.cli", None)  # not importable
    assert cli.main(["sweep"]) == 1
    assert "nnc sweep is not available" in _one_line_error(capsys.readouterr().err)


def test_console_script_and_core_without_cli():
    from importlib.metadata import entry_points

    eps = entry_points()
    scripts = eps.select(group="console_scripts") if hasattr(eps, "select") \
        else eps.get("console_scripts", [])
    nnc_eps = [ep for ep in scripts if ep.name == "nnc"]
    if not nnc_eps:
        pytest.skip("nnc's install metadata predates its console script (reinstall)")
    assert nnc_eps[0].value == "nnc.cli:main"
    code = ("import sys, nnc, nnc.solver, nnc.vis_utils, nnc.classifiers, nnc.data_utils, "
            "nnc.layers, nnc.optim; print('nnc.cli' in sys.modules, 'tqdm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout.split()
    assert out == ["False", "False"]


# --- Solver(progress=...) ------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _solver_output(monkeypatch, stdout, **kw):
    """Train a tiny model with stdout replaced; returns (text, solver)."""
    from nnc.classifiers import TwoLayerNet

    rng = np.random.default_rng(0)
    data = {"X_train": rng.standard_normal((60, 8)), "y_train": rng.integers(3, size=60),
            "X_val": rng.standard_normal((20, 8)), "y_val": rng.integers(3, size=20)}
    np.random.seed(0)
    model = TwoLayerNet(input_dim=8, hidden_dim=6, num_classes=3, weight_scale=1e-1)
    monkeypatch.setattr(sys, "stdout", stdout)
    solver = Solver(model, data, num_epochs=2, batch_size=10, print_every=4,
                    optim_config={"learning_rate": 1e-2}, **kw)
    solver.train()
    monkeypatch.undo()
    return stdout.getvalue(), solver


def _cs231n_lines(solver, num_iterations=12, print_every=4):
    """The lines Solver.train prints, from its histories."""
    lines, checks = [], iter(zip(solver.train_acc_history, solver.val_acc_history))
    for t in range(num_iterations):
        if t % print_every == 0:
            lines.append("(Iteration %d / %d) loss: %f"
                         % (t + 1, num_iterations, solver.loss_history[t]))
        if t == 0 or (t + 1) % 6 == 0:
            train_acc, val_acc = next(checks)
            lines.append("(Epoch %d / %d) train acc: %f; val_acc: %f"
                         % ((t + 1) // 6, 2, train_acc, val_acc))
    return "".join(line + "\n" for line in lines)


def test_solver_progress_none_off_a_terminal_prints_exactly_as_before(monkeypatch):
    text, solver = _solver_output(monkeypatch, io.StringIO())
    assert text == _cs231n_lines(solver)
    text, solver = _solver_output(monkeypatch, _Terminal(), progress=False)
    assert text == _cs231n_lines(solver)


def test_solver_progress_bar_on_a_terminal_keeps_the_lines(monkeypatch):
    for kw, stdout in (({}, _Terminal()), ({"progress": True}, io.StringIO())):
        text, solver = _solver_output(monkeypatch, stdout, **kw)
        assert "\r" in text and re.search(r"epoch 2/2: 100%\|.*\| 60/60 .*img/s", text), text
        # what stays on the screen: the text after the last \r of every line
        shown = [chunk.rsplit("\r", 1)[-1] for chunk in text.split("\n")]
        printed = "".join(s + "\n" for s in shown if s.startswith("("))
        assert printed == _cs231n_lines(solver)


def test_solver_progress_quiet_and_bad_values(monkeypatch):
    text, _ = _solver_output(monkeypatch, _Terminal(), verbose=False)
    assert text == ""  # verbose=False and progress=None: nothing at all
    with pytest.raises(ValueError, match="progress must be None, True or False"):
        Solver(object(), {"X_train": np.zeros((2, 1)), "y_train": np.zeros(2),
                          "X_val": np.zeros((1, 1)), "y_val": np.zeros(1)}, progress="yes")


# --- the nnc.nn models and the word model --------------------------------------------

NN_ARGS = ["--num-train", "200", "--num-val", "100", "--batch-size", "50", "--seed", "3",
           "--threads", "1"]
WORD = ["--model", "word", "--data", "synthetic-trigrams", "--num-train", "2000",
        "--num-val", "500", "--seed", "0", "--threads", "1"]


def _run_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "nnc", "train", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _first_loss(out):
    return _history(out)["loss_history"][0]


def _restores_best_val_acc(out):
    """best.npz (no pickles) gives back the reported validation accuracy exactly."""
    h = _history(out)
    with np.load(out / "best.npz", allow_pickle=False) as f:
        assert "meta" in f.files
    model, meta = cli.load_model(out / "best.npz")
    data = cli.prepare_data(meta["config"])
    before = nnc.get_num_threads()
    nnc.set_num_threads(1)
    try:
        acc = float(np.mean(cli._predict(model, data["X_val"]) == data["y_val"]))
    finally:
        nnc.set_num_threads(before)
    assert acc == h["best_val_acc"] == meta["val_acc"]
    return model, meta, data


@pytest.mark.parametrize("name,first", [("small-cnn", "conv1_w"), ("tinynet", "fc1_w")])
def test_nn_models_train_end_to_end(name, first, tmp_path):
    if CIFAR is None:
        pytest.skip("CIFAR-10 subset not found")
    out = tmp_path / "run"
    proc = _train(["--model", name, *NN_ARGS, "--epochs", "1"], out, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "of shape (32, 32, 3), 10 classes" in proc.stdout  # NHWC, as nnc.nn takes them
    assert "per-class test accuracy:" in proc.stdout
    h = _history(out)
    assert h["status"] == "finished" and len(h["loss_history"]) == 200 // 50
    assert len(h["test"]["confusion_matrix"]) == 10
    model, meta, data = _restores_best_val_acc(out)
    assert data["X_val"].shape[1:] == (32, 32, 3)
    # the CSCI566 preparation: each channel standardized by the training split's statistics
    assert meta["mean"].shape == meta["std"].shape == (3,)
    np.testing.assert_array_equal(meta["std"], data["std"])
    np.testing.assert_allclose(data["X_train"].mean(axis=(0, 1, 2), dtype=np.float64), 0,
                               atol=1e-5)
    np.testing.assert_allclose(data["X_train"].std(axis=(0, 1, 2), dtype=np.float64), 1,
                               rtol=1e-5)
    # the first scores of an untrained net are small: the initial loss is about log(10)
    assert abs(_first_loss(out) - np.log(10)) < 0.5
    assert first in model.params and model.params["fc2_w"].shape[1] == 10
    if importlib.util.find_spec("matplotlib") is not None:
        assert _history(out)["plots"] == list(PNG_SIZES)
        for png, size in PNG_SIZES.items():
            assert _png_size(out / png) == size, png


def test_tinynet_resume_continues_bit_identically(tmp_path):
    """A 1-epoch run resumed to 2 epochs is the 2-epoch run: the nnc.nn models go
    through the same _Run loop and checkpoint."""
    if CIFAR is None:
        pytest.skip("CIFAR-10 subset not found")
    args = ["--model", "tinynet", *NN_ARGS, "--lr", "1e-4"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert _train([*args, "--epochs", "2"], whole, tmp_path).returncode == 0
    assert _train([*args, "--epochs", "1"], part, tmp_path).returncode == 0
    resumed = _run_cli(["--resume", str(part), "--epochs", "2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got, want = _history(part), _history(whole)
    for key in ("loss_history", "train_acc_history", "val_acc_history", "lr_history",
                "best_val_acc", "best_epoch", "test"):
        assert got[key] == want[key], key


def test_word_model_trains_and_resumes(tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    proc = _run_cli([*WORD, "--epochs", "2", "--out", str(whole)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sgd_momentum lr 0.15" in proc.stdout and "x 200 images" in proc.stdout
    if importlib.util.find_spec("matplotlib") is None:   # the sanitizer venv has none
        assert "matplotlib is not installed: skipped" in proc.stdout
    else:
        assert "skipped confusion.png and per_class.png: 250 classes are too many" in proc.stdout
    h = _history(whole)
    assert h["status"] == "finished" and len(h["loss_history"]) == 2 * (2000 // 200)
    assert len(h["label_names"]) == 250 and len(h["test"]["per_class_accuracy"]) == 250
    assert "confusion_matrix" not in h["test"]
    assert not (whole / "confusion.png").exists() and not (whole / "filters.png").exists()
    with np.load(whole / "last.npz", allow_pickle=False) as f:
        optim = json.loads(str(f["meta"]))["optim_configs"]
    assert {c["momentum"] for c in optim.values()} == {0.85}
    model, meta, data = _restores_best_val_acc(whole)
    assert "mean" not in meta and data["X_train"].dtype == np.int64
    assert model.params["W2"].shape == (256, 250)
    if importlib.util.find_spec("matplotlib") is not None:
        assert h["plots"] == ["curves.png"]
        assert h["skipped_outputs"] == ["confusion.png", "per_class.png", "filters.png"]

    assert _run_cli([*WORD, "--epochs", "1", "--out", str(part)], tmp_path).returncode == 0
    resumed = _run_cli(["--resume", str(part), "--epochs", "2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = _history(part)
    for key in ("loss_history", "train_acc_history", "val_acc_history", "best_val_acc", "test"):
        assert got[key] == h[key], key


def test_word_data_from_a_trigram_h5(tmp_path):
    pytest.importorskip("h5py")
    from nnc import datasets_synthetic

    path = datasets_synthetic.write_trigram_h5(str(tmp_path / "tri.h5"), num_train=300,
                                               num_val=60, num_test=50)
    want = datasets_synthetic.trigram_data(300, 60, 50)
    data = cli.prepare_data(_cfg(model="word", data=path, num_val=40))
    np.testing.assert_array_equal(data["X_train"], want["X_train"])   # 0-based again
    np.testing.assert_array_equal(data["y_val"], want["y_val"][:40])
    np.testing.assert_array_equal(data["X_test"], want["X_test"])
    assert data["label_names"] == list(datasets_synthetic.WORDS) and data["mean"] is None
    with pytest.raises(cli.UsageError, match="holds word trigrams .* with --model word"):
        cli.prepare_data(_cfg(model="fcnet", data=path))
    with pytest.raises(cli.UsageError, match="--num-val 100: the data has 300 training and "
                                             "60 validation trigrams"):
        cli.prepare_data(_cfg(model="word", data=path, num_val=100))

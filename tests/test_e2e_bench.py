"""Issue 15: ``python -m nnc.bench --e2e``, the whole-run benchmark (nnc.bench.e2e).
No timing assertions: only that the runs happen and report sane records."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import cifar10_subset_dir, needs_cifar, needs_cpp

from nnc.bench import e2e


@needs_cpp
@needs_cifar
def test_quick_run_reports_every_model(tmp_path):
    out = tmp_path / "e2e.json"
    proc = subprocess.run([sys.executable, "-m", "nnc.bench", "--e2e", "--quick", "--no-torch",
                           "--data", str(cifar10_subset_dir()), "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ThreeLayerConvNet" not in proc.stderr
    rep = json.loads(out.read_text())
    assert rep["quick"] and rep["epochs"] == 1
    assert (rep["num_train"], rep["num_val"]) == e2e.QUICK_SIZES
    assert rep["libraries"] == ["nnc-cpp"]
    assert rep["skipped"]["torch"] == "--no-torch" and "jax" in rep["skipped"]
    assert rep["threads"] >= 1 and rep["ratios"] == {}
    recs = {r["model"]: r for r in rep["results"]}
    assert sorted(recs) == sorted(e2e.MODELS)
    for model, r in recs.items():
        assert r["library"] == "nnc-cpp"
        bs = e2e.CONFIG[model]["batch_size"]
        assert r["batch_size"] == bs
        assert r["iterations"] == max(rep["num_train"] // bs, 1)
        assert r["train_images"] == r["iterations"] * bs
        assert r["wall_s"] > 0 and 0 <= r["eval_s"] < r["wall_s"]
        assert r["images_per_s"] == pytest.approx(r["train_images"] / r["wall_s"])
        for k in ("train_acc", "val_acc", "best_val_acc"):
            assert 0.0 <= r[k] <= 1.0
        assert r["best_val_acc"] >= r["val_acc"]
        assert np.isfinite(r["first_loss"]) and np.isfinite(r["final_loss"])
    # the table names every model and the library
    for model in e2e.MODELS:
        assert re.search(rf"^{model} +nnc-cpp +\d", proc.stdout, flags=re.M), proc.stdout


def test_missing_data_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nnc.bench", "--e2e", "--quick", "--no-torch",
                           "--data", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "no CIFAR-10 batches" in err and "nowhere" in err


def test_unknown_model_is_refused(tmp_path):
    if cifar10_subset_dir() is None:
        pytest.skip("CIFAR-10 subset not found")
    proc = subprocess.run([sys.executable, "-m", "nnc.bench", "--e2e", "--quick", "--no-torch",
                           "--data", str(cifar10_subset_dir()), "--models", "convnet,resnet"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0 and "unknown model(s) resnet" in proc.stderr


@pytest.mark.parametrize("model", e2e.MODELS)
def test_torch_models_compute_what_nnc_computes(model):
    """The PyTorch networks of the benchmark, loaded with the nnc model's
    initial weights, give the nnc model's scores (test mode) and loss."""
    torch = pytest.importorskip("torch")
    import nnc

    np.random.seed(0)
    m = e2e.build_nnc(model)
    net = e2e.torch_net(torch, model)
    missing, unexpected = net.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
         for k, v in e2e.torch_init(model, m).items()}, strict=False)
    assert not unexpected and all("running" in k or "num_batches" in k for k in missing)
    net.eval()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    with nnc.use_backend("numpy"):
        if model == "nn_cnn":
            ref = m.forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), False)
        else:
            ref = m.loss(x)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-5 * float(np.abs(ref).max()))


@needs_cpp
def test_kernel_timer_counts_binding_calls_per_phase_and_restores_them():
    """benches/e2e_profile.py and nn_step_profile.py split a step into kernel time and
    Python around it with this timer."""
    from nnc import _nnc
    from nnc.bench.kernel_timer import KernelTimer
    from nnc.layers import relu_forward

    original = _nnc.relu_forward
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    with nnc_cpp(), KernelTimer() as kt:
        assert _nnc.relu_forward is not original
        relu_forward(x)
        kt.phase = "eval"
        relu_forward(x)
        relu_forward(x)
    assert _nnc.relu_forward is original
    assert dict(kt.calls) == {"step": 1, "eval": 2}
    assert set(kt.per_kernel) == {("step", "relu_forward"), ("eval", "relu_forward")}
    assert kt.seconds["eval"] == kt.per_kernel[("eval", "relu_forward")] > 0
    kt.reset()
    assert not kt.calls and not kt.seconds


def nnc_cpp():
    import nnc
    return nnc.use_backend("cpp")

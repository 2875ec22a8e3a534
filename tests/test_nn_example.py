"""Issue 9, 'done when': the CSCI566 Problem 2 flow (layer checks, gradient
checks, train_net, curves, conv1 filters, confusion matrix) runs against
nnc.nn on NHWC CIFAR data, from examples/nn_cifar.py."""
import os
import re
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "nn_cifar.py")


@pytest.mark.slow
def test_nn_cifar_flow_runs(tmp_path):
    prefix = str(tmp_path / "flow")
    proc = subprocess.run([sys.executable, EXAMPLE, "--num-training", "1000", "--num-validation",
                           "200", "--epochs", "1", "--out", prefix],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "Received [32, 16, 16, 16] and expected [32, 16, 16, 16]" in text
    assert "Received output shape: (1, 4, 4, 2), Expected output shape: (1, 4, 4, 2)" in text
    loss = float(re.search(r"TestCNN loss: ([0-9.]+)", text).group(1))
    assert abs(loss - 4.56046848799693) < 1e-10
    # the notebook's gradient checks ("should be around 1e-6 / 1e-8")
    errs = [float(e) for e in re.findall(r"relative error:? ([0-9.e+-]+)", text)]
    assert len(errs) == 8 and max(errs) < 1e-6, text[:3000]
    # train_net's lines, the course's format, and a model better than chance
    assert re.search(r"\(Iteration 1 / 40\) Average loss: 2\.30\d+", text)
    m = re.search(r"\(Epoch 1 / 1\) Training Accuracy: ([0-9.]+), Validation Accuracy: ([0-9.]+)",
                  text)
    assert m and float(m.group(2)) > 0.15, text[-3000:]
    assert "Loading Params: conv1_w Shape: (5, 5, 3, 16)" in text
    assert re.search(r"Test Accuracy: 0\.\d+", text)
    cm_rows = re.findall(r"^ *\w+( +\d+){10}$", text, flags=re.M)
    assert len(cm_rows) == 10
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    for name in ("curves", "filters", "confusion"):
        path = f"{prefix}_{name}.png"
        assert os.path.exists(path) and os.path.getsize(path) > 5_000, path

"""The four assignment-2 notebook scripts (examples/fully_connected_nets.py,
batch_normalization.py, dropout.py, convolutional_networks.py) run with
--quick --no-plots on both backends against the shared CIFAR-10 subset: exit
code 0, no traceback, and the notebook's key lines printed."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ALL_BACKENDS, cifar10_subset_dir

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


CIFAR = cifar10_subset_dir()
pytestmark = pytest.mark.skipif(
    CIFAR is None, reason="CIFAR-10 subset not found (set NNC_CIFAR10_DIR or put it at "
                          "../shared/data/)")

# Lines each script must print (plain substrings, or compiled regexes).
KEY_LINES = {
    "fully_connected_nets": [
        "Testing affine_forward function:", "Testing affine_backward function:",
        "Testing relu_forward function:", "Testing svm_loss:", "Testing softmax_loss:",
        "Running check with reg =  3.14", "Initial loss:  2.3004790897684924",
        re.compile(r"W2 relative error: [0-9.e-]+"),
        "ok: three-layer net overfits 50 examples (train acc 1.0)",
        "ok: five-layer net overfits 50 examples (train acc 1.0)",
        re.compile(r"\(Iteration \d+ / \d+\) loss: \d+\.\d{6}"),
        re.compile(r"\(Epoch \d+ / \d+\) train acc: \d\.\d{6}; val_acc: \d\.\d{6}"),
        "Testing sgd_momentum:", "Testing rmsprop:", "Testing adam:",
        "ok: adam beats sgd", "ok: rmsprop beats sgd",
        "Validation set accuracy: ", "Test set accuracy: ",
    ],
    "batch_normalization": [
        "Before batch normalization:", "After batch normalization (gamma=1, beta=0)",
        "After batch normalization (test-time):",
        re.compile(r"dgamma difference: [0-9.e-]+"), "Speedup:",
        "Initial loss:  2.2611955101340957", re.compile(r"gamma2 relative error: [0-9.e-]+"),
        "Solver with batch norm:", "Solver without batch norm:", "Running weight scale 4 / 4",
        "After layer normalization (gamma=1, beta=0)", "ok: layernorm net learns",
    ],
    "dropout": [
        "Running tests with p =  0.25", "Running tests with p =  0.7",
        "Fraction of train-time output set to zero:  0.749784",
        "Fraction of test-time output set to zero:  0.0",
        re.compile(r"dx relative error:\s+[0-9.e-]+"),
        "Running check with dropout =  0.5",
        "ok: the net without dropout fits its 500 examples better",
    ],
    "convolutional_networks": [
        "Testing conv_forward_naive", "Testing conv_backward_naive function",
        "Testing max_pool_forward_naive function:", "Testing conv_forward_fast:",
        "Testing conv_backward_fast:", "Testing pool_forward_fast:",
        "Testing pool_backward_fast:", "Testing conv_relu_pool", "Testing conv_relu:",
        "Initial loss (no regularization): ", "ok: regularization raises the loss",
        re.compile(r"W1 max relative error: \d\.\d{6}e[+-]\d\d"),
        "Small data training accuracy:", "ok: overfits 100 examples",
        "first-layer filter grid: (47, 47, 3)",
        "After spatial batch normalization (test-time):",
        "After spatial group normalization:",
    ],
}

def _cases():
    for script in KEY_LINES:
        for bk in ALL_BACKENDS:
            marks = list(bk.marks)
            # about 25 s on 2 busy cores; the others take under 10 s
            if script == "convolutional_networks" and bk.values[0] == "numpy":
                marks.append(pytest.mark.slow)
            yield pytest.param(script, bk.values[0], marks=marks, id=f"{script}-{bk.values[0]}")


@pytest.mark.parametrize("script,backend", list(_cases()))
def test_notebook_flow(script, backend, tmp_path):
    env = dict(os.environ, NNC_CIFAR10_DIR=str(CIFAR), MPLBACKEND="Agg",
               # the cores are shared: one thread each keeps a run from stalling on a busy box
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{script}.py"), "--quick", "--no-plots",
         "--backend", backend, "--data", str(CIFAR)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    assert proc.stdout.startswith("nnc ") and f"backend {backend}, --quick" in proc.stdout
    for line in KEY_LINES[script]:
        if isinstance(line, str):
            assert line in proc.stdout, f"{line!r} not printed:\n{proc.stdout[-3000:]}"
        else:
            assert line.search(proc.stdout), f"{line.pattern!r} not printed"
    assert f"all checks passed ({backend} backend" in proc.stdout
    assert not list(tmp_path.iterdir()), "--no-plots wrote files"

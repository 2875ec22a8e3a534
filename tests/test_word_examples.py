"""Issue 10: examples/word_model.py and examples/mlp_tanh.py run end to end
(shortened by their command-line options) and print what they promise."""
import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def run(script, args, cwd):
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, script)] + args,
                          capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_word_model_example(tmp_path):
    out = tmp_path / "word.png"
    # 5 epochs of 200 steps: still on the accuracy plateau, but the
    # cross-entropy is already well below the unigram model's
    text = run("word_model.py", ["--num-train", "40000", "--epochs", "5", "--out", str(out)],
               tmp_path)
    base_ce = float(re.search(r"unigram baseline: accuracy [0-9.]+ \(always '\.'\), "
                              r"cross-entropy ([0-9.]+)", text).group(1))
    rows = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)$", text, flags=re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4, 5]
    assert float(rows[0][1]) > base_ce > float(rows[-1][1]) + 0.1
    assert re.search(r"test \(best validation parameters\): cross-entropy [0-9.]+, accuracy", text)
    top = re.findall(r"^  (\w+ \w+ \w+)\s+-> (.*)$", text, flags=re.M)
    assert [t for t, _ in top] == ["the hungry dog", "mary will drive", "they went to",
                                   "where are the", "the students read"]
    for _, cands in top:
        probs = [float(p) for p in re.findall(r" ([0-9.]+)(?:,|$)", cands)]
        assert len(probs) == 10 and probs == sorted(probs, reverse=True)
    if has_matplotlib():
        assert out.exists() and out.stat().st_size > 10_000
    else:
        assert "matplotlib is not installed" in text


def test_word_model_example_reads_the_course_h5_layout(tmp_path):
    pytest.importorskip("h5py")
    from nnc.datasets_synthetic import WORDS, trigram_data, write_trigram_h5

    path = write_trigram_h5(tmp_path / "words.h5", num_train=4000, num_val=1000, num_test=1000,
                            seed=2)
    text = run("word_model.py", ["--data", str(path), "--epochs", "1", "--out",
                                 str(tmp_path / "w.png")], tmp_path)
    d = trigram_data(4000, 1000, 1000, seed=2)
    first = " ".join(WORDS[i] for i in d["X_train"][0]) + " -> " + WORDS[d["y_train"][0]]
    assert f"corpus: 250 words, 4000 training 4-grams, e.g. {first}" in text
    assert len(re.findall(r"^  \w+ \w+ \w+\s+-> ", text, flags=re.M)) == 5


def test_mlp_tanh_example(tmp_path):
    pytest.importorskip("h5py")
    out, h5 = tmp_path / "mlp.png", tmp_path / "cat_car.h5"
    text = run("mlp_tanh.py", ["--epochs", "12", "--h5", str(h5), "--out", str(out)], tmp_path)
    assert h5.exists()
    import h5py

    with h5py.File(h5, "r") as f:
        assert sorted(f) == ["testims", "testlbls", "trainims", "trainlbls"]
        assert f["trainims"].shape == (1900, 32, 32) and f["testims"].shape == (1000, 32, 32)
    rows = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)%\s+([0-9.]+)\s+([0-9.]+)%$", text,
                      flags=re.M)
    assert len(rows) == 12
    first, last = [float(v) for v in rows[0][1:]], [float(v) for v in rows[-1][1:]]
    assert last[0] < 0.5 * first[0]          # the training MSE falls
    assert last[1] < 5                       # the training set is (nearly) fitted
    assert last[3] < 30                      # and the test error is well below chance (50%)
    if has_matplotlib():
        assert out.exists() and out.stat().st_size > 10_000

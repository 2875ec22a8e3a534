"""nnc.data_utils: CIFAR-10 batches written by the test (str and bytes keys,
several pickle protocols), the shared subset when present, clear errors, and
a restricted unpickler that refuses anything but arrays and containers."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from nnc.data_utils import (ENV_VAR, get_CIFAR10_data, load_CIFAR10, load_CIFAR_batch,
                            load_pickle)

from conftest import cifar10_subset_dir

REPO = Path(__file__).resolve().parents[1]


def shared_cifar_dir():
    d = cifar10_subset_dir()
    return None if d is None else str(d)


needs_cifar = pytest.mark.skipif(
    shared_cifar_dir() is None,
    reason=f"CIFAR-10 subset not found (set {ENV_VAR} or put it at ../shared/data/)")

# batch sizes of our fake data set: train batches then the test batch
FAKE_SIZES = (3, 2, 4, 1, 5, 6)


def _batch(n, seed, key=str):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    return {key("batch_label"): key("fake"), key("labels"): labels, key("data"): data}


def write_fake_cifar(root, key=str, protocol=2, sizes=FAKE_SIZES, seed=0):
    """Write a tiny CIFAR-10 folder; returns the batch dicts in file order."""
    os.makedirs(root, exist_ok=True)
    names = [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]
    batches = []
    for i, (name, n) in enumerate(zip(names, sizes)):
        d = _batch(n, seed=seed + i, key=lambda s: s.encode() if key is bytes else s)
        with open(os.path.join(root, name), "wb") as f:
            pickle.dump(d, f, protocol=protocol)
        batches.append(d)
    return batches


def _expected_images(d):
    data = d["data"] if "data" in d else d[b"data"]
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)


@pytest.mark.parametrize("key", [str, bytes])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_load_batch_str_and_bytes_keys(tmp_path, key, protocol):
    batches = write_fake_cifar(tmp_path, key=key, protocol=protocol)
    X, Y = load_CIFAR_batch(tmp_path / "data_batch_1")
    assert X.shape == (3, 32, 32, 3) and X.dtype == np.float64
    assert Y.shape == (3,) and Y.dtype.kind == "i"
    np.testing.assert_array_equal(X, _expected_images(batches[0]))
    labels = batches[0]["labels"] if key is str else batches[0][b"labels"]
    np.testing.assert_array_equal(Y, labels)


def test_load_pickle_decodes_bytes_keys(tmp_path):
    write_fake_cifar(tmp_path, key=bytes)
    with open(tmp_path / "test_batch", "rb") as f:
        d = load_pickle(f)
    assert set(d) == {"batch_label", "labels", "data"}


def test_load_CIFAR10_concatenates_in_batch_order(tmp_path):
    batches = write_fake_cifar(tmp_path)
    Xtr, Ytr, Xte, Yte = load_CIFAR10(str(tmp_path))
    assert Xtr.shape == (sum(FAKE_SIZES[:5]), 32, 32, 3) and Xte.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(Xtr, np.concatenate([_expected_images(b) for b in batches[:5]]))
    np.testing.assert_array_equal(Ytr, np.concatenate([b["labels"] for b in batches[:5]]))
    np.testing.assert_array_equal(Xte, _expected_images(batches[5]))
    np.testing.assert_array_equal(Yte, batches[5]["labels"])


def test_get_CIFAR10_data_splits_mean_and_layout(tmp_path):
    batches = write_fake_cifar(tmp_path)
    data = get_CIFAR10_data(cifar10_dir=str(tmp_path), num_training=10, num_validation=5, num_test=4)
    Xtr = np.concatenate([_expected_images(b) for b in batches[:5]])
    Ytr = np.concatenate([b["labels"] for b in batches[:5]])
    Xte = _expected_images(batches[5])
    mean = Xtr[:10].mean(axis=0)
    nchw = lambda a: a.transpose(0, 3, 1, 2)  # noqa: E731
    expected = {"X_train": nchw(Xtr[:10] - mean), "y_train": Ytr[:10],
                "X_val": nchw(Xtr[10:15] - mean), "y_val": Ytr[10:15],
                "X_test": nchw(Xte[:4] - mean), "y_test": np.array(batches[5]["labels"][:4])}
    assert set(data) == set(expected)
    for k, v in expected.items():
        assert data[k].shape == v.shape, k
        np.testing.assert_allclose(data[k], v, rtol=0, atol=1e-12, err_msg=k)
        assert data[k].flags.c_contiguous
    assert data["X_train"].shape == (10, 3, 32, 32) and data["X_train"].dtype == np.float64
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0, atol=1e-12)


def test_no_mean_subtraction(tmp_path):
    batches = write_fake_cifar(tmp_path)
    data = get_CIFAR10_data(cifar10_dir=tmp_path, num_training=3, num_validation=0, num_test=6,
                            subtract_mean=False)
    np.testing.assert_array_equal(data["X_train"], batches[0]["data"].reshape(3, 3, 32, 32))
    assert data["X_val"].shape == (0, 3, 32, 32)


def test_env_var_gives_the_directory(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    data = get_CIFAR10_data(num_training=14, num_validation=1, num_test=6)
    assert data["X_train"].shape[0] == 14 and data["X_val"].shape[0] == 1


def test_too_many_images(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(ValueError, match=r"10 \+ 6 = 16 training images .* has only 15"):
        get_CIFAR10_data(cifar10_dir=tmp_path, num_training=10, num_validation=6, num_test=1)
    with pytest.raises(ValueError, match="num_test = 7 test images .* has only 6"):
        get_CIFAR10_data(cifar10_dir=tmp_path, num_training=10, num_validation=5, num_test=7)
    # the CS231n defaults ask for the full data set
    with pytest.raises(ValueError, match="49000 \\+ 1000 = 50000 training images"):
        get_CIFAR10_data(cifar10_dir=tmp_path)


def test_bad_counts(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(ValueError, match="num_training must be >= 1"):
        get_CIFAR10_data(cifar10_dir=tmp_path, num_training=0)
    with pytest.raises(ValueError, match="num_validation must be >= 0"):
        get_CIFAR10_data(cifar10_dir=tmp_path, num_training=1, num_validation=-1)
    with pytest.raises(TypeError, match="num_test must be an int"):
        get_CIFAR10_data(cifar10_dir=tmp_path, num_training=1, num_validation=1, num_test=1.5)
    with pytest.raises(TypeError, match="cifar10_dir must be a path"):
        get_CIFAR10_data(cifar10_dir=49000)
    with pytest.raises(TypeError, match="pass the directory by keyword"):
        get_CIFAR10_data(str(tmp_path))


def test_missing_directory_says_where_to_get_the_data(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    for call in (lambda: get_CIFAR10_data(cifar10_dir=str(missing)), lambda: load_CIFAR10(str(missing))):
        with pytest.raises(FileNotFoundError) as e:
            call()
        msg = str(e.value)
        assert str(missing) in msg
        assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg
        assert "python version" in msg and "cifar10_dir" in msg and ENV_VAR in msg
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("NNC_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        get_CIFAR10_data()
    msg = str(e.value)
    assert "nnc.datasets cache: " + str(tmp_path / "cache" / "cifar-10-batches-py") in msg
    assert "CS231n's relative location: cs231n/datasets/cifar-10-batches-py" in msg
    assert "kriz/cifar.html" in msg and "fetch_cifar10" in msg


def test_get_CIFAR10_data_positional_counts_and_lookup_order(tmp_path, monkeypatch):
    """The notebooks call get_CIFAR10_data(4000, 1000) positionally; without a
    directory it tries NNC_CIFAR10_DIR, the nnc.datasets cache, then CS231n's
    relative cs231n/datasets/cifar-10-batches-py, in that order."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("NNC_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    relative = tmp_path / "cs231n" / "datasets" / "cifar-10-batches-py"
    relative.mkdir(parents=True)
    write_fake_cifar(relative)
    data = get_CIFAR10_data(14, 1, 6, False)
    assert data["X_train"].shape == (14, 3, 32, 32) and data["X_val"].shape[0] == 1
    cached = tmp_path / "cache" / "cifar-10-batches-py"
    cached.mkdir(parents=True)
    write_fake_cifar(cached, seed=5)
    from_cache = get_CIFAR10_data(14, 1, 6, False)
    assert not np.array_equal(from_cache["X_train"], data["X_train"])
    env = tmp_path / "env"
    env.mkdir()
    write_fake_cifar(env, seed=9)
    monkeypatch.setenv(ENV_VAR, str(env))
    np.testing.assert_array_equal(get_CIFAR10_data(14, 1, 6, False)["X_train"],
                                  get_CIFAR10_data(14, 1, 6, False, cifar10_dir=env)["X_train"])


def test_missing_batch_file_is_named(tmp_path):
    write_fake_cifar(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3"):
        load_CIFAR10(str(tmp_path))


def test_malformed_batches(tmp_path):
    for name, d, match in [
        ("nodata", {"labels": [1]}, "no 'data' entry"),
        ("shape", {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"\(N, 3072\)"),
        ("labels", {"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "2 images but"),
        ("list", [1, 2, 3], "expected a pickled dict"),
    ]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        with pytest.raises(ValueError, match=match):
            load_CIFAR_batch(tmp_path / name)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused(tmp_path, protocol):
    marker = tmp_path / "pwned"
    bad = {"data": np.zeros((1, 3072), np.uint8), "labels": [_Evil(marker)]}
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump(bad, f, protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global '(posix|nt).system'"):
        load_CIFAR_batch(path)
    assert not marker.exists()
    with open(path, "wb") as f:
        pickle.dump({"data": _EvilEval()}, f, protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        load_CIFAR_batch(path)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump({"data": np.array([1, "a"], dtype=object), "labels": [0]}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="dtype object"):
        load_CIFAR_batch(path)


# --- the real subset ---------------------------------------------------------------

@needs_cifar
def test_shared_subset_counts_shapes_dtypes():
    root = shared_cifar_dir()
    Xtr, Ytr, Xte, Yte = load_CIFAR10(root)
    # data_batch_1 holds 1,102 images, data_batch_2..5 1,017 each, test_batch 1,017.
    assert Xtr.shape == (1102 + 4 * 1017, 32, 32, 3) == (5170, 32, 32, 3)
    assert Xte.shape == (1017, 32, 32, 3)
    assert Xtr.dtype == np.float64 and Ytr.shape == (5170,) and Yte.shape == (1017,)
    assert Xtr.min() == 0 and Xtr.max() == 255
    assert set(np.unique(Ytr)) == set(range(10)) and set(np.unique(Yte)) <= set(range(10))

    data = get_CIFAR10_data(cifar10_dir=root, num_training=5000, num_validation=170, num_test=1017)
    shapes = {k: v.shape for k, v in data.items()}
    assert shapes == {"X_train": (5000, 3, 32, 32), "y_train": (5000,),
                      "X_val": (170, 3, 32, 32), "y_val": (170,),
                      "X_test": (1017, 3, 32, 32), "y_test": (1017,)}
    assert data["X_train"].dtype == np.float64
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0, atol=1e-9)
    with pytest.raises(ValueError, match="5000 \\+ 171 = 5171 training images .* only 5170"):
        get_CIFAR10_data(cifar10_dir=root, num_training=5000, num_validation=171, num_test=10)
    with pytest.raises(ValueError, match="1018 test images .* only 1017"):
        get_CIFAR10_data(cifar10_dir=root, num_training=10, num_validation=10, num_test=1018)

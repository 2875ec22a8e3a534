"""nnc.datasets and data_utils.CIFAR100*: files the tests write (.h5 of both
course layouts, CIFAR pickles with str and bytes keys, .mat files), downloads
from a local http.server (no internet), and the shared CIFAR-10 subset."""
import hashlib
import http.server
import io
import os
import pickle
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from nnc import datasets
from nnc.data_utils import CIFAR100, CIFAR100_data
from nnc.datasets import (DownloadError, cache_dir, fetch_cifar10, fetch_cifar100, load_cifar,
                          load_h5)

from conftest import cifar10_subset_dir

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR10 = cifar10_subset_dir() or REPO.parent / "shared" / "data" / "cifar-10-batches-py"

C10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
FINE_NAMES = [f"fine{i}" for i in range(100)]
COARSE_NAMES = [f"coarse{i}" for i in range(20)]


def _rng_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _keyed(d, key):
    return {(k.encode() if key is bytes else k): v for k, v in d.items()}


def _dump(path, d, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=protocol)


# --- cache_dir ---------------------------------------------------------------------

def test_cache_dir_env_var_created(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_DATA", str(tmp_path / "a" / "b"))
    assert cache_dir() == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()


def test_cache_dir_default_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("NNC_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "nnc"
    assert (tmp_path / ".cache" / "nnc").is_dir()


# --- load_h5 -----------------------------------------------------------------------

@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


def _write_h5(path, arrays, h5py):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v


def test_load_h5_images_layout(tmp_path, h5py):
    rng = np.random.default_rng(0)
    arrays = {"trainims": rng.integers(0, 256, (6, 4, 5), dtype=np.uint8),
              "trainlbls": np.array([0, 1, 1, 0, 1, 0], dtype=np.uint8),
              "testims": rng.integers(0, 256, (2, 4, 5), dtype=np.uint8),
              "testlbls": np.array([1.0, 0.0])}
    _write_h5(tmp_path / "cats.h5", arrays, h5py)
    d = load_h5(tmp_path / "cats.h5")
    assert sorted(d) == sorted(arrays)
    for k, v in arrays.items():   # as stored: values, shapes and dtypes
        assert d[k].dtype == v.dtype and d[k].shape == v.shape
        np.testing.assert_array_equal(d[k], v)
    sub = load_h5(str(tmp_path / "cats.h5"), keys=["testlbls"])
    assert list(sub) == ["testlbls"]
    np.testing.assert_array_equal(sub["testlbls"], [1.0, 0.0])


def _trigram_arrays(words_dtype):
    words = [b"all", b"set", b"of", b"words"]
    return {"trainx": np.array([[1, 2, 3], [4, 4, 1]], dtype=np.int32),
            "traind": np.array([4, 2], dtype=np.int32),
            "valx": np.array([[2, 3, 4]], dtype=np.int32), "vald": np.array([1], dtype=np.int32),
            "testx": np.array([[3, 3, 3]], dtype=np.float64),     # MATLAB-style doubles
            "testd": np.array([3.0]),
            "words": (np.array(words, dtype="S5") if words_dtype == "fixed"
                      else np.array(words, dtype=object))}


@pytest.mark.parametrize("words_dtype", ["fixed", "vlen"])
def test_load_h5_trigram_layout_zero_based(tmp_path, h5py, words_dtype):
    arrays = _trigram_arrays(words_dtype)
    path = tmp_path / "data2.h5"
    if words_dtype == "vlen":
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                if k == "words":
                    f.create_dataset(k, data=v, dtype=h5py.string_dtype("ascii"))
                else:
                    f[k] = v
    else:
        _write_h5(path, arrays, h5py)
    d = load_h5(path)
    assert sorted(d) == sorted(datasets.H5_TRIGRAM_KEYS)
    np.testing.assert_array_equal(d["trainx"], [[0, 1, 2], [3, 3, 0]])
    np.testing.assert_array_equal(d["traind"], [3, 1])
    np.testing.assert_array_equal(d["valx"], [[1, 2, 3]])
    np.testing.assert_array_equal(d["vald"], [0])
    np.testing.assert_array_equal(d["testx"], [[2, 2, 2]])
    np.testing.assert_array_equal(d["testd"], [2])
    for k in datasets.H5_TRIGRAM_KEYS[:-1]:
        assert d[k].dtype == np.int64
    assert d["words"].tolist() == ["all", "set", "of", "words"]
    assert d["words"].dtype.kind == "U"
    assert " ".join(d["words"][d["trainx"][0]]) == "all set of"
    # the file is untouched
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["trainx"][()], arrays["trainx"])
    sub = load_h5(path, keys=["traind", "words"])
    assert sorted(sub) == ["traind", "words"]
    np.testing.assert_array_equal(sub["traind"], [3, 1])


def test_load_h5_trigram_refuses_zero_or_too_large_index(tmp_path, h5py):
    for bad in (0, 5):
        arrays = _trigram_arrays("fixed")
        arrays["vald"] = np.array([bad], dtype=np.int32)
        _write_h5(tmp_path / "bad.h5", arrays, h5py)
        with pytest.raises(ValueError, match=r"bad\.h5.*'vald'.*1-based.*\[1, 4\]"):
            load_h5(tmp_path / "bad.h5")


def test_load_h5_missing_key_names_present_keys(tmp_path, h5py):
    _write_h5(tmp_path / "x.h5", {"trainims": np.zeros((1, 2, 2)), "trainlbls": np.zeros(1)},
              h5py)
    with pytest.raises(KeyError) as e:
        load_h5(tmp_path / "x.h5", keys=["trainims", "testims"])
    msg = str(e.value)
    assert "x.h5" in msg and "'testims'" in msg and "['trainims', 'trainlbls']" in msg
    with pytest.raises(TypeError, match="keys"):
        load_h5(tmp_path / "x.h5", keys="trainims")


def test_load_h5_without_h5py_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)   # makes `import h5py` fail
    with pytest.raises(ImportError, match=r'pip install "nnc\[h5\]"'):
        load_h5(tmp_path / "x.h5")


# --- CIFAR files written by the tests ------------------------------------------------

C10_SIZES = (3, 2, 4, 1, 5)


def write_cifar10(folder, key=str, protocol=2, sizes=C10_SIZES, n_test=6):
    """A tiny cifar-10-batches-py; returns (train data, train labels, test data, test labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for b, n in enumerate(sizes, 1):
        x = _rng_images(n, b)
        y = [int(v) for v in np.random.default_rng(100 + b).integers(0, 10, n)]
        _dump(folder / f"data_batch_{b}",
              _keyed({"batch_label": "fake", "labels": y, "data": x}, key), protocol)
        xs.append(x)
        ys += y
    xt = _rng_images(n_test, 0)
    yt = [int(v) for v in np.random.default_rng(99).integers(0, 10, n_test)]
    _dump(folder / "test_batch", _keyed({"labels": yt, "data": xt}, key), protocol)
    names = [n.encode() for n in C10_NAMES] if key is bytes else C10_NAMES
    _dump(folder / "batches.meta", _keyed({"label_names": names, "num_vis": 3072}, key),
          protocol)
    return np.concatenate(xs), np.array(ys), xt, np.array(yt)


def _cifar100_split(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 100, n),
            rng.integers(0, 20, n))


def write_cifar100(folder, key=str, protocol=2, n_train=7, n_test=3):
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": _cifar100_split(n_train, 1), "test": _cifar100_split(n_test, 2)}
    for name, (x, fine, coarse) in splits.items():
        _dump(folder / name, _keyed({"data": x, "fine_labels": fine.tolist(),
                                     "coarse_labels": coarse.tolist(),
                                     "filenames": ["a.png"] * len(x)}, key), protocol)
    enc = (lambda names: [n.encode() for n in names]) if key is bytes else list
    _dump(folder / "meta", _keyed({"fine_label_names": enc(FINE_NAMES),
                                   "coarse_label_names": enc(COARSE_NAMES)}, key), protocol)
    return splits


def write_cifar100_mat(folder, n_train=7, n_test=3):
    sio = pytest.importorskip("scipy.io")
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": _cifar100_split(n_train, 3), "test": _cifar100_split(n_test, 4)}
    for name, (x, fine, coarse) in splits.items():
        # as in the course files: labels (N, 1) uint8
        sio.savemat(folder / f"{name}.mat",
                    {"data": x, "fine_labels": fine.astype(np.uint8).reshape(-1, 1),
                     "coarse_labels": coarse.astype(np.uint8).reshape(-1, 1)})
    # fine names as a cell array (what the course indexes as [i][0][0]),
    # coarse as a char matrix (padded with spaces)
    sio.savemat(folder / "meta.mat",
                {"fine_label_names": np.array(FINE_NAMES, dtype=object).reshape(-1, 1),
                 "coarse_label_names": COARSE_NAMES})
    return splits


def _nchw(x):
    return x.reshape(-1, 3, 32, 32)


@pytest.mark.parametrize("key", [str, bytes])
@pytest.mark.parametrize("protocol", [2, 5])
def test_load_cifar10_pickles(tmp_path, key, protocol):
    xtr, ytr, xte, yte = write_cifar10(tmp_path / "cifar-10-batches-py", key, protocol)
    d = load_cifar("cifar10", root=tmp_path)          # the parent of the folder
    assert sorted(d) == ["X_test", "X_train", "label_names", "y_test", "y_train"]
    assert d["X_train"].shape == (15, 3, 32, 32) and d["X_train"].dtype == np.float32
    assert d["X_test"].shape == (6, 3, 32, 32)
    np.testing.assert_array_equal(d["X_train"], _nchw(xtr))      # 0..255, not scaled
    np.testing.assert_array_equal(d["X_test"], _nchw(xte))
    assert d["y_train"].dtype == np.int64 and d["y_test"].dtype == np.int64
    np.testing.assert_array_equal(d["y_train"], ytr)
    np.testing.assert_array_equal(d["y_test"], yte)
    assert d["label_names"] == C10_NAMES
    nhwc = load_cifar("cifar10", root=tmp_path / "cifar-10-batches-py", layout="NHWC",
                      dtype=np.float64)
    assert nhwc["X_train"].shape == (15, 32, 32, 3) and nhwc["X_train"].dtype == np.float64
    assert nhwc["X_train"].flags.c_contiguous
    np.testing.assert_array_equal(nhwc["X_train"], d["X_train"].transpose(0, 2, 3, 1))
    raw = load_cifar("cifar10", root=tmp_path, dtype=np.uint8)
    assert raw["X_test"].dtype == np.uint8 and raw["X_test"].flags.writeable
    np.testing.assert_array_equal(raw["X_test"], _nchw(xte))


@pytest.mark.parametrize("key", [str, bytes])
def test_load_cifar100_pickles_fine_and_coarse(tmp_path, key):
    splits = write_cifar100(tmp_path / "cifar-100-python", key)
    fine = load_cifar("cifar100", root=tmp_path)
    coarse = load_cifar("cifar100", root=tmp_path / "cifar-100-python", labels="coarse",
                        layout="NHWC")
    x, yf, yc = splits["train"]
    np.testing.assert_array_equal(fine["X_train"], _nchw(x))
    np.testing.assert_array_equal(coarse["X_train"], _nchw(x).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(fine["y_train"], yf)
    np.testing.assert_array_equal(coarse["y_train"], yc)
    xt, yft, yct = splits["test"]
    np.testing.assert_array_equal(fine["X_test"], _nchw(xt))
    np.testing.assert_array_equal(fine["y_test"], yft)
    np.testing.assert_array_equal(coarse["y_test"], yct)
    assert fine["label_names"] == FINE_NAMES and coarse["label_names"] == COARSE_NAMES


def test_load_cifar100_mat(tmp_path):
    splits = write_cifar100_mat(tmp_path / "course")
    fine = load_cifar("cifar100", root=tmp_path / "course")
    coarse = load_cifar("cifar100", root=tmp_path / "course", labels="coarse", layout="NHWC")
    x, yf, yc = splits["train"]
    np.testing.assert_array_equal(fine["X_train"], _nchw(x))
    np.testing.assert_array_equal(coarse["X_train"], _nchw(x).transpose(0, 2, 3, 1))
    assert fine["y_train"].shape == (7,) and fine["y_train"].dtype == np.int64
    np.testing.assert_array_equal(fine["y_train"], yf)
    np.testing.assert_array_equal(coarse["y_test"], splits["test"][2])
    assert fine["label_names"] == FINE_NAMES      # from a cell array
    assert coarse["label_names"] == COARSE_NAMES  # from a padded char matrix


def test_load_cifar100_mat_without_scipy(tmp_path, monkeypatch):
    write_cifar100_mat(tmp_path)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match=r'pip install "nnc\[mat\]"'):
        load_cifar("cifar100", root=tmp_path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "pwned"
    _dump(folder / "data_batch_3", {"data": _Evil(marker), "labels": [0]})
    with pytest.raises(ValueError, match=r"data_batch_3.*refusing.*system"):
        load_cifar("cifar10", root=folder)
    assert not marker.exists()


def test_missing_key_names_file_and_key(tmp_path):
    folder = tmp_path / "cifar-100-python"
    write_cifar100(folder, key=bytes)
    _dump(folder / "test", {b"data": _rng_images(2, 0), b"fine_labels": [1, 2]})
    load_cifar("cifar100", root=folder)                  # fine labels are there
    with pytest.raises(ValueError, match=r"cifar-100-python/test: no 'coarse_labels' entry"):
        load_cifar("cifar100", root=folder, labels="coarse")


@pytest.mark.parametrize("entry, match", [
    ({"data": np.zeros((2, 3071), np.uint8), "labels": [0, 1]}, r"'data' must have shape"),
    ({"data": np.full((2, 3072), 256), "labels": [0, 1]}, r"values in \[256, 256\]"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, r"'labels' must hold 2"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, r"in \[0, 10\).*\[0, 10\]"),
])
def test_bad_batch_content(tmp_path, entry, match):
    write_cifar10(tmp_path)
    _dump(tmp_path / "test_batch", entry)
    with pytest.raises(ValueError, match="test_batch.*" + match):
        load_cifar("cifar10", root=tmp_path)


def test_load_cifar_bad_arguments(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(ValueError, match="name.*'cifar20'"):
        load_cifar("cifar20", root=tmp_path)
    with pytest.raises(ValueError, match="layout.*'NWHC'"):
        load_cifar("cifar10", root=tmp_path, layout="NWHC")
    with pytest.raises(ValueError, match="labels.*'coarse'.*cifar10"):
        load_cifar("cifar10", root=tmp_path, labels="coarse")
    with pytest.raises(ValueError, match="dtype.*int8"):
        load_cifar("cifar10", root=tmp_path, dtype=np.int8)
    with pytest.raises(TypeError, match="root"):
        load_cifar("cifar10", root=3)
    with pytest.raises(FileNotFoundError, match=r"no cifar100 in .*train, test, meta"):
        load_cifar("cifar100", root=tmp_path)


def test_load_cifar_from_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_DATA", str(tmp_path))
    xtr, _, _, _ = write_cifar10(tmp_path / "cifar-10-batches-py")

    def no_network(*a, **k):
        raise AssertionError("fetched although the data is in the cache")
    monkeypatch.setattr(datasets, "fetch_cifar10", no_network)
    np.testing.assert_array_equal(load_cifar("cifar10")["X_train"], _nchw(xtr))


# --- downloads from a local server -------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        srv.requests.append(self.path)
        if self.path not in srv.routes:
            self.send_error(404)
            return
        body, mode = srv.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # "truncate": announce the full length, send half, close the connection
        self.wfile.write(body if mode == "ok" else body[:len(body) // 2])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.routes, srv.requests = {}, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join()


def _tar_gz(members):
    """A .tar.gz from (TarInfo, bytes or None) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def _cifar10_archive(tmp_path, extra=()):
    """An archive of a tiny cifar-10-batches-py; returns (bytes, md5, train data)."""
    src = tmp_path / "src" / "cifar-10-batches-py"
    xtr, _, _, _ = write_cifar10(src)
    members = [_dir("cifar-10-batches-py")]
    for p in sorted(src.iterdir()):
        members.append((tarfile.TarInfo(f"cifar-10-batches-py/{p.name}"), p.read_bytes()))
    body = _tar_gz(members + list(extra))
    return body, hashlib.md5(body).hexdigest(), xtr


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_fetch_downloads_verifies_extracts_then_uses_cache(tmp_path, server):
    body, md5, xtr = _cifar10_archive(tmp_path)
    server.routes["/c10.tar.gz"] = (body, "ok")
    root = tmp_path / "data"
    folder = fetch_cifar10(root=root, url=server.url + "/c10.tar.gz", md5=md5, progress=False)
    assert folder == root / "cifar-10-batches-py"
    assert server.requests == ["/c10.tar.gz"]
    assert (root / "c10.tar.gz").read_bytes() == body
    assert sorted(os.listdir(root)) == ["c10.tar.gz", "cifar-10-batches-py"]   # no temp left
    np.testing.assert_array_equal(load_cifar("cifar10", root=folder)["X_train"], _nchw(xtr))

    # idempotent: the folder is there, so no request
    assert fetch_cifar10(root=root, url=server.url + "/c10.tar.gz", md5=md5) == folder
    assert fetch_cifar10(root=folder, url=server.url + "/c10.tar.gz", md5=md5) == folder
    # the folder gone, the verified archive is extracted again, still no request
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    assert fetch_cifar10(root=root, url=server.url + "/c10.tar.gz", md5=md5) == folder
    assert (folder / "data_batch_5").is_file()
    assert server.requests == ["/c10.tar.gz"]


def test_load_cifar_downloads_into_empty_cache(tmp_path, server, monkeypatch):
    body, md5, xtr = _cifar10_archive(tmp_path)
    server.routes["/c10.tar.gz"] = (body, "ok")
    monkeypatch.setenv("NNC_DATA", str(tmp_path / "cache"))
    real = datasets.fetch_cifar10
    monkeypatch.setattr(datasets, "fetch_cifar10",
                        lambda root: real(root, url=server.url + "/c10.tar.gz", md5=md5))
    np.testing.assert_array_equal(load_cifar("cifar10")["X_train"], _nchw(xtr))
    assert (tmp_path / "cache" / "cifar-10-batches-py" / "test_batch").is_file()
    assert server.requests == ["/c10.tar.gz"]


def test_fetch_progress_bar(tmp_path, server, capsys):
    body, md5, _ = _cifar10_archive(tmp_path)
    server.routes["/c10.tar.gz"] = (body, "ok")
    fetch_cifar10(root=tmp_path / "data", url=server.url + "/c10.tar.gz", md5=md5, progress=True)
    assert "c10.tar.gz" in capsys.readouterr().err


def test_fetch_cifar100(tmp_path, server):
    src = tmp_path / "src" / "cifar-100-python"
    splits = write_cifar100(src)
    body = _tar_gz([_dir("cifar-100-python")] +
                   [(tarfile.TarInfo(f"cifar-100-python/{n}"), (src / n).read_bytes())
                    for n in ("train", "test", "meta")])
    server.routes["/cifar-100-python.tar.gz"] = (body, "ok")
    folder = fetch_cifar100(root=tmp_path / "d", url=server.url + "/cifar-100-python.tar.gz",
                            md5=hashlib.md5(body).hexdigest())
    assert folder == tmp_path / "d" / "cifar-100-python"
    d = load_cifar("cifar100", root=tmp_path / "d", labels="coarse")
    np.testing.assert_array_equal(d["y_train"], splits["train"][2])


def test_fetch_truncated_download_leaves_no_file(tmp_path, server):
    body, md5, _ = _cifar10_archive(tmp_path)
    server.routes["/c10.tar.gz"] = (body, "truncate")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=rf"incomplete: got {len(body) // 2} of {len(body)}"
                                            r".*by hand.*root="):
        fetch_cifar10(root=root, url=server.url + "/c10.tar.gz", md5=md5)
    assert os.listdir(root) == []


def test_fetch_wrong_checksum(tmp_path, server):
    body, md5, _ = _cifar10_archive(tmp_path)
    server.routes["/c10.tar.gz"] = (body, "ok")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=rf"md5 {md5}, expected {'0' * 32}"):
        fetch_cifar10(root=root, url=server.url + "/c10.tar.gz", md5="0" * 32)
    assert os.listdir(root) == []


def test_fetch_network_error_says_how_to_download_by_hand(tmp_path, server):
    with pytest.raises(DownloadError, match=r"cannot download .*/missing\.tar\.gz.*404.*"
                                            r"by hand.*'cifar-10-batches-py'.*root="):
        fetch_cifar10(root=tmp_path, url=server.url + "/missing.tar.gz", md5="0" * 32)
    assert os.listdir(tmp_path) == []


def test_fetch_refetches_corrupt_cached_archive(tmp_path, server):
    body, md5, _ = _cifar10_archive(tmp_path)
    server.routes["/c10.tar.gz"] = (body, "ok")
    root = tmp_path / "data"
    root.mkdir()
    (root / "c10.tar.gz").write_bytes(body[:-100])          # a partial earlier download
    folder = fetch_cifar10(root=root, url=server.url + "/c10.tar.gz", md5=md5)
    assert server.requests == ["/c10.tar.gz"]
    assert (root / "c10.tar.gz").read_bytes() == body
    assert (folder / "batches.meta").is_file()


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


@pytest.mark.parametrize("bad, what", [
    ((tarfile.TarInfo("cifar-10-batches-py/../../../../escaped"), b"x"), "outside"),
    ((tarfile.TarInfo("/abs/escaped"), b"x"), "outside"),
    (_symlink("cifar-10-batches-py/link", "../../escaped"), "links"),
    (_symlink("cifar-10-batches-py/data_batch_9", "/etc/passwd"), "links"),
])
def test_fetch_refuses_unsafe_members(tmp_path, server, bad, what):
    body, md5, _ = _cifar10_archive(tmp_path, extra=[bad])
    server.routes["/c10.tar.gz"] = (body, "ok")
    root = tmp_path / "a" / "b"
    before = _listing(tmp_path)
    with pytest.raises(ValueError, match=rf"refusing to extract .*{what}"):
        fetch_cifar10(root=root, url=server.url + "/c10.tar.gz", md5=md5)
    # nothing but the (verified) archive was written, inside or outside root
    assert sorted(set(_listing(tmp_path)) - set(before)) == ["a", "a/b", "a/b/c10.tar.gz"]


def test_fetch_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="md5"):
        fetch_cifar10(root=tmp_path, md5="abc")
    with pytest.raises(ValueError, match="md5"):
        fetch_cifar10(root=tmp_path, md5="g" * 32)
    with pytest.raises(TypeError, match="progress"):
        fetch_cifar10(root=tmp_path, progress="yes")
    with pytest.raises(TypeError, match="root"):
        fetch_cifar10(root=1)


# --- the shared CIFAR-10 subset -------------------------------------------------------------

@pytest.mark.skipif(not (SHARED_CIFAR10 / "data_batch_1").is_file(),
                    reason=f"CIFAR-10 subset not found at {SHARED_CIFAR10}")
def test_shared_cifar10_subset_both_layouts():
    nchw = load_cifar("cifar10", root=SHARED_CIFAR10)
    nhwc = load_cifar("cifar10", root=SHARED_CIFAR10.parent, layout="NHWC")
    assert nchw["X_train"].shape == (5170, 3, 32, 32) and nchw["X_test"].shape == (1017, 3, 32, 32)
    assert nhwc["X_train"].shape == (5170, 32, 32, 3) and nhwc["X_test"].shape == (1017, 32, 32, 3)
    for d in (nchw, nhwc):
        assert d["X_train"].dtype == np.float32 and d["X_test"].dtype == np.float32
        assert d["y_train"].dtype == np.int64 and d["y_train"].shape == (5170,)
        assert d["y_test"].shape == (1017,)
        assert d["y_train"].min() >= 0 and d["y_train"].max() <= 9
        assert d["label_names"] == C10_NAMES
    np.testing.assert_array_equal(nhwc["X_train"], nchw["X_train"].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(nhwc["X_test"], nchw["X_test"].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(nhwc["y_test"], nchw["y_test"])
    # against the file read directly with the stock unpickler
    with open(SHARED_CIFAR10 / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(nchw["X_test"], raw[b"data"].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(nchw["y_test"], raw[b"labels"])
    assert 0 <= nchw["X_train"].min() and nchw["X_train"].max() <= 255


# --- data_utils.CIFAR100, CIFAR100_data -------------------------------------------------

@pytest.mark.parametrize("write", [write_cifar100_mat, write_cifar100])
def test_CIFAR100_raw_coarse(tmp_path, write):
    splits = write(tmp_path, n_train=30, n_test=10)
    x, y, xt, yt, names = CIFAR100(tmp_path)
    assert x.shape == (30, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, _nchw(splits["train"][0]).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y, splits["train"][2])
    np.testing.assert_array_equal(xt, _nchw(splits["test"][0]).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(yt, splits["test"][2])
    assert names == COARSE_NAMES
    with pytest.raises(TypeError, match="data_dir"):
        CIFAR100(None)


def test_CIFAR100_data_standardized_on_train_split(tmp_path):
    # the python version, so that this runs without scipy too
    splits = write_cifar100(tmp_path, n_train=30, n_test=10)
    d = CIFAR100_data(str(tmp_path), num_training=20, num_validation=7)
    assert sorted(d) == sorted(["data_train", "labels_train", "data_val", "labels_val",
                                "data_test", "labels_test", "label_names", "mean_image",
                                "std_image"])
    raw = _nchw(splits["train"][0]).transpose(0, 2, 3, 1) / 255.0
    raw_test = _nchw(splits["test"][0]).transpose(0, 2, 3, 1) / 255.0
    mean = raw[:20].mean(axis=(0, 1, 2), keepdims=True)
    std = raw[:20].std(axis=(0, 1, 2), keepdims=True)
    assert d["mean_image"].shape == (1, 1, 1, 3) and d["mean_image"].dtype == np.float32
    np.testing.assert_allclose(d["mean_image"], mean, rtol=1e-6)
    np.testing.assert_allclose(d["std_image"], std, rtol=1e-6)
    shapes = {"data_train": (20, 32, 32, 3), "data_val": (7, 32, 32, 3),
              "data_test": (10, 32, 32, 3)}
    for k, shape in shapes.items():
        assert d[k].shape == shape and d[k].dtype == np.float32
    np.testing.assert_allclose(d["data_train"], (raw[:20] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(d["data_val"], (raw[20:27] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(d["data_test"], (raw_test - mean) / std, atol=1e-5)
    np.testing.assert_allclose(d["data_train"].mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(d["data_train"].std(axis=(0, 1, 2)), 1, rtol=1e-5)
    np.testing.assert_array_equal(d["labels_train"], splits["train"][2][:20])
    np.testing.assert_array_equal(d["labels_val"], splits["train"][2][20:27])
    np.testing.assert_array_equal(d["labels_test"], splits["test"][2])
    assert d["label_names"] == COARSE_NAMES


def test_CIFAR100_data_bad_counts(tmp_path):
    write_cifar100(tmp_path, n_train=30, n_test=10)
    with pytest.raises(ValueError, match="num_training must be >= 1, got -1"):
        CIFAR100_data(tmp_path, num_training=-1)
    with pytest.raises(ValueError, match="num_validation must be >= 0, got -5"):
        CIFAR100_data(tmp_path, num_training=10, num_validation=-5)
    with pytest.raises(ValueError, match=r"25 \+ 6 = 31 .* only 30"):
        CIFAR100_data(tmp_path, num_training=25, num_validation=6)
    with pytest.raises(TypeError, match="num_training"):
        CIFAR100_data(tmp_path, num_training=2.5)
    CIFAR100_data(tmp_path, num_training=25, num_validation=5)   # exactly all of it is fine

"""Course data sets in one call: CIFAR-10, CIFAR-100 (downloaded on first use) and ``.h5`` files.

    from nnc.datasets import load_cifar, load_h5
    data = load_cifar("cifar10")                  # X_train (50000, 3, 32, 32) float32, 0..255
    data = load_cifar("cifar100", labels="coarse", layout="NHWC")
    d = load_h5("assign2_data2.h5")               # trigram course file, 0-based word indices

Downloads go to ``cache_dir()``: ``$NNC_DATA`` if set, else ``~/.cache/nnc``.
Pickled batches are read with the restricted unpickler of ``nnc.data_utils``,
so a tampered file cannot run code. h5py (``pip install "nnc[h5]"``) and scipy
(``pip install "nnc[mat]"``, for the ``.mat`` CIFAR-100) are optional.
"""
import hashlib
import http.client
import os
import pathlib
import shutil
import string
import tarfile
import tempfile
import urllib.parse
import urllib.request

import numpy as np

from .data_utils import load_pickle

ENV_VAR = "NNC_DATA"

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_MAT_FOLDER = "cifar-100-matlab"   # the folder of the official .mat archive

_CIFAR10_FILES = tuple(f"data_batch_{b}" for b in range(1, 6)) + ("test_batch", "batches.meta")
_CIFAR100_FILES = ("train", "test", "meta")
_CIFAR100_MAT_FILES = ("train.mat", "test.mat", "meta.mat")

# The two course layouts load_h5 recognises, by their keys.
H5_IMAGES_KEYS = ("trainims", "trainlbls", "testims", "testlbls")
H5_TRIGRAM_KEYS = ("trainx", "traind", "valx", "vald", "testx", "testd", "words")
_H5_ONE_BASED = ("trainx", "traind", "valx", "vald", "testx", "testd")


class DownloadError(OSError):
    """A download failed (network error, truncated transfer or wrong checksum)."""


def cache_dir():
    """The directory nnc downloads data sets to: ``$NNC_DATA`` if set, else
    ``~/.cache/nnc``. Created if it does not exist.

    Returns a pathlib.Path.
    """
    env = os.environ.get(ENV_VAR)
    path = pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "nnc"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _as_path(value, name):
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {value!r}")
    return pathlib.Path(value).expanduser()


# --- .h5 course files -------------------------------------------------------------

def load_h5(path, keys=None):
    """Read the datasets of an ``.h5`` file into numpy arrays.

    Two course layouts are recognised by their keys:
    - images (cat vs car): 'trainims', 'trainlbls', 'testims', 'testlbls', e.g.
      trainims (N, H, W) uint8 and trainlbls (N,), returned as stored. (If the
      images look transposed, the file was written column-major by MATLAB:
      use ``trainims.transpose(0, 2, 1)``.)
    - word trigrams: 'trainx', 'traind', 'valx', 'vald', 'testx', 'testd',
      'words'. The file stores 1-based word indices; they are returned
      **0-based** as int64, so ``words[trainx[i]]`` are the words of sample i:
      trainx (N, 3) and traind (N,) (likewise val*, test*); 'words' (V,) as str
      (the file's bytes strings decoded).
    Any other file: its top-level datasets as stored (groups are skipped).

    Inputs:
    - path: the ``.h5`` file (str or os.PathLike)
    - keys: None for all top-level datasets, or a list of keys to read

    Returns a dict key -> np.ndarray. Raises KeyError naming the keys present
    when a key is missing, ImportError when h5py is not installed.
    """
    try:
        import h5py
    except ImportError as e:
        raise ImportError('load_h5 needs h5py: pip install "nnc[h5]" (or pip install h5py)') from e
    path = _as_path(path, "path")
    if keys is not None:
        if isinstance(keys, (str, bytes)) or not all(isinstance(k, str) for k in keys):
            raise TypeError(f"keys must be None or a list of str, got {keys!r}")
        keys = list(keys)
    with h5py.File(path, "r") as f:
        present = sorted(f.keys())
        trigram = set(H5_TRIGRAM_KEYS) <= set(present)
        if keys is None:
            keys = [k for k in present if isinstance(f[k], h5py.Dataset)]
        missing = [k for k in keys if k not in f]
        if missing:
            raise KeyError(f"{path}: no {', '.join(map(repr, missing))} in the file; "
                           f"it holds {present}")
        out = {}
        for k in keys:
            if not isinstance(f[k], h5py.Dataset):
                raise ValueError(f"{path}: {k!r} is a group, not a dataset")
            arr = np.asarray(f[k][()])
            if trigram and k in _H5_ONE_BASED:
                arr = _zero_based(arr, path, k, f["words"].size)
            elif trigram and k == "words":
                arr = _decoded(arr)
            out[k] = arr
    return out


def _zero_based(arr, path, key, num_words):
    if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)   # MATLAB writes indices as doubles
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{path}: {key!r} must hold integer word indices, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 1 or arr.max() > num_words):
        raise ValueError(f"{path}: {key!r} must hold 1-based word indices in [1, {num_words}], "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64) - 1


def _decoded(arr):
    if arr.dtype.kind not in "SO":
        return arr
    items = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in arr.ravel()]
    return np.array(items, dtype=str).reshape(arr.shape)


# --- download ---------------------------------------------------------------------

def fetch_cifar10(root=None, url=CIFAR10_URL, md5=CIFAR10_MD5, progress=None):
    """Download and extract the CIFAR-10 python version, unless already there.

    Inputs:
    - root: directory to put ``cifar-10-python.tar.gz`` and the extracted
      ``cifar-10-batches-py`` in; default ``cache_dir()``
    - url, md5: where to download from and the archive's md5 checksum
    - progress: show a tqdm progress bar: None (when stderr is a terminal),
      True or False

    Returns the path of the extracted ``cifar-10-batches-py`` folder. A second
    call finds the folder and does not touch the network; a cached archive with
    the wrong checksum is downloaded again. Raises DownloadError (an OSError)
    when the download fails, saying how to download by hand.
    """
    return _fetch(root, url, md5, progress, CIFAR10_FOLDER, _CIFAR10_FILES)


def fetch_cifar100(root=None, url=CIFAR100_URL, md5=CIFAR100_MD5, progress=None):
    """Download and extract the CIFAR-100 python version, unless already there.

    As ``fetch_cifar10``; returns the path of the ``cifar-100-python`` folder
    (files ``train``, ``test``, ``meta``).
    """
    return _fetch(root, url, md5, progress, CIFAR100_FOLDER, _CIFAR100_FILES)


def _complete(folder, files):
    return all((folder / n).is_file() for n in files)


def _fetch(root, url, md5, progress, folder_name, files):
    root = cache_dir() if root is None else _as_path(root, "root")
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {url!r}")
    if not isinstance(md5, str) or len(md5) != 32 or md5.strip(string.hexdigits):
        raise ValueError(f"md5 must be a 32-digit hex str, got {md5!r}")
    if progress not in (None, True, False):
        raise TypeError(f"progress must be None, True or False, got {progress!r}")
    if _complete(root, files):          # root is the extracted folder itself
        return root
    folder = root / folder_name
    if _complete(folder, files):
        return folder
    if folder.exists():
        # Ours appear atomically, complete; this one is someone else's: keep it.
        raise FileExistsError(f"{folder} exists but lacks some of {', '.join(files)}; "
                              "remove it to download again")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / (pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name
                      or f"{folder_name}.tar.gz")
    if not (archive.is_file() and _md5(archive) == md5.lower()):
        _download(url, archive, md5.lower(), progress, folder_name)
    _extract(archive, root, folder_name)
    if not _complete(folder, files):
        raise ValueError(f"{archive}: the extracted {folder_name} lacks some of "
                         f"{', '.join(files)}")
    return folder


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _by_hand(url, folder_name):
    return (f"Download {url} by hand (e.g. in a browser), extract it, and pass the directory "
            f"holding '{folder_name}' as root= (or --data).")


def _download(url, archive, md5, progress, folder_name):
    from tqdm import tqdm

    # Everything goes to .part first, so an interrupted download never leaves
    # a file under the archive's name.
    part = archive.with_name(archive.name + ".part")
    h = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=archive.name, disable=None if progress is None else not progress,
                      leave=False) as bar:
                done = 0
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    bar.update(len(block))
        # http.client returns a short body without complaint when the server
        # closes early, so the length is checked here.
        if total is not None and done != total:
            raise DownloadError(f"download of {url} incomplete: got {done} of {total} bytes. "
                                + _by_hand(url, folder_name))
        if h.hexdigest() != md5:
            raise DownloadError(f"download of {url} has md5 {h.hexdigest()}, expected {md5}. "
                                + _by_hand(url, folder_name))
        os.replace(part, archive)
    except (OSError, http.client.HTTPException) as e:
        part.unlink(missing_ok=True)
        if isinstance(e, DownloadError):
            raise
        raise DownloadError(f"cannot download {url}: {e}. " + _by_hand(url, folder_name)) from e
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _checked_members(tar, archive):
    # Checked before anything is written: no links, devices or paths outside the target.
    members = tar.getmembers()
    for m in members:
        if not (m.isfile() or m.isdir()):
            raise ValueError(f"{archive}: refusing to extract {m.name!r}: not a regular file "
                             "or directory (links and devices are refused)")
        first = os.path.normpath(m.name).replace("\\", "/").split("/")[0]
        if m.name.startswith(("/", "\\")) or first == ".." or ":" in first:
            raise ValueError(f"{archive}: refusing to extract {m.name!r}: it is outside the "
                             "target directory")
    return members


def _extract(archive, root, folder_name):
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise ValueError(f"{archive}: not a readable tar archive: {e}") from e
    # Extract next to the target and rename into place: a reader never sees a
    # half-extracted folder, and a failure leaves nothing behind.
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder_name}.", dir=root))
    try:
        with tar:
            members = _checked_members(tar, archive)
            if hasattr(tarfile, "data_filter"):   # Python 3.12, and 3.9-3.11 security releases
                tar.extractall(tmp, members=members, filter="data")
            else:
                tar.extractall(tmp, members=members)
        if not (tmp / folder_name).is_dir():
            raise ValueError(f"{archive}: the archive has no top-level folder {folder_name!r}")
        try:
            os.rename(tmp / folder_name, root / folder_name)
        except OSError:
            if not (root / folder_name).is_dir():   # another process got there first: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- CIFAR ------------------------------------------------------------------------

def load_cifar(name, root=None, layout="NCHW", labels="fine", dtype=np.float32):
    """Load CIFAR-10 or CIFAR-100.

    Reads the official python versions (CIFAR-10: ``data_batch_1`` ...
    ``data_batch_5``, ``test_batch``, ``batches.meta``; CIFAR-100: ``train``,
    ``test``, ``meta``) and the ``.mat`` CIFAR-100 of the CSCI566 course
    (``train.mat``, ``test.mat``, ``meta.mat``; needs scipy).

    Inputs:
    - name: "cifar10" or "cifar100"
    - root: the extracted folder (e.g. ``cifar-10-batches-py``) or its parent.
      None: ``cache_dir()``, downloading the data set there if absent
    - layout: "NCHW" or "NHWC"
    - labels: "fine" or "coarse" (the 20 superclasses; CIFAR-100 only)
    - dtype: dtype of the images: a float type, or an integer type holding 0..255

    Returns a dict:
    - 'X_train' (N_train, 3, 32, 32) for NCHW, (N_train, 32, 32, 3) for NHWC,
      pixel values 0..255, not scaled; 'y_train' (N_train,) int64
    - 'X_test', 'y_test' likewise for the test split
    - 'label_names': list of str, y indexes it
    N_train, N_test are 50,000 and 10,000 for the full data sets.

    Raises FileNotFoundError when root holds no data set, ValueError naming
    the file and key when a file's content is wrong.
    """
    if name not in ("cifar10", "cifar100"):
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    if labels not in ("fine", "coarse") or (name == "cifar10" and labels != "fine"):
        raise ValueError(f"labels must be 'fine' or 'coarse' (coarse: cifar100 only), "
                         f"got {labels!r} for {name}")
    try:
        dtype = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be a numpy dtype, got {dtype!r}") from e
    if not (dtype.kind == "f" or (dtype.kind in "iu" and np.can_cast(np.uint8, dtype))):
        raise ValueError(f"dtype must be a float type or an integer type holding 0..255, "
                         f"got {dtype}")

    fmt, folder = _find_cifar(name, root)
    if name == "cifar10":
        xs, ys = [], []
        names = _label_names(_read_pickle(folder / "batches.meta"), folder / "batches.meta",
                             "label_names")
        for b in _CIFAR10_FILES[:5]:
            x, y = _split(_read_pickle(folder / b), folder / b, "labels", len(names))
            xs.append(x)
            ys.append(y)
        x_train, y_train = np.concatenate(xs), np.concatenate(ys)
        x_test, y_test = _split(_read_pickle(folder / "test_batch"), folder / "test_batch",
                                "labels", len(names))
    else:
        read, ext = (_read_mat, ".mat") if fmt == "mat" else (_read_pickle, "")
        meta = folder / ("meta" + ext)
        names = _label_names(read(meta), meta, f"{labels}_label_names")
        x_train, y_train = _split(read(folder / ("train" + ext)), folder / ("train" + ext),
                                  f"{labels}_labels", len(names))
        x_test, y_test = _split(read(folder / ("test" + ext)), folder / ("test" + ext),
                                f"{labels}_labels", len(names))
    return {"X_train": _images(x_train, layout, dtype), "y_train": y_train,
            "X_test": _images(x_test, layout, dtype), "y_test": y_test,
            "label_names": names}


def _find_cifar(name, root):
    """(format, folder) of the data set in root or its standard subfolder."""
    if name == "cifar10":
        candidates = [("pickle", CIFAR10_FOLDER, _CIFAR10_FILES)]
    else:
        candidates = [("pickle", CIFAR100_FOLDER, _CIFAR100_FILES),
                      ("mat", CIFAR100_MAT_FOLDER, _CIFAR100_MAT_FILES)]
    base = cache_dir() if root is None else _as_path(root, "root")
    for fmt, sub, files in candidates:
        for folder in (base, base / sub):
            if _complete(folder, files):
                return fmt, folder
    if root is None:
        fetch = fetch_cifar10 if name == "cifar10" else fetch_cifar100
        return "pickle", fetch(base)
    wanted = " or ".join(f"{', '.join(files)} (in {base} or {base / sub})"
                         for _, sub, files in candidates)
    raise FileNotFoundError(f"no {name} in {base}: expected {wanted}. Pass root=None to "
                            f"download it to {cache_dir()}, or download it by hand from "
                            "https://www.cs.toronto.edu/~kriz/cifar.html")


def _read_pickle(path):
    try:
        with open(path, "rb") as f:
            return load_pickle(f)
    except OSError:
        raise
    except Exception as e:   # UnpicklingError, a truncated file, not a dict ...
        raise ValueError(f"{path}: cannot read it as a CIFAR pickle: {e}") from e


def _read_mat(path):
    try:
        import scipy.io
    except ImportError as e:
        raise ImportError('reading .mat files needs scipy: pip install "nnc[mat]" '
                          "(or pip install scipy)") from e
    try:
        return scipy.io.loadmat(path)
    except OSError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: cannot read it as a .mat file: {e}") from e


def _entry(d, path, key):
    for k in (key, key.encode()):    # str keys, or bytes keys of a Python-2 pickle
        if k in d:
            return d[k]
    raise ValueError(f"{path}: no {key!r} entry (keys: {sorted(map(str, d))})")


def _split(d, path, label_key, num_classes):
    """(data (N, 3072) uint8, labels (N,) int64) of one batch dict, checked."""
    x = np.asarray(_entry(d, path, "data"))
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' must have shape (N, 3072), got {x.shape}")
    if x.dtype != np.uint8:
        if x.dtype.kind not in "iu":
            raise ValueError(f"{path}: 'data' must hold integer pixel values, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"{path}: 'data' must hold pixel values 0..255, got values in "
                             f"[{x.min()}, {x.max()}]")
        x = x.astype(np.uint8)
    y = np.asarray(_entry(d, path, label_key))
    if y.size == 0:
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu" or y.size != x.shape[0] or y.squeeze().ndim > 1:
        raise ValueError(f"{path}: {label_key!r} must hold {x.shape[0]} integer labels, got "
                         f"shape {y.shape} dtype {y.dtype}")
    y = y.reshape(-1).astype(np.int64)       # .mat files store labels as (N, 1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{path}: {label_key!r} must be in [0, {num_classes}), got values in "
                         f"[{y.min()}, {y.max()}]")
    return x, y


def _label_names(d, path, key):
    v = _entry(d, path, key)
    items = v.ravel().tolist() if isinstance(v, np.ndarray) else v
    names = []
    for item in items:
        while isinstance(item, np.ndarray) and item.size == 1:   # .mat cells: [array(['a'])]
            item = item.ravel()[0]
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        if not isinstance(item, str):
            raise ValueError(f"{path}: {key!r} must be a list of strings, got an item {item!r}")
        names.append(item.rstrip())          # .mat char matrices pad with spaces
    if not names:
        raise ValueError(f"{path}: {key!r} is empty")
    return names


def _images(x, layout, dtype):
    x = x.reshape(-1, 3, 32, 32)             # rows are channel-major 3x32x32 images
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.array(x, dtype=dtype, order="C")   # always a fresh, writable array

"""What the four notebook scripts share: the command line, the data, rel_error,
check() and the optional matplotlib. The notebook code itself stays in each
script, written as the notebook writes it."""
import argparse
import os
import time

import numpy as np

import nnc
from nnc.data_utils import get_CIFAR10_data

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_CIFAR = os.path.join(HERE, "..", "..", "shared", "data", "cifar-10-batches-py")


def parse_args(doc):
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--backend", choices=("numpy", "cpp"), default=nnc.get_backend())
    p.add_argument("--data", help="the cifar-10-batches-py directory (default: $NNC_CIFAR10_DIR, "
                                  "else ../shared/data/cifar-10-batches-py)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few iterations (fits the 5,170-image subset)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    p.add_argument("--out", default=".", help="where the figures go (default: .)")
    args = p.parse_args()
    nnc.set_backend(args.backend)
    print(f"nnc {nnc.__version__}, backend {nnc.get_backend()}"
          f"{', --quick' if args.quick else ''}")
    args.t0 = time.time()
    return args


def data_dir(args):
    if args.data:
        if not os.path.isdir(args.data):
            raise SystemExit(f"--data {args.data}: no such directory")
        return args.data
    for d in (os.environ.get("NNC_CIFAR10_DIR"), SHARED_CIFAR):
        if d and os.path.isdir(d):
            return d
    raise SystemExit("no CIFAR-10 folder: pass --data DIR or set NNC_CIFAR10_DIR")


def load(args, num_training, num_validation, num_test):
    """get_CIFAR10_data as the notebook calls it, positionally, with the folder by keyword."""
    d = data_dir(args)
    try:
        data = get_CIFAR10_data(num_training, num_validation, num_test, cifar10_dir=d)
    except ValueError as e:
        raise SystemExit(f"{e} (use --quick for the small subset)")
    print(f"CIFAR-10 from {os.path.normpath(d)}")
    for k, v in data.items():
        print(f"{k}: {v.shape}")
    return data


def rel_error(x, y):
    """returns relative error"""
    return np.max(np.abs(x - y) / (np.maximum(1e-8, np.abs(x) + np.abs(y))))


def check(name, value, limit, show=True):
    """Print `name: value` as the notebook does; exit non-zero when value >= limit."""
    if show:
        print(f"{name}: {value}")
    if not value < limit:
        raise SystemExit(f"FAILED {name}: {value} is not below {limit}")
    return value


def require(name, ok, detail=""):
    """A yes/no check (accuracies, orderings): exit non-zero when not ok."""
    if not ok:
        raise SystemExit(f"FAILED {name}{': ' + detail if detail else ''}")
    print(f"ok: {name}{' (' + detail + ')' if detail else ''}")


def pyplot(args):
    """matplotlib.pyplot with the Agg backend, or None (with a message) when plots are off."""
    if args.no_plots:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install 'nnc[plot]')")
        return None
    return plt


def save(plt, args, name):
    path = os.path.join(args.out, name)
    plt.gcf().set_size_inches(15, 12)
    plt.savefig(path, dpi=60)
    plt.close("all")
    print(f"saved {path}")


def done(args):
    print(f"\nall checks passed ({nnc.get_backend()} backend, {time.time() - args.t0:.1f} s)")

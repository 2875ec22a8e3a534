"""Issue 4: native kernels release the GIL and share no mutable state, so
four Python threads calling them at once get exactly the serial results."""
import copy
import threading

import numpy as np
import pytest

import nnc
from nnc.bench.suite import OPS, run_op

from conftest import BACKENDS

pytestmark = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")

CASES = [("conv", (8, 3, 16, 16, 8, 3, 3, 1, 1)), ("conv", (4, 5, 11, 13, 7, 5, 5, 2, 2)),
         ("batchnorm", (64, 257)), ("spatial_batchnorm", (8, 6, 9, 9)), ("layernorm", (33, 65)),
         ("max_pool", (4, 5, 12, 12, 3, 3, 3)), ("softmax_loss", (64, 10)), ("adam", (10007,))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_four_threads_match_serial(dtype):
    with nnc.use_backend("cpp"):
        serial = [run_op(OPS[name], OPS[name].make(shape, dtype, i)) for i, (name, shape)
                  in enumerate(CASES)]
    results, errors = {}, []

    def worker(t):
        try:
            with nnc.use_backend("cpp"):
                for rep in range(3):
                    for i, (name, shape) in enumerate(CASES):
                        results[(t, rep, i)] = run_op(OPS[name], OPS[name].make(shape, dtype, i))
        except Exception as e:  # surfaced below with the thread that raised
            errors.append((t, e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(results) == 4 * 3 * len(CASES)
    for (t, rep, i), got in results.items():
        for a, b in zip(got, serial[i]):
            np.testing.assert_array_equal(a, b, err_msg=f"{CASES[i]} thread {t} rep {rep}")


def test_eight_threads_on_both_backends_at_once_match_serial():
    """The stress test: 8 threads, 1,000 calls each, every thread on its own
    backend (use_backend is context-local) and cycling through different ops;
    every result equals the serial one of the same backend bit for bit."""
    small = [("affine", (4, 7, 5)), ("relu", (3, 7)), ("batchnorm", (7, 5)),
             ("layernorm", (7, 3)), ("max_pool", (2, 3, 8, 8, 2, 2, 2)),
             ("conv", (2, 3, 7, 7, 4, 3, 3, 1, 1)), ("softmax_loss", (7, 3))]
    inputs = [OPS[name].make(shape, np.float64, i) for i, (name, shape) in enumerate(small)]
    serial = {}
    for backend in ("numpy", "cpp"):
        with nnc.use_backend(backend):
            serial[backend] = [run_op(OPS[name], copy.deepcopy(inp))
                               for (name, _), inp in zip(small, inputs)]
    calls, errors, mismatches = [0] * 8, [], []

    def worker(t):
        backend = ("numpy", "cpp")[t % 2]
        try:
            with nnc.use_backend(backend):
                for k in range(1000):
                    i = (t + k) % len(small)
                    # a fresh copy: batchnorm updates its running statistics
                    got = run_op(OPS[small[i][0]], copy.deepcopy(inputs[i]))
                    if not all(np.array_equal(a, b) for a, b in zip(got, serial[backend][i])):
                        mismatches.append((t, k, small[i][0]))
                    if nnc.get_backend() != backend:
                        mismatches.append((t, k, "backend switched"))
                    calls[t] += 1
        except Exception as e:  # surfaced below with the thread that raised
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    assert not errors and not mismatches[:5]
    assert calls == [1000] * 8

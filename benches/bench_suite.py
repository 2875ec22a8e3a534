"""pytest-benchmark over the shared suite (developer side; not run by CI):

    pip install pytest-benchmark && pytest benches/bench_suite.py --benchmark-only
"""
import numpy as np
import pytest

import nnc
from nnc.bench.harness import _runner, missing
from nnc.bench.suite import CASES, OPS

PARAMS = [(c, d, impl) for c in CASES for d in ("float32", "float64") for impl in ("numpy", "cpp")]


@pytest.mark.parametrize("case,dtype,impl", PARAMS,
                         ids=[f"{c.name}-{d}-{i}" for c, d, i in PARAMS])
def test_bench(benchmark, case, dtype, impl):
    op = OPS[case.op]
    if missing(op, impl):
        pytest.skip(f"{impl} lacks {missing(op, impl)}")
    benchmark(_runner(op, case.shape, np.dtype(dtype).type, impl, op.backward is not None))

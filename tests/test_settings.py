"""nnc._settings: the conv algorithm (a per thread/context setting whose
process default comes from NNC_CONV_WINOGRAD) and the output-buffer cache."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import nnc
from conftest import BACKENDS

needs_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")


def test_conv_algorithm_set_get_and_context():
    before = nnc.get_conv_algorithm()
    with nnc.conv_algorithm("im2col") as name:
        assert name == "im2col" and nnc.get_conv_algorithm() == "im2col"
        with nnc.conv_algorithm("winograd"):
            assert nnc.get_conv_algorithm() == "winograd"
        assert nnc.get_conv_algorithm() == "im2col"
    assert nnc.get_conv_algorithm() == before
    with pytest.raises(RuntimeError):
        with nnc.conv_algorithm("winograd"):
            raise RuntimeError
    assert nnc.get_conv_algorithm() == before


def test_set_conv_algorithm_is_per_thread():
    seen = {}

    def worker():
        nnc.set_conv_algorithm("winograd")
        seen["worker"] = nnc.get_conv_algorithm()

    with nnc.conv_algorithm("im2col"):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert nnc.get_conv_algorithm() == "im2col"
    assert seen["worker"] == "winograd"


@pytest.mark.parametrize("bad", ["fast", "", None, 1, "Winograd"])
def test_unknown_conv_algorithm(bad):
    with pytest.raises(ValueError, match="'auto', 'im2col', 'winograd'"):
        nnc.set_conv_algorithm(bad)
    with pytest.raises(ValueError, match="valid"):
        with nnc.conv_algorithm(bad):
            pass


@pytest.mark.parametrize("env, want", [(None, "auto"), ("0", "im2col"), ("1", "winograd"),
                                       ("", "auto")])
def test_process_default_from_environment(env, want):
    e = dict(os.environ)
    e.pop("NNC_CONV_WINOGRAD", None)
    if env is not None:
        e["NNC_CONV_WINOGRAD"] = env
    code = "import nnc; print(nnc.get_conv_algorithm())"
    out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == want


@needs_cpp
def test_conv_algorithm_reaches_the_kernel():
    """The deep conv's geometry takes Winograd under 'auto' and 'winograd', im2col under
    'im2col', the direct forward and dx under 'direct'; all four agree with the numpy
    backend."""
    from nnc import _nnc
    from nnc.fast_layers import conv_forward_fast
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 16, 8, 8)), rng.standard_normal((16, 16, 3, 3))
    b, cp = rng.standard_normal(16), {"stride": 1, "pad": 1}
    assert _nnc.conv_paths(x, w, 1, 1, 1) == ("im2col", "im2col", "im2col")
    assert _nnc.conv_paths(x, w, 1, 1, 2) == ("winograd", "winograd", "winograd")
    assert _nnc.conv_paths(x, w, 1, 1, 3) == ("direct", "direct", "direct")
    with pytest.raises(ValueError, match="algo"):
        _nnc.conv_paths(x, w, 1, 1, 4)
    with nnc.use_backend("numpy"):
        ref, _ = conv_forward_fast(x, w, b, cp)
    for algo in ("auto", "im2col", "winograd", "direct"):
        with nnc.conv_algorithm(algo), nnc.use_backend("cpp"):
            out, _ = conv_forward_fast(x, w, b, cp)
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)


@needs_cpp
def test_buffer_cache_limit_and_off_switch():
    from nnc import _nnc
    before = nnc.get_buffer_cache()
    assert before["limit"] == 256 << 20 and before["held"] >= 0
    assert nnc.build_info()["buffer_cache"]["limit"] == before["limit"]
    try:
        x = np.ones(1 << 20, np.float32)  # a 4 MB output
        nnc.set_buffer_cache(0)
        nnc.set_buffer_cache(64 << 20)
        out = _nnc.relu_forward(x)
        assert nnc.get_buffer_cache()["held"] == 0
        del out
        assert nnc.get_buffer_cache() == {"limit": 64 << 20, "held": 4 << 20}
        out = _nnc.relu_forward(x)  # takes the block back
        assert nnc.get_buffer_cache()["held"] == 0
        del out
        nnc.set_buffer_cache(0)  # off, and frees what it held
        assert nnc.get_buffer_cache() == {"limit": 0, "held": 0}
        out = _nnc.relu_forward(x)
        del out
        assert nnc.get_buffer_cache()["held"] == 0
        np.testing.assert_array_equal(_nnc.relu_forward(x), x)  # still works without it
        nnc.set_buffer_cache(16 << 20)
        outs = [_nnc.relu_forward(x) for _ in range(6)]
        del outs  # 24 MB freed: the oldest go so that at most 16 MB stay
        assert nnc.get_buffer_cache() == {"limit": 16 << 20, "held": 16 << 20}
        nnc.set_buffer_cache(6 << 20)  # lowering the limit frees the oldest blocks
        assert nnc.get_buffer_cache() == {"limit": 6 << 20, "held": 4 << 20}
    finally:
        nnc.set_buffer_cache(before["limit"])


def test_set_buffer_cache_rejects_bad_values():
    before = nnc.get_buffer_cache()["limit"]
    for bad, exc in [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]:
        with pytest.raises(exc):
            nnc.set_buffer_cache(bad)
    assert nnc.get_buffer_cache()["limit"] == before
    nnc.set_buffer_cache(np.int64(before))

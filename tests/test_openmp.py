"""Issue 13, beside PyTorch: nnc notices OpenMP runtimes that were loaded
before it (and so never saw its OMP_WAIT_POLICY), reports them in
build_info() and warns once when their threads spin. Each case runs in a
fresh interpreter, since a runtime reads the policy only when it loads."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import nnc
from nnc import _openmp

from conftest import needs_cpp

REPORT = ("import json, warnings\n"
          "with warnings.catch_warnings(record=True) as w:\n"
          "    warnings.simplefilter('always')\n"
          "    import nnc\n"
          "info = nnc.build_info()\n"
          "print(json.dumps({'warnings': [str(x.message) for x in w if "
          "issubclass(x.category, RuntimeWarning)], **info['omp_runtimes']}))\n")


def run(prelude="", policy=None):
    # (this process's own import of nnc put its defaults in os.environ)
    env = {k: v for k, v in os.environ.items() if k not in _openmp.DEFAULT_POLICY}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    proc = subprocess.run([sys.executable, "-c", prelude + REPORT], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_alone_nnc_sets_the_passive_policy_and_does_not_warn():
    r = run()
    assert r["warnings"] == []
    assert r["before_nnc"] == []
    assert r["wait_policy"] == "PASSIVE"   # nnc's default: a short spin, then sleep
    assert r["spin_count"] == "10000"
    assert _openmp.DEFAULT_POLICY == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}
    if "cpp" in nnc.available_backends():
        assert any("gomp" in os.path.basename(p) for p in r["loaded"])


@pytest.fixture
def foreign_runtime(tmp_path):
    """A copy of nnc's libgomp under another name, as torch bundles one."""
    ours = [p for p in _openmp.loaded_runtimes() if "gomp" in os.path.basename(p)]
    if not ours:
        pytest.skip("no libgomp mapped in this process")
    copy = tmp_path / "libgomp-0123abcd.so.1"
    shutil.copy(ours[0], copy)
    return str(copy)


@needs_cpp
def test_a_runtime_loaded_first_with_the_policy_unset_gets_one_warning(foreign_runtime):
    r = run(f"import ctypes; ctypes.CDLL({foreign_runtime!r})\n")
    assert r["before_nnc"] == [foreign_runtime]
    assert foreign_runtime in r["loaded"]
    assert len(r["warnings"]) == 1
    msg = r["warnings"][0]
    assert "libgomp-0123abcd.so.1" in msg and "OMP_WAIT_POLICY=PASSIVE" in msg
    assert "KMP_BLOCKTIME" not in msg


@needs_cpp
@pytest.mark.parametrize("policy", ["PASSIVE", "ACTIVE"])
def test_a_policy_the_user_chose_is_kept_without_a_warning(foreign_runtime, policy):
    r = run(f"import ctypes; ctypes.CDLL({foreign_runtime!r})\n", policy=policy)
    assert r["warnings"] == []
    assert r["before_nnc"] == [foreign_runtime]
    assert r["wait_policy"] == policy
    assert r["spin_count"] is None   # nnc adds no spin to a policy the user chose


def test_spin_warning_names_intels_blocktime_too():
    assert _openmp.spin_warning([], None) is None
    assert _openmp.spin_warning(["/x/libiomp5.so"], "PASSIVE") is None
    msg = _openmp.spin_warning(["/opt/lib/libiomp5.so"], None)
    assert "libiomp5.so" in msg and "KMP_BLOCKTIME=0" in msg


def test_runtime_names():
    for name in ("libgomp.so.1", "libgomp-a34b3233.so.1", "libiomp5.so", "libomp.so.5",
                 "libgomp.so.1.0.0"):
        assert _openmp._RUNTIME.match(name), name
    for name in ("libgompx.so", "libopenblas.so", "libompi.so.40", "libc.so.6"):
        assert not _openmp._RUNTIME.match(name), name


def test_torch_first():
    """The real case, where torch is installed: torch's bundled runtime is
    loaded before nnc, and only an unset policy warns."""
    pytest.importorskip("torch")
    r = run("import torch\n")
    if not r["before_nnc"]:
        pytest.skip("this torch build loads no OpenMP runtime at import")
    assert len(r["warnings"]) == 1
    assert run("import torch\n", policy="PASSIVE")["warnings"] == []

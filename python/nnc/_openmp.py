"""Which OpenMP runtimes share this process, and whether their idle threads spin.

An OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when it loads. Unset, idle
worker threads spin before they sleep (libgomp about 300,000 polls, Intel's
and LLVM's runtimes 200 ms), and a spinning pool takes the cores from the
next parallel region of any other pool: with PyTorch imported first, nnc's
affine took 1.34x PyTorch's time when their calls alternated, and a PyTorch
FC step 290 ms instead of 7.8. nnc's own ``setdefault`` at import comes too
late for a runtime that is already loaded, so nnc notes which runtimes were
there before it, reports them in ``build_info()`` and warns once.
"""
import os
import re

# nnc's idle-thread policy, set at import where the user set no
# OMP_WAIT_POLICY: a short spin, then sleep. PASSIVE alone (a spin count of
# 0) makes every parallel region wake its workers through the kernel, which
# cost 60-80 us a region on a 2-core KVM guest (a 200K-value relu: 80 us on
# 2 threads against 24 us on 1); 10,000 polls (libgomp's own estimate: 0.1
# ms) keep workers awake between the back-to-back regions of a training step
# (a batch-10 CNN step 3.4 -> 1.9 ms, the word model's 2.0 -> 0.9 ms) and
# still free the cores for another pool soon after: nnc's and PyTorch's
# steps alternating in one process took the sum of their times alone.
# Read by every libgomp that loads after nnc, PyTorch's bundled copy too.
DEFAULT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}

# libgomp (GCC; PyTorch's wheels bundle a renamed copy, libgomp-<hash>.so),
# libiomp5 (Intel), libomp (LLVM)
_RUNTIME = re.compile(r"^lib(gomp|iomp5|omp)([-.].*)?\.so")


def loaded_runtimes():
    """The OpenMP runtime libraries mapped into this process (paths, sorted);
    [] where /proc/self/maps does not exist."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[5] for line in maps.splitlines()
             if line.count(" ") >= 5 and "/" in line}
    return sorted(p for p in paths if _RUNTIME.match(os.path.basename(p)))


def spin_warning(before, user_policy):
    """The warning to give when runtimes in `before` (loaded ahead of nnc)
    read an OMP_WAIT_POLICY the user left unset, else None."""
    if not before or user_policy is not None:
        return None
    names = ", ".join(os.path.basename(p) for p in before)
    intel = any("iomp" in os.path.basename(p) for p in before)
    policy = " ".join(f"{k}={v}" for k, v in DEFAULT_POLICY.items())
    return (f"nnc: an OpenMP runtime ({names}) was loaded before nnc with OMP_WAIT_POLICY "
            f"unset, so its idle threads spin and take the cores from nnc's kernels (and from "
            f"its own small ops); alternating calls can run several times slower. Set "
            f"{policy}{' KMP_BLOCKTIME=0' if intel else ''} in the "
            f"environment before Python starts, or import nnc before torch. "
            f"nnc.build_info() lists the runtimes.")

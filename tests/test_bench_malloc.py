"""The benchmarks' glibc malloc settings (nnc.bench.malloc)."""
import subprocess
import sys

from nnc.bench import malloc


def test_child_env_adds_the_settings_and_keeps_the_users():
    env = malloc.child_env({"PATH": "/bin", "MALLOC_TRIM_THRESHOLD_": "0"})
    assert env["PATH"] == "/bin"
    assert env["MALLOC_TRIM_THRESHOLD_"] == "0"            # the user's value wins
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)


def test_apply_in_process_keeps_large_blocks_on_the_heap():
    # in a child: mallopt changes the whole process
    code = ("import sys; from nnc.bench import malloc; note = malloc.apply_in_process(); "
            "print(note)")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    if sys.platform.startswith("linux") and "defaults" not in out:
        assert out == "malloc: mmap threshold 32 MiB, trim threshold 256 MiB (both libraries)"
    env_set = dict(env, **malloc.MALLOC_SETTINGS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env_set, check=True).stdout.strip()
    assert out == "malloc: the environment's settings"

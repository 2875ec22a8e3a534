#!/usr/bin/env bash
# Build nnc with AddressSanitizer + UndefinedBehaviorSanitizer into a fresh
# venv (its own build dir) and run the test suite under it.
#
#   tools/sanitize.sh                                   # the whole test suite
#   tools/sanitize.sh tests/test_norm.py -k layernorm   # or these pytest arguments
#
# Environment:
#   NNC_SANITIZE        the -fsanitize= list (default address,undefined)
#   NNC_SANITIZE_BUILD  build dir, kept between runs so a rerun only recompiles
#                       what changed (default build/sanitize)
#   NNC_SANITIZE_VENV   venv dir (default: a fresh temporary one, removed on exit)
#
# Any sanitizer report ends the process that hit it: pytest itself, or the
# subprocess a test started (which fails that test). The script exits
# non-zero either way, and the report is on stderr (pytest runs with
# --capture=sys, so reports written to file descriptor 2 are never swallowed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sanitize=${NNC_SANITIZE:-address,undefined}
build=${NNC_SANITIZE_BUILD:-$root/build/sanitize}

if [[ -n ${NNC_SANITIZE_VENV:-} ]]; then
  venv=$NNC_SANITIZE_VENV
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  venv=$tmp/venv
fi
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
py=$venv/bin/python

# No build isolation, so that the build uses a nanobind that runs its stub
# generator with the ASan runtime preloaded (>= 2.7, see CMakeLists.txt).
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "nanobind>=2.7" "scikit-build-core>=0.10" "scipy-openblas32>=0.3.27"
"$py" -m pip install -q --no-build-isolation \
  -C cmake.define.NNC_SANITIZE="$sanitize" -C install.strip=false -C build-dir="$build" \
  ".[test]"

supp=$root/tools/sanitizer.supp
# detect_leaks=0: Python's own allocations are never freed at exit, so leak
# checking would report the interpreter, not nnc (tests/test_reliability.py
# checks nnc's memory instead). allocator_may_return_null=1: an allocation too
# large for the machine fails as it does without ASan (std::bad_alloc, which
# Python sees as MemoryError) instead of ASan aborting the process. Stop at the
# first report, with a whole stack.
asan="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:suppressions=$supp"
ubsan="print_stacktrace=1:halt_on_error=1:suppressions=$supp"
preload=
if [[ ,$sanitize, == *,address,* ]]; then
  # The ASan runtime must be the first library loaded, and python is not
  # linked against it. libstdc++ goes right after it: ASan wraps __cxa_throw
  # and looks up the real one when it starts, and python does not link
  # libstdc++ either, so without it the first C++ exception (every
  # TypeError/ValueError a binding raises) stops ASan with "CHECK failed:
  # real___cxa_throw".
  preload="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
  for lib in $preload; do
    [[ -f $lib ]] || { echo "sanitize.sh: $lib not found" >&2; exit 1; }
  done
fi

# An ASan build refuses to import without its runtime preloaded: if it does
# import, this is not the build we meant to test.
if [[ -n $preload ]] && (cd / && "$py" -c "import nnc._nnc") >/dev/null 2>&1; then
  echo "sanitize.sh: nnc imports without the ASan runtime: not a sanitizer build" >&2
  exit 1
fi

cd "$root"
echo "sanitize.sh: -fsanitize=$sanitize: pytest $*"
env LD_PRELOAD="$preload" ASAN_OPTIONS="$asan" UBSAN_OPTIONS="$ubsan" \
  "$py" -m pytest -q -ra -p no:cacheprovider --capture=sys "$@"

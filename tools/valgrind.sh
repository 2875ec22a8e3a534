#!/usr/bin/env bash
# Run tools/valgrind_ops.py (every native op once per dtype, checked against
# NumPy, and a Solver epoch on tiny data) under valgrind's memcheck, against
# a build with symbols in its own venv and build dir.
#
#   tools/valgrind.sh            # exit status 0: no memcheck error
#
# Environment:
#   NNC_VALGRIND_BUILD  build dir, kept between runs (default build/valgrind)
#   NNC_VALGRIND_VENV   venv dir (default: a fresh temporary one, removed on exit)
#   VALGRIND_ARGS       more valgrind options, e.g. --gen-suppressions=all to
#                       print a suppression for each report
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${NNC_VALGRIND_BUILD:-$root/build/valgrind}
command -v valgrind >/dev/null || { echo "valgrind.sh: install valgrind (apt-get install valgrind)" >&2; exit 1; }

if [[ -n ${NNC_VALGRIND_VENV:-} ]]; then
  venv=$NNC_VALGRIND_VENV
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  venv=$tmp/venv
fi
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
py=$venv/bin/python

# RelWithDebInfo: the release optimization (-O3 comes from CMakeLists.txt)
# with -g, and nanobind does not strip it, so reports name file and line.
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "nanobind>=2.4" "scikit-build-core>=0.10" "scipy-openblas32>=0.3.27"
"$py" -m pip install -q --no-build-isolation -C cmake.build-type=RelWithDebInfo \
  -C install.strip=false -C build-dir="$build" .

# PYTHONMALLOC=malloc: CPython's small-object allocator reads memory it did
# not initialize by design; with plain malloc memcheck sees every block.
# Leak checking is off: the interpreter never frees its own memory at exit
# (tests/test_reliability.py::test_no_leak checks nnc's memory instead).
# OMP_NUM_THREADS=2 keeps the parallel code paths (valgrind runs the threads
# one at a time).
cd "$root/tools"
env PYTHONMALLOC=malloc OMP_NUM_THREADS=2 \
  valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --track-origins=yes \
  --num-callers=30 --suppressions="$root/tools/valgrind.supp" ${VALGRIND_ARGS:-} \
  "$py" valgrind_ops.py

#!/usr/bin/env bash
# Sanitizer run of the C++ core (issue 14): builds the core, the GoogleTest
# binary and the Python module with sanitizers in their own build folder, runs
# the GoogleTest binary, then the Python tests of the compiled ops against the
# sanitized module. The normal install is left alone: the sanitized package is
# put first on PYTHONPATH (a folder of symlinks to python/ragkernels plus the
# sanitized _core), and the check below proves that it is the one imported.
#
#   tools/sanitize.sh [address|thread] [pytest arguments...]
#
# address (default): ASan + UBSan; any report fails the run (UBSan built with
#   -fno-sanitize-recover, halt_on_error). thread: TSan (tools/tsan.sh).
# Environment: RAGKERNELS_JOBS (build jobs, default all cores),
#   RAGKERNELS_SANITIZE_BUILD (build folder, default build/sanitize/<asan|tsan>;
#   two levels deep so tests/test_cpp.py's build/*/ragkernels_core_tests glob
#   never picks a sanitized binary), RAGKERNELS_SANITIZE_GTEST=0 skips the
#   GoogleTest binary, RAGKERNELS_SANITIZE_PYTHON=0 the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=${1:-address}
[ $# -gt 0 ] && shift
case "$MODE" in
  address) NAME=asan; RUNTIME_LIB=libasan.so ;;
  thread) NAME=tsan; RUNTIME_LIB=libtsan.so ;;
  *) echo "usage: tools/sanitize.sh [address|thread] [pytest args...]" >&2; exit 2 ;;
esac
BUILD=${RAGKERNELS_SANITIZE_BUILD:-build/sanitize/$NAME}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
JOBS=${RAGKERNELS_JOBS:-$(nproc)}
PYTHON=${PYTHON:-python}

# The Python tests of the compiled ops (the Hugging Face and notebook tests
# run models, not our kernels, and take minutes even without sanitizers).
PY_TESTS=(tests/test_core.py tests/test_sparse.py tests/test_dense.py tests/test_metrics.py
          tests/test_fusion.py tests/test_text.py tests/test_segment.py tests/test_select_ops.py
          tests/test_select_compress.py tests/test_rerank.py tests/test_rerank_term_match.py
          tests/test_rerank_window.py tests/test_prf.py tests/test_formats.py tests/test_data.py
          tests/test_spec_tree.py tests/test_spec_drafters.py tests/test_spec_datastore.py tests/test_spec_trie.py
          tests/test_kv.py
          # 100 s without sanitizers, 250 s with: ranx's numba compilation, not our
          # code (rk.fusion runs on SciFact in test_ranx_parity_scifact_bm25_runs).
          --deselect tests/test_fusion.py::test_ranx_parity_on_scifact_bm25_and_dense)

start=$SECONDS
echo "== sanitize ($MODE): building in $BUILD with $JOBS jobs"
"$PYTHON" -c "import pybind11" 2>/dev/null || "$PYTHON" -m pip install -q "pybind11>=2.12"
GENERATOR=()
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then GENERATOR=(-G Ninja); fi
# -O1 -g1: ASan's advice (fast enough, line numbers in reports); NDEBUG as in
# the release build, so the code under test is the code that ships.
cmake -S . -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DRAGKERNELS_SANITIZE="$MODE" \
  -DRAGKERNELS_BUILD_PYTHON=ON -DRAGKERNELS_CUDA=OFF -DRAGKERNELS_BUILD_TESTS=ON \
  -DRAGKERNELS_BUILD_BENCHMARKS=OFF -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD" --parallel "$JOBS" --target _core ragkernels_core_tests
echo "== sanitize ($MODE): built in $((SECONDS - start)) s"

CXX=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
RUNTIME=$("$CXX" -print-file-name="$RUNTIME_LIB")
[ -f "$RUNTIME" ] || { echo "sanitize: $RUNTIME_LIB not found by $CXX" >&2; exit 1; }
# libstdc++ preloaded too: python does not link it, and a sanitizer runtime
# loaded before it finds no __cxa_throw to intercept ("CHECK failed ...
# real___cxa_throw", an abort at the first C++ exception of any extension).
STDCXX=$("$CXX" -print-file-name=libstdc++.so.6)
# Python itself is not instrumented: leaks are by design there (detect_leaks=0);
# any error report stops the run with a failure (halt_on_error, abort_on_error).
# allocator_may_return_null: a huge request throws std::bad_alloc (the tests
# check MemoryError) instead of ASan's allocation-size-too-big report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tools/tsan.supp}

if [ "${RAGKERNELS_SANITIZE_GTEST:-1}" != 0 ]; then
  echo "== sanitize ($MODE): GoogleTest"
  t=$SECONDS
  work=$(mktemp -d)
  (cd "$work" && "$BUILD/ragkernels_core_tests" --gtest_brief=1)
  rm -rf "$work"
  echo "== sanitize ($MODE): GoogleTest passed in $((SECONDS - t)) s"
fi

if [ "${RAGKERNELS_SANITIZE_PYTHON:-1}" != 0 ]; then
  OVERLAY=$BUILD/overlay
  rm -rf "$OVERLAY"
  mkdir -p "$OVERLAY/ragkernels"
  for entry in "$ROOT"/python/ragkernels/*; do
    case "$entry" in *.so | */__pycache__) ;; *) ln -s "$entry" "$OVERLAY/ragkernels/" ;; esac
  done
  ln -s "$BUILD"/_core*.so "$OVERLAY/ragkernels/"
  # An editable install (pip install -e) puts an import hook first on
  # sys.meta_path, ahead of PYTHONPATH; sitecustomize runs after the .pth
  # files and takes that hook out, so the folder above wins.
  cat >"$OVERLAY/sitecustomize.py" <<'PY'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != "_editable_skbc_ragkernels"]
PY
  export PYTHONPATH=$OVERLAY${PYTHONPATH:+:$PYTHONPATH}
  export LD_PRELOAD=$RUNTIME:$STDCXX${LD_PRELOAD:+:$LD_PRELOAD}
  # The peers the tests compare against are not instrumented, but ASan sees
  # their allocations: pytrec_eval frees new[] memory with free()
  # (src/pytrec_eval.cpp:414), and suppressions cannot name that report. The
  # GoogleTest run above keeps the check for the core.
  [ "$MODE" = address ] && export ASAN_OPTIONS=$ASAN_OPTIONS:alloc_dealloc_mismatch=0
  # Under TSan the peers' own thread pools (OpenBLAS in numpy, OpenMP in faiss
  # and torch, rayon in Hugging Face tokenizers) synchronise in code TSan
  # cannot see and report false races; one thread each leaves ours to check.
  if [ "$MODE" = thread ]; then
    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1 \
      TOKENIZERS_PARALLELISM=false
  fi
  "$PYTHON" - "$OVERLAY" <<'PY'
import sys, ragkernels._core as core
assert core.__file__.startswith(sys.argv[1]), f"the sanitized module is not the one imported: {core.__file__}"
print("== sanitize: ragkernels._core is", core.__file__)
PY
  # SciFact's MiniLM embeddings (tests/conftest.py) are model work, not ours:
  # reuse those the plain test run cached (4 minutes to make under ASan).
  if [ -d "$ROOT/.pytest_cache/d/ragkernels" ]; then
    mkdir -p "$BUILD/pytest_cache/d"
    cp -r "$ROOT/.pytest_cache/d/ragkernels" "$BUILD/pytest_cache/d/"
  fi
  echo "== sanitize ($MODE): Python tests"
  t=$SECONDS
  if [ $# -gt 0 ]; then set -- "$@"; else set -- "${PY_TESTS[@]}"; fi
  # --capture=sys: a sanitizer writes its report to file descriptor 2 and
  # aborts; pytest's default fd capture would swallow the report with it.
  "$PYTHON" -m pytest -q --capture=sys --durations=15 -o cache_dir="$BUILD/pytest_cache" "$@"
  echo "== sanitize ($MODE): Python tests passed in $((SECONDS - t)) s"
fi
echo "== sanitize ($MODE): clean, $((SECONDS - start)) s in all"

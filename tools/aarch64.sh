#!/usr/bin/env bash
# The C++ core on aarch64 (issue 14): cross-compiles the core and its GoogleTest
# binary with the same CMakeLists.txt (aarch64-linux-gnu-g++, so the baseline
# copies of the kernels, with NEON, and no x86 target_clones), and runs the
# tests under qemu-user. Also compiles the pybind11 bindings for aarch64
# (compile only: no aarch64 Python here to import them).
#
#   tools/aarch64.sh            # needs: apt-get install g++-aarch64-linux-gnu qemu-user
#
# Environment: RAGKERNELS_JOBS (build jobs, default all cores),
#   RAGKERNELS_AARCH64_BUILD (build folder, default build/cross/aarch64: two
#   levels deep, so tests/test_cpp.py never picks this binary).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${RAGKERNELS_AARCH64_BUILD:-build/cross/aarch64}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
JOBS=${RAGKERNELS_JOBS:-$(nproc)}
PYTHON=${PYTHON:-python}
SYSROOT=/usr/aarch64-linux-gnu
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "tools/aarch64.sh: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2; exit 2; }
done
[ -d /usr/src/googletest ] || { echo "tools/aarch64.sh: /usr/src/googletest not found (apt-get install libgtest-dev)" >&2; exit 2; }

start=$SECONDS
mkdir -p "$BUILD"
cat > "$BUILD/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH $SYSROOT $BUILD/gtest-install)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;$SYSROOT)
EOF
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)

# GoogleTest for aarch64, from the sources libgtest-dev ships.
if [ ! -f "$BUILD/gtest-install/lib/cmake/GTest/GTestConfig.cmake" ]; then
  [ -f "$BUILD/gtest/CMakeCache.txt" ] || cmake -S /usr/src/googletest -B "$BUILD/gtest" "${GENERATOR[@]}" \
    -Wno-dev -DCMAKE_TOOLCHAIN_FILE="$BUILD/toolchain.cmake" -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF \
    -DCMAKE_INSTALL_PREFIX="$BUILD/gtest-install" >/dev/null
  cmake --build "$BUILD/gtest" --parallel "$JOBS" --target install >/dev/null
fi

# The core, its tests and the bindings, warnings as errors.
"$PYTHON" -c "import pybind11" 2>/dev/null || "$PYTHON" -m pip install -q "pybind11>=2.12"
PY_INCLUDE=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
[ -f "$BUILD/core/CMakeCache.txt" ] || GEN=("${GENERATOR[@]}")
cmake -S . -B "$BUILD/core" "${GEN[@]+"${GEN[@]}"}" -DCMAKE_TOOLCHAIN_FILE="$BUILD/toolchain.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DRAGKERNELS_BUILD_TESTS=ON -DRAGKERNELS_BUILD_BENCHMARKS=OFF \
  -DRAGKERNELS_BUILD_PYTHON=OFF -DRAGKERNELS_CUDA=OFF -DRAGKERNELS_WERROR=ON >/dev/null
cmake --build "$BUILD/core" --parallel "$JOBS" --target ragkernels_core_tests
echo "== aarch64: core and tests built in $((SECONDS - start)) s"

# The bindings: the host's Python headers are the same for any LP64 Linux
# (pyconfig.h's sizes agree), enough to prove the sources compile for aarch64.
t=$SECONDS
PYBIND11_INCLUDE=$("$PYTHON" -c "import pybind11; print(pybind11.get_include())")
flags=(-std=c++17 -fsyntax-only -Wall -Wextra -Werror -I"$ROOT/csrc" -I"$PYBIND11_INCLUDE" -I"$PY_INCLUDE")
printf '%s\n' csrc/bindings/*.cpp | xargs -P "$JOBS" -I{} aarch64-linux-gnu-g++ "${flags[@]}" {}
echo "== aarch64: bindings compiled in $((SECONDS - t)) s"

t=$SECONDS
# RAGKERNELS_DATA as in the Python tests: the trec_eval parity test reads it.
export RAGKERNELS_DATA=${RAGKERNELS_DATA:-$ROOT/../shared/data}
qemu-aarch64 -L "$SYSROOT" "$BUILD/core/ragkernels_core_tests" --gtest_brief=1
echo "== aarch64: GoogleTest passed under qemu in $((SECONDS - t)) s; $((SECONDS - start)) s in all"

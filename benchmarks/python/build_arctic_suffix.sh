#!/usr/bin/env bash
# Fetch arctic-inference's source distribution from PyPI and build only its
# SuffixDecoding extension (csrc/suffix_decoding -> arctic_inference.suffix_decoding._C),
# outside this repository, as the peer of bench_spec.py's drafter-cost rows.
#
#   bash benchmarks/python/build_arctic_suffix.sh            # prints the folder for sys.path
#   SITE=$(bash benchmarks/python/build_arctic_suffix.sh)    # progress goes to stderr
#   python -c "import sys; sys.path.insert(0, '$SITE'); from arctic_inference.suffix_decoding import SuffixDecodingCache"
#
# Nothing of arctic-inference is kept in this repository: the sdist is downloaded into
# the cache folder, and the folder printed last holds a minimal `arctic_inference`
# package (its empty __init__.py, suffix_decoding/__init__.py and cache.py, copied from
# the sdist unchanged, Apache-2.0, LICENSE beside them) plus the built _C module. That
# is enough for `from arctic_inference.suffix_decoding import SuffixDecodingCache`
# without vLLM or torch (cache.py needs numpy only).
#
# Build flags are arctic's own: its setup.py runs `cmake csrc/suffix_decoding
# -DCMAKE_BUILD_TYPE=Release [-GNinja]` then `cmake --build .`, and its CMakeLists.txt
# sets C++20 and `nanobind_add_module(_C NOMINSIZE bindings.cc suffix_tree.cc)` against
# nanobind==2.9.2 (pinned in its pyproject.toml). With CMake's Release defaults and
# nanobind's that is `c++ -O3 -DNDEBUG -std=gnu++20 -fPIC -fvisibility=hidden
# -fno-stack-protector -ffunction-sections -fdata-sections` and a link with
# `-shared -Wl,-s -Wl,--gc-sections` (no -march, no LTO; nanobind itself as a static
# library). Extra CMake arguments from $CMAKE_ARGS are appended, as arctic's setup.py
# does. The exact commands of a build are written to BUILD_INFO.txt in the printed folder.
#
# Environment:
#   ARCTIC_SUFFIX_CACHE  cache folder (default ${XDG_CACHE_HOME:-~/.cache}/ragkernels/arctic-suffix)
#   ARCTIC_VERSION       arctic-inference version (default 0.3.0; sha256 checked for 0.3.0)
#   ARCTIC_SDIST         a local arctic_inference-<version>.tar.gz to use instead of downloading
#   NANOBIND_VERSION     default 2.9.2 (what arctic-inference 0.3.0 pins)
#   PYTHON               interpreter to build for (default: python3 on PATH)
#   JOBS                 parallel compile jobs (default 2)
#   FORCE=1              rebuild even if the module is already built
set -euo pipefail

VERSION=${ARCTIC_VERSION:-0.3.0}
NANOBIND_VERSION=${NANOBIND_VERSION:-2.9.2}
CACHE=${ARCTIC_SUFFIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ragkernels/arctic-suffix}
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
JOBS=${JOBS:-2}
SHA256_0_3_0=7f22e3e1b1071c6061c0d6951be17c0fb50b08d06d6e543144c8f52faba60a36

log() { echo "[build_arctic_suffix] $*" >&2; }

PYTAG=$("$PYTHON" -c 'import sys, sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX") or "")')
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
SITE="$CACHE/site-$VERSION-py$PYVER"
PKG="$SITE/arctic_inference"
STAMP="$SITE/.built"

if [[ "${FORCE:-0}" != 1 && -f "$STAMP" && -f "$PKG/suffix_decoding/_C$PYTAG" ]]; then
    log "already built: $PKG/suffix_decoding/_C$PYTAG (FORCE=1 to rebuild)"
    echo "$SITE"
    exit 0
fi

mkdir -p "$CACHE"
t_start=$(date +%s)

# --- 1. the sdist -------------------------------------------------------------------
SDIST_DIR="$CACHE/sdist"
SDIST="$SDIST_DIR/arctic_inference-$VERSION.tar.gz"
if [[ -n "${ARCTIC_SDIST:-}" ]]; then
    mkdir -p "$SDIST_DIR"
    cp -f "$ARCTIC_SDIST" "$SDIST"
elif [[ ! -f "$SDIST" ]]; then
    log "downloading arctic-inference==$VERSION (sdist) into $SDIST_DIR"
    mkdir -p "$SDIST_DIR"
    # pip prepares the sdist's metadata even for `pip download`. With build isolation it
    # would install the whole build-system list (torch>=2.10, grpcio-tools, cmake, ...)
    # from source under --no-binary :all:, so isolation is off. arctic's setup.py then
    # imports torch at module level, only to read torch.utils.cmake_prefix_path when it
    # builds its CUDA ops; metadata needs none of it, so a stub `torch` is put first on
    # PYTHONPATH for this one pip call (no torch install needed, and no torch import).
    STUB="$CACHE/.pip-metadata-stub"
    mkdir -p "$STUB/torch"
    printf '# stub: arctic setup.py imports torch at top level; unused for metadata\n' \
        > "$STUB/torch/__init__.py"
    PYTHONPATH="$STUB${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pip download \
        "arctic-inference==$VERSION" --no-deps --no-binary :all: --no-build-isolation \
        -d "$SDIST_DIR" >&2
fi
if [[ "$VERSION" == 0.3.0 ]]; then
    got=$(sha256sum "$SDIST" | cut -d' ' -f1)
    if [[ "$got" != "$SHA256_0_3_0" ]]; then
        log "sha256 mismatch for $SDIST: $got (expected $SHA256_0_3_0)"
        exit 1
    fi
fi

SRC="$CACHE/src/arctic_inference-$VERSION"
rm -rf "$SRC"
mkdir -p "$CACHE/src"
tar -xzf "$SDIST" -C "$CACHE/src"
[[ -f "$SRC/csrc/suffix_decoding/CMakeLists.txt" ]] || { log "no csrc/suffix_decoding in $SDIST"; exit 1; }

# --- 2. nanobind (into the cache, not the environment) --------------------------------
NB="$CACHE/nanobind-$NANOBIND_VERSION"
if ! PYTHONPATH="$NB" "$PYTHON" -c "import nanobind, sys; sys.exit(nanobind.__version__ != '$NANOBIND_VERSION')" 2>/dev/null; then
    log "installing nanobind==$NANOBIND_VERSION into $NB"
    rm -rf "$NB"
    "$PYTHON" -m pip install --quiet --no-deps --target "$NB" "nanobind==$NANOBIND_VERSION" >&2
fi

# --- 3. configure and build, as arctic's setup.py does (Release, Ninja when available) ---
BUILD="$CACHE/build-$VERSION-py$PYVER"
rm -rf "$BUILD"
mkdir -p "$BUILD"
GEN=()
if NINJA=$("$PYTHON" -c 'import ninja, os; print(os.path.join(ninja.BIN_DIR, "ninja"))' 2>/dev/null) \
        && [[ -x "$NINJA" ]]; then
    GEN=(-GNinja "-DCMAKE_MAKE_PROGRAM:FILEPATH=$NINJA")
fi
EXTRA=()
if [[ -n "${CMAKE_ARGS:-}" ]]; then read -r -a EXTRA <<< "$CMAKE_ARGS"; fi
log "configuring in $BUILD"
t_cfg=$(date +%s)
PYTHONPATH="$NB${PYTHONPATH:+:$PYTHONPATH}" cmake -S "$SRC/csrc/suffix_decoding" -B "$BUILD" \
    "${GEN[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    "-DPython_EXECUTABLE=$PYTHON" \
    "-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=$BUILD/out" \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    "${EXTRA[@]}" >&2
log "building with $JOBS job(s)"
t_bld=$(date +%s)
cmake --build "$BUILD" --parallel "$JOBS" >&2
t_end=$(date +%s)

SO=$(ls "$BUILD"/out/_C*"$PYTAG" 2>/dev/null | head -n1 || true)
[[ -n "$SO" ]] || SO=$(find "$BUILD" -name "_C*$PYTAG" -type f | head -n1)
[[ -n "$SO" ]] || { log "built module not found under $BUILD"; exit 1; }

# --- 4. the importable folder ---------------------------------------------------------
rm -rf "$SITE"
mkdir -p "$PKG/suffix_decoding"
cp "$SRC/arctic_inference/__init__.py" "$PKG/__init__.py"
cp "$SRC/arctic_inference/suffix_decoding/__init__.py" "$SRC/arctic_inference/suffix_decoding/cache.py" \
   "$PKG/suffix_decoding/"
cp "$SRC/LICENSE" "$SITE/LICENSE.arctic-inference"
cp "$SO" "$PKG/suffix_decoding/"

# Record how it was built (compile command and flags, from the build's own files).
{
    echo "arctic-inference $VERSION, nanobind $NANOBIND_VERSION, python $PYVER ($PYTHON)"
    CXXBIN=$(grep -E '^CMAKE_CXX_COMPILER:' "$BUILD/CMakeCache.txt" | cut -d= -f2-)
    echo "compiler: $CXXBIN ($("$CXXBIN" --version | head -n1))"
    echo "generator: $(grep -E '^CMAKE_GENERATOR:' "$BUILD/CMakeCache.txt" | cut -d= -f2-)"
    echo "configure $((t_bld - t_cfg)) s, build $((t_end - t_bld)) s, total $((t_end - t_start)) s"
    if [[ -f "$BUILD/compile_commands.json" ]]; then cat "$BUILD/compile_commands.json"; fi
} > "$SITE/BUILD_INFO.txt"

# --- 5. check it imports --------------------------------------------------------------
PYTHONPATH="$SITE" "$PYTHON" - <<'EOF' >&2
import numpy as np
from arctic_inference.suffix_decoding import SuffixDecodingCache
c = SuffixDecodingCache(max_tree_depth=64)
c.start_request("r", [1, 2, 3, 4, 5, 1, 2, 3])
d = c.speculate("r", [1, 2], max_spec_tokens=8, max_spec_factor=4.0)
assert d.token_ids[:2] == [3, 4], d
print("[build_arctic_suffix] import ok:", d.token_ids, d.match_len)
EOF
touch "$STAMP"
log "built in $((t_end - t_start)) s (compile+link $((t_end - t_bld)) s): $PKG/suffix_decoding/$(basename "$SO")"
echo "$SITE"

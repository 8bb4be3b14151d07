#!/usr/bin/env bash
# Builds llama.cpp's own `llama-bench` (and `llama-quantize`, `llama-perplexity`,
# `llama-imatrix`, which scripts/quant-vs-llamacpp.sh uses) from source for this machine and
# prints the path of the llama-bench binary on stdout; progress goes to stderr. Idempotent: if
# the binaries are already there it only prints the path (FORCE=1 rebuilds).
#
#   bench="$(scripts/build-llama-bench.sh)"; "$bench" -m model.gguf -p 128 -n 64 -t 2 -o json
#
# Source: llama.cpp as vendored in the llama-cpp-python sdist on PyPI (the only registry that
# carries it here), pinned by LLAMA_CPP_PYTHON_VERSION. Everything lives under .cache/:
#   .cache/dl/llama_cpp_python-VERSION.tar.gz   the sdist
#   .cache/llama.cpp-src                         its vendor/llama.cpp
#   .cache/llama.cpp-build                       the cmake build (bin/llama-bench, llama-quantize,
#                                                llama-perplexity, llama-imatrix)
#   .cache/llama.cpp-tools                       a venv with pip's cmake, used when no cmake >= 3.14
#
# Build: Release, GGML_NATIVE=ON (-march=native: this CPU's AVX-512, VNNI, BF16), OpenMP
# (the default), static libraries, no tests/examples/server/curl/openssl, and only the
# llama-bench, llama-quantize, llama-perplexity and llama-imatrix targets, with -j2 (JOBS=N to
# change).
#
# Disabled: AMX, at build time (-mno-amx-tile -mno-amx-int8 -mno-amx-bf16 after -march=native).
# With AMX compiled in, llama-bench crashes on the first prompt batch here (SIGSEGV,
# si_code SI_KERNEL = #GP, at `ldtilecfg` in ggml_backend_amx_mul_mat). The tile config it
# loads holds palette 1 but zero rows/colsb and stack garbage in rows[8..15]: GCC 12's
# _tile_loadconfig asm declares only the config's first 8 bytes as its memory input
# (`"m" (*((const void **)__config))`), so the optimizer drops the stores of rows/colsb. AMX itself works in this VM (a plain ldtilecfg test passes), so a
# newer compiler might keep it; AMX_OK=1 builds it in anyway. Everything else stays on,
# including the other extra buffer type: Q4_0 weights repacked to Q4_0_8x8 at load (llama-bench
# `--repack 1`, its default). The crash seen in llama_decode through llama-cpp-python (built by
# pip with the same GCC) was most likely this same AMX path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
dl=".cache/dl"
src=".cache/llama.cpp-src"
build=".cache/llama.cpp-build"
tools=".cache/llama.cpp-tools"
jobs="${JOBS:-2}"
bin="$root/$build/bin/llama-bench"
flags=""
[[ "${AMX_OK:-0}" == 1 ]] || flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

targets=(llama-bench llama-quantize llama-perplexity llama-imatrix)
have_all=1
for t in "${targets[@]}"; do [[ -x "$root/$build/bin/$t" ]] || have_all=0; done
if [[ "$have_all" == 1 && "${FORCE:-0}" != 1 \
      && "$(cat "$build/.ember-build" 2>/dev/null)" == "$version $flags" ]]; then
    echo "$bin"
    exit 0
fi
log() { echo "== $*" >&2; }

# A venv for pip (the sdist download) and, if needed, cmake.
if [[ ! -x "$tools/bin/pip" ]]; then
    log "creating $tools"
    python3 -m venv "$tools" >&2
fi

sdist="$dl/llama_cpp_python-$version.tar.gz"
if [[ ! -s "$sdist" ]]; then
    log "downloading the llama-cpp-python $version sdist (~75 MB) into $dl"
    mkdir -p "$dl"
    # --no-binary for this one package only: with :all: pip would build cmake from source
    # just to read the sdist's metadata.
    "$tools/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$version" -d "$dl" >&2
fi

if [[ ! -f "$src/CMakeLists.txt" || ! -f "$src/.sdist-$version" ]]; then
    log "extracting vendor/llama.cpp into $src"
    rm -rf "$src" "$src.tmp"
    mkdir -p "$src.tmp"
    tar xzf "$sdist" -C "$src.tmp" --strip-components=3 "llama_cpp_python-$version/vendor/llama.cpp"
    touch "$src.tmp/.sdist-$version"
    mv "$src.tmp" "$src"
    rm -rf "$build"
fi

cmake_ok() { "$1" --version 2>/dev/null | awk 'NR == 1 { split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 14)) }'; }
if cmake_ok cmake; then
    cmake=cmake
else
    if ! cmake_ok "$tools/bin/cmake"; then
        log "installing cmake into $tools"
        "$tools/bin/pip" install --quiet cmake >&2
    fi
    cmake="$tools/bin/cmake"
fi

log "configuring $build"
"$cmake" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON \
    -Wno-dev >&2
log "building ${targets[*]} with -j$jobs (several minutes)"
"$cmake" --build "$build" --config Release -j "$jobs" --target "${targets[@]}" >&2
for t in "${targets[@]}"; do
    [[ -x "$root/$build/bin/$t" ]] || { echo "build-llama-bench: $build/bin/$t was not built" >&2; exit 1; }
done
echo "$version $flags" > "$build/.ember-build"
echo "$bin"

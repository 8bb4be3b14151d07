#!/usr/bin/env bash
# Builds ik_llama.cpp's `llama-bench` (github.com/ikawrakow/ik_llama.cpp, the llama.cpp fork
# with its own CPU kernels) for scripts/bench-recurrent.sh and prints its path on stdout;
# progress goes to stderr. Idempotent (FORCE=1 rebuilds).
#
#   IK_BENCH="$(scripts/build-ik-llama-bench.sh)" scripts/bench-recurrent.sh
#
# Source: IK_SRC (default .cache/ik_llama.cpp-src; its commit in .commit when known), else a
# shallow `git clone` of the repository into it (needs network). Build: .cache/ik_llama.cpp-build,
# Release, GGML_NATIVE=ON (-march=native), OpenMP, static, no curl/tests/server, only the
# llama-bench target, -j2 (JOBS=N). The CPU kernels (iqk) take several minutes on 2 cores.
# As of commit 8337e4cd (2026-08-15) it knows the qwen35 architecture but not lfm2.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
src="${IK_SRC:-.cache/ik_llama.cpp-src}"
build=".cache/ik_llama.cpp-build"
bin="$root/$build/bin/llama-bench"
if [[ -x "$bin" && "${FORCE:-0}" != 1 ]]; then echo "$bin"; exit 0; fi
log() { echo "== $*" >&2; }
if [[ ! -f "$src/CMakeLists.txt" ]]; then
    log "cloning ik_llama.cpp into $src"
    git clone --depth 1 https://github.com/ikawrakow/ik_llama.cpp "$src" >&2
    git -C "$src" rev-parse HEAD > "$src/.commit"
fi
cmake=cmake
command -v cmake >/dev/null || cmake=.cache/llama.cpp-tools/bin/cmake  # scripts/build-llama-bench.sh's
log "configuring $build"
"$cmake" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -Wno-dev >&2
log "building llama-bench with -j${JOBS:-2} (several minutes)"
"$cmake" --build "$build" --config Release -j "${JOBS:-2}" --target llama-bench >&2
[[ -x "$bin" ]] || { echo "build-ik-llama-bench: $bin was not built" >&2; exit 1; }
echo "$bin"

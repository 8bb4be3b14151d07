#!/usr/bin/env bash
# README's edge-binary claims, checked: `cargo build --profile edge --no-default-features
# --features runtime-only` gives a stripped binary of at most 1.5 MiB, and the size README's
# table states is within 5% of what this toolchain builds (kernel work moves it by a few %).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --profile edge --no-default-features --features runtime-only --quiet
bin=target/edge/ember
size=$(stat -c %s "$bin")
limit=$((3 * 1024 * 1024 / 2))
echo "edge binary: $size bytes (limit $limit)"

if readelf -S -W "$bin" | grep -q '\.symtab'; then
    echo "FAIL: $bin still has a symbol table (the edge profile must strip it)"
    exit 1
fi
if [ "$size" -gt "$limit" ]; then
    echo "FAIL: the edge binary is over 1.5 MiB"
    exit 1
fi
row=$(grep -F '| `--profile edge --no-default-features --features runtime-only` |' README.md || true)
claim=$(sed -n 's/.*| \([0-9,]*\) bytes.*/\1/p' <<<"$row" | tr -d ,)
if [ -z "$claim" ]; then
    echo "FAIL: README's edge-binary table has no size for the runtime-only build"
    exit 1
fi
if [ $((size * 100)) -lt $((claim * 95)) ] || [ $((size * 100)) -gt $((claim * 105)) ]; then
    echo "FAIL: README says $claim bytes; this build is $size (more than 5% apart: update README)"
    exit 1
fi
echo "ok: stripped, within 1.5 MiB, and within 5% of README's $claim bytes"

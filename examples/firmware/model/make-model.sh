#!/usr/bin/env bash
# Rebuilds tiny-q8_0.ember, the model the firmware embeds: a 3-layer, 64-wide character-level
# Llama trained on tiny Shakespeare by `ember train` (about a minute on 2 cores), then
# converted to q8_0. The committed file came from exactly these commands, so CI needs no
# training. Usage: examples/firmware/model/make-model.sh [CORPUS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
data=${1:-../shared/data/tinyshakespeare.txt}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build --release --quiet
ember=${CARGO_TARGET_DIR:-target}/release/ember
"$ember" train --data "$data" --out "$out/tiny" --force --quiet \
    --tokenizer char --layers 3 --heads 2 --kv-heads 2 --dim 64 --ffn 192 --ctx 64 \
    --steps 3000 --batch 12 --lr 2e-3 --min-lr 2e-4 --warmup 100 --eval-every 0 \
    --seed 1337 --threads 2
# Row-major: a Cortex-M4 has no SIMD level, and the scalar row dots are the fast path there
# (rows16 serves the SIMD kernels).
"$ember" convert "$out/tiny" -o examples/firmware/model/tiny-q8_0.ember \
    --quant q8_0 --layout row-major --force --quiet
"$ember" inspect --memory examples/firmware/model/tiny-q8_0.ember

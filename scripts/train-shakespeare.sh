#!/usr/bin/env bash
# nanoGPT's CPU "baby GPT" on tiny Shakespeare, character level, with Ember's trainer:
# 4 layers, 4 heads, dim 128, ctx 64, batch 12, 2000 steps, lr 1e-3 -> 1e-4 (cosine, warmup
# 100), AdamW beta2 0.99, weight decay 0.1, clip 1.0, eval every 250 steps over 20 batches.
# SwiGLU FFN 344 has the parameters of nanoGPT's 4 x 128 GELU MLP (3 x 128 x 344 ~ 2 x 128 x 512).
# Usage: scripts/train-shakespeare.sh [OUT_DIR] [extra ember train options]
# Prints the wall time; DIR/metrics.json has val_loss, ngram_val_loss, tokens_per_s.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
OUT=${1:-.cache/runs/shakespeare-char}
shift || true
# EMBER=path/to/ember skips the build.
if [ -z "${EMBER:-}" ]; then
    cargo build -q --release -p ember
    EMBER=${CARGO_TARGET_DIR:-target}/release/ember
fi
start=$(date +%s.%N)
"$EMBER" train --data "$DATA" --out "$OUT" --force \
    --tokenizer char --layers 4 --heads 4 --kv-heads 4 --dim 128 --ffn 344 --ctx 64 \
    --batch 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --weight-decay 0.1 \
    --beta2 0.99 --grad-clip 1.0 --eval-every 250 --eval-batches 20 --val-fraction 0.1 \
    --seed 1337 "$@"
end=$(date +%s.%N)
echo "wall time: $(awk "BEGIN{printf \"%.1f\", $end - $start}") s"
cat "$OUT/metrics.json"

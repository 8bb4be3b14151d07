#!/usr/bin/env bash
# Checks that trainer checkpoints load in Hugging Face and agree with the trainer:
#  - tokenizers' Tokenizer.from_file(tokenizer.json) and transformers' AutoTokenizer give
#    the trainer's token ids (char and byte-level BPE), and decode back to the text;
#  - transformers' LlamaForCausalLM.from_pretrained(DIR) gives the trainer's logits
#    (max |diff| < 1e-4), for untied + MHA and tied + GQA models.
# Usage: scripts/check-trainer-hf.sh   (from the repo root; needs ../shared/data)
# Python: $PYTHON, else .cache/venv/bin/python, created with pip install if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/tinyshakespeare.txt
if [ ! -f "$DATA" ]; then
    echo "SKIPPED: check-trainer-hf: $DATA not found" >&2
    exit 0
fi
PY=${PYTHON:-.cache/venv/bin/python}
if ! "$PY" -c "import torch, transformers, tokenizers, safetensors" 2>/dev/null; then
    echo "installing torch, transformers, tokenizers into .cache/venv (CPU, several hundred MB)" >&2
    python3 -m venv .cache/venv
    .cache/venv/bin/pip install -q torch transformers tokenizers safetensors
    PY=.cache/venv/bin/python
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p ember
cargo build -q --release -p ember-train --example hf_dump
EMBER=$CARGO_TARGET_DIR/release/ember
DUMP=$CARGO_TARGET_DIR/release/examples/hf_dump
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A probe text with things the tokenizers must agree on: contractions, numbers, runs of
# spaces and newlines, non-ASCII, characters absent from the training data.
printf "KING RICHARD III:\nNow is the winter of our discontent's end -- 1592, 'tis   said.\n\n\n  Ève? ½ ok\t\"quoted\"\n" > "$WORK/probe.txt"
tail -c 3000 "$DATA" >> "$WORK/probe.txt"
COMMON=(--data "$DATA" --steps 20 --eval-every 0 --eval-batches 1 --quiet --force)
"$EMBER" train "${COMMON[@]}" --out "$WORK/char" --tokenizer char --layers 2 --dim 64 --heads 4 --ffn 96 --ctx 32
"$EMBER" train "${COMMON[@]}" --out "$WORK/bpe" --tokenizer bpe:400 --layers 2 --dim 64 --heads 4 --kv-heads 2 --ffn 96 --ctx 48 --tie-embeddings
for run in char bpe; do
    "$DUMP" "$WORK/$run" "$WORK/probe.txt" > "$WORK/$run.json"
    "$PY" - "$WORK/$run" "$WORK/probe.txt" "$WORK/$run.json" <<'PYEOF'
import json, sys
import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, LlamaForCausalLM

run, probe, dump = sys.argv[1:4]
text = open(probe, encoding="utf-8", newline="").read()
ours = json.load(open(dump))
ids = Tokenizer.from_file(f"{run}/tokenizer.json").encode(text).ids
assert ids == ours["ids"], f"tokenizers ids differ at {next(i for i, (a, b) in enumerate(zip(ids, ours['ids'])) if a != b) if len(ids) == len(ours['ids']) else 'length'}"
hf = AutoTokenizer.from_pretrained(run)
assert hf(text)["input_ids"] == ours["ids"], "AutoTokenizer ids differ"
assert hf.decode(ours["ids"]) == ours["decoded"], "decode differs"
model = LlamaForCausalLM.from_pretrained(run, torch_dtype=torch.float32).eval()
n = len(ours["logits"])
with torch.no_grad():
    logits = model(torch.tensor([ours["ids"][:n]])).logits[0]
diff = (logits - torch.tensor(ours["logits"])).abs().max().item()
assert diff < 1e-4, f"logits differ by {diff}"
print(f"{run.split('/')[-1]}: {len(ids)} ids identical (tokenizers, AutoTokenizer); logits of {n} tokens max |diff| {diff:.2e}: OK")
PYEOF
done
echo "check-trainer-hf: all OK"

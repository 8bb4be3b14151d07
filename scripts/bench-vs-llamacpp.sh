#!/usr/bin/env bash
# Ember against llama.cpp on the same SmolLM2 weights, the same quantization and the same
# thread count, run alternately; prints tokens/s and the ratios.
#
#   scripts/bench-vs-llamacpp.sh                 # q4_0 q4_1 q8_0 f16, 2 threads, 3 rounds
#   TYPES="q4_0" THREADS=1 ROUNDS=5 scripts/bench-vs-llamacpp.sh
#
# Weights: the shipped Q4_1 GGUF, requantized by llama.cpp itself to each type (it
# dequantizes to the f32 base first); Ember converts that same GGUF with `--quant same`,
# so both run byte-identical blocks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

types="${TYPES:-q4_0 q4_1 q8_0 f16}"
threads="${THREADS:-2}"
rounds="${ROUNDS:-3}"
prompt="${PROMPT:-128}"
gen="${GEN:-64}"
venv=".cache/llamacpp-venv"
# llama-cpp-python's llama.cpp uses OpenMP; with the default active waiting, 2 threads on a
# busy 2-core machine collapse (under 1 token/s here). Passive waiting is the fair setting
# whenever other processes share the cores; override with OMP_WAIT_POLICY=active.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
work=".cache/bench"
mkdir -p "$work"

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
    echo "== installing llama-cpp-python into $venv (builds llama.cpp; several minutes)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet llama-cpp-python
fi
gguf="$(scripts/fetch-models.sh)"
cargo build --release --quiet
ember=target/release/ember

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { "$venv/bin/python" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

printf "%-6s %10s %10s %7s %10s %10s %7s\n" type "llama pp" "ember pp" ratio "llama tg" "ember tg" ratio
for type in $types; do
    src="$work/smollm2-$type.gguf"
    if [[ "$type" == q4_1 ]]; then
        src="$gguf"
    elif [[ ! -s "$src" ]]; then
        "$venv/bin/python" scripts/llamacpp_bench.py quantize "$gguf" "$src" "$type" >&2
    fi
    model="$work/smollm2-$type.rows16.ember"
    [[ -s "$model" && "$model" -nt "$src" ]] || "$ember" convert "$src" -o "$model" --quant same --force --quiet >&2
    lpp=(); ltg=(); epp=(); etg=()
    for ((r = 0; r < rounds; r++)); do
        l=$("$venv/bin/python" scripts/llamacpp_bench.py bench "$src" -p "$prompt" -n "$gen" -t "$threads" -r 1)
        e=$("$ember" bench "$model" -p "$prompt" -n "$gen" -t "$threads" -r 1 --json)
        lpp+=("$(field pp_tok_s <<<"$l")"); ltg+=("$(field tg_tok_s <<<"$l")")
        epp+=("$(field pp_tok_s <<<"$e")"); etg+=("$(field tg_tok_s <<<"$e")")
    done
    mlpp=$(printf "%s\n" "${lpp[@]}" | median); mltg=$(printf "%s\n" "${ltg[@]}" | median)
    mepp=$(printf "%s\n" "${epp[@]}" | median); metg=$(printf "%s\n" "${etg[@]}" | median)
    awk -v t="$type" -v a="$mlpp" -v b="$mepp" -v c="$mltg" -v d="$metg" \
        'BEGIN { printf "%-6s %10.1f %10.1f %6.2fx %10.1f %10.1f %6.2fx\n", t, a, b, b / a, c, d, d / c }'
done
echo "($threads threads, pp$prompt / tg$gen, median of $rounds alternating rounds; $(date -u +%F))"

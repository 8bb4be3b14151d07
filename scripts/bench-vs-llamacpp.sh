#!/usr/bin/env bash
# Ember against llama.cpp on the same SmolLM2 weights, the same quantization and the same
# thread count, run alternately; prints tokens/s and the ratios.
#
#   scripts/bench-vs-llamacpp.sh                 # q4_0 q4_1 q8_0 f16, 2 threads, 3 rounds
#   TYPES="q4_0" THREADS=1 ROUNDS=5 scripts/bench-vs-llamacpp.sh
#   TYPES="q4_k_m q6_k gemma3" scripts/bench-vs-llamacpp.sh   # K-quants; gemma3 = the real
#                                                 # Gemma 3 270M Q4_K_M file, as downloaded
#
# The peer is llama.cpp's own `llama-bench`, built from source for this CPU by
# scripts/build-llama-bench.sh (Release, -march=native, OpenMP; AMX compiled out since it
# crashes here, see that script; repacked Q4_0 on). Each round runs, one after the other,
#   llama-bench -m MODEL.gguf -p PROMPT -n GEN -t THREADS -r 1 -o json
# (its defaults otherwise: one warm-up run, flash attention auto, --poll 50, --repack 1) and
#   ember bench MODEL.ember -p PROMPT -n GEN -t THREADS -r 1 --json
# and the table shows the medians over the rounds (llama-bench's avg_ts of its pp and tg tests).
# LLAMA_BENCH_ARGS adds llama-bench options (e.g. "--repack 0"). OpenMP is left at its
# defaults (active waiting), right for an idle machine; on a machine that other processes share,
# OMP_WAIT_POLICY=passive keeps llama.cpp's 2 threads from collapsing, and is passed through
# when set.
#
# Weights: the shipped Q4_1 GGUF, requantized by llama.cpp's llama-quantize to each type (it
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
work=".cache/bench"
mkdir -p "$work"

llama_bench="$(scripts/build-llama-bench.sh)"
llama_quantize="$(dirname "$llama_bench")/llama-quantize"
gguf="$(scripts/fetch-models.sh)"
cargo build --release --quiet
ember=target/release/ember

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# llama-bench -o json: a list of tests; pp has n_prompt > 0 and n_gen == 0, tg has n_gen > 0.
llama_field() {
    python3 -c "import json,sys
t = [r for r in json.load(sys.stdin) if (r['n_gen'] > 0 if sys.argv[1] == 'tg' else r['n_prompt'] > 0 and r['n_gen'] == 0)]
print(t[0]['avg_ts'])" "$1"
}

printf "%-6s %10s %10s %7s %10s %10s %7s\n" type "llama pp" "ember pp" ratio "llama tg" "ember tg" ratio
for type in $types; do
    src="$work/smollm2-$type.gguf"
    if [[ "$type" == q4_1 ]]; then
        src="$gguf"
    elif [[ "$type" == gemma3 ]]; then
        src="$(scripts/fetch-models.sh gemma3)"
    elif [[ ! -s "$src" ]]; then
        "$llama_quantize" --allow-requantize "$gguf" "$src" "${type^^}" 2 >&2
    fi
    model="$work/$(basename "$src" .gguf).rows16.ember"
    [[ -s "$model" && "$model" -nt "$src" ]] || "$ember" convert "$src" -o "$model" --quant same --force --quiet >&2
    lpp=(); ltg=(); epp=(); etg=()
    for ((r = 0; r < rounds; r++)); do
        # shellcheck disable=SC2086
        l=$("$llama_bench" -m "$src" -p "$prompt" -n "$gen" -t "$threads" -r 1 -o json ${LLAMA_BENCH_ARGS:-})
        e=$("$ember" bench "$model" -p "$prompt" -n "$gen" -t "$threads" -r 1 --json)
        lpp+=("$(llama_field pp <<<"$l")"); ltg+=("$(llama_field tg <<<"$l")")
        epp+=("$(field pp_tok_s <<<"$e")"); etg+=("$(field tg_tok_s <<<"$e")")
    done
    mlpp=$(printf "%s\n" "${lpp[@]}" | median); mltg=$(printf "%s\n" "${ltg[@]}" | median)
    mepp=$(printf "%s\n" "${epp[@]}" | median); metg=$(printf "%s\n" "${etg[@]}" | median)
    awk -v t="$type" -v a="$mlpp" -v b="$mepp" -v c="$mltg" -v d="$metg" \
        'BEGIN { printf "%-6s %10.1f %10.1f %6.2fx %10.1f %10.1f %6.2fx\n", t, a, b, b / a, c, d, d / c }'
done
echo "($threads threads, pp$prompt / tg$gen, median of $rounds alternating rounds; llama.cpp: llama-bench; $(date -u +%F))"

#!/usr/bin/env bash
# Mixture-of-experts decode speed: a model shaped like Qwen3-30B-A3B (every per-layer shape,
# fewer layers; random weights) against a dense qwen3 model with the same active parameters
# (same attention, dense SwiGLU FFN of width 8 x 768 = 6144), in Ember, and against llama.cpp
# on the same MoE GGUF. Prints generation tokens/s (medians of alternating rounds) and ratios.
#
#   scripts/bench-moe.sh                                  # q4_0, 1 and 2 threads, 3 rounds
#   TYPES="q4_0 q8_0" THREADS="1 2" ROUNDS=5 scripts/bench-moe.sh
#   LAYERS=12 TOKENIZER=smollm2 scripts/bench-moe.sh      # 12 layers, 49,152-token vocab
#
# Models (.cache/bench/, made once; scripts/make_moe_gguf.py writes the F16 files):
#   moe-a3b-${LAYERS}L-${TOKENIZER}-f16.gguf    qwen3moe: hidden 2048, 32 x 128 query heads,
#        4 KV heads, Q/K norms, 128 experts x 768 wide, 8 used, untied head
#   dense-a3b-${LAYERS}L-${TOKENIZER}-f16.gguf  qwen3: same attention/embedding/head, FFN 6144
#   ...-TYPE.gguf    llama-quantize's TYPE of each (its default recipe: output.weight Q6_K for
#                    q4_0, router ffn_gate_inp left F16)
#   ...-TYPE.ember   `ember convert --quant same` of that GGUF (byte-identical blocks)
# TOKENIZER: qwen (default; llama.cpp's models/ggml-vocab-qwen2.gguf, Qwen's real 151,936-token
# vocab, so every shape but the layer count is Qwen3-30B-A3B's) or smollm2 (49,152 tokens,
# scripts/fetch-models.sh; with the layers cut to a sixth, a head closer in share to the real
# model's). LAYERS default 8 (Q4_0 MoE file ~3.2 GB with the qwen vocab, F16 ~11 GB).
# Disk, 8 layers, qwen vocab: F16 11.2 + 2.2 GB, then per type GGUF + .ember of both models:
# q4_0 2 x (3.2 + 0.7) GB, q8_0 2 x (6.0 + 1.3) GB (about 36 GB for both types); smollm2 vocab
# about 10% less. The F16 files are only needed to make a new type: delete them after.
#
# Each round, per thread count, runs one after the other:
#   ember bench MOE.ember   -p PROMPT -n GEN -t T -r 1 --json
#   ember bench DENSE.ember -p PROMPT -n GEN -t T -r 1 --json
#   llama-bench -m MOE.gguf   -p PROMPT -n GEN -t T -r 1 -o json   (LLAMA_BENCH_ARGS appended)
#   llama-bench -m DENSE.gguf ...                                   (LLAMA_DENSE=0 skips it)
# as scripts/bench-vs-llamacpp.sh does (llama-bench's defaults otherwise: one warm-up run,
# flash attention auto, --repack 1). Both tools measure tg from an empty context; llama-bench
# feeds random tokens, `ember bench` its own argmax. PROMPT default 16, GEN 64.
# Ember's "MB/token" is `ember bench`'s matrix_bytes_per_token (attention, the used experts' or
# the dense FFN's matrices, the head; the router and the embedding row are not counted).
# Needs target/release/ember (cargo build --release; this script does not build it), the
# llama.cpp tools (scripts/build-llama-bench.sh, built here if missing), and python with numpy
# and gguf (PYTHON=...; else python3 if it has both; else a venv made in .cache/bench-venv).
# OMP_WAIT_POLICY (e.g. passive, on a shared machine) is passed through to llama-bench.
# Shared machine: before each measurement the script waits (IDLE_MAX seconds at most, default
# 300; IDLE_MAX=0 never waits) until the CPUs are >= IDLE_PCT% idle (default 90) over 2 s; a
# round that ran without that is marked "busy" on stderr. Idle waits are the real source of
# noise here: a build on the other core halves the 2-thread numbers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

types="${TYPES:-q4_0}"
threads_list="${THREADS:-1 2}"
rounds="${ROUNDS:-3}"
prompt="${PROMPT:-16}"
gen="${GEN:-64}"
layers="${LAYERS:-8}"
tokenizer="${TOKENIZER:-qwen}"
llama_dense="${LLAMA_DENSE:-1}"
ember="${EMBER:-target/release/ember}"
work=".cache/bench"
mkdir -p "$work"
log() { echo "== $*" >&2; }

[[ -x "$ember" ]] || { echo "bench-moe: $ember not found (cargo build --release)" >&2; exit 1; }
llama_bench="$(scripts/build-llama-bench.sh)"
llama_dir="$(dirname "$llama_bench")"
llama_quantize="$llama_dir/llama-quantize"

case "$tokenizer" in
    qwen) tok_gguf=".cache/llama.cpp-src/models/ggml-vocab-qwen2.gguf" ;;
    smollm2) tok_gguf="$(scripts/fetch-models.sh smollm2)" ;;
    *) echo "bench-moe: TOKENIZER is qwen or smollm2, not $tokenizer" >&2; exit 1 ;;
esac
[[ -s "$tok_gguf" ]] || { echo "bench-moe: $tok_gguf is missing" >&2; exit 1; }

base="a3b-${layers}L-${tokenizer}"
moe_f16="$work/moe-$base-f16.gguf"
dense_f16="$work/dense-$base-f16.gguf"
# The F16 files are written only when a quantized GGUF of TYPES is missing.
args=()
for type in $types; do
    [[ -s "$moe_f16" || -s "${moe_f16%-f16.gguf}-$type.gguf" || " ${args[*]} " == *" --moe "* ]] \
        || args+=(--moe "$moe_f16")
    [[ -s "$dense_f16" || -s "${dense_f16%-f16.gguf}-$type.gguf" || " ${args[*]} " == *" --dense "* ]] \
        || args+=(--dense "$dense_f16")
done
find_python() {  # sets py: PYTHON, or python3 with numpy and gguf, or .cache/bench-venv
    if [[ -n "${PYTHON:-}" ]]; then
        py="$PYTHON"
    elif python3 -c "import numpy, gguf" 2>/dev/null; then
        py=python3
    else
        if [[ ! -x .cache/bench-venv/bin/python ]] || ! .cache/bench-venv/bin/python -c "import numpy, gguf" 2>/dev/null; then
            log "creating .cache/bench-venv (numpy, gguf)"
            python3 -m venv .cache/bench-venv >&2
            .cache/bench-venv/bin/pip install --quiet numpy gguf >&2
        fi
        py=.cache/bench-venv/bin/python
    fi
}
if ((${#args[@]})); then
    find_python
    log "writing ${args[*]} (random weights, F16)"
    "$py" scripts/make_moe_gguf.py --tokenizer "$tok_gguf" --layers "$layers" "${args[@]}" >&2
fi

idle_max="${IDLE_MAX:-300}"
idle_pct="${IDLE_PCT:-90}"
idle_now() {  # percent of all CPU time idle over 2 s
    local a b
    a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
    local t=0 i
    for i in 1 2 3 4 5 6 7 8; do t=$((t + b[i] - a[i])); done
    echo $(( 100 * (b[4] + b[5] - a[4] - a[5]) / (t > 0 ? t : 1) ))
}
busy=0
wait_idle() {
    ((idle_max > 0)) || return 0
    local start=$SECONDS
    while (( $(idle_now) < idle_pct )); do
        if ((SECONDS - start >= idle_max)); then busy=1; return 0; fi
    done
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { python3 -c "import json,sys; v = json.load(sys.stdin)['$1']; print(v if v is not None else 'nan')"; }
llama_field() {
    python3 -c "import json,sys
t = [r for r in json.load(sys.stdin) if (r['n_gen'] > 0 if sys.argv[1] == 'tg' else r['n_prompt'] > 0 and r['n_gen'] == 0)]
print(t[0]['avg_ts'])" "$1"
}
# quantize F16 -> TYPE (GGUF), then `ember convert --quant same`
prepare() {
    local f16="$1" type="$2" gguf ember_file
    gguf="${f16%-f16.gguf}-$type.gguf"
    ember_file="${gguf%.gguf}.ember"
    if [[ ! -s "$gguf" ]]; then
        log "llama-quantize $f16 -> $gguf"
        "$llama_quantize" "$f16" "$gguf.tmp" "${type^^}" 2 > "$gguf.quantize.log" 2>&1 \
            || { tail -20 "$gguf.quantize.log" >&2; rm -f "$gguf.tmp"; exit 1; }
        mv "$gguf.tmp" "$gguf"
    fi
    # (re)converted when older than the GGUF or than the ember binary (the format may change)
    if [[ ! -s "$ember_file" || "$ember_file" -ot "$gguf" || "$ember_file" -ot "$ember" ]]; then
        log "ember convert $gguf -> $ember_file"
        "$ember" convert "$gguf" -o "${ember_file%.ember}.tmp.ember" --quant same --force --quiet >&2 \
            || { rm -f "${ember_file%.ember}.tmp.ember"; exit 1; }
        mv "${ember_file%.ember}.tmp.ember" "$ember_file"
    fi
}

printf "%-5s %2s %9s %9s %7s %9s %7s %9s %9s %9s %9s %8s\n" type t "E moe tg" "E dns tg" "moe/dns" \
    "L moe tg" "E/L moe" "L dns tg" "E moe pp" "L moe pp" "MB/tok" "E GB/s"
for type in $types; do
    prepare "$moe_f16" "$type"
    prepare "$dense_f16" "$type"
    moe_gguf="${moe_f16%-f16.gguf}-$type.gguf"; dense_gguf="${dense_f16%-f16.gguf}-$type.gguf"
    moe_ember="${moe_gguf%.gguf}.ember"; dense_ember="${dense_gguf%.gguf}.ember"
    for t in $threads_list; do
        emt=(); edt=(); lmt=(); ldt=(); emp=(); lmp=(); mb=""; dmb=""; gbs=(); kern=""
        for ((r = 0; r < rounds; r++)); do
            busy=0
            wait_idle
            e=$("$ember" bench "$moe_ember" -p "$prompt" -n "$gen" -t "$t" -r 1 --json)
            emt+=("$(field tg_tok_s <<<"$e")"); emp+=("$(field pp_tok_s <<<"$e")")
            gbs+=("$(field tg_gb_s <<<"$e")"); mb="$(field matrix_bytes_per_token <<<"$e")"
            kern="$(field kernels <<<"$e")"
            wait_idle
            d=$("$ember" bench "$dense_ember" -p "$prompt" -n "$gen" -t "$t" -r 1 --json)
            edt+=("$(field tg_tok_s <<<"$d")"); dmb="$(field matrix_bytes_per_token <<<"$d")"
            wait_idle
            # shellcheck disable=SC2086
            l=$("$llama_bench" -m "$moe_gguf" -p "$prompt" -n "$gen" -t "$t" -r 1 -o json ${LLAMA_BENCH_ARGS:-})
            lmt+=("$(llama_field tg <<<"$l")"); lmp+=("$(llama_field pp <<<"$l")")
            if [[ "$llama_dense" == 1 ]]; then
                wait_idle
                # shellcheck disable=SC2086
                l=$("$llama_bench" -m "$dense_gguf" -p "$prompt" -n "$gen" -t "$t" -r 1 -o json ${LLAMA_BENCH_ARGS:-})
                ldt+=("$(llama_field tg <<<"$l")")
            else
                ldt+=(nan)
            fi
            echo "   round $((r + 1)) $type t$t: ember moe ${emt[-1]} dense ${edt[-1]} llama moe ${lmt[-1]} dense ${ldt[-1]} (load $(cut -d' ' -f1-3 /proc/loadavg)$( ((busy)) && echo ", busy: waited ${idle_max}s for idle in vain"))" >&2
        done
        m_emt=$(printf "%s\n" "${emt[@]}" | median); m_edt=$(printf "%s\n" "${edt[@]}" | median)
        m_lmt=$(printf "%s\n" "${lmt[@]}" | median); m_ldt=$(printf "%s\n" "${ldt[@]}" | median)
        m_emp=$(printf "%s\n" "${emp[@]}" | median); m_lmp=$(printf "%s\n" "${lmp[@]}" | median)
        m_gbs=$(printf "%s\n" "${gbs[@]}" | median)
        awk -v ty="$type" -v t="$t" -v a="$m_emt" -v b="$m_edt" -v c="$m_lmt" -v d="$m_ldt" \
            -v e="$m_emp" -v f="$m_lmp" -v mb="$mb" -v g="$m_gbs" \
            'BEGIN { printf "%-5s %2s %9.2f %9.2f %6.2fx %9.2f %6.2fx %9.2f %9.1f %9.1f %9.1f %8.1f\n",
                     ty, t, a, b, a / b, c, a / c, d, e, f, mb / 1e6, g }'
        echo "   ($type t$t: ember kernels: $kern; MB/token moe $(awk -v x="$mb" 'BEGIN{printf "%.1f", x/1e6}') dense $(awk -v x="$dmb" 'BEGIN{printf "%.1f", x/1e6}'))" >&2
    done
done
echo "(E = ember bench, L = llama-bench; tg$gen after pp$prompt, median of $rounds alternating rounds;" \
     "moe/dns = Ember MoE tg / Ember dense tg, E/L moe = Ember MoE tg / llama.cpp MoE tg; $layers layers," \
     "tokenizer $tokenizer; $(date -u +%F))"

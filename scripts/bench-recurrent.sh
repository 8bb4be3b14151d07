#!/usr/bin/env bash
# Recurrent hybrid models: Ember against llama.cpp (and ik_llama.cpp where it runs the
# architecture) on models shaped like Qwen3.5-0.8B (Gated DeltaNet + gated attention, GGUF
# arch qwen35) and LFM2-1.2B (short convolutions + attention, arch lfm2), random weights, the
# same GGUF file for every program, the same thread count, run alternately; prints prompt (pp)
# and generation (tg) tokens/s, medians and ratios, then generation speed at two depths.
#
#   scripts/bench-recurrent.sh                     # both models, q4_0 and q4_k_m, 1 and 2 threads
#   MODELS=lfm2-1.2b TYPES=q4_0 THREADS=2 ROUNDS=5 scripts/bench-recurrent.sh
#   IK_BENCH=none scripts/bench-recurrent.sh       # without ik_llama.cpp
#   EMBER_CACHE="" scripts/bench-recurrent.sh      # Ember's exact f32 KV cache (default: f16,
#                                                  # as llama.cpp and ik_llama.cpp cache)
#   DEPTHS="" scripts/bench-recurrent.sh           # without the depth check
#
# Models (.cache/bench/, made once, `scripts/make_recurrent_bench.py` has the shapes and
# where they come from):
#   recurrent-MODEL-hf/          random weights (F16 safetensors), the fixtures' 512-token
#                                tokenizer, the real vocab_size (the converter pads the tokens)
#   recurrent-MODEL-f16.gguf     llama.cpp's convert_hf_to_gguf.py of it (--outtype f16)
#   recurrent-MODEL-TYPE.gguf    llama-quantize F16 -> TYPE (its default recipe per type)
#   recurrent-MODEL-TYPE.ember   `ember convert --quant same` of that GGUF (the same blocks;
#                                redone when older than the GGUF or the ember binary)
# The HF directory and the F16 GGUF are deleted once every TYPE exists (KEEP_F16=1 keeps them).
# Disk: Qwen3.5-0.8B F16 1.5 GB (HF) + 1.5 GB (GGUF), Q4_0 / Q4_K_M about 0.5 GB each, plus
# the .ember; LFM2-1.2B F16 2.3 + 2.3 GB, 4-bit about 0.7 GB each.
#
# Each round, per model, type and thread count, runs one after the other:
#   ember bench MODEL.ember -p PROMPT -n GEN -t T -r 1 --ctk f16 --ctv f16 --json
#   llama-bench -m MODEL.gguf -p PROMPT -n GEN -t T -r 1 -o json       (LLAMA_BENCH_ARGS added)
#   IK llama-bench -m MODEL.gguf -p PROMPT -n GEN -t T -r 1 -o json    (IK_BENCH_ARGS added)
# PROMPT default 512, GEN 64, ROUNDS 3; the tables show medians over the rounds. llama-bench
# keeps its defaults (one warm-up run, flash attention auto, Q4_0 repacked at load); ik_llama.cpp's
# llama-bench gets IK_BENCH_ARGS, default "-rtr 1" (its run-time repack to the interleaved
# row formats, off by default there; the counterpart of llama.cpp's default --repack 1; its
# flash attention is on by default). All three measure tg from an empty context (llama-bench
# feeds random tokens, `ember bench` its own argmax).
#
# Depth check (DEPTHS, default "100 4000"; DEPTH_THREADS default THREADS; DEPTH_ROUNDS
# default 1): generation tokens/s after a prompt of D tokens, where only the attention layers'
# KV cache grows and the recurrent state stays the same size:
#   ember run MODEL.ember --prompt-ids <D ids> -n GEN+1 --temp 0 -t T --ctk f16 --ctv f16 --json
#       -> timings.predicted_per_second (GEN forward passes after the prompt: one prefill
#          of D, where `ember bench -d D` feeds D before its warm-up and each repetition)
#   llama-bench -m MODEL.gguf -p 0 -n GEN -d D -t T -r 1 -o json   (depth D untimed)
#   IK llama-bench -m MODEL.gguf -gp D,GEN -p 0 -n 0 -t T -r 1 -o json   (its spelling: prompt D
#          untimed, then GEN generated; ik's llama-bench has no -d)
# and the ratio of the last depth to the first (the issue asks for >= 0.9 at 4000 vs 100).
#
# IK_BENCH: ik_llama.cpp's llama-bench; default .cache/ik_llama.cpp-build/bin/llama-bench when
# it exists (scripts/build-ik-llama-bench.sh builds it), "none" to skip. A model whose
# architecture it does not know (its load fails) is reported as such and skipped for ik.
# Needs target/release/ember (cargo build --release; not built here; copied once at the start,
# so that a rebuild during the run does not mix binaries), the llama.cpp tools
# (scripts/build-llama-bench.sh, built if missing, its source tree holds the converter), and
# python with torch, transformers >= 5 and safetensors for the generator (PYTHON=..., default
# .cache/venv/bin/python).
# Shared machine: as scripts/bench-moe.sh, before each measurement the script waits (IDLE_MAX
# seconds at most, default 300; 0: never) until the CPUs are >= IDLE_PCT% idle (default 90)
# over 2 s. A build that starts during a measurement is caught afterwards: the CPU time of
# every process outside this script's process group (utime + stime + reaped children, from
# /proc) is read before and after each measurement; when other processes used more than
# OTHER_MAX cores on average (default 0.1) the measurement is repeated, at most RETRIES times
# (default 3), and a round that stayed disturbed is marked "busy" on stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

models="${MODELS:-qwen35-0.8b lfm2-1.2b}"
types="${TYPES:-q4_0 q4_k_m}"
threads_list="${THREADS:-1 2}"
rounds="${ROUNDS:-3}"
prompt="${PROMPT:-512}"
gen="${GEN:-64}"
depths="${DEPTHS-100 4000}"
depth_threads="${DEPTH_THREADS:-$threads_list}"
depth_rounds="${DEPTH_ROUNDS:-1}"
ember="${EMBER:-target/release/ember}"
py="${PYTHON:-.cache/venv/bin/python}"
ik_args="${IK_BENCH_ARGS--rtr 1}"
# Ember's KV cache in f16 as llama.cpp's and ik_llama.cpp's default (EMBER_CACHE="" keeps f32).
read -r -a ember_cache <<<"${EMBER_CACHE---ctk f16 --ctv f16}"
work=".cache/bench"
mkdir -p "$work"
log() { echo "== $*" >&2; }

[[ -x "$ember" ]] || { echo "bench-recurrent: $ember not found (cargo build --release)" >&2; exit 1; }
# One binary for the whole run, even if a build replaces $ember meanwhile.
ember_src="$ember"
ember="$work/.ember-bench.$$"
cp "$ember_src" "$ember"
trap 'rm -f "$ember"' EXIT
ember_built="$(date -u -r "$ember_src" '+%F %H:%M')"
llama_bench="$(scripts/build-llama-bench.sh)"
llama_quantize="$(dirname "$llama_bench")/llama-quantize"
llama_src=".cache/llama.cpp-src"
ik_bench="${IK_BENCH:-.cache/ik_llama.cpp-build/bin/llama-bench}"
if [[ "$ik_bench" == none || ! -x "$ik_bench" ]]; then
    [[ "$ik_bench" == none ]] || log "no ik_llama.cpp llama-bench at $ik_bench (scripts/build-ik-llama-bench.sh); ik columns are nan"
    ik_bench=""
fi

# --- models -----------------------------------------------------------------------------
prepare() {  # MODEL: writes the quantized GGUFs of TYPES and their .ember conversions
    local m="$1" base="$work/recurrent-$1" type gguf em missing=0
    for type in $types; do [[ -s "$base-$type.gguf" ]] || missing=1; done
    if ((missing)) && [[ ! -s "$base-f16.gguf" ]]; then
        "$py" -c "import torch, transformers, safetensors" 2>/dev/null \
            || { echo "bench-recurrent: $py lacks torch/transformers/safetensors (PYTHON=...)" >&2; exit 1; }
        log "writing $base-hf and $base-f16.gguf (random weights; llama.cpp's converter)"
        "$py" scripts/make_recurrent_bench.py "$m" "$base-hf" --gguf "$base-f16.gguf.tmp" \
            --llama-src "$llama_src" > "$base-f16.convert.log" 2>&1 \
            || { tail -20 "$base-f16.convert.log" >&2; rm -f "$base-f16.gguf.tmp"; exit 1; }
        mv "$base-f16.gguf.tmp" "$base-f16.gguf"
    fi
    for type in $types; do
        gguf="$base-$type.gguf"; em="$base-$type.ember"
        if [[ ! -s "$gguf" ]]; then
            log "llama-quantize $base-f16.gguf -> $gguf"
            "$llama_quantize" "$base-f16.gguf" "$gguf.tmp" "${type^^}" 2 > "$gguf.quantize.log" 2>&1 \
                || { tail -20 "$gguf.quantize.log" >&2; rm -f "$gguf.tmp"; exit 1; }
            mv "$gguf.tmp" "$gguf"
        fi
        # (re)converted when older than the GGUF or than the ember binary (the format may change)
        if [[ ! -s "$em" || "$em" -ot "$gguf" || "$em" -ot "$ember_src" ]]; then
            log "ember convert $gguf -> $em"
            "$ember" convert "$gguf" -o "${em%.ember}.tmp.ember" --quant same --force --quiet >&2 \
                || { rm -f "${em%.ember}.tmp.ember"; exit 1; }
            mv "${em%.ember}.tmp.ember" "$em"
        fi
    done
    if [[ "${KEEP_F16:-0}" != 1 ]]; then
        local all=1
        for type in q4_0 q4_k_m $types; do [[ -s "$base-$type.gguf" ]] || all=0; done
        ((all)) && rm -rf "$base-f16.gguf" "$base-hf"
    fi
    return 0
}

# --- measuring (the idle wait and the medians as in scripts/bench-moe.sh) -----------------
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
# CPU jiffies used so far by all processes outside this script's process group
pgid="$(ps -o pgid= $$ | tr -d ' ')"
hz="$(getconf CLK_TCK)"
other_cpu() {
    python3 -c "import os,sys
me, total = sys.argv[1], 0
for p in os.listdir('/proc'):
    if not p.isdigit(): continue
    try: f = open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()
    except OSError: continue
    if f[2] != me: total += sum(int(x) for x in f[11:15])
print(total)" "$pgid"
}
other_max="${OTHER_MAX:-0.1}"
retries="${RETRIES:-3}"
# measure CMD ARGS...: runs it (its stdout into $out, its status into $mrc) after wait_idle,
# again while other processes took more than OTHER_MAX cores during it
measure() {
    local try o0 t0 frac
    for ((try = 0; ; try++)); do
        wait_idle
        o0=$(other_cpu); t0=$(date +%s.%N)
        mrc=0; out=$("$@") || mrc=$?
        frac=$(awk -v a="$o0" -v b="$(other_cpu)" -v t0="$t0" -v t1="$(date +%s.%N)" -v hz="$hz" \
            'BEGIN { printf "%.2f", (b - a) / hz / (t1 - t0) }')
        awk -v f="$frac" -v m="$other_max" 'BEGIN { exit !(f > m) }' || return 0
        if ((try >= retries)); then
            busy=1; echo "   still disturbed after $retries repeats (other processes: $frac cores): kept" >&2; return 0
        fi
        echo "   disturbed (other processes used $frac cores during it): measuring again" >&2
    done
}
ember_bench() { "$ember" bench "$@" ${ember_cache[@]+"${ember_cache[@]}"} --json 2>"$work/.ember.err"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { python3 -c "import json,sys; v = json.load(sys.stdin)['$1']; print(v if v is not None else 'nan')"; }
# llama-bench -o json: a list of tests. pp: n_prompt > 0, n_gen == 0; tg: n_gen > 0 (with
# -d, the one at n_depth == DEPTH; ik's -gp test has n_prompt = depth and n_gen > 0).
llama_field() {
    python3 -c "import json,sys
kind, depth = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None
try: rows = json.loads(sys.stdin.read() or '[]')
except ValueError: rows = []
if kind == 'pp': t = [r for r in rows if r['n_prompt'] > 0 and r['n_gen'] == 0]
else: t = [r for r in rows if r['n_gen'] > 0 and (depth is None or r.get('n_depth', r['n_prompt']) == depth)]
print(t[0]['avg_ts'] if t else 'nan')" "$@"
}
# ember run's generation rate after a prompt of N pseudo-random ids (as `ember bench` picks them)
ember_depth() {  # MODEL.ember DEPTH THREADS
    local ids out
    ids=$(python3 -c "import sys; n = int(sys.argv[1]); print(','.join(str((i * 2654435761 % 2**32 >> 7) % 512) for i in range(n)))" "$2")
    out=$("$ember" run "$1" --prompt-ids "$ids" -n $((gen + 1)) --temp 0 -t "$3" ${ember_cache[@]+"${ember_cache[@]}"} --json 2>"$work/.ember.err") || {
        echo "   ember run (depth $2) failed: $(tail -3 "$work/.ember.err")" >&2; echo nan; return 0; }
    python3 -c "import json,sys; d = json.load(sys.stdin)['timings']
if d['predicted_passes'] < $gen: print('bench-recurrent: ember run stopped after %d passes' % d['predicted_passes'], file=sys.stderr)
print(d['predicted_per_second'])" <<<"$out"
}
# run a llama-bench; prints its JSON, or nothing (and the first error line on stderr) if it failed
run_llama() {  # NAME BINARY ARGS...
    local name="$1" bin="$2" out
    shift 2
    if out=$("$bin" "$@" -o json 2>"$work/.llama-bench.err"); then
        echo "$out"
    else
        # the loader's reason (e.g. "unknown model architecture: 'lfm2'") is printed only with -v
        "$bin" "$@" -v > /dev/null 2>"$work/.llama-bench.err" || true
        echo "   $name failed: $(grep -m1 -E 'error loading|unknown model' "$work/.llama-bench.err" || grep -m1 -i error "$work/.llama-bench.err" || tail -1 "$work/.llama-bench.err")" >&2
    fi
}
nonan() { grep -v -e '^$' -e nan || true; }  # (grep alone fails the pipeline when all are nan)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "nan"; else printf "%.2f", a / b }'; }

declare -A ik_ok  # per model: 1 until ik's llama-bench fails to load it
results=()
depth_results=()
for m in $models; do
    case "$m" in qwen35-0.8b|lfm2-1.2b) ;; *) echo "bench-recurrent: MODELS are qwen35-0.8b and lfm2-1.2b, not $m" >&2; exit 1 ;; esac
    prepare "$m"
    ik_ok[$m]=$([[ -n "$ik_bench" ]] && echo 1 || echo 0)
    for type in $types; do
        gguf="$work/recurrent-$m-$type.gguf"; em="$work/recurrent-$m-$type.ember"
        for t in $threads_list; do
            epp=(); etg=(); lpp=(); ltg=(); ipp=(); itg=(); kern=""
            for ((r = 0; r < rounds; r++)); do
                busy=0
                measure ember_bench "$em" -p "$prompt" -n "$gen" -t "$t" -r 1; e="$out"
                if ((mrc)); then
                    echo "   ember bench failed (exit $mrc): $(tail -3 "$work/.ember.err")" >&2
                    e='{"pp_tok_s": null, "tg_tok_s": null, "kernels": null}'
                fi
                epp+=("$(field pp_tok_s <<<"$e")"); etg+=("$(field tg_tok_s <<<"$e")"); kern="$(field kernels <<<"$e")"
                # shellcheck disable=SC2086
                measure run_llama llama.cpp "$llama_bench" -m "$gguf" -p "$prompt" -n "$gen" -t "$t" -r 1 ${LLAMA_BENCH_ARGS:-}; l="$out"
                lpp+=("$(llama_field pp <<<"$l")"); ltg+=("$(llama_field tg <<<"$l")")
                if [[ "${ik_ok[$m]}" == 1 ]]; then
                    # shellcheck disable=SC2086
                    measure run_llama ik_llama.cpp "$ik_bench" -m "$gguf" -p "$prompt" -n "$gen" -t "$t" -r 1 $ik_args; i="$out"
                    [[ -n "$i" ]] || { ik_ok[$m]=0; log "ik_llama.cpp cannot run $m ($gguf): skipped for this model"; }
                    ipp+=("$(llama_field pp <<<"$i")"); itg+=("$(llama_field tg <<<"$i")")
                else
                    ipp+=(nan); itg+=(nan)
                fi
                echo "   round $((r + 1)) $m $type t$t: ember pp ${epp[-1]} tg ${etg[-1]}; llama.cpp pp ${lpp[-1]} tg ${ltg[-1]}; ik pp ${ipp[-1]} tg ${itg[-1]} (load $(cut -d' ' -f1-3 /proc/loadavg)$( ((busy)) && echo ", busy"))" >&2
            done
            a=$(printf "%s\n" "${epp[@]}" | nonan | median); b=$(printf "%s\n" "${lpp[@]}" | nonan | median)
            c=$(printf "%s\n" "${ipp[@]}" | nonan | median)
            d=$(printf "%s\n" "${etg[@]}" | nonan | median); e=$(printf "%s\n" "${ltg[@]}" | nonan | median)
            f=$(printf "%s\n" "${itg[@]}" | nonan | median)
            results+=("$(printf "%-12s %-6s %2s %8.1f %8.1f %8.1f %6s %6s %8.2f %8.2f %8.2f %6s %6s" \
                "$m" "$type" "$t" "$a" "$b" "$c" "$(ratio "$a" "$b")" "$(ratio "$a" "$c")" \
                "$d" "$e" "$f" "$(ratio "$d" "$e")" "$(ratio "$d" "$f")")")
            echo "${results[-1]}   (ember kernels: $kern)" >&2
        done
        [[ -n "$depths" ]] || continue
        for t in $depth_threads; do
            declare -A dv=()
            for ((r = 0; r < depth_rounds; r++)); do
                for dp in $depths; do
                    busy=0
                    measure ember_depth "$em" "$dp" "$t"; dv[e$dp]+="$out "
                    # shellcheck disable=SC2086
                    measure run_llama llama.cpp "$llama_bench" -m "$gguf" -p 0 -n "$gen" -d "$dp" -t "$t" -r 1 ${LLAMA_BENCH_ARGS:-}; l="$out"
                    dv[l$dp]+="$(llama_field tg "$dp" <<<"$l") "
                    if [[ "${ik_ok[$m]}" == 1 ]]; then
                        # shellcheck disable=SC2086
                        measure run_llama ik_llama.cpp "$ik_bench" -m "$gguf" -gp "$dp,$gen" -p 0 -n 0 -t "$t" -r 1 $ik_args; i="$out"
                        dv[i$dp]+="$(llama_field tg "$dp" <<<"$i") "
                    else
                        dv[i$dp]+="nan "
                    fi
                    echo "   depth $dp $m $type t$t: ember ${dv[e$dp]}| llama.cpp ${dv[l$dp]}| ik ${dv[i$dp]}$( ((busy)) && echo " (busy)")" >&2
                done
            done
            row="$(printf "%-12s %-6s %2s" "$m" "$type" "$t")"
            for who in e l i; do
                first=""; last=""
                for dp in $depths; do
                    v=$(tr ' ' '\n' <<<"${dv[$who$dp]}" | nonan | median)
                    row+="$(printf " %8.2f" "$v")"
                    [[ -n "$first" ]] || first="$v"; last="$v"
                done
                row+="$(printf " %6s" "$(ratio "$last" "$first")")"
            done
            depth_results+=("$row")
            echo "$row" >&2
            unset dv
        done
    done
done

echo
echo "Prompt $prompt (pp) and generation $gen (tg) tokens/s, median of $rounds alternating rounds"
echo "(E = ember bench, L = llama.cpp llama-bench, IK = ik_llama.cpp llama-bench $ik_args; E/L, E/IK = ratios):"
printf "%-12s %-6s %2s %8s %8s %8s %6s %6s %8s %8s %8s %6s %6s\n" model type t "E pp" "L pp" "IK pp" "E/L" "E/IK" \
    "E tg" "L tg" "IK tg" "E/L" "E/IK"
printf "%s\n" "${results[@]}"
if [[ -n "$depths" ]]; then
    set -- $depths
    first="$1"; last="${!#}"
    echo
    echo "Generation tokens/s ($gen tokens) after a prompt of D tokens, D in: $depths (median of $depth_rounds);"
    echo "ratio = tg at $last / tg at $first (E: ember run --prompt-ids; L: llama-bench -d; IK: llama-bench -gp):"
    hdr="$(printf "%-12s %-6s %2s" model type t)"
    for who in E L IK; do
        for dp in $depths; do hdr+="$(printf " %8s" "$who@$dp")"; done
        hdr+="$(printf " %6s" "$who r")"
    done
    echo "$hdr"
    printf "%s\n" "${depth_results[@]}"
fi
echo "($(lscpu | sed -n 's/^Model name: *//p'), $(grep -q avx512f /proc/cpuinfo && echo AVX-512 || echo no AVX-512);" \
     "ember binary built $ember_built UTC, HEAD $(git log -1 --format=%h 2>/dev/null); $(date -u +%F))"

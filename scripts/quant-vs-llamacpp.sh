#!/usr/bin/env bash
# Quantization quality, Ember against llama.cpp, on a dithered base (docs/QUANTIZATION.md).
#
#   scripts/quant-vs-llamacpp.sh [MODEL.gguf] [NAME]
#   (default: .cache/models/gemma-3-270m-q4_k_m.gguf, name gemma)
#
# 1. base: `ember convert MODEL --dither $SEED` writes the f32 GGUF both tools quantize (the
#    exact dequantization of MODEL plus ±half-step noise per source block: a base on no
#    type's grid).
# 2. llama.cpp: `llama-imatrix` on the calibration text; for each type in $LLAMA_TYPES,
#    `llama-quantize --allow-requantize` from the base, plain and with the imatrix;
#    `llama-perplexity --kl-divergence` against the base's logits (ctx 512, $CHUNKS chunks).
# 3. Ember: `ember convert base.gguf --quant R [--calibration calib.txt]` for each recipe
#    in $EMBER_RECIPES (`R:cal` adds the calibration; extra convert flags after a second
#    colon, `,` for spaces: `q4:cal:--target-bpw,4.5`; `@TYPE` in them is the size in bytes
#    of llama.cpp's TYPE file, `@TYPE-im` with imatrix: `q4:cal:--target-size,@Q6_K-im`),
#    `ember eval --reference base.ember`.
# 4. Cross-checks: each llama.cpp file of $CHECK_TYPES converted with `--quant same` and
#    scored by `ember eval` (its KLD should agree with llama-perplexity's: the evaluators
#    match where the two engines' arithmetic does), and converted with `--quant f32` (the
#    same weights with exact f32 arithmetic: how much each engine's 8-bit activations add).
# 5. Speed: `ember bench FILE -p 128 -n 64` ($BENCH_THREADS threads) on every row's file,
#    llama.cpp's converted with `--quant same`: Ember's prompt and generation tokens/s.
#
# Texts (from ../shared/data/tinyshakespeare.txt, as the rest of docs/QUANTIZATION.md):
# evaluation = the first 100,000 bytes, calibration = 60,000 bytes from offset 500,000
# (not seen by the evaluation); both tools calibrate on 8192 tokens (16 windows of 512).
#
# Every row is cached in $WORK/rows/ (delete a row's file to rerun it) and the table is
# printed at the end as markdown (also in $WORK/table.md). Environment:
#   CHUNKS (16)  SEED (1)  THREADS (2)  BENCH_THREADS ($THREADS)  WORK (.cache/quant/NAME)
#   KEEP (0: delete quantized files after scoring them)  LLAMA_TYPES  EMBER_RECIPES
#   CHECK_TYPES (Q4_0 Q4_K_M)  LLAMA_SPEED (1; 0: no Ember speed on llama.cpp's files)
#   EMBER (target/release/ember; a copy keeps a long run on one build)
# Long: about 40 minutes for Gemma 3 270M on 2 cores. Run it under `nice`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

model="${1:-.cache/models/gemma-3-270m-q4_k_m.gguf}"
name="${2:-gemma}"
chunks="${CHUNKS:-16}"
seed="${SEED:-1}"
threads="${THREADS:-2}"
W="${WORK:-.cache/quant/$name}"
keep="${KEEP:-0}"
llama_types="${LLAMA_TYPES-Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S IQ4_XS IQ4_NL Q4_1 Q4_0}"
ember_recipes="${EMBER_RECIPES-q8_0 q4_z q4:cal q4:cal:--target-size,@Q8_0 q4:cal:--target-size,@Q6_K-im q4:cal:--target-size,@Q5_K_M-im q4:cal:--target-size,@Q4_K_M-im q4:cal:--target-size,@IQ4_XS-im}"
check_types="${CHECK_TYPES-Q4_0 Q4_K_M}"
bench_threads="${BENCH_THREADS:-$threads}"
llama_speed="${LLAMA_SPEED:-1}"
shakes="../shared/data/tinyshakespeare.txt"
E="${EMBER:-$root/target/release/ember}"
py="$root/.cache/venv/bin/python"

log() { echo "== $*" >&2; }
[[ -f "$model" ]] || { echo "no $model (scripts/fetch-models.sh)" >&2; exit 1; }
[[ -f "$shakes" ]] || { echo "no $shakes" >&2; exit 1; }
"$py" -c "import gguf" 2>/dev/null || { echo "$py lacks the gguf package" >&2; exit 1; }
[[ -n "${EMBER:-}" ]] || cargo build --release --quiet
scripts/build-llama-bench.sh >/dev/null
B="$root/.cache/llama.cpp-build/bin"
mkdir -p "$W/rows"

eval_txt="$W/eval.txt"
calib_txt="$W/calib.txt"
[[ -s "$eval_txt" ]] || head -c 100000 "$shakes" > "$eval_txt"
[[ -s "$calib_txt" ]] || tail -c +500001 "$shakes" | head -c 60000 > "$calib_txt"

base="$W/base.gguf"
if [[ ! -s "$base" ]]; then
    log "dithered base (seed $seed)"
    "$E" convert "$model" -o "$base" --dither "$seed" --force
fi
if [[ ! -s "$W/base.ember" ]]; then
    "$E" convert "$base" -o "$W/base.ember" --quant f32 --force --quiet
fi

# Bits per weight of a GGUF or .ember file: "block-matrix-bpw all-matrix-bpw", where block
# matrices are the 2-D tensors other than token_embd/output and "all" adds those.
bpw() {
    local f="$1"
    if [[ "$f" == *.gguf ]]; then
        "$py" - "$f" <<'EOF'
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
rows = [(t.name, int(t.n_elements), int(t.n_bytes)) for t in r.tensors if len(t.shape) >= 2]
blk = [(n, e, b) for n, e, b in rows if n not in ("token_embd.weight", "output.weight")]
f = lambda xs: 8 * sum(b for _, _, b in xs) / sum(e for _, e, _ in xs)
print(f"{f(blk):.3f} {f(rows):.3f}")
EOF
    else
        "$E" inspect "$f" --json | "$py" -c '
import json, sys
d = json.load(sys.stdin)
rows = [(t["name"], t["shape"], t["bytes"]) for t in d["tensors"] if len(t["shape"]) >= 2]
n = lambda s: s[0] * s[1]
blk = [r for r in rows if r[0] not in ("token_embd.weight", "output.weight")]
f = lambda xs: 8 * sum(b for _, _, b in xs) / sum(n(s) for _, s, _ in xs)
print(f"{f(blk):.3f} {f(rows):.3f}")'
    fi
}

# llama-perplexity's KLD report as "ppl kld_mean kld_p99 top1".
parse_llama() {
    awk '
        /^Mean PPL\(Q\) +:/   { ppl = $4 }
        /^Mean +KLD:/         { kld = $3 }
        /^99\.0% +KLD:/       { p99 = $3 }
        /^Same top p:/        { top = $4 }
        END { print ppl, kld, p99, top }' "$1"
}

# Ember's speed on a .ember file: "pp tg" (tokens/s, medians of 3).
ember_speed() {
    "$E" bench "$1" -p 128 -n 64 -r 3 -t "$bench_threads" --json 2>/dev/null |
        "$py" -c 'import json,sys; d=json.load(sys.stdin); print("%.1f %.1f" % (d["pp_tok_s"], d["tg_tok_s"]))'
}

# Row files: "label|MB|bpw-block|bpw-all|ppl|kld|p99|top1"; rows/NAME.speed: "pp|tg";
# rows/NAME.bytes: the file's exact size (for `@TYPE` budgets).
imat="$W/imatrix.gguf"
# llama.cpp's TYPE file from the base (IM "-im": with the imatrix), unless it is there.
llama_quantize() {
    local t="$1" im="$2" q="$W/llama-$1$2.gguf"
    if [[ ! -s "$q" ]]; then
        local args=(--allow-requantize)
        [[ -n "$im" ]] && args+=(--imatrix "$imat")
        "$B/llama-quantize" "${args[@]}" "$base" "$q" "$t" "$threads" > "$W/quantize-$t$im.log" 2>&1
    fi
    stat -c %s "$q" > "$W/rows/llama-$t$im.bytes"
}
if [[ -n "$llama_types" ]]; then
    if [[ ! -s "$imat" ]]; then
        log "llama-imatrix on the calibration text (16 windows of 512)"
        "$B/llama-imatrix" -m "$base" -f "$calib_txt" -c 512 --chunks 16 -t "$threads" \
            -o "$imat" > "$W/imatrix.log" 2>&1
    fi
    kbase="$W/kld-base.bin"
    if [[ ! -s "$kbase" || ! -s "$W/rows/llama-f32" ]]; then
        log "llama-perplexity: base logits ($chunks chunks)"
        "$B/llama-perplexity" -m "$base" -f "$eval_txt" -c 512 --chunks "$chunks" -t "$threads" \
            --kl-divergence-base "$kbase" > "$W/ppl-base.log" 2>&1
        ppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$W/ppl-base.log")
        mb=$(stat -L -c %s "$base" | awk '{ printf "%.1f", $1 / 1e6 }')
        echo "f32 base (llama-perplexity)|$mb|32|32|$ppl|0|0|100" > "$W/rows/llama-f32"
    fi
    for t in $llama_types; do
        for im in "" "-im"; do
            row="$W/rows/llama-$t$im"
            [[ -s "$row" && ( "$llama_speed" == 0 || -s "$row.speed" ) ]] && continue
            q="$W/llama-$t$im.gguf"
            log "llama.cpp $t$im"
            llama_quantize "$t" "$im"
            if [[ ! -s "$row" ]]; then
                "$B/llama-perplexity" -m "$q" -f "$eval_txt" -c 512 --chunks "$chunks" -t "$threads" \
                    --kl-divergence-base "$kbase" --kl-divergence > "$W/ppl-$t$im.log" 2>&1
                read -r ppl kld p99 top < <(parse_llama "$W/ppl-$t$im.log")
                read -r b1 b2 < <(bpw "$q")
                mb=$(stat -c %s "$q" | awk '{ printf "%.1f", $1 / 1e6 }')
                echo "llama.cpp $t${im:+ + imatrix}|$mb|$b1|$b2|$ppl|$kld|$p99|$top" > "$row"
            fi
            if [[ "$llama_speed" != 0 ]]; then
                "$E" convert "$q" -o "$W/speed.ember" --quant same --force --quiet 2>/dev/null
                read -r pp tg < <(ember_speed "$W/speed.ember")
                echo "$pp|$tg" > "$row.speed"
                rm -f "$W/speed.ember"
            fi
            if [[ "$keep" != 1 && " $check_types " != *" $t "* ]]; then rm -f "$q"; fi
        done
    done
fi

# Ember's eval as a row: "ppl kld_mean kld_p99 top1".
ember_eval() {
    "$E" eval "$1" --text "$eval_txt" --ctx 512 --chunks "$chunks" -t "$threads" \
        --reference "$W/base.ember" --json |
        "$py" -c 'import json,sys; d=json.load(sys.stdin); print(d["ppl"], d["kld_mean"], d["kld_p99"], d["top1"])'
}

for t in $check_types; do
    [[ -s "$W/llama-$t.gguf" ]] || continue
    for q in same f32; do
        row="$W/rows/check-$t-$q"
        [[ -s "$row" ]] && continue
        log "cross-check: ember eval of llama.cpp's $t (--quant $q)"
        "$E" convert "$W/llama-$t.gguf" -o "$W/check.ember" --quant "$q" --force --quiet
        read -r ppl kld p99 top < <(ember_eval "$W/check.ember")
        read -r b1 b2 < <(bpw "$W/llama-$t.gguf")
        mb=$(stat -c %s "$W/llama-$t.gguf" | awk '{ printf "%.1f", $1 / 1e6 }')
        note='`--quant same`'
        [[ "$q" == f32 ]] && note='`--quant f32`: its weights, exact arithmetic'
        printf 'ember eval of llama.cpp %s (%s)|%s|%s|%s|%.4f|%.6f|%.6f|%.3f\n' \
            "$t" "$note" "$mb" "$b1" "$b2" "$ppl" "$kld" "$p99" "$top" > "$row"
        rm -f "$W/check.ember"
    done
done

if [[ ! -s "$W/rows/ember-f32" ]]; then
    ppl=$("$E" eval "$W/base.ember" --text "$eval_txt" --ctx 512 --chunks "$chunks" -t "$threads" --json |
        "$py" -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
    mb=$(stat -L -c %s "$W/base.ember" | awk '{ printf "%.1f", $1 / 1e6 }')
    printf 'f32 base (ember eval)|%s|32|32|%.4f|0|0|100\n' "$mb" "$ppl" > "$W/rows/ember-f32"
fi

for r in $ember_recipes; do
    IFS=: read -r recipe cal extra <<< "$r"
    tag="${r//[:,]/_}"
    row="$W/rows/ember-$tag"
    [[ -s "$row" && -s "$row.speed" ]] && continue
    out="$W/ember-$tag.ember"
    args=(--quant "$recipe")
    label="Ember \`$recipe\`"
    if [[ "$cal" == cal ]]; then
        args+=(--calibration "$calib_txt")
        label="$label + calibration"
    fi
    if [[ -n "$extra" ]]; then
        # @TYPE: the exact size of llama.cpp's TYPE file.
        shown="${extra//,/ }"
        while [[ "$extra" =~ @([A-Za-z0-9_]+)(-im)? ]]; do
            ref="$W/rows/llama-${BASH_REMATCH[1]}${BASH_REMATCH[2]}.bytes"
            if [[ ! -s "$ref" ]]; then
                llama_quantize "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
                [[ "$keep" == 1 ]] || rm -f "$W/llama-${BASH_REMATCH[1]}${BASH_REMATCH[2]}.gguf"
            fi
            extra="${extra/${BASH_REMATCH[0]}/$(cat "$ref")}"
        done
        read -r -a more <<< "${extra//,/ }"
        args+=("${more[@]}")
        shown="${shown//@/= llama.cpp }"
        label="$label \`${shown//-im/ + imatrix}\`"
    fi
    # Allocations (q4 with calibration, --target-*) measure once per model and calibration
    # text: the budget does not change the measurements.
    [[ "$cal" == cal ]] && args+=(--sensitivity-cache "$W/sensitivity.json")
    log "Ember $r"
    # KEEP=1 keeps the files: a row missing only its speed reuses its file.
    if [[ ! -s "$out" || -s "$row" && "$keep" != 1 || ! -s "$row" ]]; then
        "$E" convert "$base" -o "$out" "${args[@]}" --force 2> "$W/convert-$tag.log"
    fi
    if [[ ! -s "$row" ]]; then
        read -r ppl kld p99 top < <(ember_eval "$out")
        read -r b1 b2 < <(bpw "$out")
        mb=$(stat -c %s "$out" | awk '{ printf "%.1f", $1 / 1e6 }')
        printf '%s|%s|%s|%s|%.4f|%.6f|%.6f|%.3f\n' "$label" "$mb" "$b1" "$b2" "$ppl" "$kld" "$p99" "$top" > "$row"
    fi
    read -r pp tg < <(ember_speed "$out")
    echo "$pp|$tg" > "$row.speed"
    [[ "$keep" == 1 ]] || rm -f "$out"
done

{
    echo "| file | MB | bits/w block matrices | bits/w all matrices | PPL | mean KLD | KLD p99 | same top token % | Ember pp128 tok/s | Ember tg64 tok/s |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for f in "$W"/rows/*; do
        [[ "$f" == *.speed || "$f" == *.bytes ]] && continue
        IFS='|' read -r label mb b1 b2 ppl kld p99 top < "$f"
        pp=""; tg=""
        [[ -s "$f.speed" ]] && IFS='|' read -r pp tg < "$f.speed"
        echo "| $label | $mb | $b1 | $b2 | $ppl | $kld | $p99 | $top | $pp | $tg |"
    done | sort -t'|' -k3 -g -r
} | tee "$W/table.md"
echo "speeds: ember bench -t $bench_threads on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" | tee -a "$W/table.md"

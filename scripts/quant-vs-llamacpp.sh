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
#    colon, `,` for spaces: `q4:cal:--target-bpw,4.5`), `ember eval --reference base.ember`.
# 4. A cross-check: one llama.cpp file ($CHECK_TYPE) converted with `--quant same` and scored
#    by `ember eval`: its KLD must agree with llama-perplexity's within noise.
#
# Texts (from ../shared/data/tinyshakespeare.txt, as the rest of docs/QUANTIZATION.md):
# evaluation = the first 100,000 bytes, calibration = 60,000 bytes from offset 500,000
# (not seen by the evaluation); both tools calibrate on 8192 tokens (16 windows of 512).
#
# Every row is cached in $WORK/rows/ (delete a row's file to rerun it) and the table is
# printed at the end as markdown (also in $WORK/table.md). Environment:
#   CHUNKS (16)  SEED (1)  THREADS (2)  WORK (.cache/quant/NAME)  KEEP (0: delete quantized
#   files after scoring them)  LLAMA_TYPES  EMBER_RECIPES  CHECK_TYPE (Q4_K_M)
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
ember_recipes="${EMBER_RECIPES-q8_0 q4_z q4:cal q4:cal:--target-bpw,6.0 q4:cal:--target-bpw,6.75}"
check_type="${CHECK_TYPE:-Q4_K_M}"
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

# Row files: "label|MB|bpw-block|bpw-all|ppl|kld|p99|top1"
if [[ -n "$llama_types" ]]; then
    imat="$W/imatrix.gguf"
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
            [[ -s "$row" ]] && continue
            q="$W/llama-$t$im.gguf"
            log "llama.cpp $t$im"
            args=(--allow-requantize)
            [[ -n "$im" ]] && args+=(--imatrix "$imat")
            "$B/llama-quantize" "${args[@]}" "$base" "$q" "$t" "$threads" > "$W/quantize-$t$im.log" 2>&1
            "$B/llama-perplexity" -m "$q" -f "$eval_txt" -c 512 --chunks "$chunks" -t "$threads" \
                --kl-divergence-base "$kbase" --kl-divergence > "$W/ppl-$t$im.log" 2>&1
            read -r ppl kld p99 top < <(parse_llama "$W/ppl-$t$im.log")
            read -r b1 b2 < <(bpw "$q")
            mb=$(stat -c %s "$q" | awk '{ printf "%.1f", $1 / 1e6 }')
            echo "llama.cpp $t${im:+ + imatrix}|$mb|$b1|$b2|$ppl|$kld|$p99|$top" > "$row"
            if [[ "$keep" != 1 && "$t" != "$check_type" ]]; then rm -f "$q"; fi
        done
    done
fi

# Ember's eval as a row: "ppl kld_mean kld_p99 top1".
ember_eval() {
    "$E" eval "$1" --text "$eval_txt" --ctx 512 --chunks "$chunks" -t "$threads" \
        --reference "$W/base.ember" --json |
        "$py" -c 'import json,sys; d=json.load(sys.stdin); print(d["ppl"], d["kld_mean"], d["kld_p99"], d["top1"])'
}

if [[ -n "$llama_types" && ! -s "$W/rows/check" && -s "$W/llama-$check_type.gguf" ]]; then
    log "cross-check: ember eval of llama.cpp's $check_type (--quant same)"
    "$E" convert "$W/llama-$check_type.gguf" -o "$W/check.ember" --quant same --force --quiet
    read -r ppl kld p99 top < <(ember_eval "$W/check.ember")
    read -r b1 b2 < <(bpw "$W/check.ember")
    mb=$(stat -c %s "$W/check.ember" | awk '{ printf "%.1f", $1 / 1e6 }')
    printf 'ember eval of llama.cpp %s (`--quant same`)|%s|%s|%s|%.4f|%.6f|%.6f|%.3f\n' \
        "$check_type" "$mb" "$b1" "$b2" "$ppl" "$kld" "$p99" "$top" > "$W/rows/check"
    [[ "$keep" == 1 ]] || rm -f "$W/check.ember"
fi

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
    [[ -s "$row" ]] && continue
    out="$W/ember-$tag.ember"
    args=(--quant "$recipe")
    label="Ember \`$recipe\`"
    if [[ "$cal" == cal ]]; then
        args+=(--calibration "$calib_txt")
        label="$label + calibration"
    fi
    if [[ -n "$extra" ]]; then
        read -r -a more <<< "${extra//,/ }"
        args+=("${more[@]}")
        label="$label \`${extra//,/ }\`"
        # Allocations measure once per model and calibration text (the budget does not matter).
        if [[ "$extra" == *--target-bpw* ]]; then
            args+=(--sensitivity-cache "$W/sensitivity.json")
        fi
    fi
    log "Ember $r"
    "$E" convert "$base" -o "$out" "${args[@]}" --force --quiet 2> "$W/convert-$tag.log"
    read -r ppl kld p99 top < <(ember_eval "$out")
    read -r b1 b2 < <(bpw "$out")
    mb=$(stat -c %s "$out" | awk '{ printf "%.1f", $1 / 1e6 }')
    printf '%s|%s|%s|%s|%.4f|%.6f|%.6f|%.3f\n' "$label" "$mb" "$b1" "$b2" "$ppl" "$kld" "$p99" "$top" > "$row"
    [[ "$keep" == 1 ]] || rm -f "$out"
done

{
    echo "| file | MB | bits/w block matrices | bits/w all matrices | PPL | mean KLD | KLD p99 | same top token % |"
    echo "|---|---|---|---|---|---|---|---|"
    for f in "$W"/rows/*; do
        IFS='|' read -r label mb b1 b2 ppl kld p99 top < "$f"
        echo "| $label | $mb | $b1 | $b2 | $ppl | $kld | $p99 | $top |"
    done | sort -t'|' -k3 -g -r
} | tee "$W/table.md"

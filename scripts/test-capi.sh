#!/usr/bin/env bash
# The C API (called by scripts/test.sh): builds libember (shared and static), compiles
# examples/c/generate.c against each and checks that it prints exactly what
# `ember run MODEL -p PROMPT -n N --temp 0` prints, then runs tests/capi_check.c (NULL
# arguments, error codes, tokenize, stop, reset, models from memory). The model is
# SmolLM2-135M-Instruct (scripts/fetch-models.sh); SKIPPED without it or without a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "SKIPPED: capi: no C compiler ($cc)"; exit 0; }
gguf=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -s "$gguf" ] || { echo "SKIPPED: capi: $gguf is not there (scripts/fetch-models.sh)"; exit 0; }

cargo build --release -p ember-capi -p ember
out=target/capi-test
mkdir -p "$out"
model=$out/smollm2.ember
target/release/ember convert "$gguf" -o "$model" --quant same --force >/dev/null
# As the README says, against the shared library; and statically.
"$cc" -Wall -Wextra -Werror examples/c/generate.c -Icapi/include -Ltarget/release -lember -o "$out/generate"
"$cc" -Wall -Wextra -Werror examples/c/generate.c -Icapi/include target/release/libember.a \
    -lpthread -ldl -lm -o "$out/generate-static"
"$cc" -Wall -Wextra -Werror tests/capi_check.c -Icapi/include -Ltarget/release -lember -o "$out/capi_check"

status=0
for prompt in "Once upon a time" "The capital of France is" "Héllo wörld, 日本語 ✓" "def fibonacci(n):"; do
    want=$(target/release/ember run "$model" -p "$prompt" -n 32 --temp 0 2>/dev/null; echo .)
    for bin in generate generate-static; do
        got=$(LD_LIBRARY_PATH=target/release "$out/$bin" "$model" "$prompt" 32; echo .)
        if [ "$got" == "$want" ]; then
            echo "ok   $bin \"$prompt\": ${got%.}"
        else
            echo "FAIL $bin \"$prompt\": got ${got%.} want ${want%.}"
            status=1
        fi
    done
done
LD_LIBRARY_PATH=target/release "$out/capi_check" "$model" || status=1
exit $status

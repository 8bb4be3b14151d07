#!/usr/bin/env bash
# The no_std proof by running: builds examples/firmware for a Cortex-M4 (no heap, no OS),
# boots it in qemu's mps2-an386 board, prints what it printed over semihosting, and checks
# that the token ids (and text) it generated equal the host's `ember run` for the same model,
# prompt ids and greedy settings, with scalar kernels on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
model=examples/firmware/model/tiny-q8_0.ember

if ! command -v qemu-system-arm >/dev/null; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true

target=${CARGO_TARGET_DIR:-$root/target}
fw_target=$target/firmware
echo "building the firmware (thumbv7em-none-eabihf) and the host's edge binary ..."
(
    cd examples/firmware
    cargo fmt --check
    cargo clippy --release --quiet --target-dir "$fw_target" -- -D warnings
    cargo build --release --quiet --target-dir "$fw_target"
)
elf=$fw_target/thumbv7em-none-eabihf/release/ember-firmware
# The host side: the slim runtime-only binary (it has `run`).
cargo build --profile edge --no-default-features --features runtime-only --quiet
ember=$target/edge/ember

echo "qemu-system-arm -M mps2-an386 ... -kernel $elf"
status=0
out=$(timeout 600 qemu-system-arm -M mps2-an386 -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf") || status=$?
echo "$out"
if [ "$status" -ne 0 ]; then
    echo "FAIL: the firmware exited with status $status"
    exit 1
fi

prompt=$(sed -n 's/^prompt_ids=//p' <<<"$out")
fw_ids=$(sed -n 's/^ids=//p' <<<"$out")
ctx=$(sed -n 's/.* ctx \([0-9]*\);.*/\1/p' <<<"$out" | head -n 1)
fw_text=$(sed -n '/^--- text ---$/,/^--- end ---$/p' <<<"$out" | sed '1d;$d')
if [ -z "$prompt" ] || [ -z "$fw_ids" ] || [ -z "$ctx" ]; then
    echo "FAIL: the firmware did not print prompt_ids=, ids= and its context"
    exit 1
fi
n=$(tr ',' '\n' <<<"$fw_ids" | wc -l)

host_run() {
    EMBER_KERNELS=scalar "$ember" run "$model" --prompt-ids "$prompt" -n "$n" --ctx "$ctx" \
        --temp 0 --repeat-penalty 1 -t 1 "$@"
}
echo "host: EMBER_KERNELS=scalar $ember run $model --prompt-ids $prompt -n $n --ctx $ctx --temp 0"
json=$(host_run --json)
host_ids=$(grep -o '"ids":\[[0-9,]*\]' <<<"$json" | sed 's/^"ids":\[//; s/\]$//')
host_text=$(host_run 2>/dev/null)
echo "host ids=$host_ids"
echo "host text: $host_text"

if [ "$fw_ids" != "$host_ids" ]; then
    echo "FAIL: the firmware's ids differ from the host's"
    exit 1
fi
if [ "$fw_text" != "$host_text" ]; then
    echo "FAIL: the firmware's text differs from the host's"
    exit 1
fi
# README shows this run's output: its banner, prompt and ids lines must be this run's.
for prefix in "ember on Cortex-M4:" "prompt_ids=" "ids="; do
    line=$(grep -m1 "^$prefix" <<<"$out")
    if ! grep -qxF "$line" README.md; then
        echo "FAIL: README's firmware output lacks this run's line: $line"
        exit 1
    fi
done
echo "ok: the Cortex-M4 firmware generated the same $n tokens as the host (and as README shows)"

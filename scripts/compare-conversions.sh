#!/usr/bin/env bash
# Converts every model fixture (the repository's and ../shared's: HF directories and
# llama.cpp's GGUFs) with two `ember` binaries and compares the .ember files byte for byte:
# the check that a refactor of the converter or the format changed nothing it writes.
#
#   scripts/compare-conversions.sh OLD_EMBER NEW_EMBER [RECIPE ...]
#
# e.g. after `git worktree add /tmp/base HEAD~1 && (cd /tmp/base && cargo build --release)`:
#   scripts/compare-conversions.sh /tmp/base/target/release/ember target/release/ember
# Recipes default to f32, q8_0, q4_0 and same. Exits non-zero if any file differs or only
# one binary converts a source.
set -u
cd "$(dirname "$0")/.."
old=$1
new=$2
shift 2
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(f32 q8_0 q4_0 same)

sources=()
for d in converter/tests/fixtures/tiny-* ../shared/fixtures/tiny-* ../shared/fixtures/smollm2; do
    [ -f "$d/config.json" ] && sources+=("$d")
    [ -f "$d/model-f32.gguf" ] && sources+=("$d/model-f32.gguf")
done
if [ ! -d ../shared/fixtures ]; then
    echo "SKIPPED: ../shared/fixtures absent; comparing the repository's fixtures only"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
same=0
differ=0
for src in "${sources[@]}"; do
    for q in "${recipes[@]}"; do
        a=$work/old.ember
        b=$work/new.ember
        rm -f "$a" "$b"
        "$old" convert "$src" -o "$a" --quant "$q" >/dev/null 2>"$work/old.err"
        ra=$?
        "$new" convert "$src" -o "$b" --quant "$q" >/dev/null 2>"$work/new.err"
        rb=$?
        if [ $ra -ne 0 ] && [ $rb -ne 0 ]; then
            continue # neither converts it (a recipe the source cannot take)
        fi
        if [ $ra -ne 0 ]; then
            echo "NEW ONLY  $src ($q): the old binary refused: $(tail -1 "$work/old.err")"
            continue
        fi
        if [ $rb -ne 0 ]; then
            echo "DIFFERS   $src ($q): the new binary refused: $(tail -1 "$work/new.err")"
            differ=$((differ + 1))
        elif cmp -s "$a" "$b"; then
            same=$((same + 1))
        else
            echo "DIFFERS   $src ($q): $(cmp "$a" "$b" | head -1)"
            differ=$((differ + 1))
        fi
    done
done
echo "$same identical, $differ different"
[ $differ -eq 0 ]

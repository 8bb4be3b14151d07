#!/usr/bin/env python3
"""Prints the XXH64 known-answer vectors of formats/src/xxh64.rs (`known_vectors_reference`) from the reference
implementation (the `xxhash` package on PyPI wraps Yann Collet's xxHash C library).

    .cache/venv/bin/pip install xxhash && .cache/venv/bin/python formats/src/xxh64_vectors.py

Inputs: the first n bytes of data[i] = (i * 131 + 7) mod 256, and of the ASCII text below;
lengths cover each path (under 4, under 8, under 32, exactly one and several 32-byte stripes,
stripes plus each tail). Seeds 0 (the file checksum) and 0x9E3779B97F4A7C15.
"""
import xxhash

LENGTHS = [0, 1, 3, 4, 7, 8, 15, 16, 31, 32, 33, 36, 40, 63, 64, 65, 100, 127, 128, 129, 255, 1000, 4096, 100003]
SEEDS = [0, 0x9E3779B97F4A7C15]
TEXT = b"The quick brown fox jumps over the lazy dog; the ember format checksums every byte. "

print("xxhash", xxhash.VERSION, "(library", xxhash.XXHASH_VERSION + ")")
print("// (len, seed, xxh64(pattern[..len]))")
for n in LENGTHS:
    data = bytes((i * 131 + 7) % 256 for i in range(n))
    for s in SEEDS:
        print(f"    ({n}, 0x{s:016X}, 0x{xxhash.xxh64_intdigest(data, seed=s):016X}),")
print("// (len, xxh64(TEXT repeated, [..len]))")
for n in [32, 43, 64, 85, 200]:
    t = (TEXT * 4)[:n]
    print(f"    ({n}, 0x{xxhash.xxh64_intdigest(t):016X}),")

#!/usr/bin/env python3
"""llama.cpp through llama-cpp-python, measured the way `ember bench` measures Ember.

  llamacpp_bench.py bench MODEL.gguf -p 128 -n 64 -t 2 -r 3   -> {"pp_tok_s": .., "tg_tok_s": ..}
  llamacpp_bench.py quantize IN.gguf OUT.gguf TYPE            -> requantize with llama.cpp
pp: one batch of p prompt tokens (like llama-bench's pp); tg: n single-token decodes (tg).
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import llama_cpp

# llama.cpp's extra CPU buffer types (the AMX and repacked-weight backends) crash inside
# llama_decode on this machine's VM (AMX tiles present but unusable), so they are turned off:
# set LLAMACPP_EXTRA_BUFTS=1 to keep them where they work.
if os.environ.get("LLAMACPP_EXTRA_BUFTS") != "1":
    _default_params = llama_cpp.llama_model_default_params

    def _no_extra_bufts():
        p = _default_params()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_model_default_params = _no_extra_bufts
    llama_cpp.llama.llama_cpp.llama_model_default_params = _no_extra_bufts

FTYPES = {"f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q4_k_m": 15}


def quantize(src, dst, kind):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed with {rc}")


def bench(path, p, n, threads, reps):
    llm = llama_cpp.Llama(
        model_path=path,
        n_ctx=p + n + 8,
        n_batch=max(p, 1),
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    vocab = llm.n_vocab()
    prompt = [(i * 2654435761 >> 7) % vocab for i in range(p)]
    pp, tg = [], []
    for rep in range(reps + 1):  # one warm-up repetition
        llm.reset()
        llm._ctx.kv_cache_clear()
        t = time.perf_counter()
        llm.eval(prompt)
        dt = time.perf_counter() - t
        if rep:
            pp.append(p / dt)
        llm.reset()
        llm._ctx.kv_cache_clear()
        tok = prompt[0]
        t = time.perf_counter()
        for _ in range(n):
            llm.eval([tok])
        dt = time.perf_counter() - t
        if rep:
            tg.append(n / dt)
    print(json.dumps({"pp_tok_s": statistics.median(pp), "tg_tok_s": statistics.median(tg), "threads": threads}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("model")
    b.add_argument("-p", type=int, default=128)
    b.add_argument("-n", type=int, default=64)
    b.add_argument("-t", type=int, default=2)
    b.add_argument("-r", type=int, default=3)
    q = sub.add_parser("quantize")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("type", choices=sorted(FTYPES))
    a = ap.parse_args()
    if a.cmd == "bench":
        bench(a.model, a.p, a.n, a.t, a.r)
    else:
        quantize(a.src, a.dst, a.type)


if __name__ == "__main__":
    main()

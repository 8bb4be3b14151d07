"""GGUFs shaped like Qwen3-30B-A3B (fewer layers), random weights, for decode-speed benchmarks.

Writes, in F16 (norms F32), tensor by tensor (peak memory ~ one expert tensor, ~0.5 GB):
  --moe PATH    architecture qwen3moe: hidden 2048, 32 query heads x head_dim 128, 4 KV heads,
                Q/K RMS norms, 128 experts of width 768 with 8 used (softmax top-k, renormalised),
                router blk.N.ffn_gate_inp (ne [2048, 128]), experts ffn_gate_exps/ffn_up_exps
                (ne [2048, 768, 128]) and ffn_down_exps (ne [768, 2048, 128]), untied output,
                rope theta 1e6, rms eps 1e-6.
  --dense PATH  architecture qwen3 with the same attention and embedding/head, and a dense SwiGLU
                FFN of width 8 x 768 = 6144: per token it reads the same parameters as the MoE's
                active ones (router aside).
Every per-layer shape is Qwen3-30B-A3B's; only the layer count is cut (--layers, default 8 of
48). The tokenizer (and so the vocabulary size) is copied from --tokenizer, any GGUF with
tokenizer.* keys: llama.cpp's models/ggml-vocab-qwen2.gguf has Qwen's real 151,936-token vocab
(Qwen3 uses the Qwen2 tokenizer), SmolLM2's GGUF has 49,152 tokens (a smaller head, closer to
the real model's head/layer proportion once the layers are cut to a sixth).

  python make_moe_gguf.py --tokenizer TOK.gguf --moe moe-f16.gguf --dense dense-f16.gguf [--layers 8]

Quantize the outputs with llama.cpp's llama-quantize (scripts/bench-moe.sh does). Speed does not
depend on the weight values; weights are N(0, 0.02^2), norms 1 + N(0, 0.1^2). Needs numpy and
the gguf package (pip install gguf).
"""
import argparse
import os
import sys

import numpy as np
import gguf

C, NH, KVH, HD = 2048, 32, 4, 128
N_EXP, N_USED, FE = 128, 8, 768
DENSE_FF = N_USED * FE  # 6144
CTX, THETA, EPS = 40960, 1e6, 1e-6


def copy_tokenizer(w, tok_path):
    r = gguf.GGUFReader(tok_path)
    n_vocab = None
    for f in r.fields.values():  # the tokenizer, as the source GGUF ships it
        if not f.name.startswith("tokenizer."):
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            sub = f.types[-1]
            vals = [f.parts[i] for i in f.data]
            if sub == gguf.GGUFValueType.STRING:
                vals = [bytes(v).decode("utf-8", "surrogateescape") for v in vals]
            else:
                vals = [v.tolist()[0] for v in vals]
            if f.name == "tokenizer.ggml.tokens":
                n_vocab = len(vals)
            w.add_array(f.name, vals)
        elif t == gguf.GGUFValueType.STRING:
            w.add_string(f.name, bytes(f.parts[f.data[0]]).decode("utf-8"))
        else:
            w.add_key_value(f.name, f.parts[f.data[0]].tolist()[0], t)
    if n_vocab is None:
        sys.exit(f"{tok_path}: no tokenizer.ggml.tokens")
    return n_vocab


def write_model(out, kind, layers, tok_path, seed):
    arch = "qwen3moe" if kind == "moe" else "qwen3"
    tmp = out + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)
    w.add_type("model")
    w.add_name(f"random-qwen3-30b-a3b-shaped-{kind}-{layers}L")
    w.add_block_count(layers)
    w.add_context_length(CTX)
    w.add_embedding_length(C)
    w.add_feed_forward_length(DENSE_FF)  # Qwen3-30B-A3B's intermediate_size is 6144 too
    w.add_head_count(NH)
    w.add_head_count_kv(KVH)
    w.add_key_length(HD)
    w.add_value_length(HD)
    w.add_rope_freq_base(THETA)
    w.add_layer_norm_rms_eps(EPS)
    if kind == "moe":
        w.add_expert_count(N_EXP)
        w.add_expert_used_count(N_USED)
        w.add_expert_feed_forward_length(FE)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    V = copy_tokenizer(w, tok_path)

    # (name, numpy shape = reversed GGUF ne)
    tensors = [("token_embd.weight", (V, C)), ("output_norm.weight", (C,)), ("output.weight", (V, C))]
    for i in range(layers):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", (C,)),
            (b + "attn_q.weight", (NH * HD, C)),
            (b + "attn_k.weight", (KVH * HD, C)),
            (b + "attn_v.weight", (KVH * HD, C)),
            (b + "attn_q_norm.weight", (HD,)),
            (b + "attn_k_norm.weight", (HD,)),
            (b + "attn_output.weight", (C, NH * HD)),
            (b + "ffn_norm.weight", (C,)),
        ]
        if kind == "moe":
            tensors += [
                (b + "ffn_gate_inp.weight", (N_EXP, C)),
                (b + "ffn_gate_exps.weight", (N_EXP, FE, C)),
                (b + "ffn_up_exps.weight", (N_EXP, FE, C)),
                (b + "ffn_down_exps.weight", (N_EXP, C, FE)),
            ]
        else:
            tensors += [
                (b + "ffn_gate.weight", (DENSE_FF, C)),
                (b + "ffn_up.weight", (DENSE_FF, C)),
                (b + "ffn_down.weight", (C, DENSE_FF)),
            ]
    for name, shp in tensors:
        dt = np.float32 if len(shp) == 1 else np.float16
        w.add_tensor_info(name, shp, np.dtype(dt), int(np.prod(shp)) * np.dtype(dt).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    rng = np.random.default_rng(seed)

    def make(name, shp):
        if len(shp) == 1:
            scale, base = (0.1, 1.0) if "norm" in name else (0.02, 0.0)
            return (base + scale * rng.standard_normal(shp, dtype=np.float32)).astype(np.float32)
        a = np.empty(shp, dtype=np.float16)
        # one 2-D slice at a time (an expert, or a block of rows), never the f32 whole
        rows = a.reshape(-1, shp[-1])
        step = max(1, (1 << 22) // shp[-1])
        for s in range(0, rows.shape[0], step):
            x = rng.standard_normal((min(step, rows.shape[0] - s), shp[-1]), dtype=np.float32)
            x *= 0.02
            rows[s:s + x.shape[0]] = x
        return a

    for k, (name, shp) in enumerate(tensors):
        w.write_tensor_data(make(name, shp))
        if len(shp) == 3:
            print(f"  {out}: {name} ({k + 1}/{len(tensors)})", file=sys.stderr, flush=True)
    w.close()
    os.replace(tmp, out)
    n = sum(int(np.prod(s)) for _, s in tensors)
    per_layer_active = (2 * NH * HD * C + 2 * KVH * HD * C) + 3 * C * DENSE_FF
    print(f"{out}: {arch}, {layers} layers, vocab {V}, {n / 1e9:.3f} B params, "
          f"active per token (matrices, head, no embedding/router) "
          f"{(layers * per_layer_active + V * C) / 1e9:.3f} B", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokenizer", required=True, help="a GGUF whose tokenizer.* keys are copied")
    p.add_argument("--moe", help="write the qwen3moe model here")
    p.add_argument("--dense", help="write the dense qwen3 model (FFN 6144) here")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    if not a.moe and not a.dense:
        p.error("nothing to write: give --moe and/or --dense")
    if a.moe:
        write_model(a.moe, "moe", a.layers, a.tokenizer, a.seed)
    if a.dense:
        write_model(a.dense, "dense", a.layers, a.tokenizer, a.seed + 1)


if __name__ == "__main__":
    main()

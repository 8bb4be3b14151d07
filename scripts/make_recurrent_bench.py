"""Random-weight checkpoints with the real shapes of two recurrent hybrid models, for speed
benchmarks (scripts/bench-recurrent.sh): a Hugging Face directory (config.json,
model.safetensors in F16, a tokenizer) and, with --gguf, an F16 GGUF written by llama.cpp's own
convert_hf_to_gguf.py.

  python scripts/make_recurrent_bench.py qwen35-0.8b OUT_DIR [--gguf OUT.gguf --llama-src DIR]
  python scripts/make_recurrent_bench.py lfm2-1.2b  OUT_DIR [--gguf OUT.gguf --llama-src DIR]

Shapes (text model only; no vision tower, no MTP block):
  qwen35-0.8b  Qwen/Qwen3.5-0.8B text config: hidden 1024, 24 layers in 6 x (3 Gated DeltaNet
      + 1 gated full attention), FFN 3584 (SwiGLU), attention 8 query heads x 256 with 2 KV heads,
      output gate, partial RoPE 0.25 (interleaved MRoPE sections 11/11/10), theta 1e7; DeltaNet
      16 key heads and 16 value heads of 128, conv kernel 4; vocab 248,320, tied embedding.
      Sources: the Qwen3.5-0.8B model card figures as quoted by apxml.com/models/qwen35-08b
      (hidden 1024, 24 layers, FFN 3584, 8 Q / 2 KV heads of 256, vocab 248,320, rope theta 1e7,
      6 x (3 x DeltaNet + 1 x attention)) and a config transcribed from Qwen/Qwen3.5-0.8B in
      gist.github.com/scturtle/1930047017717cd7f56d4a2b726aeb20 (the same plus
      partial_rotary_factor 0.25, linear_conv_kernel_dim 4, linear_{key,value}_head_dim 128,
      linear_num_{key,value}_heads 16); tie_word_embeddings true for the small Qwen3.5 models is
      from memory of the published config (the 27B's is untied: THUDM/slime
      scripts/models/qwen3.5-27B.sh), so it is the one figure not read from a source here.
  lfm2-1.2b    LiquidAI/LFM2-1.2B config (as mirrored in FastFlowLM/LFM2-1.2B-NPU2 config.json):
      hidden 2048, 16 layers, attention at layers 2, 5, 8, 10, 12, 14 (32 heads x 64, 8 KV
      heads), the other 10 short-convolution blocks with conv_L_cache 3, no conv bias;
      block_ff_dim 12288 auto-adjusted (2/3, multiple of 256) to 8192; vocab 65,536, tied
      embedding, norm eps 1e-5, rope theta 1e6.

Weights: matrices (and conv kernels, embedding) N(0, 0.02); Qwen3.5's (1 + w) RMSNorms 0, its
gated DeltaNet output norm 1, A_log = log U(1, 16), dt_bias 1; LFM2's RMSNorms 1; biases 0.
Stored F16 (about 1.5 GB for Qwen3.5-0.8B, 2.3 GB for LFM2-1.2B). Speed does not depend on
the values; they only have to keep activations finite.

Tokenizer: the 512-token byte-level BPE of the tiny test fixtures (TOKENIZER_DIR, default
/work/shared/fixtures/tiny-qwen35), with the real vocab_size in config.json: llama.cpp's
converter pads the token list to vocab_size with [PADn] entries, so embedding and output head
keep their real size. The pre-tokenizer is named "gpt-2" by hand (the converter would otherwise
refuse a tokenizer it does not know by hash), as the fixtures' hf_to_gguf_args.py does.

Needs torch, transformers (>= 5, for Qwen3_5ForCausalLM and Lfm2ForCausalLM) and safetensors
(.cache/venv has them); --gguf also needs the llama.cpp source tree (its convert_hf_to_gguf.py
and gguf-py).
"""
import argparse
import json
import math
import os
import shutil
import sys

import torch

QWEN35_08B = {
    "architectures": ["Qwen3_5ForCausalLM"],
    "model_type": "qwen3_5_text",
    "vocab_size": 248320,
    "hidden_size": 1024,
    "intermediate_size": 3584,
    "num_hidden_layers": 24,
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 6,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "attn_output_gate": True,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 16,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 262144,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
                        "mrope_interleaved": True, "mrope_section": [11, 11, 10]},
    "tie_word_embeddings": True,
    "attention_bias": False,
    "mtp_num_hidden_layers": 0,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "initializer_range": 0.02,
    "dtype": "float16",
}

LFM2_12B = {
    "architectures": ["Lfm2ForCausalLM"],
    "model_type": "lfm2",
    "vocab_size": 65536,
    "hidden_size": 2048,
    "intermediate_size": 12288,
    "block_auto_adjust_ff_dim": True,
    "block_ffn_dim_multiplier": 1.0,
    "block_multiple_of": 256,
    "num_hidden_layers": 16,
    "layer_types": ["full_attention" if i in (2, 5, 8, 10, 12, 14) else "conv" for i in range(16)],
    "full_attn_idxs": [2, 5, 8, 10, 12, 14],
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "conv_L_cache": 3,
    "conv_bias": False,
    "norm_eps": 1e-5,
    "max_position_embeddings": 128000,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "tie_word_embeddings": True,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "pad_token_id": 0,
    "initializer_range": 0.02,
    "dtype": "float16",
}

MODELS = {"qwen35-0.8b": QWEN35_08B, "lfm2-1.2b": LFM2_12B}
TOKFILES = ["tokenizer.json", "tokenizer_config.json"]


def init_value(kind, name, shape, gen):
    """Random value of one parameter (float32), by the rules in the module docstring."""
    if len(shape) >= 2:
        return torch.randn(shape, generator=gen) * 0.02
    if name.endswith("A_log"):
        return torch.log(torch.empty(shape).uniform_(1.0, 16.0, generator=gen))
    if name.endswith("dt_bias"):
        return torch.ones(shape)
    if "norm" in name or "layernorm" in name:
        if kind == "qwen35-0.8b" and "linear_attn.norm" not in name:
            return torch.zeros(shape)  # Qwen3.5's RMSNorm scales by (1 + w)
        return torch.ones(shape)
    return torch.zeros(shape)


def write_hf(kind, out, tokdir, seed):
    import transformers as tf
    from safetensors.torch import save_file

    cfg_dict = dict(MODELS[kind])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
    for name in TOKFILES:
        shutil.copyfile(os.path.join(tokdir, name), os.path.join(out, name))
    cfg = tf.AutoConfig.from_pretrained(out)
    cls = getattr(tf, cfg_dict["architectures"][0])
    with torch.device("meta"):
        model = cls(cfg)
    tied = cfg_dict["tie_word_embeddings"]
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    n = 0
    for name, p in model.named_parameters(remove_duplicate=False):
        if tied and name == "lm_head.weight":
            continue
        tensors[name] = init_value(kind, name, tuple(p.shape), gen).to(torch.float16).contiguous()
        n += p.numel()
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    # the checkpoint loads back in transformers (catches a name or shape mismatch early)
    missing = set(model.state_dict().keys()) - set(tensors) - ({"lm_head.weight"} if tied else set())
    if missing:
        sys.exit(f"make_recurrent_bench: parameters not written: {sorted(missing)[:8]}")
    print(f"{kind}: {n / 1e6:.1f}M parameters, {len(tensors)} tensors -> {out}", file=sys.stderr)


def write_gguf(hf, out, llama_src):
    """llama.cpp's convert_hf_to_gguf.py, F16, pre-tokenizer named "gpt-2"; Qwen3.5 with --no-mtp."""
    sys.path.insert(0, os.path.join(llama_src, "gguf-py"))
    sys.path.insert(0, llama_src)
    import convert_hf_to_gguf as c
    pre = lambda self, tokenizer: "gpt-2"
    try:
        import conversion.base as base
        base.TextModel.get_vocab_base_pre = pre
    except ImportError:
        pass
    for cls in [getattr(c, n) for n in dir(c)]:
        if isinstance(cls, type) and hasattr(cls, "get_vocab_base_pre"):
            cls.get_vocab_base_pre = pre
    arch = json.load(open(os.path.join(hf, "config.json")))["architectures"][0]
    extra = ["--no-mtp"] if arch.startswith("Qwen3_5") else []
    sys.argv = ["convert_hf_to_gguf.py", hf, "--outfile", out, "--outtype", "f16"] + extra
    c.main()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("out", help="Hugging Face directory to write")
    ap.add_argument("--gguf", help="then write this F16 GGUF with llama.cpp's converter")
    ap.add_argument("--llama-src", default=".cache/llama.cpp-src")
    ap.add_argument("--tokenizer-dir", default=os.environ.get("TOKENIZER_DIR", "/work/shared/fixtures/tiny-qwen35"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.out, "model.safetensors")):
        write_hf(a.model, a.out, a.tokenizer_dir, a.seed)
    if a.gguf:
        write_gguf(a.out, a.gguf, a.llama_src)


if __name__ == "__main__":
    main()

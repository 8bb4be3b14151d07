#!/usr/bin/env python3
"""Writes the seeds of the hf_import and chat_template fuzz targets (small, committed).

    .cache/venv/bin/python fuzz/make_hf_seeds.py

hf_import: random-weight tiny checkpoints (transformers, 1-2 layers, hidden 8, vocab 512 to
match the target's fixed tokenizer), one per architecture the importer takes, in f32, f16 and
bf16, each as [u32 LE len(config.json)] config.json model.safetensors.
chat_template: each template of tests/fixtures/chat_templates, then 0-separated message texts.
"""
import json
import os
import struct

import torch
import transformers as T
from safetensors.torch import save

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

COMMON = dict(vocab_size=512, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)


def configs():
    yield "llama", T.LlamaConfig(**COMMON, head_dim=4), T.LlamaForCausalLM, torch.float32
    yield "qwen2", T.Qwen2Config(**COMMON), T.Qwen2ForCausalLM, torch.float16
    yield "qwen3", T.Qwen3Config(**COMMON, head_dim=4), T.Qwen3ForCausalLM, torch.bfloat16
    yield ("gemma3", T.Gemma3TextConfig(**dict(COMMON, num_hidden_layers=2), head_dim=4,
                                        sliding_window=4), T.Gemma3ForCausalLM, torch.float32)
    yield ("gpt2", T.GPT2Config(vocab_size=512, n_embd=8, n_layer=1, n_head=2, n_positions=64),
           T.GPT2LMHeadModel, torch.float16)


def main():
    torch.manual_seed(0)
    out = os.path.join(HERE, "seeds", "hf_import")
    os.makedirs(out, exist_ok=True)
    for name, cfg, cls, dtype in configs():
        model = cls(cfg).to(dtype)
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        # Tied weights appear once in a checkpoint.
        if getattr(cfg, "tie_word_embeddings", False):
            tensors.pop("lm_head.weight", None)
        config = json.dumps(cfg.to_dict(), sort_keys=True).encode()
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(struct.pack("<I", len(config)) + config + save(tensors))
    src = os.path.join(ROOT, "tests", "fixtures", "chat_templates")
    out = os.path.join(HERE, "seeds", "chat_template")
    os.makedirs(out, exist_ok=True)
    for fn in sorted(os.listdir(src)):
        if fn.endswith(".jinja"):
            with open(os.path.join(src, fn), encoding="utf-8") as f:
                t = f.read()
            with open(os.path.join(out, fn[:-6] + ".txt"), "w", encoding="utf-8") as f:
                f.write(t + "\0You are brief.\0Hello {{ there }}\0Hi!")


main()

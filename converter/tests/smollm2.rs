//! The real SmolLM2-135M-Instruct Q4_1 GGUF (fetched by scripts/fetch-models.sh): converts
//! with `same` (blocks kept byte for byte) and `f32`; 30 layers, 9/3 heads, tied head.
mod common;

use std::time::Instant;

use common::*;
use ember_convert::gguf::GgufFile;
use ember_convert::rope::unpermute_rows;
use ember_convert::{build, Recipe};
use ember_format::{DType, EmberFile};

fn gguf_path() -> Option<std::path::PathBuf> {
    let p = repo_root().join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found: run scripts/fetch-models.sh",
            p.display()
        );
        None
    }
}

fn check_config(f: &EmberFile<'_>, recipe: &str) {
    assert_eq!(meta_str(f, "general.architecture"), "llama");
    assert_eq!(
        meta_str(f, "general.source"),
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    );
    assert_eq!(meta_str(f, "general.quantization"), recipe);
    for (k, v) in [
        ("model.vocab_size", 49152),
        ("model.context_length", 8192),
        ("model.embedding_dim", 576),
        ("model.layer_count", 30),
        ("model.head_count", 9),
        ("model.kv_head_count", 3),
        ("model.head_dim", 64),
        ("model.ffn_dim", 1536),
    ] {
        assert_eq!(meta_u32(f, k), v, "{k}");
    }
    assert_eq!(meta_f32(f, "model.rope_theta"), 100_000.0);
    assert!(meta_bool(f, "model.tied_embeddings"));
    assert!(f.tensor("output.weight").is_none());
    assert_eq!(f.tensor_count(), 272);
    assert!(f.get("tokenizer.chat_template").is_some());
}

#[test]
fn smollm2_same_and_f32() {
    let Some(path) = gguf_path() else { return };
    let src = std::fs::read(&path).unwrap();
    let g = GgufFile::parse(&src).unwrap();

    let t0 = Instant::now();
    let (w, s) = build(&path, Some(Recipe::Same), false).unwrap();
    eprintln!(
        "SmolLM2 same: {} tensors, {:.2} bits/weight, {:.2} s",
        s.tensors,
        s.bits_per_weight(),
        t0.elapsed().as_secs_f64()
    );
    let same_bytes = file_bytes(&w);
    drop(w);
    let same = EmberFile::parse(&same_bytes).unwrap();
    check_config(&same, "same");
    for t in &g.tensors {
        let e = same.tensor(&t.name).unwrap();
        assert_eq!(e.shape(), &t.shape[..], "{}", t.name);
        if t.shape.len() == 1 {
            assert_eq!(e.dtype, DType::F32);
            continue;
        }
        assert_eq!(e.dtype, t.dtype, "{}", t.name);
        if t.name.contains("attn_q") || t.name.contains("attn_k") {
            let heads = if t.name.contains("attn_q") { 9 } else { 3 };
            let rows = t.shape[0];
            let hf = unpermute_rows(t.data, t.data.len() / rows, rows, heads);
            assert_eq!(e.data, &hf[..], "{}", t.name);
        } else {
            assert_eq!(e.data, t.data, "{} not copied byte for byte", t.name);
        }
    }

    let t0 = Instant::now();
    let (w, s) = build(&path, Some(Recipe::F32), false).unwrap();
    eprintln!(
        "SmolLM2 f32: {} parameters, {:.2} s",
        s.params,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(s.params, 134_515_008);
    let f32_bytes = file_bytes(&w);
    drop(w);
    let f = EmberFile::parse(&f32_bytes).unwrap();
    check_config(&f, "f32");
    for name in [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.29.ffn_down.weight",
        "output_norm.weight",
    ] {
        let t = f.tensor(name).unwrap();
        assert_eq!(t.dtype, DType::F32);
        let q = same.tensor(name).unwrap();
        assert_eq!(
            t.as_f32().unwrap(),
            &to_f32(q.dtype, q.shape(), q.data)[..],
            "{name}: f32 is not the exact dequantization"
        );
    }
}

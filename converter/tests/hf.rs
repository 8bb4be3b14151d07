//! Hugging Face checkpoints → .ember: every tensor present with the right shape, the
//! metadata as docs/FORMAT.md says, and `--quant f32` data equal to the safetensors source
//! (after GPT-2's transpose and QKV split).
mod common;

use std::path::Path;

use common::*;
use ember_convert::{build, Recipe};
use ember_format::blocks::{f16_to_f32, f32_to_f16};
use ember_format::{DType, EmberFile};

/// (ember name, HF name) for a Llama-layout checkpoint, biases included when present.
fn llama_map(layers: usize, tied: bool) -> Vec<(String, String)> {
    let mut m = vec![
        (
            "token_embd.weight".to_string(),
            "model.embed_tokens.weight".to_string(),
        ),
        ("output_norm.weight".into(), "model.norm.weight".into()),
    ];
    if !tied {
        m.push(("output.weight".into(), "lm_head.weight".into()));
    }
    for n in 0..layers {
        let p = format!("model.layers.{n}");
        for (e, h) in [
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
            ("attn_q", "self_attn.q_proj"),
            ("attn_k", "self_attn.k_proj"),
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
        ] {
            for s in ["weight", "bias"] {
                m.push((format!("blk.{n}.{e}.{s}"), format!("{p}.{h}.{s}")));
            }
        }
    }
    m
}

/// Checks that `f` holds exactly the mapped tensors, as f32, equal to the source.
fn check_llama_f32(dir: &Path, f: &EmberFile<'_>, layers: usize, tied: bool) {
    let src = load_safetensors(&dir.join("model.safetensors"));
    let mut n = 0;
    for (ember, hf) in llama_map(layers, tied) {
        let Some((shape, vals)) = src.get(&hf) else {
            assert!(f.tensor(&ember).is_none(), "{ember} has no source");
            continue;
        };
        let t = f
            .tensor(&ember)
            .unwrap_or_else(|| panic!("{ember} missing"));
        assert_eq!(t.dtype, DType::F32, "{ember}");
        assert_eq!(t.shape(), &shape[..], "{ember}");
        assert_eq!(
            t.as_f32().unwrap(),
            &vals[..],
            "{ember} data differs from {hf}"
        );
        n += 1;
    }
    assert_eq!(f.tensor_count(), n, "unexpected extra tensors");
    if tied {
        assert!(f.tensor("output.weight").is_none());
    }
}

fn check_common_meta(f: &EmberFile<'_>, dir_name: &str, recipe: &str) {
    assert_eq!(meta_str(f, "general.source"), dir_name);
    assert_eq!(meta_str(f, "general.name"), dir_name);
    assert_eq!(
        meta_str(f, "general.converter"),
        format!("ember-convert {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(meta_str(f, "general.quantization"), recipe);
    // The tokenizer is written too.
    assert!(f.get("tokenizer.model").is_some(), "no tokenizer keys");
}

#[test]
fn tiny_llama_f32() {
    let dir = fixture("tiny-llama");
    let (w, s) = build(&dir, Some(Recipe::F32), false).unwrap();
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    f.verify_checksum().unwrap();
    check_common_meta(&f, "tiny-llama", "f32");
    assert_eq!(meta_str(&f, "general.architecture"), "llama");
    for (k, v) in [
        ("model.vocab_size", 512),
        ("model.context_length", 256),
        ("model.embedding_dim", 64),
        ("model.layer_count", 2),
        ("model.head_count", 4),
        ("model.kv_head_count", 2),
        ("model.head_dim", 16),
        ("model.ffn_dim", 172),
    ] {
        assert_eq!(meta_u32(&f, k), v, "{k}");
    }
    // Block kinds follow from the architecture (ember_format::schema), not from keys.
    assert!(f.get("model.norm").is_none() && f.get("model.ffn").is_none());
    assert_eq!(meta_f32(&f, "model.norm_eps"), 1e-5);
    assert_eq!(meta_f32(&f, "model.rope_theta"), 10000.0);
    assert!(!meta_bool(&f, "model.tied_embeddings"));
    check_llama_f32(&dir, &f, 2, false);
    assert_eq!(s.tensors, 21);
    assert_eq!(s.bits_per_weight(), 32.0);
    assert!(s.fallbacks.is_empty());
}

#[test]
fn tiny_qwen2_f32_has_biases_and_tied_head() {
    let dir = fixture("tiny-qwen2");
    let (w, _) = build(&dir, Some(Recipe::F32), false).unwrap();
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    check_common_meta(&f, "tiny-qwen2", "f32");
    assert_eq!(meta_str(&f, "general.architecture"), "qwen2");
    assert_eq!(meta_u32(&f, "model.kv_head_count"), 1);
    assert_eq!(meta_u32(&f, "model.head_dim"), 16);
    assert_eq!(meta_u32(&f, "model.ffn_dim"), 128);
    assert_eq!(meta_f32(&f, "model.rope_theta"), 1_000_000.0);
    assert_eq!(meta_f32(&f, "model.norm_eps"), 1e-6);
    assert!(meta_bool(&f, "model.tied_embeddings"));
    for n in 0..2 {
        for t in ["attn_q", "attn_k", "attn_v"] {
            assert!(f.tensor(&format!("blk.{n}.{t}.bias")).is_some());
        }
        assert!(f.tensor(&format!("blk.{n}.attn_output.bias")).is_none());
    }
    check_llama_f32(&dir, &f, 2, true);
    assert_eq!(f.tensor_count(), 26);
}

#[test]
fn tiny_gpt2_f32_transposed_and_split() {
    let dir = fixture("tiny-gpt2");
    let (w, _) = build(&dir, Some(Recipe::F32), false).unwrap();
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    check_common_meta(&f, "tiny-gpt2", "f32");
    assert_eq!(meta_str(&f, "general.architecture"), "gpt2");
    for (k, v) in [
        ("model.vocab_size", 512),
        ("model.context_length", 256),
        ("model.embedding_dim", 64),
        ("model.layer_count", 2),
        ("model.head_count", 4),
        ("model.kv_head_count", 4),
        ("model.head_dim", 16),
        ("model.ffn_dim", 256),
    ] {
        assert_eq!(meta_u32(&f, k), v, "{k}");
    }
    assert_eq!(meta_f32(&f, "model.norm_eps"), 1e-5);
    assert!(f.get("model.rope_theta").is_none());
    assert!(meta_bool(&f, "model.tied_embeddings"));

    let src = load_safetensors(&dir.join("model.safetensors"));
    let get = |n: &str| src.get(&format!("transformer.{n}")).unwrap().clone();
    let same = |ember: &str, (shape, vals): (Vec<usize>, Vec<f32>)| {
        let (s, v) = tensor_f32(&f, ember);
        assert_eq!(s, shape, "{ember}");
        assert_eq!(v, vals, "{ember}");
    };
    same("token_embd.weight", get("wte.weight"));
    same("pos_embd.weight", get("wpe.weight"));
    same("output_norm.weight", get("ln_f.weight"));
    same("output_norm.bias", get("ln_f.bias"));
    let c = 64;
    for n in 0..2 {
        let h = |s: &str| get(&format!("h.{n}.{s}"));
        let b = |s: &str| format!("blk.{n}.{s}");
        same(&b("attn_norm.weight"), h("ln_1.weight"));
        same(&b("attn_norm.bias"), h("ln_1.bias"));
        same(&b("ffn_norm.weight"), h("ln_2.weight"));
        same(&b("ffn_norm.bias"), h("ln_2.bias"));
        same(&b("attn_output.bias"), h("attn.c_proj.bias"));
        same(&b("ffn_up.bias"), h("mlp.c_fc.bias"));
        same(&b("ffn_down.bias"), h("mlp.c_proj.bias"));
        // Conv1D (in, out) → (out, in).
        for (e, g, rows, cols) in [
            ("attn_output.weight", "attn.c_proj.weight", c, c),
            ("ffn_up.weight", "mlp.c_fc.weight", c, 4 * c),
            ("ffn_down.weight", "mlp.c_proj.weight", 4 * c, c),
        ] {
            let (shape, vals) = h(g);
            assert_eq!(shape, vec![rows, cols]);
            same(&b(e), (vec![cols, rows], transpose(&vals, rows, cols)));
        }
        // Fused QKV: columns [Q | K | V] of (C, 3C); bias (3C).
        let (shape, w) = h("attn.c_attn.weight");
        assert_eq!(shape, vec![c, 3 * c]);
        let wt = transpose(&w, c, 3 * c); // (3C, C): rows [Q; K; V]
        let (_, bias) = h("attn.c_attn.bias");
        for (i, part) in ["attn_q", "attn_k", "attn_v"].into_iter().enumerate() {
            same(
                &b(&format!("{part}.weight")),
                (vec![c, c], wt[i * c * c..(i + 1) * c * c].to_vec()),
            );
            same(
                &b(&format!("{part}.bias")),
                (vec![c], bias[i * c..(i + 1) * c].to_vec()),
            );
        }
    }
    assert_eq!(f.tensor_count(), 4 + 2 * 16);
}

#[test]
fn tiny_llama2_spm_f32_from_shared() {
    let Some(dir) = shared_fixture("tiny-llama2-spm") else {
        eprintln!("SKIPPED: tiny-llama2-spm: ../shared absent (../shared/fixtures/tiny-llama2-spm not found)");
        return;
    };
    let (w, _) = build(&dir, Some(Recipe::F32), false).unwrap();
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    check_common_meta(&f, "tiny-llama2-spm", "f32");
    assert_eq!(meta_u32(&f, "model.vocab_size"), 32000);
    assert_eq!(meta_u32(&f, "model.head_dim"), 8);
    assert_eq!(meta_str(&f, "tokenizer.model"), "spm");
    check_llama_f32(&dir, &f, 2, false);
}

#[test]
fn default_recipe_for_hf_is_f16_and_norms_stay_f32() {
    let dir = fixture("tiny-llama");
    let (w, s) = build(&dir, None, false).unwrap();
    assert_eq!(s.recipe, Recipe::F16);
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    assert_eq!(meta_str(&f, "general.quantization"), "f16");
    let src = load_safetensors(&dir.join("model.safetensors"));
    for t in f.tensors() {
        if t.shape().len() == 1 {
            assert_eq!(t.dtype, DType::F32, "{}", t.name);
        } else {
            assert_eq!(t.dtype, DType::F16, "{}", t.name);
        }
    }
    let (_, q) = tensor_f32(&f, "blk.0.attn_q.weight");
    let (_, q_src) = &src["model.layers.0.self_attn.q_proj.weight"];
    for (a, b) in q.iter().zip(q_src) {
        assert_eq!(*a, f16_to_f32(f32_to_f16(*b)));
    }
}

#[test]
fn q8_0_quantizes_matrices_and_falls_back_to_f16_on_odd_rows() {
    let dir = fixture("tiny-llama");
    let (w, s) = build(&dir, Some(Recipe::Q8_0), false).unwrap();
    // intermediate_size 172 is not a multiple of 32: ffn_down rows fall back.
    assert_eq!(
        s.fallbacks,
        vec!["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"]
    );
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    assert_eq!(meta_str(&f, "general.quantization"), "q8_0");
    let src = load_safetensors(&dir.join("model.safetensors"));
    for (ember, hf) in llama_map(2, false) {
        let Some((_, vals)) = src.get(&hf) else {
            continue;
        };
        let t = f.tensor(&ember).unwrap();
        let want = if t.shape().len() == 1 {
            DType::F32
        } else if ember.contains("ffn_down") {
            DType::F16
        } else {
            DType::Q8_0
        };
        assert_eq!(t.dtype, want, "{ember}");
        // q8_0 error: the scale search minimizes the block's squared error, which may clip
        // the extreme by up to a step: at most one step (absmax / 127) plus f16 rounding of d.
        let (_, got) = tensor_f32(&f, &ember);
        let block = if want == DType::Q8_0 { 32 } else { vals.len() };
        for (g, v) in got.chunks(block).zip(vals.chunks(block)) {
            let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            for (a, b) in g.iter().zip(v) {
                assert!(
                    (a - b).abs() <= amax / 127.0 * 1.01 + amax * 1e-3 + 1e-7,
                    "{ember}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn q4_recipes_and_bf16() {
    let dir = fixture("tiny-qwen2");
    for (r, dt) in [
        (Recipe::Q4_0, DType::Q4_0),
        (Recipe::Q4_1, DType::Q4_1),
        (Recipe::BF16, DType::BF16),
        (Recipe::Same, DType::F32),
    ] {
        let (w, s) = build(&dir, Some(r), false).unwrap();
        assert!(s.fallbacks.is_empty(), "{r}");
        let bytes = file_bytes(&w);
        let f = EmberFile::parse(&bytes).unwrap();
        assert_eq!(meta_str(&f, "general.quantization"), r.name());
        assert_eq!(f.tensor("blk.1.ffn_up.weight").unwrap().dtype, dt, "{r}");
        assert_eq!(f.tensor("blk.1.attn_q.bias").unwrap().dtype, DType::F32);
        assert!(s.bits_per_weight() <= 32.0);
    }
}

#[test]
fn convert_writes_the_file_and_refuses_to_overwrite() {
    let tmp = temp_dir("write");
    let out = tmp.join("tiny.ember");
    let opts = ember_convert::Options {
        input: fixture("tiny-gpt2"),
        output: out.clone(),
        quant: Some(Recipe::F32),
        force: false,
        progress: false,
        calibration: None,
        calibration_tokens: 0,
        layout: ember_format::Layout::Rows16,
        rules: Default::default(),
        budget: None,
        sensitivity_cache: None,
    };
    let s = ember_convert::convert(&opts).unwrap();
    let len = std::fs::metadata(&out).unwrap().len();
    assert_eq!(s.file_bytes, len);
    let bytes = ember_format::AlignedBytes::from(std::fs::read(&out).unwrap());
    let f = EmberFile::parse(&bytes).unwrap();
    f.verify_checksum().unwrap();
    assert_eq!(f.tensor_count(), 36);

    let e = ember_convert::convert(&opts).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    ember_convert::convert(&ember_convert::Options {
        force: true,
        ..opts.clone()
    })
    .unwrap();
    // Only the output is left: the temporary file was renamed.
    let names: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("tiny.ember")]);
    // Deterministic: the same input gives the same bytes.
    let again = std::fs::read(&out).unwrap();
    assert_eq!(&again[..], &bytes[..]);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn a_config_or_safetensors_file_stands_for_its_directory() {
    let dir = fixture("tiny-llama");
    let (w, _) = build(&dir.join("config.json"), Some(Recipe::F32), false).unwrap();
    assert_eq!(w.tensor_names().count(), 21);
}

/// Copies the JSON files of fixture `name` into a fresh temp dir.
fn json_only_copy(name: &str, tag: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag);
    for f in std::fs::read_dir(fixture(name)).unwrap() {
        let f = f.unwrap();
        if f.file_name().to_string_lossy().ends_with(".json") {
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
    }
    dir
}

type OwnedTensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

fn read_st(path: &Path) -> Vec<OwnedTensor> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<OwnedTensor> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn write_st(path: &Path, tensors: &[OwnedTensor]) {
    use safetensors::tensor::TensorView;
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let bytes =
        safetensors::serialize(views, &None::<std::collections::HashMap<String, String>>).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn sharded_checkpoint_with_index() {
    let dir = json_only_copy("tiny-llama", "sharded");
    let all = read_st(&fixture("tiny-llama").join("model.safetensors"));
    let files = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    let mut map = serde_json::Map::new();
    for (i, file) in files.iter().enumerate() {
        let part: Vec<OwnedTensor> = all.iter().skip(i).step_by(2).cloned().collect();
        for t in &part {
            map.insert(t.0.clone(), (*file).into());
        }
        write_st(&dir.join(file), &part);
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let (w, _) = build(&dir, Some(Recipe::F32), false).unwrap();
    let (w0, _) = build(&fixture("tiny-llama"), Some(Recipe::F32), false).unwrap();
    let (a, b) = (file_bytes(&w), file_bytes(&w0));
    let (sharded, single) = (EmberFile::parse(&a).unwrap(), EmberFile::parse(&b).unwrap());
    assert_eq!(sharded.tensor_count(), single.tensor_count());
    for t in single.tensors() {
        let s = sharded.tensor(t.name).unwrap();
        assert_eq!((s.dtype, s.shape(), s.data), (t.dtype, t.shape(), t.data));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bf16_checkpoint_with_same_keeps_bf16_matrices() {
    let dir = json_only_copy("tiny-qwen2", "bf16");
    let all = read_st(&fixture("tiny-qwen2").join("model.safetensors"));
    let bf16: Vec<OwnedTensor> = all
        .iter()
        .map(|(n, _, s, b)| {
            let out: Vec<u8> = b
                .chunks_exact(4)
                .flat_map(|c| {
                    let x = f32::from_le_bytes(c.try_into().unwrap());
                    ember_format::blocks::f32_to_bf16(x).to_le_bytes()
                })
                .collect();
            (n.clone(), safetensors::Dtype::BF16, s.clone(), out)
        })
        .collect();
    write_st(&dir.join("model.safetensors"), &bf16);
    let (w, s) = build(&dir, Some(Recipe::Same), false).unwrap();
    assert_eq!(s.recipe, Recipe::Same);
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    let src = |hf: &str| bf16.iter().find(|t| t.0 == hf).unwrap();
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dtype, DType::BF16);
    assert_eq!(q.data, &src("model.layers.0.self_attn.q_proj.weight").3[..]);
    // 1-D tensors become f32, exactly.
    let (_, bias) = tensor_f32(&f, "blk.0.attn_q.bias");
    let (_, _, shape, raw) = src("model.layers.0.self_attn.q_proj.bias");
    assert_eq!(bias, to_f32(DType::BF16, shape, raw));
    assert_eq!(f.tensor("blk.0.attn_q.bias").unwrap().dtype, DType::F32);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mistral_sliding_window_caps_the_context() {
    let dir = json_only_copy("tiny-llama", "mistral");
    std::fs::copy(
        fixture("tiny-llama").join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["model_type"] = "mistral".into();
    v["sliding_window"] = 128.into();
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let (w, _) = build(&dir, Some(Recipe::F32), false).unwrap();
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    assert_eq!(meta_u32(&f, "model.context_length"), 128);
    assert_eq!(meta_str(&f, "general.architecture"), "llama");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Gemma 4 as published: a multimodal checkpoint (model_type gemma4) whose text model is
/// text_config with weights under model.language_model.; the towers are left out and the
/// text model converts exactly as the text-only checkpoint does.
#[test]
fn gemma4_multimodal_layout_converts_its_text_model() {
    let Some(src) = shared_fixture("tiny-gemma4") else {
        eprintln!("SKIPPED: gemma4_multimodal_layout: ../shared/fixtures absent");
        return;
    };
    let dir = temp_dir("gemma4-mm");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let text: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    let config = serde_json::json!({
        "model_type": "gemma4",
        "architectures": ["Gemma4ForConditionalGeneration"],
        "text_config": text,
        "vision_config": {"model_type": "gemma4_vision"},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut tensors: Vec<OwnedTensor> = read_st(&src.join("model.safetensors"))
        .into_iter()
        .map(|(n, d, s, b)| {
            let rest = n.strip_prefix("model.").unwrap().to_string();
            (format!("model.language_model.{rest}"), d, s, b)
        })
        .collect();
    tensors.push((
        "model.vision_tower.patch_embed.weight".into(),
        safetensors::Dtype::F32,
        vec![2, 2],
        vec![0; 16],
    ));
    write_st(&dir.join("model.safetensors"), &tensors);
    let (a, _) = build(&src, Some(Recipe::F32), false).unwrap();
    let (b, _) = build(&dir, Some(Recipe::F32), false).unwrap();
    let (a, b) = (file_bytes(&a), file_bytes(&b));
    let (a, b) = (EmberFile::parse(&a).unwrap(), EmberFile::parse(&b).unwrap());
    assert_eq!(a.tensor_count(), b.tensor_count());
    for t in a.tensors() {
        assert_eq!(t.data, b.tensor(t.name).unwrap().data, "{}", t.name);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

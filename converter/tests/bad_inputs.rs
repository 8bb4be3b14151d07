//! Bad inputs give one clear line naming the problem (and never a panic).
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;
use ember_convert::{build, Recipe};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn err_of(input: &Path) -> String {
    let e = match build(input, Some(Recipe::F32), false) {
        Ok(_) => panic!("{} converted", input.display()),
        Err(e) => e.to_string(),
    };
    assert!(!e.contains('\n'), "not one line: {e}");
    e
}

/// Rewrites model.safetensors through `f(name, dtype, shape, bytes)`, which may drop
/// (return None) or change a tensor.
fn edit_weights(
    dir: &Path,
    f: impl Fn(&str, Dtype, Vec<usize>, Vec<u8>) -> Option<(String, Dtype, Vec<usize>, Vec<u8>)>,
) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned = Vec::new();
    for (name, view) in st.tensors() {
        if let Some(t) = f(
            &name,
            view.dtype(),
            view.shape().to_vec(),
            view.data().to_vec(),
        ) {
            owned.push(t);
        }
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let out = safetensors::serialize(views, &None::<HashMap<String, String>>).unwrap();
    std::fs::write(&p, out).unwrap();
}

/// Temp copies removed at the end of a test.
struct Dirs(Vec<PathBuf>);

impl Dirs {
    fn push_copy(&mut self, tag: &str) -> PathBuf {
        let d = tiny_llama_copy(tag);
        self.0.push(d.clone());
        d
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn missing_input_and_directory_without_config() {
    let e = err_of(Path::new("/nonexistent/model"));
    assert!(e.contains("/nonexistent/model"), "{e}");

    let dir = temp_dir("noconfig");
    let e = err_of(&dir);
    assert!(e.contains("has no config.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unsupported_architecture() {
    let dir = tiny_llama_copy("bert");
    edit_config(&dir, |v| v["model_type"] = "bert".into());
    assert_eq!(
        err_of(&dir),
        "unsupported architecture 'bert' in config.json (supported: llama, mistral, qwen2, qwen3, gemma3_text, gpt2, smollm3, phi3, olmo2, qwen3_moe, gemma4_text, lfm2, granitemoehybrid, qwen3_5_text)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unsupported_rope_scaling_and_activation() {
    let dir = tiny_llama_copy("rope");
    // transformers 5's rope_parameters, and 4's rope_scaling.
    edit_config(
        &dir,
        |v| {
            v["rope_parameters"] =
                serde_json::json!({"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})
        },
    );
    let e = err_of(&dir);
    assert!(
        e.contains("RoPE scaling type 'dynamic' is not supported"),
        "{e}"
    );
    edit_config(&dir, |v| {
        v["rope_parameters"] = serde_json::Value::Null;
        v["rope_theta"] = 10000.0.into();
        v["rope_scaling"] = serde_json::json!({"type": "longrope", "factor": 8.0});
    });
    let e = err_of(&dir);
    assert!(
        e.contains("LongRoPE needs original_max_position_embeddings"),
        "{e}"
    );
    // A llama3 scaling without its parameters.
    edit_config(&dir, |v| {
        v["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0});
    });
    let e = err_of(&dir);
    assert!(
        e.contains("RoPE scaling 'llama3' lacks \"low_freq_factor\""),
        "{e}"
    );
    edit_config(&dir, |v| {
        v["rope_scaling"] = serde_json::Value::Null;
        v["hidden_act"] = "gelu".into();
    });
    let e = err_of(&dir);
    assert!(e.contains("hidden_act 'gelu'"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_and_garbage_safetensors() {
    let dir = tiny_llama_copy("trunc");
    let p = dir.join("model.safetensors");
    let full = std::fs::read(&p).unwrap();
    // Every cut in the header, a sample in the data.
    let header_end = 8 + u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    let cuts = (0..header_end + 16).chain((header_end..full.len()).step_by(4099));
    for len in cuts {
        std::fs::write(&p, &full[..len]).unwrap();
        let e = err_of(&dir);
        assert!(e.contains("model.safetensors"), "cut at {len}: {e}");
    }
    std::fs::write(&p, &full[..full.len() - 1]).unwrap();
    let e = err_of(&dir);
    assert!(
        e.contains("not a valid safetensors file") && e.contains("truncated"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_tensor_shape_and_dtype_mismatches() {
    let mut dirs = Dirs(Vec::new());
    let dir = dirs.push_copy("tensors");
    edit_weights(&dir, |n, d, s, b| {
        (n != "model.layers.1.mlp.up_proj.weight").then(|| (n.to_string(), d, s, b))
    });
    assert_eq!(
        err_of(&dir),
        "missing tensor blk.1.ffn_up.weight (model.layers.1.mlp.up_proj.weight in the checkpoint)"
    );

    let dir = dirs.push_copy("shape");
    edit_config(&dir, |v| v["intermediate_size"] = 160.into());
    let e = err_of(&dir);
    assert!(
        e.contains("blk.0.ffn_gate.weight")
            && e.contains("model.layers.0.mlp.gate_proj.weight")
            && e.contains("[172, 64]")
            && e.contains("[160, 64]"),
        "{e}"
    );

    let dir = dirs.push_copy("dtype");
    edit_weights(&dir, |n, d, s, b| {
        if n == "model.norm.weight" {
            Some((n.to_string(), Dtype::I32, s, b))
        } else {
            Some((n.to_string(), d, s, b))
        }
    });
    let e = err_of(&dir);
    assert!(e.contains("model.norm.weight") && e.contains("I32"), "{e}");

    let dir = dirs.push_copy("extra");
    edit_weights(&dir, |n, d, s, b| {
        let n = n.replace(
            "model.layers.1.mlp.down_proj",
            "model.layers.1.mlp.down_proj_x",
        );
        Some((n, d, s, b))
    });
    let e = err_of(&dir);
    assert!(
        e.contains("down_proj_x") || e.contains("blk.1.ffn_down.weight"),
        "{e}"
    );

    // Absurd layer counts are refused before anything is sized by them.
    let dir = dirs.push_copy("layers");
    edit_config(&dir, |v| v["num_hidden_layers"] = 100_000.into());
    let e = err_of(&dir);
    assert!(e.contains("100000 layers"), "{e}");
    edit_config(&dir, |v| v["num_hidden_layers"] = (1u64 << 40).into());
    let e = err_of(&dir);
    assert!(e.contains("1099511627776 layers"), "{e}");

    // Head counts that do not divide.
    let dir = dirs.push_copy("heads");
    edit_config(&dir, |v| v["num_key_value_heads"] = 3.into());
    let e = err_of(&dir);
    assert!(e.contains("KV head count 3"), "{e}");
}

#[test]
fn a_checkpoint_without_tokenizer() {
    let mut dirs = Dirs(Vec::new());
    let dir = dirs.push_copy("notok");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let e = err_of(&dir);
    assert!(e.contains("has no tokenizer.json"), "{e}");
}

#[test]
fn a_file_that_is_neither_gguf_nor_a_checkpoint() {
    let dir = temp_dir("junk");
    let p = dir.join("model.bin");
    std::fs::write(&p, b"PK\x03\x04 not a model").unwrap();
    let e = err_of(&p);
    assert!(
        e.contains("model.bin") && e.contains("not a GGUF file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each case sets config.json's `key` to `value` in its directory: the conversion fails with
/// an error containing the text; config.json is put back after.
fn expect_config_errors(cases: &[(&Path, &str, serde_json::Value, &str)]) {
    for (dir, key, value, want) in cases {
        let original = std::fs::read(dir.join("config.json")).unwrap();
        edit_config(dir, |v| v[*key] = value.clone());
        let e = err_of(dir);
        assert!(e.contains(want), "{key} = {value}: {e}");
        std::fs::write(dir.join("config.json"), original).unwrap();
    }
}

/// The per-layer and mixture-of-experts parts of a config: one clear error each, before
/// anything is written.
#[test]
fn bad_layer_lists_and_expert_counts() {
    let (Some(moe), Some(smol)) = (
        shared_fixture("tiny-qwen3moe"),
        shared_fixture("tiny-smollm3"),
    ) else {
        eprintln!("SKIPPED: bad_layer_lists_and_expert_counts: ../shared/fixtures absent");
        return;
    };
    let dirs = Dirs(vec![
        checkpoint_copy(&moe, "moe"),
        checkpoint_copy(&smol, "smol"),
    ]);
    let (moe, smol) = (&dirs.0[0], &dirs.0[1]);
    let cases: [(&Path, &str, serde_json::Value, &str); 8] = [
        (
            smol,
            "layer_types",
            serde_json::json!([
                "full_attention",
                "mamba",
                "full_attention",
                "full_attention"
            ]),
            "recurrent layers in layer_types are not supported for smollm3",
        ),
        (
            moe,
            "num_local_experts",
            0.into(),
            "expert_count = 0 is out of range",
        ),
        (
            moe,
            "num_experts_per_tok",
            9.into(),
            "experts used per token 9 is out of range (1 to 8)",
        ),
        (
            moe,
            "mlp_only_layers",
            serde_json::json!([5]),
            "mlp_only_layers entry 5 is not a layer index",
        ),
        (
            smol,
            "no_rope_layers",
            serde_json::json!([1, 1, 0]),
            "\"no_rope_layers\" has 3 entries for 4 layers",
        ),
        (
            smol,
            "layer_types",
            serde_json::json!([
                "full_attention",
                "spiral_attention",
                "full_attention",
                "full_attention"
            ]),
            "unknown layer type \"spiral_attention\" in layer_types",
        ),
        (
            smol,
            "layer_types",
            serde_json::json!(["full_attention"]),
            "\"layer_types\" has 1 entries for 4 layers",
        ),
        (
            smol,
            "rope_parameters",
            serde_json::json!({"rope_type": "spiral", "rope_theta": 10000.0}),
            "RoPE scaling type 'spiral' is not supported",
        ),
    ];
    expect_config_errors(&cases);
    // Unedited, both convert.
    build(moe, Some(Recipe::F32), false).unwrap();
    build(smol, Some(Recipe::F32), false).unwrap();
}

/// The recurrent hybrids' configs: one clear error each, before anything is written.
#[test]
fn bad_recurrent_configs() {
    let (Some(lfm2), Some(granite), Some(qwen35)) = (
        shared_fixture("tiny-lfm2"),
        shared_fixture("tiny-granite4"),
        shared_fixture("tiny-qwen35"),
    ) else {
        eprintln!("SKIPPED: bad_recurrent_configs: ../shared/fixtures absent");
        return;
    };
    let dirs = Dirs(vec![
        checkpoint_copy(&lfm2, "lfm2"),
        checkpoint_copy(&granite, "granite"),
        checkpoint_copy(&qwen35, "qwen35"),
    ]);
    let (lfm2, granite, qwen35) = (&dirs.0[0], &dirs.0[1], &dirs.0[2]);
    let cases: [(&Path, &str, serde_json::Value, &str); 7] = [
        (
            lfm2,
            "layer_types",
            serde_json::json!(["conv", "conv", "full_attention"]),
            "\"layer_types\" has 3 entries for 4 layers",
        ),
        (
            lfm2,
            "conv_L_cache",
            0.into(),
            "conv_kernel = 0 is out of range",
        ),
        (
            granite,
            "mamba_n_groups",
            3.into(),
            "SSM heads 4 is not a multiple of the SSM groups 3",
        ),
        (
            granite,
            "time_step_limit",
            serde_json::json!([0.001, 0.1]),
            "time_step_limit",
        ),
        (
            granite,
            "num_local_experts",
            4.into(),
            "with 4 experts (num_local_experts) is not supported",
        ),
        (
            granite,
            "position_embedding_type",
            "alibi".into(),
            "position_embedding_type 'alibi' is not supported",
        ),
        (
            qwen35,
            "linear_num_value_heads",
            3.into(),
            "SSM heads 3 is not a multiple of the SSM groups 2",
        ),
    ];
    expect_config_errors(&cases);
    for dir in [lfm2, granite, qwen35] {
        build(dir, Some(Recipe::F32), false).unwrap();
    }
}

//! RoPE scaling computed by the converter (`rope.inv_freq`, `model.rope_attention_factor`)
//! against transformers' own modeling_rope_utils (fixtures/rope/rope_scaling.json, made by
//! make_reference.py beside it): linear, llama3 and YaRN (with and without mscale), read
//! from a config.json's `rope_parameters` and, for the same parameters, transformers 4's
//! `rope_scaling`.
mod common;

use common::*;
use ember_convert::{build, Recipe};

#[test]
fn scaled_frequencies_match_transformers() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("rope/rope_scaling.json")).unwrap()).unwrap();
    let max_pos = reference["max_position_embeddings"].clone();
    for (i, case) in reference["cases"].as_array().unwrap().iter().enumerate() {
        let params = case["rope_parameters"].clone();
        for legacy in [false, true] {
            let dir = tiny_llama_copy(&format!("rope{i}{legacy}"));
            edit_config(&dir, |v| {
                v["max_position_embeddings"] = max_pos.clone();
                if legacy {
                    v["rope_parameters"] = serde_json::Value::Null;
                    v["rope_theta"] = params["rope_theta"].clone();
                    v["rope_scaling"] = params.clone();
                } else {
                    v["rope_parameters"] = params.clone();
                }
            });
            let (w, _) = build(&dir, Some(Recipe::F32), false).unwrap();
            let bytes = file_bytes(&w);
            let f = ember_format::EmberFile::parse(&bytes).unwrap();
            let (_, got) = tensor_f32(&f, "rope.inv_freq");
            let want: Vec<f64> = case["inv_freq"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len());
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                let rel = (*g as f64 - w).abs() / w.abs();
                assert!(
                    rel < 1e-6,
                    "case {i} legacy={legacy}: inv_freq[{k}] {g} vs {w}"
                );
            }
            let factor = f
                .get("model.rope_attention_factor")
                .map_or(1.0, |v| v.as_f32().unwrap() as f64);
            let want_factor = case["attention_factor"].as_f64().unwrap();
            assert!(
                (factor - want_factor).abs() < 1e-6,
                "case {i}: attention factor {factor} vs {want_factor}"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

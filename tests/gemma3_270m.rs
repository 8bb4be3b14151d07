//! Gemma 3 270M as people download it (the Q4_K_M GGUF; scripts/fetch-models.sh), against
//! transformers on the same file (tests/fixtures/gemma3-270m/reference.json, made by
//! make_reference.py beside it): tokenization of varied text, and greedy continuations of
//! the f32 conversion; the `--quant same` conversion agrees with the f32 one on the top token
//! at ≥ 95% of teacher-forced positions.
mod common;

use std::path::Path;

use common::{convert_rows16, gemma3_gguf, ids, read_json};
use ember_convert::Recipe;
use ember_format::EmberFile;
use ember_runtime::sampler::argmax;
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{Logits, Model, Session};

fn reference() -> serde_json::Value {
    read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3-270m/reference.json"),
    )
}

#[test]
fn gemma3_270m_tokenizes_like_transformers() {
    let Some(gguf) = gemma3_gguf() else {
        return;
    };
    let bytes = convert_rows16(&gguf, Recipe::Same);
    let file = EmberFile::parse(&bytes).unwrap();
    let tokenizer = Tokenizer::from_file(&file).unwrap();
    let r = reference();
    let cases = r["tokenize"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let mut got = Vec::new();
        tokenizer.encode(text, &mut got);
        assert_eq!(got, ids(&case["ids"]), "tokenize {text:?}");
    }
    eprintln!("gemma3-270m: {} tokenizations identical", cases.len());
}

/// The f32 conversion: top-10 logits at every prompt position within 1e-3 of the row's
/// largest, and the 24-token greedy continuations identical. Then the shipped blocks
/// (`same`) against it with teacher forcing.
#[test]
fn gemma3_270m_generates_like_transformers() {
    let Some(gguf) = gemma3_gguf() else {
        return;
    };
    let r = reference();
    let f32_bytes = convert_rows16(&gguf, Recipe::F32);
    let f32_file = EmberFile::parse(&f32_bytes).unwrap();
    let f32_model = Model::load(&f32_file).unwrap();
    let v = f32_model.config.vocab_size;
    let mut sequences = Vec::new();
    for g in r["generate"].as_array().unwrap() {
        let prompt = ids(&g["prompt_ids"]);
        let want = ids(&g["greedy_ids"]);
        let mut session =
            Session::with_options(&f32_model, prompt.len(), prompt.len(), Logits::All).unwrap();
        let logits = session.forward_all(&prompt).unwrap();
        let mut worst = 0f64;
        for (i, row) in g["top10"].as_array().unwrap().iter().enumerate() {
            let top = row["logits"].as_array().unwrap();
            let scale = top[0].as_f64().unwrap().abs();
            for (id, want) in ids(&row["ids"]).iter().zip(top) {
                let err = (logits[i * v + *id as usize] as f64 - want.as_f64().unwrap()).abs();
                worst = worst.max(err / scale);
            }
        }
        assert!(
            worst <= 1e-3,
            "{}: top-10 logits differ by {worst:.2e}",
            g["prompt"]
        );
        let mut session = Session::new(&f32_model, prompt.len() + want.len()).unwrap();
        let mut next = argmax(session.prefill(&prompt).unwrap());
        let mut got = Vec::new();
        for _ in 0..want.len() {
            got.push(next);
            next = argmax(session.step(next).unwrap());
        }
        assert_eq!(got, want, "{}: greedy continuation differs", g["prompt"]);
        eprintln!(
            "gemma3-270m f32 {}: worst top-10 logit error {worst:.2e}, greedy identical",
            g["prompt"]
        );
        sequences.push([prompt, want].concat());
    }

    // The shipped Q4_K/Q5_0/Q6_K/Q8_0 blocks, teacher-forced on the same sequences.
    let same_bytes = convert_rows16(&gguf, Recipe::Same);
    let same_file = EmberFile::parse(&same_bytes).unwrap();
    let same_model = Model::load(&same_file).unwrap();
    let (mut agree, mut total) = (0, 0);
    for seq in &sequences {
        let top = |model: &Model| -> Vec<u32> {
            let mut s = Session::with_options(model, seq.len(), seq.len(), Logits::All).unwrap();
            let l = s.forward_all(seq).unwrap();
            l.chunks(v).map(argmax).collect()
        };
        let (a, b) = (top(&f32_model), top(&same_model));
        agree += a.iter().zip(&b).filter(|(x, y)| x == y).count();
        total += a.len();
    }
    let share = agree as f64 / total as f64;
    eprintln!(
        "gemma3-270m same vs f32: top token agrees at {agree}/{total} positions ({:.1}%)",
        100.0 * share
    );
    assert!(
        share >= 0.95,
        "top token agrees at only {:.1}%",
        100.0 * share
    );
}

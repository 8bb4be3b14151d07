//! First light on the tiny Hugging Face fixtures: after `--quant f32`, every logit within
//! 1e-4 of transformers (relative to the row's largest |logit|) and the 16-token greedy
//! continuation identical, in both weight layouts (row-major and rows16).
mod common;

use common::{convert, convert_rows16, ids, logit_rows, read_json, shared_fixture};
use ember_convert::Recipe;
use ember_format::EmberFile;
use ember_runtime::sampler::argmax;
use ember_runtime::{Logits, Model, Session};

fn check_fixture(name: &str) {
    let Some(dir) = shared_fixture(name) else {
        return;
    };
    let reference = read_json(&dir.join("reference.json"));
    for (layout, bytes) in [
        ("row-major", convert(&dir, Recipe::F32)),
        ("rows16", convert_rows16(&dir, Recipe::F32)),
    ] {
        check_model(name, layout, &bytes, &reference);
    }
}

fn check_model(name: &str, layout: &str, bytes: &[u8], reference: &serde_json::Value) {
    let file = EmberFile::parse(bytes).unwrap();
    let model = Model::load(&file).unwrap();
    let v = model.config.vocab_size;

    let input = ids(&reference["input_ids"]);
    let expected = logit_rows(&reference["logits"]);
    let mut session = Session::with_options(&model, input.len(), input.len(), Logits::All).unwrap();
    let logits = session.forward_all(&input).unwrap();
    let mut worst = 0f64;
    for (t, row) in expected.iter().enumerate() {
        let scale = row.iter().fold(0f64, |m, x| m.max(x.abs()));
        for (j, &e) in row.iter().enumerate() {
            let err = (logits[t * v + j] as f64 - e).abs() / scale;
            worst = worst.max(err);
        }
    }
    eprintln!("{name} ({layout}): worst relative logit error {worst:.2e}");
    assert!(
        worst <= 1e-4,
        "{name} ({layout}): logits differ by {worst:.2e}"
    );

    // Greedy continuation, token by token through the KV cache.
    let greedy = ids(&reference["greedy_ids"]);
    let mut session = Session::new(&model, input.len() + greedy.len()).unwrap();
    let mut next = argmax(session.prefill(&input).unwrap());
    let mut got = Vec::new();
    for _ in 0..greedy.len() {
        got.push(next);
        next = argmax(session.step(next).unwrap());
    }
    assert_eq!(
        got, greedy,
        "{name} ({layout}): greedy continuation differs"
    );
}

#[test]
fn tiny_llama_matches_transformers() {
    check_fixture("tiny-llama");
}

#[test]
fn tiny_qwen2_matches_transformers() {
    check_fixture("tiny-qwen2");
}

#[test]
fn tiny_gpt2_matches_transformers() {
    check_fixture("tiny-gpt2");
}

/// Llama 2's SentencePiece tokenizer (32000 tokens, byte fallback): ids equal to
/// transformers' `tokenizer(text)` (with BOS), the prompt's top-10 logits, and the greedy
/// continuation.
#[test]
fn tiny_llama2_spm_matches_transformers() {
    let Some(dir) = shared_fixture("tiny-llama2-spm") else {
        return;
    };
    let reference = read_json(&dir.join("reference.json"));
    let bytes = convert(&dir, Recipe::F32);
    let file = EmberFile::parse(&bytes).unwrap();
    let model = Model::load(&file).unwrap();
    let tokenizer = ember_runtime::tokenizer::Tokenizer::from_file(&file).unwrap();
    for case in reference["tokenize"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let mut got = Vec::new();
        tokenizer.encode(text, &mut got);
        assert_eq!(got, ids(&case["ids_with_bos"]), "tokenize {text:?}");
    }
    let prompt = ids(&reference["prompt_ids"]);
    let mut got = Vec::new();
    tokenizer.encode(reference["prompt"].as_str().unwrap(), &mut got);
    assert_eq!(got, prompt);

    let mut session = Session::new(&model, prompt.len() + 16).unwrap();
    let logits = session.prefill(&prompt).unwrap().to_vec();
    for pair in reference["last_logits_top10"].as_array().unwrap() {
        let (id, want) = (
            pair[0].as_u64().unwrap() as usize,
            pair[1].as_f64().unwrap(),
        );
        assert!(
            (logits[id] as f64 - want).abs() < 1e-4,
            "logit {id}: {} vs {want}",
            logits[id]
        );
    }
    let greedy = ids(&reference["greedy_ids"]);
    let mut next = argmax(&logits);
    let mut out = Vec::new();
    for _ in 0..greedy.len() {
        out.push(next);
        next = argmax(session.step(next).unwrap());
    }
    assert_eq!(out, greedy);
}

/// The allocation-free API (caller-provided layer storage and buffers, as on a
/// microcontroller) computes exactly what the heap-backed session does.
#[test]
fn caller_buffers_match_heap_session() {
    use ember_runtime::exec::Serial;
    use ember_runtime::model::Layer;
    use ember_runtime::{Session as RawSession, SessionPlan};
    let Some(dir) = shared_fixture("tiny-llama") else {
        return;
    };
    let bytes = convert(&dir, Recipe::F32);
    let file = EmberFile::parse(&bytes).unwrap();
    let reference = read_json(&dir.join("reference.json"));
    let input = ids(&reference["input_ids"]);

    let heap_model = Model::load(&file).unwrap();
    let mut heap = Session::new(&heap_model, 64).unwrap();
    let want = heap.prefill(&input).unwrap().to_vec();

    let mut layers = [Layer::EMPTY; 4];
    let model = Model::load_into(&file, &mut layers).unwrap();
    let plan = SessionPlan::new(&model.config, 64, 8, Logits::Last).unwrap();
    let (mut kv, mut sf, mut si) = (
        vec![0f32; plan.kv_floats],
        vec![0f32; plan.scratch.floats],
        vec![0i8; plan.scratch.bytes],
    );
    let mut session =
        RawSession::with_buffers(&model, plan, &mut kv[..], &mut sf[..], &mut si[..], Serial)
            .unwrap();
    assert_eq!(session.prefill(&input).unwrap(), &want[..]);
    assert!(plan.bytes_required() > 0);

    // Too little memory is an error, not a panic.
    let mut small = vec![0f32; plan.kv_floats - 1];
    let mut sf2 = vec![0f32; plan.scratch.floats];
    let mut si2 = vec![0i8; plan.scratch.bytes];
    assert!(RawSession::with_buffers(
        &model,
        plan,
        &mut small[..],
        &mut sf2[..],
        &mut si2[..],
        Serial
    )
    .is_err());
    let mut too_few = [Layer::EMPTY; 1];
    assert!(Model::load_into(&file, &mut too_few).is_err());
}

/// Every kernel level and thread count gives the reference greedy continuation.
#[test]
fn tiny_fixtures_greedy_with_every_kernel_level_and_thread_count() {
    use ember_runtime::kernels::{Kernels, Level};
    for name in ["tiny-llama", "tiny-qwen2", "tiny-gpt2"] {
        let Some(dir) = shared_fixture(name) else {
            return;
        };
        let reference = read_json(&dir.join("reference.json"));
        let input = ids(&reference["input_ids"]);
        let greedy = ids(&reference["greedy_ids"]);
        for (recipe, rows16) in [
            (Recipe::F32, false),
            (Recipe::F16, false),
            (Recipe::F32, true),
            (Recipe::F16, true),
        ] {
            let bytes = if rows16 {
                convert_rows16(&dir, recipe)
            } else {
                convert(&dir, recipe)
            };
            let file = EmberFile::parse(&bytes).unwrap();
            let model = Model::load(&file).unwrap();
            for level in Level::ALL {
                let Some(kernels) = Kernels::for_level(level) else {
                    continue;
                };
                for threads in [1, 3] {
                    let mut session = Session::new(&model, input.len() + greedy.len()).unwrap();
                    session.set_kernels(kernels);
                    session.set_threads(threads);
                    let mut next = argmax(session.prefill(&input).unwrap());
                    let mut got = Vec::new();
                    for _ in 0..greedy.len() {
                        got.push(next);
                        next = argmax(session.step(next).unwrap());
                    }
                    if recipe == Recipe::F32 {
                        assert_eq!(
                            got,
                            greedy,
                            "{name} rows16={rows16} {} {threads} threads",
                            level.name()
                        );
                    } else {
                        // f16 weights: at least the first half of the continuation.
                        assert_eq!(
                            got[..8],
                            greedy[..8],
                            "{name} f16 rows16={rows16} {} {threads} threads",
                            level.name()
                        );
                    }
                }
            }
        }
    }
}

//! The architectures of the models people bring (Qwen2 GGUF, Qwen3, Gemma 3, Llama 3.2 with
//! llama3 RoPE scaling) on the tiny ../shared fixtures: from the Hugging Face directory and
//! from llama.cpp's own GGUF of the same weights, in both layouts, at every kernel level and
//! thread count, every logit within 1e-4 of transformers (relative to the row's largest
//! |logit|) and the 16-token greedy continuation identical. Gemma 3's local layers also run
//! with prefill batches small enough that their KV ring buffer wraps.
mod common;

use std::path::Path;

use common::{convert, convert_rows16, ids, logit_rows, read_json, shared_fixture};
use ember_convert::Recipe;
use ember_format::EmberFile;
use ember_runtime::kernels::{Kernels, Level};
use ember_runtime::kv_cache::{KvType, KvTypes};
use ember_runtime::sampler::argmax;
use ember_runtime::{Logits, Model, Session};

/// (fixture, whether its HF directory is tested here: tiny-qwen2's is in first_light_tiny).
const FIXTURES: [(&str, bool); 9] = [
    ("tiny-qwen3", true),
    ("tiny-gemma3", true),
    ("tiny-llama32", true),
    ("tiny-qwen2", false),
    ("tiny-smollm3", true),
    ("tiny-phi4mini", true),
    ("tiny-olmo2", true),
    ("tiny-qwen3moe", true),
    ("tiny-gemma4", true),
];

/// A fixture's reference.json: the prompt ids and transformers' logits at every position.
fn prompt_and_logits(dir: &Path) -> (Vec<u32>, Vec<Vec<f64>>) {
    let reference = read_json(&dir.join("reference.json"));
    (
        ids(&reference["input_ids"]),
        logit_rows(&reference["logits"]),
    )
}

/// Worst |logit − reference| / max |reference| over every position, feeding the prompt
/// `batch` tokens per forward pass.
fn worst_logit_error(
    model: &Model,
    kernels: Kernels,
    threads: usize,
    input: &[u32],
    batch: usize,
    expected: &[Vec<f64>],
) -> f64 {
    let (capacity, kv) = (input.len(), KvTypes::default());
    worst_error_in_session(
        model, kernels, threads, input, batch, capacity, kv, expected,
    )
}

/// As [`worst_logit_error`], in a session of `capacity` positions (LongRoPE picks its table
/// by the session's capacity) with keys and values cached as `kv`.
#[allow(clippy::too_many_arguments)]
fn worst_error_in_session(
    model: &Model,
    kernels: Kernels,
    threads: usize,
    input: &[u32],
    batch: usize,
    capacity: usize,
    kv: KvTypes,
    expected: &[Vec<f64>],
) -> f64 {
    let v = model.config.vocab_size;
    let mut session = Session::with_kv_types(model, capacity, batch, Logits::All, kv).unwrap();
    session.set_kernels(kernels);
    session.set_threads(threads);
    let mut worst = 0f64;
    for (c, chunk) in input.chunks(batch).enumerate() {
        let logits = session.forward_all(chunk).unwrap();
        for i in 0..chunk.len() {
            let row = &expected[c * batch + i];
            let scale = row.iter().fold(0f64, |m, x| m.max(x.abs()));
            for (j, &e) in row.iter().enumerate() {
                worst = worst.max((logits[i * v + j] as f64 - e).abs() / scale);
            }
        }
    }
    worst
}

fn greedy(model: &Model, kernels: Kernels, threads: usize, input: &[u32], n: usize) -> Vec<u32> {
    let mut session = Session::new(model, input.len() + n).unwrap();
    session.set_kernels(kernels);
    session.set_threads(threads);
    let mut next = argmax(session.prefill(input).unwrap());
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(next);
        next = argmax(session.step(next).unwrap());
    }
    got
}

fn check(name: &str, source: &Path, reference: &serde_json::Value) {
    let input = ids(&reference["input_ids"]);
    let want = ids(&reference["greedy_ids"]);
    let expected = logit_rows(&reference["logits"]);
    for (layout, bytes) in [
        ("row-major", convert(source, Recipe::F32)),
        ("rows16", convert_rows16(source, Recipe::F32)),
    ] {
        let file = EmberFile::parse(&bytes).unwrap();
        let model = Model::load(&file).unwrap();
        let mut worst = 0f64;
        for level in Level::ALL {
            let Some(kernels) = Kernels::for_level(level) else {
                continue;
            };
            for threads in [1, 3] {
                let what = format!(
                    "{name} from {} ({layout}, {}, {threads} threads)",
                    source.display(),
                    level.name()
                );
                let err =
                    worst_logit_error(&model, kernels, threads, &input, input.len(), &expected);
                assert!(err <= 1e-4, "{what}: logits differ by {err:.2e}");
                worst = worst.max(err);
                assert_eq!(
                    greedy(&model, kernels, threads, &input, want.len()),
                    want,
                    "{what}: greedy differs"
                );
            }
        }
        eprintln!(
            "{name} from {} ({layout}): worst relative logit error {worst:.2e}",
            source.display()
        );
    }
}

#[test]
fn tiny_architectures_match_transformers_from_hf_and_gguf() {
    for (name, hf) in FIXTURES {
        let Some(dir) = shared_fixture(name) else {
            continue;
        };
        let reference = read_json(&dir.join("reference.json"));
        if hf {
            check(name, &dir, &reference);
        }
        check(name, &dir.join("model-f32.gguf"), &reference);
    }
}

/// An f16 KV cache (keys, values or both; `--cache-type-k/-v f16`) on every fixture with
/// attention, whole prompt and token by token: logits within f16's rounding of
/// transformers. (5e-3 of the row's largest, against 1e-4 for f32), the greedy
/// continuation identical (the fixtures' margins are at least 0.02).
#[test]
fn f16_kv_cache_stays_within_rounding_of_transformers() {
    let names = FIXTURES.iter().map(|(n, _)| *n);
    for name in names.chain(["tiny-lfm2", "tiny-qwen35", "tiny-granite4"]) {
        let Some(dir) = shared_fixture(name) else {
            continue;
        };
        let reference = read_json(&dir.join("reference.json"));
        let (input, expected) = (
            ids(&reference["input_ids"]),
            logit_rows(&reference["logits"]),
        );
        let want = ids(&reference["greedy_ids"]);
        let bytes = convert_rows16(&dir.join("model-f32.gguf"), Recipe::F32);
        let file = EmberFile::parse(&bytes).unwrap();
        let model = Model::load(&file).unwrap();
        let kernels = Kernels::for_level(Level::best()).unwrap();
        let (f16, f32) = (KvType::F16, KvType::F32);
        let tol = if name == "tiny-gemma4" { 3e-2 } else { 5e-3 };
        for (k, v) in [(f16, f16), (f16, f32), (f32, f16)] {
            let kv = KvTypes { k, v };
            for batch in [input.len(), 1] {
                let n = input.len();
                let err =
                    worst_error_in_session(&model, kernels, 2, &input, batch, n, kv, &expected);
                eprintln!("{name} {kv:?} batch {batch}: worst relative logit error {err:.2e}");
                assert!(
                    err <= tol,
                    "{name} {kv:?} batch {batch}: logits differ by {err:.2e}"
                );
            }
            let mut session =
                Session::with_kv_types(&model, input.len() + want.len(), 32, Logits::Last, kv)
                    .unwrap();
            let mut next = argmax(session.prefill(&input).unwrap()) as u32;
            let mut got = vec![next];
            while got.len() < want.len() {
                next = argmax(session.step(next).unwrap()) as u32;
                got.push(next);
            }
            assert_eq!(got, want, "{name} {kv:?}: greedy differs");
        }
    }
}

/// Gemma 3's local layers keep `window + batch - 1` KV slots: with small prefill batches the
/// ring wraps many times within the 28-token prompt and the 16 generated tokens.
#[test]
fn gemma3_ring_buffer_wraps_and_still_matches() {
    let Some(dir) = shared_fixture("tiny-gemma3") else {
        return;
    };
    let (input, expected) = prompt_and_logits(&dir);
    let bytes = convert_rows16(&dir, Recipe::F32);
    let file = EmberFile::parse(&bytes).unwrap();
    let model = Model::load(&file).unwrap();
    assert_eq!(model.config.sliding_window, 6);
    let kernels = Kernels::for_level(Level::Scalar).unwrap();
    for batch in [1, 2, 5, 7] {
        let err = worst_logit_error(&model, kernels, 2, &input, batch, &expected);
        assert!(err <= 1e-4, "batch {batch}: logits differ by {err:.2e}");
    }
    // The local layers' cache holds 6 + 32 - 1 slots instead of 44 positions.
    let plan = ember_runtime::SessionPlan::new(&model.config, 44, 32, Logits::Last).unwrap();
    let full = ember_runtime::kv_cache::KvCache::<()>::floats_without_rings(
        &model.config,
        44,
        KvTypes::default(),
    );
    let kv = model.config.kv_dim();
    assert_eq!(plan.kv_floats, (5 * 37 + 44) * 2 * kv);
    assert!(plan.kv_floats < full);
}

/// Every tiny architecture converted with `--quant same` (f32 sources: the f32 tensors, bit
/// for bit) and `--quant q8_0`: teacher-forced logits within q8_0's drift of transformers' and
/// the same top token at nearly every position (random weights leave margins of only 0.02).
#[test]
fn architectures_convert_with_q8_0_and_same() {
    let kernels = Kernels::for_level(Level::Scalar).unwrap();
    for name in [
        "tiny-qwen3",
        "tiny-llama32",
        "tiny-gemma3",
        "tiny-smollm3",
        "tiny-phi4mini",
        "tiny-olmo2",
        "tiny-qwen3moe",
        "tiny-gemma4",
        "tiny-lfm2",
        "tiny-granite4",
        "tiny-qwen35",
    ] {
        let Some(dir) = shared_fixture(name) else {
            return;
        };
        let (input, expected) = prompt_and_logits(&dir);
        for source in [dir.clone(), dir.join("model-f32.gguf")] {
            let f32_bytes = convert_rows16(&source, Recipe::F32);
            let same = convert_rows16(&source, Recipe::Same);
            let (a, b) = (
                EmberFile::parse(&f32_bytes).unwrap(),
                EmberFile::parse(&same).unwrap(),
            );
            assert_eq!(a.tensor_count(), b.tensor_count());
            for t in a.tensors() {
                let u = b.tensor(t.name).unwrap();
                assert!(
                    t.dtype == u.dtype && t.data == u.data,
                    "{name}: --quant same of an f32 source differs from f32 in {}",
                    t.name
                );
            }
            // How far plain f16 rounding of the weights moves this model: the yardstick of
            // its sensitivity.
            let f16_bytes = convert_rows16(&source, Recipe::F16);
            let f16_file = EmberFile::parse(&f16_bytes).unwrap();
            let f16_err = worst_logit_error(
                &Model::load(&f16_file).unwrap(),
                kernels,
                2,
                &input,
                input.len(),
                &expected,
            );
            let bytes = convert_rows16(&source, Recipe::Q8_0);
            let file = EmberFile::parse(&bytes).unwrap();
            let model = Model::load(&file).unwrap();
            let err = worst_logit_error(&model, kernels, 2, &input, input.len(), &expected);
            let v = model.config.vocab_size;
            let mut session =
                Session::with_options(&model, input.len(), input.len(), Logits::All).unwrap();
            session.set_kernels(kernels);
            let logits = session.forward_all(&input).unwrap();
            let agree = (0..input.len())
                .filter(|&i| {
                    let want = argmax_f64(&expected[i]);
                    argmax(&logits[i * v..(i + 1) * v]) as usize == want
                })
                .count();
            eprintln!(
                "{name} from {} q8_0: worst relative logit error {err:.2e} (f16: {f16_err:.2e}), top-1 agrees at {agree}/{}",
                source.display(),
                input.len()
            );
            // The older architectures drift by 0.03-0.08 here (27x their f16 drift) with 26 of
            // 28 tokens agreeing; a mixture adds router flips where two experts nearly tie.
            // Gemma 4's tiny random model is ten times as sensitive to any rounding (f16
            // alone: 1.9e-2), so its q8_0 drift is judged against that.
            let sensitive = f16_err > 1e-2;
            assert!(
                err < 0.2 || (sensitive && err <= 40.0 * f16_err),
                "{name} q8_0: logits differ by {err:.2e} (f16: {f16_err:.2e})"
            );
            let need = if sensitive { 60 } else { 85 };
            assert!(
                agree * 100 >= input.len() * need,
                "{name} q8_0: top-1 agrees at only {agree} of {}",
                input.len()
            );
        }
    }
}

fn argmax_f64(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b })
}

/// LongRoPE (Phi-3, Phi-4-mini) from config.json: the short factors below the original
/// context, the long ones in sessions beyond it. With one set of factors 1 (and a factor of
/// 1, so no attention scaling) the model is tiny-phi4mini itself, which pins down which
/// table each session used.
#[test]
fn longrope_picks_its_factors_by_the_session_length() {
    let Some(src) = shared_fixture("tiny-phi4mini") else {
        return;
    };
    let (input, expected) = prompt_and_logits(&src);
    let dir = std::env::temp_dir().join(format!("ember-longrope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    // 12 rotated dimensions: 6 pairs; original context 512, sessions up to 2048; the
    // attention factor given as 1.
    config["max_position_embeddings"] = 2048.into();
    for (short, long, small_ok, large_ok) in [(1.0, 2.0, true, false), (2.0, 1.0, false, true)] {
        config["rope_parameters"] = serde_json::json!({
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.75,
            "short_factor": vec![short; 6],
            "long_factor": vec![long; 6],
            "attention_factor": 1.0,
        });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let bytes = convert(&dir, Recipe::F32);
        let file = EmberFile::parse(&bytes).unwrap();
        let model = Model::load(&file).unwrap();
        assert_eq!(model.config.rope_long_context, Some(512));
        assert_eq!(model.config.rope_attention_factor, 1.0);
        for (capacity, ok) in [(input.len(), small_ok), (600, large_ok)] {
            let scalar = Kernels::for_level(Level::Scalar).unwrap();
            let kv = KvTypes::default();
            let err = worst_error_in_session(
                &model,
                scalar,
                1,
                &input,
                input.len(),
                capacity,
                kv,
                &expected,
            );
            assert_eq!(
                err <= 1e-4,
                ok,
                "short {short}, long {long}, capacity {capacity}: error {err:.2e}"
            );
        }
    }
    // Without it, transformers' sqrt(1 + ln(factor) / ln(original)), factor 2048 / 512.
    config["rope_parameters"]
        .as_object_mut()
        .unwrap()
        .remove("attention_factor");
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let bytes = convert(&dir, Recipe::F32);
    let model_file = EmberFile::parse(&bytes).unwrap();
    let model = Model::load(&model_file).unwrap();
    let want = (1.0 + 4f64.ln() / 512f64.ln()).sqrt() as f32;
    assert_eq!(model.config.rope_attention_factor, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Gemma 4's features the shared fixture leaves off, on tests/fixtures/tiny-gemma4-shared
/// (made by its make.py with transformers): the last two layers reuse the keys and values of
/// the last earlier layer of their kind (layer 4 ← 3, 5 ← 2: different head sizes), have
/// double-wide feed-forwards, every layer has its own output scale, logits are soft-capped.
#[test]
fn gemma4_kv_sharing_double_wide_and_layer_scales_match_transformers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma4-shared");
    let reference = read_json(&dir.join("reference.json"));
    check("tiny-gemma4-shared", &dir, &reference);
    let bytes = convert(&dir, Recipe::F32);
    let file = EmberFile::parse(&bytes).unwrap();
    let model = Model::load(&file).unwrap();
    let cfg = &model.config;
    assert_eq!((cfg.kv_source(4), cfg.kv_source(5)), (3, 2));
    assert_eq!((cfg.ffn_dim, cfg.ffn_dim_shared_kv), (64, 128));
    assert_eq!(cfg.final_logit_softcap, Some(30.0));
    // Shared layers keep no cache of their own: one global layer (HS 32) and three local
    // ones (HS 16) of the six, one KV head each.
    let kv =
        ember_runtime::kv_cache::KvCache::<()>::floats_without_rings(cfg, 100, KvTypes::default());
    assert_eq!(kv, (32 + 3 * 16) * 2 * 100);
}

/// A quantized mixture decodes its chosen experts side by side (one dispatch for their gate
/// and up products, one for their downs) and prefills them expert by expert over the tokens
/// routed to each: both give the same logits, at every level and thread count.
#[test]
fn moe_decode_matches_batched_experts() {
    let Some(dir) = shared_fixture("tiny-qwen3moe") else {
        return;
    };
    let reference = read_json(&dir.join("reference.json"));
    let input = ids(&reference["input_ids"]);
    for recipe in [Recipe::Q8_0, Recipe::Q4_0] {
        let bytes = convert_rows16(&dir, recipe);
        let file = EmberFile::parse(&bytes).unwrap();
        let model = Model::load(&file).unwrap();
        let v = model.config.vocab_size;
        for level in Level::ALL {
            let Some(kernels) = Kernels::for_level(level) else {
                continue;
            };
            for threads in [1, 3] {
                let mut batched =
                    Session::with_options(&model, input.len(), input.len(), Logits::All).unwrap();
                batched.set_kernels(kernels);
                batched.set_threads(threads);
                let all = batched.forward_all(&input).unwrap().to_vec();
                let mut one = Session::with_options(&model, input.len(), 1, Logits::All).unwrap();
                one.set_kernels(kernels);
                one.set_threads(threads);
                let mut worst = 0f32;
                for (i, &id) in input.iter().enumerate() {
                    let got = one.forward_all(&[id]).unwrap();
                    let want = &all[i * v..(i + 1) * v];
                    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                    for (a, b) in got.iter().zip(want) {
                        worst = worst.max((a - b).abs() / scale);
                    }
                }
                assert!(
                    worst < 1e-4,
                    "{recipe:?} {} {threads} threads: decode differs by {worst:.2e}",
                    level.name()
                );
            }
        }
    }
}

/// Prompts fed a few tokens per pass: Gemma 4's shared layers read the rings of their
/// source layers (window 4) as they wrap, and a mixture groups each pass's tokens by
/// expert; every position still matches transformers.
#[test]
fn small_prefill_batches_match_for_shared_kv_and_experts() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma4-shared");
    let mut cases = vec![("tiny-gemma4-shared", shared)];
    if let Some(dir) = shared_fixture("tiny-qwen3moe") {
        cases.push(("tiny-qwen3moe", dir));
    }
    let kernels = Kernels::for_level(Level::Scalar).unwrap();
    for (name, dir) in cases {
        let (input, expected) = prompt_and_logits(&dir);
        let bytes = convert_rows16(&dir, Recipe::F32);
        let file = EmberFile::parse(&bytes).unwrap();
        let model = Model::load(&file).unwrap();
        for batch in [1, 2, 3, 5] {
            let err = worst_logit_error(&model, kernels, 2, &input, batch, &expected);
            assert!(
                err <= 1e-4,
                "{name}, batch {batch}: logits differ by {err:.2e}"
            );
        }
    }
}

/// The recurrent hybrids (LFM2's short convolutions, Granite 4's Mamba-2 layers, Qwen3.5's
/// Gated DeltaNet with gated attention; llama.cpp's GGUF orders its value heads differently): from HF
/// and GGUF as the others, then the prompt fed 1, 3 and 16 tokens per pass (the state
/// carries across passes), every position within 1e-4 of transformers.
#[test]
fn recurrent_hybrids_match_transformers_in_any_chunking() {
    for name in ["tiny-lfm2", "tiny-granite4", "tiny-qwen35"] {
        let Some(dir) = shared_fixture(name) else {
            continue;
        };
        let reference = read_json(&dir.join("reference.json"));
        check(name, &dir, &reference);
        check(name, &dir.join("model-f32.gguf"), &reference);
        let (input, expected) = prompt_and_logits(&dir);
        let bytes = convert_rows16(&dir, Recipe::F32);
        let file = EmberFile::parse(&bytes).unwrap();
        let model = Model::load(&file).unwrap();
        let kernels = Kernels::for_level(Level::best()).unwrap();
        for batch in [1, 3, 16] {
            for threads in [1, 3] {
                let err = worst_logit_error(&model, kernels, threads, &input, batch, &expected);
                assert!(
                    err <= 1e-4,
                    "{name}, batch {batch}, {threads} threads: logits differ by {err:.2e}"
                );
            }
        }
    }
}

//! Chat templates rendered by src/chat_template.rs against transformers' `apply_chat_template`
//! (tests/fixtures/chat_templates/reference.json, written by make_reference.py there): the text
//! exactly, for SmolLM2, Qwen2.5, Qwen3, Llama 3.2 and Gemma 3's published templates, and the
//! ids through the runtime tokenizer of the tiny fixture each was rendered with (skipped loudly
//! when ../shared is absent). Then `ember run --chat` and `ember chat` end to end.
mod common;

#[allow(dead_code)]
#[path = "../src/chat_template.rs"]
mod chat_template;

use std::path::{Path, PathBuf};

use chat_template::{ChatTemplate, DateTime, SpecialTokens};
use common::{convert, ember, ember_with_stdin, ids, read_json, shared_fixture};
use ember_convert::Recipe;
use ember_format::EmberFile;
use ember_runtime::tokenizer::Tokenizer;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates")
}

fn reference() -> Value {
    read_json(&fixtures().join("reference.json"))
}

fn template_text(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

/// make_reference.py's clock: 2025-03-07T12:00:00.
fn clock() -> DateTime {
    DateTime::from_unix(1_741_348_800)
}

fn messages(reference: &Value, name: &str) -> Vec<(String, String)> {
    reference["conversations"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn special_from_json(v: &Value) -> SpecialTokens {
    let get = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    SpecialTokens {
        bos: get("bos_token"),
        eos: get("eos_token"),
        unk: get("unk_token"),
        pad: get("pad_token"),
    }
}

#[test]
fn renders_the_text_transformers_renders() {
    let reference = reference();
    let templates = reference["templates"].as_object().unwrap();
    assert_eq!(templates.len(), 5);
    let mut checked = 0;
    for (name, entry) in templates {
        let special = special_from_json(&entry["special_tokens"]);
        let t = ChatTemplate::with_clock(&template_text(name), special, clock())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for case in entry["cases"].as_array().unwrap() {
            let conv = case["conversation"].as_str().unwrap();
            let gen = case["add_generation_prompt"].as_bool().unwrap();
            let got = t
                .render(&messages(&reference, conv), gen)
                .unwrap_or_else(|e| panic!("{name} {conv}: {e}"));
            assert_eq!(
                got,
                case["text"].as_str().unwrap(),
                "{name}, {conv}, add_generation_prompt={gen}"
            );
            checked += 1;
        }
    }
    eprintln!("{checked} renderings identical to transformers");
}

#[test]
fn end_of_turn_text_comes_from_the_template() {
    let special = SpecialTokens {
        bos: Some("<bos>".into()),
        eos: Some("<eos>".into()),
        ..Default::default()
    };
    for (name, end) in [
        ("smollm2-instruct.jinja", "<|im_end|>"),
        ("qwen2.5-instruct.jinja", "<|im_end|>"),
        ("qwen3.jinja", "<|im_end|>"),
        ("llama3.2-instruct.jinja", "<|eot_id|>"),
        ("gemma3-it.jinja", "<end_of_turn>"),
    ] {
        let t = ChatTemplate::with_clock(&template_text(name), special.clone(), clock()).unwrap();
        assert_eq!(t.end_of_turn().as_deref(), Some(end), "{name}");
    }
}

#[test]
fn gemma3_raises_on_roles_out_of_order() {
    let t = ChatTemplate::new(&template_text("gemma3-it.jinja"), SpecialTokens::default()).unwrap();
    let e = t.render(&[("user", "a"), ("user", "b")], true).unwrap_err();
    assert!(e.contains("Conversation roles must alternate"), "{e}");
}

#[test]
fn ids_match_transformers_through_the_runtime_tokenizer() {
    let reference = reference();
    for (name, entry) in reference["templates"].as_object().unwrap() {
        let fixture = entry["fixture"].as_str().unwrap();
        let Some(dir) = shared_fixture(fixture) else {
            return;
        };
        let bytes = convert(&dir, Recipe::F32);
        let file = EmberFile::parse(&bytes).unwrap();
        let tokenizer = Tokenizer::from_file(&file).unwrap();
        let special = SpecialTokens::from_tokenizer(&tokenizer);
        let expected = special_from_json(&entry["special_tokens"]);
        assert_eq!(special.bos, expected.bos, "{fixture}: BOS text");
        assert_eq!(special.eos, expected.eos, "{fixture}: EOS text");
        let t = ChatTemplate::with_clock(&template_text(name), special, clock()).unwrap();
        for case in entry["cases"].as_array().unwrap() {
            let conv = case["conversation"].as_str().unwrap();
            let gen = case["add_generation_prompt"].as_bool().unwrap();
            let text = t.render(&messages(&reference, conv), gen).unwrap();
            assert_eq!(
                tokenizer.encode_plain(&text),
                ids(&case["ids"]),
                "{name} on {fixture}, {conv}, add_generation_prompt={gen}"
            );
        }
        eprintln!("{name} on {fixture}: ids identical to transformers");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-chat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fixture converted to `.ember` on disk, with `template` as its chat template.
fn fixture_file(fixture: &Path, template: Option<&str>, dir: &Path) -> PathBuf {
    let input = dir.join("hf");
    std::fs::create_dir_all(&input).unwrap();
    for entry in std::fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_file() && name != "reference.json" && !name.ends_with(".gguf") {
            std::fs::copy(&path, input.join(&name)).unwrap();
        }
    }
    if let Some(t) = template {
        std::fs::write(input.join("chat_template.jinja"), t).unwrap();
    }
    let out = dir.join("model.ember");
    let status = ember()
        .args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--quant", "f32"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "convert: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

#[test]
fn run_chat_renders_the_files_template() {
    let Some(fixture) = shared_fixture("tiny-llama") else {
        return;
    };
    let reference = reference();
    let entry = &reference["templates"]["smollm2-instruct.jinja"];
    let case = &entry["cases"][0];
    assert_eq!(case["conversation"], "user");
    let user = &messages(&reference, "user")[0].1;

    let dir = temp_dir("run");
    let model = fixture_file(
        &fixture,
        Some(&template_text("smollm2-instruct.jinja")),
        &dir,
    );
    let out = ember()
        .args(["run", model.to_str().unwrap(), "--chat", "-p", user])
        .args(["-n", "4", "--temp", "0", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("chat template"), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(&json["prompt_ids"]), ids(&case["ids"]));

    // Two turns through `ember chat`.
    let out = ember_with_stdin(
        &["chat", model.to_str().unwrap(), "-n", "3", "--temp", "0"],
        "What is the capital of France?\nAnd of Italy?\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_chat_without_a_template_says_so() {
    let Some(fixture) = shared_fixture("tiny-llama") else {
        return;
    };
    let dir = temp_dir("none");
    let model = fixture_file(&fixture, None, &dir);
    let out = ember()
        .args(["run", model.to_str().unwrap(), "--chat", "-p", "Hi"])
        .args(["-n", "2", "--temp", "0", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no chat template"))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(notes[0].contains("ChatML"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The renderer's fuel (chat_template::FUEL) bounds runaway templates, not conversations:
/// every fixture template renders 2,000 messages of 500 characters within it (they take 56-84
/// instructions a message, so the fuel covers about 60,000), and the template fuzzing found
/// (a loop over a message's characters nested in another) fails with an error in well under a
/// second.
#[test]
fn fuel_bounds_runaway_templates_not_long_conversations() {
    let reference = reference();
    let templates = reference["templates"].as_object().unwrap();
    let text = "word ".repeat(100);
    let roles = ["user", "assistant"];
    for (name, entry) in templates {
        let special = special_from_json(&entry["special_tokens"]);
        let t = ChatTemplate::with_clock(&template_text(name), special, clock()).unwrap();
        let long: Vec<(&str, &str)> = (0..2000).map(|i| (roles[i % 2], text.as_str())).collect();
        t.render(&long, true)
            .unwrap_or_else(|e| panic!("{name}: 2,000 messages: {e}"));
    }
    let seed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/chat_template/timeout-nested-loops-over-content"),
    )
    .unwrap();
    let mut parts = seed.split('\0');
    let source = parts.next().unwrap();
    let contents: Vec<&str> = parts.collect();
    let t = ChatTemplate::with_clock(source, SpecialTokens::default(), clock()).unwrap();
    let messages: Vec<(&str, &str)> = ["system", "user", "assistant"]
        .into_iter()
        .zip(contents)
        .collect();
    let start = std::time::Instant::now();
    let e = t.render(&messages, true).unwrap_err();
    eprintln!("runaway template stopped in {:?}: {e}", start.elapsed());
    assert!(e.contains("fuel"), "{e}");
    assert!(start.elapsed().as_secs_f64() < 1.0, "{:?}", start.elapsed());
}

//! `ember run` and `ember tokenize` as a llama.cpp user drives them (issue 16): --chat with
//! every prompt source, stop reasons, llama.cpp's flags, errors that name the problem, and
//! the --json schema.
mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{ember, ember_convert_f32, ember_with, shared_fixture};

/// tiny-llama converted to f32 in a fresh temp dir (256-token context, no chat template).
struct Tiny {
    dir: PathBuf,
    model: String,
}

impl Tiny {
    fn new(name: &str) -> Option<Tiny> {
        let src = shared_fixture("tiny-llama")?;
        let dir = std::env::temp_dir().join(format!("ember-clirun-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let model = dir.join("tiny.ember");
        ember_convert_f32(&src, &model);
        let model = model.to_str().unwrap().to_string();
        Some(Tiny { dir, model })
    }
}

impl Drop for Tiny {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ok(args: &[&str]) -> (String, String) {
    let out = ember_with(args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

fn json(args: &[&str]) -> serde_json::Value {
    let (stdout, _) = ok(args);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// Asserts failure with one stderr line containing `expect`.
fn fails_with(args: &[&str], expect: &str) {
    let out = ember_with(args, b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?} printed more than one line: {err}"
    );
    assert!(
        err.contains(expect),
        "{args:?}: expected {expect:?} in {err}"
    );
}

#[test]
fn chat_applies_to_every_prompt_source() {
    let Some(t) = Tiny::new("chat") else { return };
    let m = t.model.as_str();
    let question = "What is the capital of France?";
    let file = t.dir.join("q.txt");
    std::fs::write(&file, question).unwrap();
    let f = file.to_str().unwrap();
    let base = ["-n", "2", "--temp", "0", "--json"];
    let ids = |v: serde_json::Value| common::ids(&v["prompt_ids"]);

    let plain = ids(json(&[&["run", m, "-p", question][..], &base].concat()));
    let with_p = ids(json(
        &[&["run", m, "--chat", "-p", question][..], &base].concat(),
    ));
    let with_f = ids(json(&[&["run", m, "--chat", "-f", f][..], &base].concat()));
    let out = ember_with(
        &[&["run", m, "--chat", "-f", "-"][..], &base].concat(),
        question.as_bytes(),
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let with_stdin = ids(v);
    assert!(with_p.len() > plain.len(), "--chat -p adds the template");
    assert_eq!(with_f, with_p, "--chat -f renders the template as -p does");
    assert_eq!(with_stdin, with_p, "--chat -f - reads stdin");
    // Without --chat, -f - is the plain text.
    let out = ember_with(
        &[&["run", m, "-f", "-"][..], &base].concat(),
        question.as_bytes(),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(v), plain);
    // Token ids cannot take a template: refused, naming both flags.
    fails_with(&["run", m, "--chat", "--prompt-ids", "1,2"], "--chat");
}

#[test]
fn every_stop_reason_is_reported() {
    let Some(t) = Tiny::new("stop") else { return };
    let m = t.model.as_str();
    let run = |extra: &[&str]| {
        json(
            &[
                &[
                    "run",
                    m,
                    "--prompt-ids",
                    "1,17,42,99",
                    "--temp",
                    "0",
                    "--json",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    // 4 prompt positions + 4 fed tokens fill 8; the 5th is sampled, with nowhere to go.
    let v = run(&["-n", "16", "--ctx", "8"]);
    assert_eq!(v["stop_reason"], "context");
    assert_eq!(v["ids"].as_array().unwrap().len(), 5);
    assert_eq!(v["timings"]["predicted_passes"], 4);
    let v = run(&["-n", "3"]);
    assert_eq!(v["stop_reason"], "length");
    assert_eq!(v["ids"].as_array().unwrap().len(), 3);
    // A stop string taken from the greedy text: generation ends there, without it.
    let full = run(&["-n", "12"]);
    let text = full["text"].as_str().unwrap().to_string();
    let cut = text.char_indices().map(|(i, _)| i).nth(4).unwrap();
    let stop: String = text[cut..].chars().take(2).collect();
    let v = run(&["-n", "12", "--stop", &stop]);
    assert_eq!(v["stop_reason"], "stop", "{text:?} / {stop:?}");
    assert_eq!(
        v["text"].as_str().unwrap(),
        &text[..text.find(&stop).unwrap()]
    );
    // -n -1: until the context is full.
    let v = run(&["-n", "-1", "--ctx", "12"]);
    assert!(["context", "eos"].contains(&v["stop_reason"].as_str().unwrap()));

    // Text mode says why on stderr (greedy: a sampled end of text would stop it sooner).
    let (_, err) = ok(&[
        "run",
        m,
        "--prompt-ids",
        "1,17,42,99",
        "-n",
        "16",
        "--ctx",
        "8",
        "--temp",
        "0",
    ]);
    assert!(
        err.contains("[context full: 8 positions; raise --ctx, up to 256]"),
        "{err}"
    );
    let (_, err) = ok(&[
        "run",
        m,
        "--prompt-ids",
        "1,17,42,99",
        "-n",
        "2",
        "--temp",
        "0",
    ]);
    assert!(err.contains("[-n 2 tokens generated]"), "{err}");
}

#[test]
fn end_of_text_is_a_stop_reason() {
    let Some(gguf) = common::smollm2_gguf() else {
        return;
    };
    let cache = std::env::temp_dir().join(format!("ember-clirun-eos-{}", std::process::id()));
    let out = ember()
        .env("XDG_CACHE_HOME", &cache)
        .args(["run", gguf.to_str().unwrap(), "--chat", "-p", "Say hello."])
        .args(["-n", "200", "--temp", "0", "--json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&cache);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // <|im_end|> is SmolLM2's end-of-generation token.
    assert_eq!(v["stop_reason"], "eos", "{v}");
}

#[test]
fn json_schema_version_1() {
    let Some(t) = Tiny::new("json") else { return };
    let v = json(&[
        "run", &t.model, "-p", "hello", "-n", "4", "--temp", "0.7", "--json",
    ]);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ctx",
            "ids",
            "kernels",
            "prompt_ids",
            "schema_version",
            "seed",
            "stop_reason",
            "text",
            "threads",
            "timings"
        ]
    );
    assert_eq!(v["schema_version"], 1);
    let timings = v["timings"].as_object().unwrap();
    let mut keys: Vec<&str> = timings.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "load_ms",
            "predicted_ms",
            "predicted_n",
            "predicted_passes",
            "predicted_per_second",
            "prompt_ms",
            "prompt_n",
            "prompt_per_second"
        ]
    );
    assert_eq!(
        timings["prompt_n"],
        v["prompt_ids"].as_array().unwrap().len()
    );
    assert_eq!(timings["predicted_n"], 4);
    for k in keys {
        assert!(timings[k].as_f64().unwrap() >= 0.0, "{k}");
    }
    assert!(v["seed"].is_u64(), "sampling reports its seed");
    let greedy = json(&[
        "run", &t.model, "-p", "hello", "-n", "2", "--temp", "0", "--json",
    ]);
    assert!(greedy["seed"].is_null(), "greedy has no seed");

    // Text mode: load, prompt and generation on their own lines, and the seed.
    let (_, err) = ok(&["run", &t.model, "-p", "hello", "-n", "4"]);
    for line in ["load ", "prompt ", "generation ", "seed "] {
        assert!(
            err.lines().any(|l| l.starts_with(line)),
            "{line:?} in {err}"
        );
    }
}

#[test]
fn llama_cpp_flags() {
    let Some(t) = Tiny::new("flags") else { return };
    let m = t.model.as_str();
    let ids = |v: &serde_json::Value| common::ids(&v["ids"]);
    let ours = json(&[
        "run", m, "-p", "hello", "-n", "6", "--ctx", "64", "--seed", "7", "--json",
    ]);
    let out = ember_with(
        &[
            "run", "-m", m, "-p", "hello", "-n", "6", "-c", "64", "-s", "7", "-ngl", "99", "--json",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        ids(&ours),
        ids(&theirs),
        "-m, -c and -s are --model, --ctx and --seed"
    );
    assert_eq!(theirs["ctx"], 64);
    assert_eq!(theirs["seed"], 7);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignoring -ngl 99"));
    let long = json(&[
        "run",
        m,
        "-p",
        "hello",
        "--ctx-size",
        "64",
        "--predict",
        "6",
        "--seed",
        "7",
        "--json",
    ]);
    assert_eq!(ids(&long), ids(&ours));

    // Negative values: --temp -1 is greedy (as llama.cpp), -s -1 a random seed, -n -1 no limit.
    let greedy = json(&["run", m, "-p", "hello", "-n", "6", "--temp", "0", "--json"]);
    let neg = json(&["run", m, "-p", "hello", "-n", "6", "--temp", "-1", "--json"]);
    assert_eq!(ids(&greedy), ids(&neg));
    let v = json(&[
        "run", m, "-p", "hello", "-n", "-1", "-c", "16", "-s", "-1", "--json",
    ]);
    assert!(v["seed"].is_u64());

    // The default seed is random and reported; --seed with it repeats the run.
    let a = json(&[
        "run", m, "-p", "hello", "-n", "8", "--temp", "1.5", "--json",
    ]);
    let b = json(&[
        "run", m, "-p", "hello", "-n", "8", "--temp", "1.5", "--json",
    ]);
    assert_ne!(a["seed"], b["seed"], "a fresh seed per run");
    let seed = a["seed"].to_string();
    let again = json(&[
        "run", m, "-p", "hello", "-n", "8", "--temp", "1.5", "-s", &seed, "--json",
    ]);
    assert_eq!(ids(&a), ids(&again));

    // More threads than cores: a warning, and the run goes on.
    let (_, err) = ok(&["run", m, "-p", "hi", "-n", "1", "-t", "512"]);
    assert!(err.contains("more threads than"), "{err}");

    // -ctk / -ctv: an f16 cache keeps the greedy ids (tiny-llama's margins are wide) and
    // halves the cache inspect --memory reports.
    let args = ["run", m, "-p", "hello", "-n", "6", "--temp", "0", "--json"];
    let f16 = json(&[&args[..], &["--ctk", "f16", "--cache-type-v", "f16"]].concat());
    assert_eq!(ids(&f16), ids(&greedy));
    let kv = |extra: &[&str]| {
        let v = json(&[&["inspect", m, "--memory", "-c", "64", "--json"][..], extra].concat());
        (v["kv_cache_bytes"].as_u64().unwrap(), v["kv_dtype"].clone())
    };
    let (f32_bytes, f32_name) = kv(&[]);
    assert_eq!(f32_name, "f32");
    assert_eq!(
        kv(&["--ctk", "f16", "--ctv", "f16"]),
        (f32_bytes / 2, "f16".into())
    );
    assert_eq!(kv(&["--ctk", "f16"]), (f32_bytes * 3 / 4, "f16/f32".into()));
}

#[test]
fn errors_name_the_problem() {
    let Some(t) = Tiny::new("errors") else { return };
    let m = t.model.as_str();
    let run = |extra: &[&str]| -> Vec<String> {
        [&["run", m, "-p", "hi"][..], extra]
            .concat()
            .into_iter()
            .map(String::from)
            .collect()
    };
    let cases: [(&[&str], &str); 13] = [
        (&["--top-p", "2"], "--top-p must be in [0, 1], got 2"),
        (
            &["--ctk", "q8_0"],
            "'q8_0' for '--cache-type-k <TYPE>': unknown cache type \"q8_0\" (llama.cpp's quantized cache types are not supported yet): one of f32, f16",
        ),
        (&["--ctv", "f8"], "'f8' for '--cache-type-v <TYPE>': unknown cache type \"f8\": one of f32, f16"),
        (&["--min-p", "-0.5"], "--min-p must be in [0, 1], got -0.5"),
        (
            &["--repeat-penalty", "0"],
            "--repeat-penalty must be > 0, got 0",
        ),
        (
            &["--seed", "-5"],
            "--seed must be >= 0, or -1 for a random seed, got -5",
        ),
        (&["-n", "-2"], "-n must be >= 0, or -1"),
        (
            &["-n", "18446744073709551615"],
            "'18446744073709551615' for '--n-predict",
        ),
        (
            &["--ctx", "100000"],
            "--ctx 100000 is beyond the model's context length 256",
        ),
        (&["--temp", "abc"], "invalid value 'abc' for '--temp"),
        (&["--bogus"], "unexpected argument '--bogus'"),
        (&["-m", m], "two models given"),
        (&["--stop"], "a value is required for '--stop <STOPS>'"),
    ];
    for (extra, expect) in cases {
        let args = run(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, expect);
    }
    fails_with(&["run", "-p", "hi"], "give a model");
    fails_with(
        &["run", m, "-p", "hello there, friend", "-c", "2"],
        "tokens but --ctx 2 holds only 2 (model maximum 256)",
    );
    let long = "word ".repeat(400);
    fails_with(
        &["run", m, "-p", &long],
        "tokens but the model's context length is 256",
    );
    fails_with(
        &["run", m, "-p", "hello", "-n", "4", "--ctx", "100000"],
        "--ctx 100000",
    );
    // A directory that is no model names its path.
    let empty = t.dir.join("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    fails_with(&["run", empty.to_str().unwrap(), "-p", "hi"], "empty-dir");
    // One wording for text that is not UTF-8, in run and tokenize.
    let bad = t.dir.join("bad.txt");
    std::fs::write(&bad, [0x66, 0xFF, 0xFE]).unwrap();
    fails_with(
        &["run", m, "-f", bad.to_str().unwrap()],
        "bad.txt: not valid UTF-8 text (byte 1 is not)",
    );
    fails_with(
        &["tokenize", m, "-f", bad.to_str().unwrap()],
        "bad.txt: not valid UTF-8 text (byte 1 is not)",
    );
    let out = ember_with(&["run", m, "-f", "-"], &[0x66, 0xFF]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin: not valid UTF-8 text"));
}

#[test]
fn convert_checks_the_output_path_first() {
    let Some(src) = shared_fixture("tiny-llama") else {
        return;
    };
    let start = std::time::Instant::now();
    fails_with(
        &[
            "convert",
            src.to_str().unwrap(),
            "-o",
            "/nonexistent-ember-dir/x.ember",
        ],
        "/nonexistent-ember-dir/x.ember: the directory /nonexistent-ember-dir does not exist",
    );
    // Checked before reading any weight: no progress lines, no conversion.
    assert!(start.elapsed().as_secs() < 5);
    let dir = std::env::temp_dir();
    fails_with(
        &[
            "convert",
            src.to_str().unwrap(),
            "-o",
            dir.to_str().unwrap(),
        ],
        "is a directory",
    );
}

#[test]
fn tokenize_reads_text_file_or_stdin() {
    let Some(t) = Tiny::new("tokenize") else {
        return;
    };
    let m = t.model.as_str();
    let text = "Hello, world!";
    let file = t.dir.join("t.txt");
    std::fs::write(&file, text).unwrap();
    let ids = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        common::ids(&v["ids"])
    };
    let arg = ids(ember_with(&["tokenize", m, text, "--json"], b""));
    assert!(!arg.is_empty());
    assert_eq!(
        ids(ember_with(
            &["tokenize", m, "-f", file.to_str().unwrap(), "--json"],
            b""
        )),
        arg
    );
    assert_eq!(
        ids(ember_with(
            &["tokenize", m, "-f", "-", "--json"],
            text.as_bytes()
        )),
        arg
    );
    assert_eq!(
        ids(ember_with(&["tokenize", m, "--json"], text.as_bytes())),
        arg
    );
    assert_eq!(
        ids(ember_with(&["tokenize", "-m", m, text, "--json"], b"")),
        arg
    );
}

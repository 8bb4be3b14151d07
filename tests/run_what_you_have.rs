//! `run`, `chat`, `bench`, `eval` and `tokenize` take a GGUF file or a Hugging Face
//! directory directly: the first use converts it with `--quant same` into the cache
//! (`$XDG_CACHE_HOME/ember`), later uses map the cached file (src/model_source.rs).
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::{ember, shared_fixture};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-rwyh-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `ember ARGS` with its cache (and home, should XDG be ignored) under `root`.
fn ember_in(root: &Path, args: &[&str]) -> Output {
    let out = ember()
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("HOME", root.join("home"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    out
}

fn ok(out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {stderr}");
    (stdout, stderr)
}

/// The cache's files, sorted.
fn cached(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join("cache/ember")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The greedy ids of `ember run MODEL` on a fixed prompt, and its stderr.
fn greedy(root: &Path, model: &Path, extra: &[&str]) -> (Vec<u32>, String) {
    let mut args = vec![
        "run",
        model.to_str().unwrap(),
        "--prompt-ids",
        "1,17,42,99",
        "-n",
        "8",
        "--temp",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (stdout, stderr) = ok(&ember_in(root, &args));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    (common::ids(&v["ids"]), stderr)
}

fn conversion_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("ember: converted"))
        .count()
}

#[test]
fn gguf_is_converted_once_then_reused() {
    let Some(fixture) = shared_fixture("tiny-qwen3") else {
        return;
    };
    let root = temp_dir("gguf");
    // A copy, so that touching it below leaves the shared fixture alone.
    let gguf = root.join("model-f32.gguf");
    std::fs::copy(fixture.join("model-f32.gguf"), &gguf).unwrap();

    let converted = root.join("converted.ember");
    ok(&ember_in(
        &root,
        &[
            "convert",
            gguf.to_str().unwrap(),
            "-o",
            converted.to_str().unwrap(),
            "--quant",
            "same",
            "--quiet",
        ],
    ));
    let (expected, _) = greedy(&root, &converted, &[]);
    assert_eq!(expected.len(), 8);
    assert!(cached(&root).is_empty(), "a .ember input is not cached");

    // First run: one conversion line, one cached file, byte for byte `ember convert`'s.
    let (ids, stderr) = greedy(&root, &gguf, &[]);
    assert_eq!(ids, expected);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_eq!(conversion_lines(&stderr), 1, "{stderr}");
    assert!(stderr.contains("--quant same") && stderr.contains("reused on later runs"));
    let files = cached(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(stderr.contains(files[0].file_name().unwrap().to_str().unwrap()));
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        std::fs::read(&converted).unwrap()
    );
    let mtime = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    // Second run: quiet, same file, untouched.
    let (ids, stderr) = greedy(&root, &gguf, &[]);
    assert_eq!(ids, expected);
    assert_eq!(conversion_lines(&stderr), 0, "{stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
    assert_eq!(cached(&root), files);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        mtime
    );

    // --no-cache converts in memory and writes nothing.
    let fresh = root.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let (ids, stderr) = greedy(&fresh, &gguf, &["--no-cache"]);
    assert_eq!(ids, expected);
    assert_eq!(conversion_lines(&stderr), 1, "{stderr}");
    assert!(stderr.contains("in memory"), "{stderr}");
    assert!(cached(&fresh).is_empty());
    assert!(!fresh.join("cache").exists());

    // A changed source (new mtime) is converted again under a new key; the stale entry
    // goes.
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&gguf)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (ids, stderr) = greedy(&root, &gguf, &[]);
    assert_eq!(ids, expected);
    assert_eq!(conversion_lines(&stderr), 1, "{stderr}");
    let now = cached(&root);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, files, "a touched source needs a new cache key");
    let (_, stderr) = greedy(&root, &gguf, &[]);
    assert_eq!(conversion_lines(&stderr), 0, "{stderr}");

    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn hf_directory_tokenizes_and_runs() {
    let Some(fixture) = shared_fixture("tiny-qwen3") else {
        return;
    };
    let root = temp_dir("hf");
    let converted = root.join("hf.ember");
    ok(&ember_in(
        &root,
        &[
            "convert",
            fixture.to_str().unwrap(),
            "-o",
            converted.to_str().unwrap(),
            "--quant",
            "same",
            "--quiet",
        ],
    ));
    let text = "Hello world, <|im_start|>user\nhi there!";
    let tokenize = |model: &Path| {
        let out = ember_in(
            &root,
            &["tokenize", model.to_str().unwrap(), text, "--json"],
        );
        ok(&out)
    };
    let (expected, _) = tokenize(&converted);
    let (first, stderr) = tokenize(&fixture);
    assert_eq!(first, expected);
    assert_eq!(conversion_lines(&stderr), 1, "{stderr}");
    assert_eq!(cached(&root).len(), 1);
    let (second, stderr) = tokenize(&fixture);
    assert_eq!(second, expected);
    assert!(stderr.trim().is_empty(), "{stderr}");
    // config.json stands for its directory: the same cache entry.
    let (third, stderr) = tokenize(&fixture.join("config.json"));
    assert_eq!(third, expected);
    assert!(stderr.trim().is_empty(), "{stderr}");
    assert_eq!(cached(&root).len(), 1);

    let (a, _) = greedy(&root, &converted, &[]);
    let (b, _) = greedy(&root, &fixture, &[]);
    assert_eq!(a, b);

    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn chat_bench_and_eval_take_a_gguf() {
    let Some(fixture) = shared_fixture("tiny-qwen3") else {
        return;
    };
    let root = temp_dir("cmds");
    let gguf = fixture.join("model-f32.gguf");
    let g = gguf.to_str().unwrap();

    let out = ember_in(
        &root,
        &["bench", g, "-p", "8", "-n", "4", "-r", "1", "--json"],
    );
    let (stdout, stderr) = ok(&out);
    assert!(stdout.contains("tg"), "{stdout}");
    assert_eq!(conversion_lines(&stderr), 1, "{stderr}");

    // At a depth (llama-bench's -d), with an f16 cache; a depth past the context is an error.
    let out = ember_in(
        &root,
        &[
            "bench", g, "-p", "4", "-n", "4", "-d", "40", "--ctk", "f16", "-r", "1", "--json",
        ],
    );
    let (stdout, _) = ok(&out);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["n_depth"], 40, "{stdout}");
    assert!(v["tg_tok_s"].as_f64().unwrap() > 0.0, "{stdout}");
    let out = ember_in(&root, &["bench", g, "-n", "4", "-d", "1000000", "-r", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-d + the larger of them"));

    let text = root.join("text.txt");
    std::fs::write(
        &text,
        "the quick brown fox jumps over the lazy dog. ".repeat(20),
    )
    .unwrap();
    let out = ember_in(
        &root,
        &[
            "eval",
            g,
            "--text",
            text.to_str().unwrap(),
            "--ctx",
            "16",
            "--chunks",
            "2",
            "--reference",
            fixture.to_str().unwrap(),
            "--json",
        ],
    );
    let (stdout, stderr) = ok(&out);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v.is_object(), "{stdout}");
    // The GGUF is cached already; the HF reference is converted now.
    assert_eq!(conversion_lines(&stderr), 1, "{stderr}");

    let mut child = ember()
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("HOME", root.join("home"))
        .args(["chat", g, "--temp", "0", "-n", "4"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = ok(&out);
    assert_eq!(conversion_lines(&stderr), 0, "{stderr}");
    assert_eq!(cached(&root).len(), 2);

    let _ = std::fs::remove_dir_all(&root);
}

/// Runs `ember ARGS`, asserts failure with one stderr line containing every `expect`.
fn fails_with(root: &Path, args: &[&str], expect: &[&str]) {
    let out = ember_in(root, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    for e in expect {
        assert!(err.contains(e), "{args:?}: expected {e:?} in {err}");
    }
}

#[test]
fn bad_sources_fail_in_one_line() {
    let Some(fixture) = shared_fixture("tiny-qwen3") else {
        return;
    };
    let root = temp_dir("bad");
    let empty = root.join("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    let e = empty.to_str().unwrap();
    fails_with(&root, &["run", e, "-p", "hi"], &[e, "config.json"]);

    let bytes = std::fs::read(fixture.join("model-f32.gguf")).unwrap();
    let truncated = root.join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let t = truncated.to_str().unwrap();
    fails_with(&root, &["run", t, "-p", "hi"], &[t, "truncated"]);

    let mamba = root.join("mamba");
    std::fs::create_dir_all(&mamba).unwrap();
    for name in ["tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture.join(name), mamba.join(name)).unwrap();
    }
    let config = std::fs::read_to_string(fixture.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&config).unwrap();
    v["model_type"] = "mamba".into();
    std::fs::write(mamba.join("config.json"), v.to_string()).unwrap();
    let m = mamba.to_str().unwrap();
    fails_with(
        &root,
        &["tokenize", m, "hi"],
        &[m, "unsupported architecture"],
    );
    fails_with(
        &root,
        &[
            "run",
            root.join("missing.gguf").to_str().unwrap(),
            "-p",
            "hi",
        ],
        &["missing.gguf"],
    );
    assert!(cached(&root).is_empty());

    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_unwritable_cache_falls_back_to_memory() {
    let Some(fixture) = shared_fixture("tiny-qwen3") else {
        return;
    };
    let root = temp_dir("readonly");
    // The cache "directory" is a file: it cannot be created, whoever runs the test.
    std::fs::write(root.join("cache"), b"not a directory").unwrap();
    let (ids, stderr) = greedy(&root, &fixture.join("model-f32.gguf"), &[]);
    assert_eq!(ids.len(), 8);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("in memory") && stderr.contains("cannot write the cache"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(root.join("cache")).unwrap(),
        b"not a directory"
    );

    let _ = std::fs::remove_dir_all(&root);
}

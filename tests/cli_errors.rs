//! Bad inputs give one clear error line and a non-zero exit, never a panic.
mod common;

use std::path::{Path, PathBuf};

use common::{ember, shared_fixture};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-err-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `ember ARGS`, asserts failure with a single stderr line containing `expect`.
fn fails_with(args: &[&str], expect: &str) {
    let out = ember().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?} printed more than one line: {err}"
    );
    assert!(
        err.to_lowercase().contains(&expect.to_lowercase()),
        "{args:?}: expected {expect:?} in {err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn convert_rejects_bad_inputs() {
    let dir = temp_dir("convert");
    let out = dir.join("out.ember");
    let out = out.to_str().unwrap();

    // An HF directory without config.json.
    let empty = dir.join("no-config");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("model.safetensors"), b"not really").unwrap();
    fails_with(
        &["convert", empty.to_str().unwrap(), "-o", out],
        "config.json",
    );

    // A GGUF of another architecture: header, no tensors, one key.
    let mut gguf = Vec::new();
    gguf.extend_from_slice(b"GGUF");
    gguf.extend_from_slice(&3u32.to_le_bytes());
    gguf.extend_from_slice(&0u64.to_le_bytes()); // tensors
    gguf.extend_from_slice(&1u64.to_le_bytes()); // keys
    let key = b"general.architecture";
    gguf.extend_from_slice(&(key.len() as u64).to_le_bytes());
    gguf.extend_from_slice(key);
    gguf.extend_from_slice(&8u32.to_le_bytes()); // string
    gguf.extend_from_slice(&4u64.to_le_bytes());
    gguf.extend_from_slice(b"bert");
    let gguf_path = dir.join("bert.gguf");
    std::fs::write(&gguf_path, &gguf).unwrap();
    fails_with(&["convert", gguf_path.to_str().unwrap(), "-o", out], "bert");

    // A truncated safetensors file.
    if let Some(src) = shared_fixture("tiny-llama") {
        let hf = dir.join("truncated");
        copy_dir(&src, &hf);
        let st = hf.join("model.safetensors");
        let bytes = std::fs::read(&st).unwrap();
        std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
        fails_with(&["convert", hf.to_str().unwrap(), "-o", out], "safetensors");
    }
    assert!(
        !Path::new(out).exists(),
        "no output file after a failed conversion"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_rejects_bad_prompts() {
    let Some(src) = shared_fixture("tiny-llama") else {
        return;
    };
    let dir = temp_dir("run");
    let model = dir.join("tiny.ember");
    let m = model.to_str().unwrap();
    let status = ember()
        .args([
            "convert",
            src.to_str().unwrap(),
            "-o",
            m,
            "--quant",
            "f32",
            "--quiet",
        ])
        .status()
        .unwrap();
    assert!(status.success());

    fails_with(&["run", m, "-p", ""], "empty");
    // tiny-llama's context is 256 positions.
    let long = "word ".repeat(400);
    fails_with(&["run", m, "-p", &long, "-n", "4"], "context");
    fails_with(
        &["run", m, "-p", "hello", "-n", "4", "--ctx", "100000"],
        "context",
    );
    fails_with(
        &["run", m, "--prompt-ids", "1,99999", "-n", "2"],
        "vocabulary",
    );
    fails_with(
        &["run", m, "-f", dir.join("missing.txt").to_str().unwrap()],
        "missing.txt",
    );
    let bad_utf8 = dir.join("bad.txt");
    std::fs::write(&bad_utf8, [0x66, 0xFF, 0xFE]).unwrap();
    fails_with(&["run", m, "-f", bad_utf8.to_str().unwrap()], "UTF-8");
    fails_with(
        &["run", dir.join("nope.ember").to_str().unwrap(), "-p", "hi"],
        "nope.ember",
    );

    // And a good run for contrast: greedy is deterministic.
    let run = |seed: &str| {
        let out = ember()
            .args([
                "run",
                m,
                "-p",
                "First Citizen",
                "-n",
                "8",
                "--seed",
                seed,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["ids"].clone()
    };
    assert_eq!(run("1"), run("1"), "same seed, same output");
    std::fs::remove_dir_all(&dir).unwrap();
}

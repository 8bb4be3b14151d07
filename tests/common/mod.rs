//! Helpers for end-to-end tests: locating ../shared fixtures and converting them in memory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ember_format::AlignedBytes;

/// `../shared/fixtures/NAME` relative to the repository, or `None` (with a loud SKIPPED line)
/// when the shared fixtures are absent, as on a user's fresh clone.
pub fn shared_fixture(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} not found (../shared is absent)",
            path.display()
        );
        None
    }
}

/// `.cache/models/NAME` fetched by scripts/fetch-models.sh, or `None` (with a loud SKIPPED
/// line) when it is not there.
fn cached_model(name: &str, fetch: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/models")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} not found: run {fetch}", path.display());
        None
    }
}

/// The SmolLM2 GGUF fetched by scripts/fetch-models.sh, if present.
pub fn smollm2_gguf() -> Option<PathBuf> {
    cached_model("SmolLM2-135M-Instruct.Q4_1.gguf", "scripts/fetch-models.sh")
}

/// The Gemma 3 270M Q4_K_M GGUF fetched by `scripts/fetch-models.sh gemma3`, if present.
pub fn gemma3_gguf() -> Option<PathBuf> {
    cached_model("gemma-3-270m-q4_k_m.gguf", "scripts/fetch-models.sh gemma3")
}

/// Converts `input` with `recipe` into an in-memory, aligned `.ember` file (row-major).
pub fn convert(input: &Path, recipe: ember_convert::Recipe) -> AlignedBytes {
    let (writer, _) = ember_convert::build(input, Some(recipe), false).expect("convert");
    AlignedBytes::from(writer.to_vec())
}

/// As [`convert`], in the rows16 layout `ember convert` writes by default (every matrix it
/// applies to; the rest stay row-major).
pub fn convert_rows16(input: &Path, recipe: ember_convert::Recipe) -> AlignedBytes {
    let (mut writer, _) = ember_convert::build(input, Some(recipe), false).expect("convert");
    assert!(writer.use_rows16() > 0, "no matrix took the rows16 layout");
    AlignedBytes::from(writer.to_vec())
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A reference's `logits`: one row (V) per position.
pub fn logit_rows(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The `ember` binary built for this test run.
pub fn ember() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
}

/// `ember ARGS` with `stdin` piped in; asserts it did not panic.
pub fn ember_with(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = ember()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    out
}

/// [`ember_with`], also asserting that it exits 0.
pub fn ember_with_stdin(args: &[&str], input: &str) -> std::process::Output {
    let out = ember_with(args, input.as_bytes());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    out
}

/// `ember convert SRC -o OUT --quant f32 --quiet`; asserts it succeeds.
pub fn ember_convert_f32(src: &Path, out: &Path) {
    let o = ember()
        .arg("convert")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(["--quant", "f32", "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

//! `ember inspect` end to end: a good file, then truncated and byte-flipped copies that must
//! give one error line and a non-zero exit, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use ember_format::{DType, OwnedValue, Writer};

fn sample_file(dir: &Path) -> PathBuf {
    let mut w = Writer::new();
    w.set_str("general.architecture", "llama");
    w.set_u32("model.layer_count", 1);
    w.set(
        "tokenizer.tokens",
        OwnedValue::BytesArray(vec![b"a".to_vec(), b"b".to_vec()]),
    );
    w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, &[2, 32], vec![0; 68])
        .unwrap();
    w.add_tensor_f32("output_norm.weight", &[3], &[1.0, 1.0, 1.0])
        .unwrap();
    let path = dir.join("sample.ember");
    w.write_file(&path).unwrap();
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn inspect(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_shows_metadata_and_tensors() {
    let dir = temp_dir("ok");
    let path = sample_file(&dir);
    let (ok, out, err) = inspect(&[path.to_str().unwrap(), "--verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("blk.0.attn_q.weight"), "{out}");
    assert!(out.contains("q8_0"), "{out}");
    assert!(out.contains("checksum"), "{out}");
    let (ok, out, _) = inspect(&[path.to_str().unwrap(), "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tensors"].as_array().unwrap().len(), 2);
    assert_eq!(v["metadata"]["general.architecture"], "llama");
    // 2x32 q8_0 (68 bytes) + 3 f32 (12 bytes) over 67 weights.
    let bpw = v["bits_per_weight"].as_f64().unwrap();
    assert!((bpw - 80.0 * 8.0 / 67.0).abs() < 1e-9);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn assert_one_line_error(path: &Path, expect: &str) {
    let (ok, _, err) = inspect(&[path.to_str().unwrap(), "--verify"]);
    assert!(!ok, "corrupt file accepted");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(expect), "expected '{expect}' in: {err}");
}

#[test]
fn truncated_and_flipped_files_fail_with_one_line() {
    let dir = temp_dir("bad");
    let path = sample_file(&dir);
    let good = std::fs::read(&path).unwrap();
    let bad = dir.join("bad.ember");
    for len in [0, 7, 100, good.len() / 2, good.len() - 1] {
        std::fs::write(&bad, &good[..len]).unwrap();
        let (ok, _, err) = inspect(&[bad.to_str().unwrap(), "--verify"]);
        assert!(
            !ok && !err.contains("panicked") && err.trim_end().lines().count() == 1,
            "{len}: {err}"
        );
    }
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    assert_one_line_error(&bad, "truncated");
    // A flipped byte of tensor data (not padding, which the reader checks separately).
    let aligned = ember_format::AlignedBytes::from(good.clone());
    let at = {
        let f = ember_format::EmberFile::parse(&aligned).unwrap();
        let t = f.tensor("blk.0.attn_q.weight").unwrap();
        t.data.as_ptr() as usize - aligned.as_ptr() as usize + 5
    };
    let mut flipped = good.clone();
    flipped[at] ^= 0x10;
    std::fs::write(&bad, &flipped).unwrap();
    assert_one_line_error(&bad, "checksum");
    assert_one_line_error(&dir.join("missing.ember"), "missing.ember");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_opens_with_a_summary_and_sorts_tensors_naturally() {
    let dir = temp_dir("summary");
    let mut w = Writer::new();
    w.set_str("general.architecture", "llama");
    w.set_str("general.quantization", "q8_0");
    w.set_u32("model.context_length", 2048);
    w.set_str("quantization.tensor.blk.0.attn_q.weight", "q8_0 (copied)");
    for i in [10, 2, 1, 0] {
        w.add_tensor_f32(&format!("blk.{i}.attn_norm.weight"), &[3], &[1.0; 3])
            .unwrap();
    }
    let path = dir.join("summary.ember");
    w.write_file(&path).unwrap();
    let (ok, out, err) = inspect(&[path.to_str().unwrap()]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for (i, key) in [
        "architecture",
        "parameters",
        "file type",
        "context",
        "tokenizer",
        "chat format",
        "kernels",
    ]
    .iter()
    .enumerate()
    {
        assert!(lines[i + 1].trim_start().starts_with(key), "{key}: {out}");
    }
    assert!(out.contains("context       2,048 tokens"), "{out}");
    let at = |name: &str| out.find(&format!("  {name} ")).unwrap();
    assert!(at("blk.0.attn_norm.weight") < at("blk.1.attn_norm.weight"));
    assert!(at("blk.2.attn_norm.weight") < at("blk.10.attn_norm.weight"));
    // Per-tensor provenance only with --provenance.
    assert!(!out.contains("quantization.tensor.blk.0"), "{out}");
    assert!(out.contains("--provenance"), "{out}");
    let (_, out, _) = inspect(&[path.to_str().unwrap(), "--provenance"]);
    assert!(
        out.contains("quantization.tensor.blk.0.attn_q.weight"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_memory_in_mib_and_verify_together() {
    let Some(src) = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/tiny-llama")
        .canonicalize()
        .ok()
    else {
        eprintln!("SKIPPED: ../shared/fixtures/tiny-llama not found");
        return;
    };
    let dir = temp_dir("memory");
    let model = dir.join("tiny.ember");
    let status = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "convert",
            src.to_str().unwrap(),
            "-o",
            model.to_str().unwrap(),
        ])
        .args(["--quant", "q8_0", "--quiet"])
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, out, err) = inspect(&[model.to_str().unwrap(), "--memory", "-c", "64", "--verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("KV cache in f32"), "{out}");
    assert!(out.contains("MiB"), "{out}");
    assert!(out.contains("checksum") && out.contains(": ok"), "{out}");
    // The MiB column lines up.
    let cols: Vec<usize> = out
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" MiB "))
        .map(|l| l.find(" MiB ").unwrap())
        .collect();
    assert!(
        cols.len() >= 5 && cols.iter().all(|&c| c == cols[0]),
        "{out}"
    );
    let (_, out, _) = inspect(&[model.to_str().unwrap(), "--memory", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kv_dtype"], "f32");
    std::fs::remove_dir_all(&dir).unwrap();
}

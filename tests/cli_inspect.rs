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
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 0x10;
    std::fs::write(&bad, &flipped).unwrap();
    assert_one_line_error(&bad, "checksum");
    assert_one_line_error(&dir.join("missing.ember"), "missing.ember");
    std::fs::remove_dir_all(&dir).unwrap();
}

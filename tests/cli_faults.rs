//! Faults, not bad bytes (issue 15): a model file truncated before `ember run` opens it or
//! while it is mapped, and a context larger than the memory this process can get. Each ends
//! in one `error:` line and exit status 1: no panic, no "Bus error", no abort.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{ember, ember_convert_f32, shared_fixture};

/// A temp dir removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("ember-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// tiny-llama (`context`: its max_position_embeddings, if given) converted to f32 in `dir`.
fn tiny(dir: &Path, context: Option<u64>) -> Option<PathBuf> {
    let src = shared_fixture("tiny-llama")?;
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    for name in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(name), hf.join(name)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    if let Some(c) = context {
        config["max_position_embeddings"] = c.into();
    }
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();
    let model = dir.join("tiny.ember");
    ember_convert_f32(&hf, &model);
    Some(model)
}

/// Exit status 1 with exactly one stderr line, an `error:` containing each of `expect`.
fn one_error_line(out: &Output, expect: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not a clean exit 1 ({:?}): {err}",
        out.status
    );
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for e in expect {
        assert!(lines[0].contains(e), "no {e:?} in: {err}");
    }
}

#[test]
fn a_truncated_file_is_refused_at_open() {
    let dir = Dir::new("truncated");
    let Some(model) = tiny(&dir.0, None) else {
        return;
    };
    let len = std::fs::metadata(&model).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .unwrap();
    f.set_len(len / 2).unwrap();
    let out = ember()
        .arg("run")
        .arg(&model)
        .args(["-p", "Once upon a time", "-n", "4"])
        .output()
        .unwrap();
    one_error_line(&out, &["truncated", &format!("needs {len} bytes")]);
}

/// The file is cut to its first page while `ember run` has it mapped (it waits on stdin for
/// the prompt): the next read past the new end raises SIGBUS, which `ember` turns into one
/// error line.
#[cfg(target_os = "linux")]
#[test]
fn a_file_truncated_while_mapped_is_an_error_not_a_bus_error() {
    use std::io::Write;
    let dir = Dir::new("mapped");
    let Some(model) = tiny(&dir.0, None) else {
        return;
    };
    let mut child = ember()
        .arg("run")
        .arg(&model)
        .args(["-f", "-", "-n", "8", "--temp", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let maps = format!("/proc/{}/maps", child.id());
    let name = model.to_str().unwrap().to_string();
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(&name)) {
        assert!(start.elapsed().as_secs() < 30, "ember never mapped {name}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .unwrap();
    f.set_len(4096).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Once upon a time").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    one_error_line(&out, &["SIGBUS", "truncated or rewritten while in use"]);
}

/// A context of 4,194,304 positions (the most a model may declare) needs about 2.1 GB of KV
/// cache and scratch for tiny-llama; under a 1 GiB address-space limit it is refused before
/// anything is allocated, naming the bytes needed and available.
#[cfg(target_os = "linux")]
#[test]
fn a_context_larger_than_memory_is_refused_up_front() {
    let dir = Dir::new("oom");
    let Some(model) = tiny(&dir.0, Some(1 << 22)) else {
        return;
    };
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 1048576 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ember"))
        .arg("run")
        .arg(&model)
        .args(["--ctx", "4194304", "-p", "Once upon a time", "-n", "1"])
        .output()
        .unwrap();
    one_error_line(
        &out,
        &[
            "a context of 4194304 positions needs 2,",
            "bytes (2.",
            "are available: use a smaller context (--ctx)",
        ],
    );
    // Without the limit the same model runs with a context that fits.
    let out = ember()
        .arg("run")
        .arg(&model)
        .args(["--ctx", "64", "-p", "Once upon a time", "-n", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The recurrent hybrids (Qwen3.5's Gated DeltaNet, LFM2's short convolutions) through the
//! CLI and the server: a chat keeps the session's state across turns, a stop string ends a
//! reply, two server slots decode at once, and every greedy reply is `ember run`'s.
//!
//! A recurrent state cannot be rewound, so nothing here truncates history: a chat turn
//! continues the session only where the conversation so far is exactly what it consumed
//! (else it resets and feeds the whole conversation), and each server request starts from
//! a reset session (a zeroed state).
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{ember, ember_convert_f32, ember_with_stdin, shared_fixture};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-recurrent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `ember run MODEL --chat -p PROMPT` greedy, its text.
fn run_chat(model: &Path, prompt: &str, extra: &[&str]) -> String {
    let out = ember()
        .args(["run", model.to_str().unwrap(), "--chat", "-p", prompt])
        .args(["-n", "12", "--temp", "0"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

/// `ember chat MODEL` greedy over `input` (a message per line): stdout and stderr.
fn chat(model: &Path, input: &str) -> (String, String) {
    let m = model.to_str().unwrap();
    let out = ember_with_stdin(&["chat", m, "-n", "12", "--temp", "0", "-v"], input);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ember serve MODEL --parallel 2` (and `extra`) on a free port.
fn serve(model: &Path, log: &Path, extra: &[&str]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "serve",
            model.to_str().unwrap(),
            "--port",
            "0",
            "--parallel",
            "2",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server(child, 0);
    for _ in 0..1200 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("listening on http://127.0.0.1:").nth(1) {
            let port: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            server.1 = port.parse().unwrap();
            return server;
        }
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "serve exited: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("ember serve did not start");
}

/// The reply of one greedy chat completion of `prompt` (and a stop string).
fn complete(port: u16, prompt: &str, stop: Option<&str>) -> String {
    let mut body = serde_json::json!({
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 12,
        "temperature": 0,
    });
    if let Some(s) = stop {
        body["stop"] = serde_json::json!([s]);
    }
    let body = body.to_string();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, json) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn recurrent_models_chat_stop_and_serve_as_run_does() {
    for name in ["tiny-qwen35", "tiny-lfm2"] {
        let Some(src) = shared_fixture(name) else {
            return;
        };
        let dir = temp_dir(name);
        let model = dir.join("m.ember");
        ember_convert_f32(&src, &model);
        let first = run_chat(&model, "hello there", &[]);
        let second = run_chat(&model, "and again", &[]);
        assert!(
            !first.is_empty() && !second.is_empty(),
            "{name}: empty replies"
        );

        // Two turns: the first reply is run's; the second continues the same session
        // (only the new turn's text is fed, the state carrying the first) and completes.
        let (out, err) = chat(&model, "hello there\nand again\n");
        assert!(
            out.starts_with(&first),
            "{name}: chat {out:?}, run {first:?}"
        );
        assert_eq!(
            err.lines().filter(|l| l.starts_with("(prompt ")).count(),
            2,
            "{name}: {err}"
        );

        // A stop string ends the reply before it, as in `ember run`.
        let cut = first.chars().skip(3).take(2).collect::<String>();
        let stopped = run_chat(&model, "hello there", &["--stop", &cut]);
        assert_eq!(stopped, &first[..first.find(&cut).unwrap()], "{name}");

        // Two slots at once, a reply each, both run's; then a stop string.
        let server = serve(&model, &dir.join("serve.log"), &[]);
        let port = server.1;
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| complete(port, "hello there", None));
            let b = s.spawn(|| complete(port, "and again", None));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(
            (a.as_str(), b.as_str()),
            (first.as_str(), second.as_str()),
            "{name}"
        );
        assert_eq!(complete(port, "hello there", Some(&cut)), stopped, "{name}");
        drop(server);

        // The same with an f16 KV cache in the attention layers (the recurrent state stays
        // f32): the server's slots and `ember run` agree.
        let f16 = ["--ctk", "f16", "--ctv", "f16"];
        let server = serve(&model, &dir.join("serve-f16.log"), &f16);
        let reply = complete(server.1, "hello there", None);
        assert_eq!(reply, run_chat(&model, "hello there", &f16), "{name} f16");
        drop(server);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `ember chat` as llama-cli users expect it (issue 16): commands are not sent to the model,
//! multi-line input, a full context drops the oldest turns, and under a pseudo-terminal
//! Ctrl-C stops a reply (the next message is answered) and Ctrl-D exits 0.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ember_convert_f32, ember_with_stdin, shared_fixture};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-clichat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// tiny-llama converted to f32 into `dir` (256-token context, no chat template: ChatML).
fn tiny(dir: &Path) -> Option<String> {
    let src = shared_fixture("tiny-llama")?;
    let model = dir.join("tiny.ember");
    ember_convert_f32(&src, &model);
    Some(model.to_str().unwrap().to_string())
}

fn chat(args: &[&str], input: &str) -> Output {
    ember_with_stdin(&[&["chat"], args].concat(), input)
}

/// The per-reply stats lines (`-v` prints them when stdin is not a terminal).
fn replies(err: &str) -> usize {
    err.lines().filter(|l| l.starts_with("(prompt ")).count()
}

#[test]
fn commands_multiline_and_context_shift() {
    let dir = temp_dir("piped");
    let Some(m) = tiny(&dir) else { return };
    let base = [m.as_str(), "--temp", "0", "-v"];

    // /help and unknown commands are answered by ember, not sent to the model.
    let out = chat(
        &[&base[..], &["-n", "4"]].concat(),
        "/help\n/nonsense\n/quit\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.stdout.is_empty(), "no reply to commands");
    assert_eq!(replies(&err), 0);
    assert!(
        err.contains("/reset") && err.contains("unknown command /nonsense"),
        "{err}"
    );

    // A trailing backslash continues a message: two lines, one reply.
    let out = chat(
        &[&base[..], &["-n", "4"]].concat(),
        "first line \\\nsecond line\n",
    );
    assert_eq!(replies(&String::from_utf8_lossy(&out.stderr)), 1);

    // A context of 120 holds one exchange: each later message drops the oldest turn and is
    // answered; the system prompt is kept.
    let args = [
        &base[..],
        &["-n", "20", "-c", "120", "--system", "Be brief."],
    ]
    .concat();
    let out = chat(&args, "hello there\nhow are you\nagain and again\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(replies(&err), 3, "{err}");
    assert!(
        err.contains("(context full: dropped the 2 oldest messages; the system prompt is kept)"),
        "{err}"
    );

    // A message longer than the whole context is refused; the chat goes on.
    let long = "word ".repeat(300);
    let out = chat(
        &[&base[..], &["-n", "4"]].concat(),
        &format!("{long}\nhi\n"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("but the context holds 256"), "{err}");
    assert_eq!(replies(&err), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Drives `ember chat` in a pseudo-terminal with Python's pty module: the script's steps are
/// `send:TEXT` (\r ends a line, \x03 is Ctrl-C, \x04 Ctrl-D), `expect:TEXT` (wait up to 120 s
/// for TEXT after the last expect) and `after:N` (wait for N more bytes). It prints the exit
/// status, then the transcript.
const DRIVER: &str = r#"
import os, pty, select, sys, time
steps, argv = sys.argv[1].split("\n"), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
buf, mark = b"", 0
def wait(pred, timeout=120):
    global buf
    end = time.time() + timeout
    while not pred():
        if time.time() > end:
            return False
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return pred()
            if not data:
                return pred()
            buf += data
    return True
for step in steps:
    kind, _, arg = step.partition(":")
    arg = arg.encode().decode("unicode_escape").encode()
    if kind == "send":
        os.write(fd, arg)
    elif kind == "expect":
        if not wait(lambda: arg in buf[mark:]):
            print("TIMEOUT waiting for", arg)
            print(buf.decode(errors="replace"))
            sys.exit(3)
        mark = buf.index(arg, mark) + len(arg)
    elif kind == "after":
        n = len(buf) + int(arg)
        wait(lambda: len(buf) >= n)
end = time.time() + 60
status = None
while time.time() < end:
    wait(lambda: False, 0.2)
    p, s = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.waitstatus_to_exitcode(s)
        break
print("EXIT", status)
print(buf.decode(errors="replace"))
"#;

fn pty_chat(args: &[&str], steps: &str, cache: &Path) -> Option<String> {
    let python = Command::new("python3").args(["-c", "import pty"]).output();
    if !python.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: python3 with its pty module is not available");
        return None;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(steps)
        .arg(env!("CARGO_BIN_EXE_ember"))
        .arg("chat")
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    Some(text)
}

#[test]
fn ctrl_d_exits_cleanly_under_a_terminal() {
    let dir = temp_dir("ctrl-d");
    let Some(m) = tiny(&dir) else { return };
    let steps =
        "expect:Ctrl-D exits.\nexpect:> \nsend:hello\\r\nexpect:(prompt \nexpect:> \nsend:\\x04";
    let Some(text) = pty_chat(&[&m, "-n", "8", "--temp", "0"], steps, &dir) else {
        return;
    };
    assert!(text.starts_with("EXIT 0\n"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_stops_a_reply_and_the_chat_goes_on() {
    // A reply long enough to interrupt: SmolLM2 telling a story, without a token limit.
    let Some(gguf) = common::smollm2_gguf() else {
        return;
    };
    let dir = temp_dir("ctrl-c");
    let cache = dir.join("cache");
    let steps = "expect:Ctrl-D exits.\nexpect:> \n\
                 send:Tell me a very long story about a dragon and a knight.\\r\n\
                 expect:knight.\nafter:60\nsend:\\x03\nexpect:(interrupted)\nexpect:> \n\
                 send:What is 2+2?\\r\nexpect:(prompt \nexpect:> \nsend:\\x04";
    let text = pty_chat(
        &[
            gguf.to_str().unwrap(),
            "-n",
            "-1",
            "--temp",
            "0.7",
            "-s",
            "1",
        ],
        steps,
        &cache,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let Some(text) = text else { return };
    assert!(text.starts_with("EXIT 0\n"), "{text}");
}

//! Fuzz target: the chat template renderer (src/chat_template.rs, minijinja with
//! transformers' settings) on arbitrary template text and message contents. A template is
//! untrusted input (it comes with the model file): errors, never panics or hangs.
//!
//! src/chat_template.rs is a module of the `ember` binary, not of a library crate; the target
//! compiles the same file by path, as tests/chat_templates.rs does.
//!
//! Input: template source, then up to three message contents, separated by 0 bytes.
//! Seeds: fuzz/seeds/chat_template (the templates of tests/fixtures/chat_templates).
#![no_main]

#[path = "../../src/chat_template.rs"]
#[allow(dead_code)]
mod chat_template;

use chat_template::{ChatTemplate, DateTime, SpecialTokens};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or("");
    let contents: Vec<&str> = parts.collect();
    let special = SpecialTokens {
        bos: Some("<s>".into()),
        eos: Some("</s>".into()),
        unk: None,
        pad: Some("<pad>".into()),
    };
    let Ok(t) = ChatTemplate::with_clock(source, special, DateTime::from_unix(1_700_000_000))
    else {
        return;
    };
    let roles = ["system", "user", "assistant"];
    let messages: Vec<(&str, &str)> = contents
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, c)| (roles[i], *c))
        .collect();
    let _ = t.render(&messages, true);
    let _ = t.render(&messages, false);
    let _ = t.end_of_turn();
});

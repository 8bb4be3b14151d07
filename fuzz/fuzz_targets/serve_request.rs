//! Fuzz target: `ember serve`'s request parsing: the HTTP/1.1 reader (src/serve/http.rs) on
//! an arbitrary byte stream of pipelined requests, and the OpenAI body checker
//! (src/serve/api.rs) on every body it yields, for both endpoints. A request comes from the
//! network: errors (a status and a message), never panics, hangs or giant allocations.
//!
//! Both files are modules of the `ember` binary, not of a library crate; the target compiles
//! them by path, as chat_template does.
//!
//! Input: the bytes a client sends on one connection.
//! Seeds: fuzz/seeds/serve_request (requests as the OpenAI clients send them).
#![no_main]

#[path = "../../src/serve/api.rs"]
#[allow(dead_code)]
mod api;
#[path = "../../src/serve/http.rs"]
#[allow(dead_code)]
mod http;

use std::io::BufReader;

use api::{Endpoint, Prompt};
use http::{Framing, ReadError};
use libfuzzer_sys::fuzz_target;

/// The server's defaults are 1 MiB bodies and the model's context; small limits here let
/// the fuzzer reach the over-limit paths.
const MAX_BODY: usize = 4096;
const MAX_CONTEXT: usize = 512;

fuzz_target!(|data: &[u8]| {
    let mut reader = BufReader::with_capacity(64, data);
    let mut framing = Framing {
        http11: true,
        close: false,
    };
    let mut continues = 0;
    // Each request consumes at least one byte, so this ends.
    for _ in 0..=data.len() {
        let rq = match http::read_request(&mut reader, MAX_BODY, &mut framing, || continues += 1) {
            Ok(rq) => rq,
            Err(ReadError::Closed) => break,
            Err(ReadError::Bad(status, message)) => {
                assert!((400..600).contains(&status), "{status} {message}");
                assert!(!message.is_empty());
                break;
            }
        };
        assert!(rq.body.len() <= MAX_BODY);
        assert!(rq.too_large.is_none() || rq.body.is_empty());
        assert!(!rq.path.contains('?'));
        let _ = http::authorized(&rq, "sk-fuzz");
        for endpoint in [Endpoint::Chat, Endpoint::Completions] {
            match api::parse(&rq.body, endpoint, MAX_CONTEXT) {
                Ok(req) => {
                    assert!(req
                        .max_tokens
                        .is_none_or(|n| (1..=MAX_CONTEXT).contains(&n)));
                    match (&req.prompt, endpoint) {
                        (Prompt::Chat(_), Endpoint::Chat) => {}
                        (Prompt::Text(_) | Prompt::Ids(_), Endpoint::Completions) => {}
                        (p, e) => panic!("{e:?} accepted a prompt of the other endpoint: {p:?}"),
                    }
                    // The response builders take what the request gave.
                    let _ = api::usage(3, req.max_tokens.unwrap_or(0));
                }
                Err(e) => {
                    assert!((400..600).contains(&e.status));
                    assert!(e.body()["error"]["message"].is_string());
                }
            }
        }
        if framing.close {
            break;
        }
    }
});

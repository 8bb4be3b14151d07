//! `ember serve MODEL`: an OpenAI-compatible HTTP server (chat completions, completions,
//! models, health, tokenize) for laptops and boards.
//!
//! Threads, no async runtime: each connection has a thread (http.rs) that reads its requests,
//! checks and tokenizes them, and hands generation jobs to `--parallel N` decoding slots
//! (engine.rs), each with its own KV cache sized at start. Requests beyond the slots wait in
//! the queue. A client that goes away cancels its job: its connection thread looks at the
//! socket while it waits for text, and a streamed reply also notices at its next write.

mod api;
mod engine;
mod http;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ember_runtime::session::DEFAULT_BATCH;
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{HeapSession, Logits, Model, SamplerConfig, SessionPlan};
use serde_json::{json, Value};

use crate::chat_template::Prompter;
use crate::model_source::{open_model, SourceArgs};
use api::{ApiError, Endpoint, Envelope, GenRequest, Prompt};
use engine::{Event, Job, Load};
use http::{Conn, ReadError, Request};

type CmdResult = Result<(), Box<dyn std::error::Error>>;

#[derive(clap::Args)]
#[command(
    after_help = "Endpoints (OpenAI's shapes): POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, POST /tokenize.\n\nExamples:\n  ember serve smollm2.ember\n  ember serve smollm2.ember --port 8080 --parallel 2 --ctx 2048 --api-key secret\n  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"temperature\": 0}'\n\nSee docs/SERVER.md for the fields and how they map onto Ember's sampler."
)]
pub struct Args {
    /// The model: a .ember file, or a GGUF file or Hugging Face directory (converted with
    /// --quant same on first use and cached; see --no-cache).
    pub model: PathBuf,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests decoded at once, each with its own KV cache; more wait in a queue.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// KV cache positions per slot, prompt and reply together (default: the model's context
    /// length, at most 2048).
    #[arg(short = 'c', long, visible_alias = "ctx-size")]
    pub ctx: Option<usize>,
    /// Worker threads in all, shared among the slots (default or 0: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub cache: crate::cmd::shared::CacheTypeArgs,
    /// The model's name in responses and /v1/models (default: the file name without its
    /// extension).
    #[arg(long)]
    pub alias: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// The largest request body read (bigger: 413).
const MAX_BODY: usize = 4 << 20;
/// How often a waiting reply checks that its client is still there.
const HEARTBEAT: Duration = Duration::from_millis(200);
/// Most connections at once (more are answered 503 and closed).
const MAX_CONNECTIONS: usize = 256;

/// What the HTTP threads share.
struct Server<'a> {
    tokenizer: &'a Tokenizer<'a>,
    prompter: &'a Prompter,
    /// End of an assistant turn in the chat template: stops a chat reply.
    end_of_turn: Option<String>,
    vocab: usize,
    capacity: usize,
    parallel: usize,
    api_key: Option<String>,
    model_id: String,
    started: u64,
    jobs: Mutex<Sender<Job>>,
    load: &'a Load,
    next_id: AtomicU64,
}

pub fn run(args: Args) -> CmdResult {
    if args.parallel == 0 {
        return Err("--parallel must be at least 1".into());
    }
    // A client that closes its connection must not kill the server when it is written to.
    #[cfg(unix)]
    // SAFETY: setting SIGPIPE's disposition to ignore is async-signal-safe and only makes
    // writes to a closed socket return EPIPE, which every writer here handles.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let loaded = open_model(&args.model, args.source.no_cache)?;
    let file = loaded.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;
    let label = args.model.display().to_string();
    let prompter = Prompter::new(&tokenizer, &label);
    let context = model.config.context_length;
    let capacity = match args.ctx {
        Some(c) if c > context => {
            return Err(format!(
            "--ctx {c} is beyond the model's context length {context}: use --ctx {context} or less"
        )
            .into())
        }
        Some(c) if c > 0 => c,
        _ => context.min(2048),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match args.threads {
        None | Some(0) => cores,
        Some(t) => t,
    };
    let per_slot = (threads / args.parallel).max(1);
    let kv_types = args.cache.types();
    let plan = SessionPlan::with_kv_types(
        &model.config,
        capacity,
        DEFAULT_BATCH,
        Logits::Last,
        kv_types,
    )?;
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let bytes = plan.bytes_required();
    let model_id = args.alias.clone().unwrap_or_else(|| {
        args.model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });

    let addr = format!("{}:{}", args.host, args.port);
    let listener = TcpListener::bind(&addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    eprintln!(
        "ember serve: {model_id}: {} slot{} of {capacity} positions, {:.1} MiB of KV cache (keys {}, values {}) and scratch each ({:.1} MiB in all), {per_slot} thread{} each",
        args.parallel,
        if args.parallel == 1 { "" } else { "s" },
        mib(bytes),
        kv_types.k.name(),
        kv_types.v.name(),
        mib(bytes * args.parallel),
        if per_slot == 1 { "" } else { "s" },
    );
    if args.api_key.is_none() && !local.ip().is_loopback() {
        eprintln!(
            "warning: listening on {} without --api-key: anyone who can reach it can use it",
            local.ip()
        );
    }

    let (tx, rx) = mpsc::channel::<Job>();
    let queue = Mutex::new(rx);
    let load = Load::default();
    let server = Server {
        tokenizer: &tokenizer,
        prompter: &prompter,
        end_of_turn: prompter.end_of_turn(),
        vocab: model.config.vocab_size,
        capacity,
        parallel: args.parallel,
        api_key: args.api_key.clone(),
        model_id,
        started: unix_now(),
        jobs: Mutex::new(tx),
        load: &load,
        next_id: AtomicU64::new(1),
    };
    let connections = AtomicUsize::new(0);
    std::thread::scope(|s| -> CmdResult {
        let (model, tokenizer, queue, load) = (&model, &tokenizer, &queue, &load);
        // Each slot makes its session on its own thread (a session stays on one thread) and
        // says whether it could: a context too big for memory fails here, before listening.
        let (ready_tx, ready) = mpsc::channel();
        for _ in 0..args.parallel {
            let ready_tx = ready_tx.clone();
            s.spawn(move || {
                let session = HeapSession::with_kv_types(
                    model,
                    capacity,
                    DEFAULT_BATCH,
                    Logits::Last,
                    kv_types,
                )
                .map(|mut session| {
                    session.set_threads(per_slot);
                    session
                });
                match session {
                    Ok(session) => {
                        let _ = ready_tx.send(Ok(()));
                        engine::slot(session, tokenizer, queue, load);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        }
        for _ in 0..args.parallel {
            if let Ok(Err(e)) = ready.recv() {
                eprintln!("error: cannot make a session of {capacity} positions: {e}");
                std::process::exit(1);
            }
        }
        eprintln!("ember serve: listening on http://{local} (OpenAI API under /v1)");
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Ok(mut conn) = Conn::new(stream) else {
                continue;
            };
            if connections.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                conn.framing.close = true;
                let e = ApiError::new(
                    503,
                    "server_error",
                    None,
                    format!("{MAX_CONNECTIONS} connections are open: try again later"),
                );
                let _ = conn.json(503, &e.body());
                continue;
            }
            connections.fetch_add(1, Ordering::Relaxed);
            let (server, connections) = (&server, &connections);
            let spawned = std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn_scoped(s, move || {
                    serve_connection(server, conn);
                    connections.fetch_sub(1, Ordering::Relaxed);
                });
            if spawned.is_err() {
                connections.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Ok(())
    })
}

/// Answers a connection's requests until it closes.
fn serve_connection(server: &Server, mut conn: Conn) {
    loop {
        match conn.read_request(MAX_BODY) {
            Ok(rq) => {
                handle(server, &mut conn, rq);
                if conn.framing.close {
                    return;
                }
            }
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status, message)) => {
                conn.framing.close = true;
                let e = ApiError::new(status, "invalid_request_error", None, message);
                eprintln!("- - {} {}", e.status, e.message);
                let _ = conn.json(status, &e.body());
                return;
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A seed from the process's random hasher keys and the clock (no RNG crate).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() & 0xFFFF_FFFF
}

/// Answers one request, logging one line.
fn handle(server: &Server, conn: &mut Conn, rq: Request) {
    let start = Instant::now();
    let (method, path) = (rq.method.clone(), rq.path.clone());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(server, conn, rq)));
    let note = match result {
        Ok(note) => note,
        Err(_) => {
            conn.framing.close = true;
            "500 (a bug: the handler panicked)".to_string()
        }
    };
    eprintln!(
        "{method} {path} {note} {:.3} s",
        start.elapsed().as_secs_f64()
    );
}

/// Sends `result` (a JSON body, or an error) and says what was sent.
fn respond(conn: &mut Conn, result: Result<Value, ApiError>) -> String {
    let (status, body, note) = match result {
        Ok(v) => (200, v, "200".to_string()),
        Err(e) => (e.status, e.body(), format!("{} {}", e.status, e.message)),
    };
    if conn.json(status, &body).is_err() {
        conn.framing.close = true;
    }
    note
}

fn route(server: &Server, conn: &mut Conn, rq: Request) -> String {
    let path = rq.path.as_str();
    let known = [
        "/health",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
        "/tokenize",
    ];
    if !known.contains(&path) {
        let e = ApiError::new(404, "invalid_request_error", Some("not_found"), format!("no endpoint {path}: see /v1/chat/completions, /v1/completions, /v1/models, /health, /tokenize"));
        return respond(conn, Err(e));
    }
    if path != "/health" {
        if let Some(key) = &server.api_key {
            if !http::authorized(&rq, key) {
                let e = ApiError::new(401, "invalid_request_error", Some("invalid_api_key"), "a missing or wrong API key: send the header 'Authorization: Bearer KEY' with the server's --api-key".into());
                return respond(conn, Err(e));
            }
        }
    }
    let want = if matches!(path, "/health" | "/v1/models") {
        "GET"
    } else {
        "POST"
    };
    if rq.method != want {
        let e = ApiError::new(
            405,
            "invalid_request_error",
            Some("method_not_allowed"),
            format!("{path} takes {want}, not {}", rq.method),
        );
        return respond(conn, Err(e));
    }
    if let Some(n) = rq.too_large {
        let e = ApiError::new(
            413,
            "invalid_request_error",
            Some("request_too_large"),
            format!("the body is {n} bytes; at most {MAX_BODY}"),
        );
        return respond(conn, Err(e));
    }
    match path {
        "/health" => {
            let busy = server.load.busy.load(Ordering::Relaxed);
            let body = json!({
                "status": "ok",
                "slots_idle": server.parallel.saturating_sub(busy),
                "slots_busy": busy,
                "queued": server.load.queued.load(Ordering::Relaxed),
            });
            respond(conn, Ok(body))
        }
        "/v1/models" => {
            let body = json!({"object": "list", "data": [{
                "id": server.model_id,
                "object": "model",
                "created": server.started,
                "owned_by": "ember",
            }]});
            respond(conn, Ok(body))
        }
        "/tokenize" => respond(conn, tokenize(server, &rq.body)),
        _ => {
            let endpoint = if path == "/v1/completions" {
                Endpoint::Completions
            } else {
                Endpoint::Chat
            };
            match api::parse(&rq.body, endpoint, server.capacity).and_then(|r| prepare(server, r)) {
                Ok(job) => generate(server, conn, endpoint, job),
                Err(e) => respond(conn, Err(e)),
            }
        }
    }
}

/// `POST /tokenize`: `{"content": TEXT, "add_special": true}` gives `{"tokens": [ids]}`, as
/// `ember tokenize` (with `add_special`: the BOS/EOS the tokenizer adds, as HF's tokenizer(text)).
fn tokenize(server: &Server, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("invalid_json"),
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::invalid(
            "content",
            "the body must be {\"content\": TEXT}",
        ));
    };
    let mut special = true;
    let mut text = None;
    for (k, x) in obj {
        match k.as_str() {
            "content" => {
                text =
                    Some(x.as_str().ok_or_else(|| {
                        ApiError::invalid("content", "'content' must be a string")
                    })?)
            }
            "add_special" => {
                special = x.as_bool().ok_or_else(|| {
                    ApiError::invalid("add_special", "'add_special' must be true or false")
                })?
            }
            _ => {
                return Err(ApiError::unsupported(
                    k,
                    format!("'{k}' is not supported by /tokenize"),
                ))
            }
        }
    }
    let text = text.ok_or_else(|| ApiError::invalid("content", "'content' is required"))?;
    let ids = if special {
        let mut ids = Vec::new();
        server.tokenizer.encode(text, &mut ids);
        ids
    } else {
        server.tokenizer.encode_plain(text)
    };
    Ok(json!({"tokens": ids}))
}

/// A checked request turned into token ids and sampler settings.
struct Prepared {
    ids: Vec<u32>,
    max_tokens: Option<usize>,
    sampling: SamplerConfig,
    stops: Vec<String>,
    stream: bool,
    include_usage: bool,
}

fn prepare(server: &Server, r: GenRequest) -> Result<Prepared, ApiError> {
    let mut stops = r.stops;
    let param = if matches!(r.prompt, Prompt::Chat(_)) {
        "messages"
    } else {
        "prompt"
    };
    let ids = match r.prompt {
        Prompt::Chat(messages) => {
            let text = server.prompter.render(&messages).map_err(|e| {
                ApiError::invalid("messages", format!("the model's chat template: {e}"))
            })?;
            stops.extend(server.end_of_turn.iter().cloned());
            server.prompter.encode(server.tokenizer, &text, true)
        }
        Prompt::Text(text) => {
            let mut ids = Vec::new();
            server.tokenizer.encode(&text, &mut ids);
            ids
        }
        Prompt::Ids(ids) => {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= server.vocab) {
                return Err(ApiError::invalid(
                    "prompt",
                    format!(
                        "token id {bad} is beyond the vocabulary ({} tokens)",
                        server.vocab
                    ),
                ));
            }
            ids
        }
    };
    if ids.is_empty() {
        return Err(ApiError::invalid(
            param,
            "the prompt is empty (it encodes to no tokens)",
        ));
    }
    if ids.len() >= server.capacity {
        return Err(ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::invalid(
                param,
                format!("the prompt is {} tokens but the context holds {} (the server's --ctx), the reply included", ids.len(), server.capacity),
            )
        });
    }
    let s = r.sampling;
    let defaults = SamplerConfig::default();
    let sampling = SamplerConfig {
        temperature: s.temperature.unwrap_or(defaults.temperature),
        top_k: s.top_k.unwrap_or(defaults.top_k),
        top_p: s.top_p.unwrap_or(defaults.top_p),
        min_p: s.min_p.unwrap_or(defaults.min_p),
        repeat_penalty: s.repeat_penalty.unwrap_or(1.0),
        repeat_last_n: 64,
        seed: s.seed.unwrap_or_else(random_seed),
    };
    Ok(Prepared {
        ids,
        max_tokens: r.max_tokens,
        sampling,
        stops,
        stream: r.stream,
        include_usage: r.include_usage,
    })
}

/// Sets the flag when dropped: whatever way a handler ends, its job stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn generate(server: &Server, conn: &mut Conn, endpoint: Endpoint, job: Prepared) -> String {
    let n_prompt = job.ids.len();
    let (stream, include_usage) = (job.stream, job.include_usage);
    let prefix = match endpoint {
        Endpoint::Chat => "chatcmpl",
        Endpoint::Completions => "cmpl",
    };
    let env = Envelope {
        id: format!(
            "{prefix}-{:x}{:04x}",
            server.started,
            server.next_id.fetch_add(1, Ordering::Relaxed)
        ),
        created: unix_now(),
        model: server.model_id.clone(),
        endpoint,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let (tx, rx) = mpsc::channel();
    let job = Job {
        ids: job.ids,
        max_tokens: job.max_tokens,
        sampling: job.sampling,
        stops: job.stops,
        cancel,
        events: tx,
    };
    server.load.queued.fetch_add(1, Ordering::Relaxed);
    let sent = server
        .jobs
        .lock()
        .map(|q| q.send(job).is_ok())
        .unwrap_or(false);
    if !sent {
        server.load.queued.fetch_sub(1, Ordering::Relaxed);
        let e = ApiError::new(
            503,
            "server_error",
            None,
            "the decoding slots have stopped".into(),
        );
        return respond(conn, Err(e));
    }

    let gone = |conn: &mut Conn| {
        conn.framing.close = true;
        "499 (client gone: generation cancelled)".to_string()
    };
    // A stream's headers and opening chunk go now; its text follows as it is generated.
    if stream
        && conn
            .start_events()
            .and_then(|()| conn.event(&env.chunk(None, true, None)))
            .is_err()
    {
        return gone(conn);
    }
    let mut text = String::new();
    let mut checked = Instant::now();
    loop {
        let event = rx.recv_timeout(HEARTBEAT);
        // Every HEARTBEAT, whether text is flowing or not: is the client still there?
        if checked.elapsed() >= HEARTBEAT {
            if conn.client_gone() {
                return gone(conn);
            }
            checked = Instant::now();
        }
        let event = match event {
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                Event::Failed("the decoding slot stopped".into())
            }
            Ok(event) => event,
        };
        match event {
            Event::Started => {}
            Event::Text(t) => {
                if stream {
                    if conn.event(&env.chunk(Some(&t), false, None)).is_err() {
                        return gone(conn);
                    }
                } else {
                    text.push_str(&t);
                }
            }
            Event::Done {
                finish,
                completion_tokens,
            } => {
                let reason = api::finish_reason(finish);
                let usage = api::usage(n_prompt, completion_tokens);
                let note = format!("200 {n_prompt}+{completion_tokens} tokens ({reason})");
                let result = if stream {
                    let mut r = conn.event(&env.chunk(None, false, Some(reason)));
                    if include_usage {
                        r = r.and_then(|()| conn.event(&env.usage_chunk(usage)));
                    }
                    r.and_then(|()| conn.done())
                } else {
                    conn.json(200, &env.response(&text, reason, usage))
                };
                if result.is_err() {
                    conn.framing.close = true;
                    return format!("{note}; the client left before the end");
                }
                return note;
            }
            Event::Failed(e) => {
                let err =
                    ApiError::new(500, "server_error", None, format!("generation failed: {e}"));
                if stream {
                    // The status line said 200 already: the error is the last event.
                    let _ = conn.event(&err.body()).and_then(|()| conn.done());
                } else {
                    let _ = conn.json(500, &err.body());
                }
                conn.framing.close = true;
                return format!("500 {e}");
            }
        }
    }
}

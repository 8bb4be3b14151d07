//! The decoding slots of `ember serve`: `--parallel N` worker threads, each owning one
//! `Session` (its KV cache sized up front), taking jobs from one queue. A job's text goes back
//! to the HTTP thread over a channel as it is generated; a cancelled job (its client went
//! away) stops at the next token, or is skipped if it is still queued.
//!
//! Each request starts from a reset session and its own sampler, and the kernels give the
//! same results for any thread count, so a greedy reply does not depend on the slot, the
//! load or what ran before.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use ember_runtime::generate::{Finish, Generator};
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{HeapSession as Session, SamplerConfig};

/// One generation request, tokenized and checked.
pub struct Job {
    pub ids: Vec<u32>,
    /// Tokens to generate at most; `None`: until the end of text or a full context.
    pub max_tokens: Option<usize>,
    pub sampling: SamplerConfig,
    pub stops: Vec<String>,
    /// Set by the HTTP thread when its client has gone.
    pub cancel: Arc<AtomicBool>,
    pub events: Sender<Event>,
}

/// What a slot reports about a job.
#[derive(Debug)]
pub enum Event {
    /// A slot took the job (it was queued until now).
    Started,
    /// Reply text, in order (a piece may hold several tokens' text, or part of a character's).
    Text(String),
    Done {
        finish: Finish,
        /// Generated tokens, not counting an end-of-generation token.
        completion_tokens: usize,
    },
    Failed(String),
}

/// Counts for `/health`: slots busy and requests waiting.
#[derive(Debug, Default)]
pub struct Load {
    pub busy: AtomicUsize,
    pub queued: AtomicUsize,
}

/// Runs one slot until the queue's senders are gone.
pub fn slot<'a>(
    mut session: Session<'_, 'a>,
    tokenizer: &Tokenizer<'a>,
    queue: &Mutex<Receiver<Job>>,
    load: &Load,
) {
    loop {
        // Hold the lock only to take a job: the other slots wait for theirs meanwhile.
        let job = match queue.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        load.queued.fetch_sub(1, Ordering::Relaxed);
        if job.cancel.load(Ordering::Relaxed) || job.events.send(Event::Started).is_err() {
            continue;
        }
        load.busy.fetch_add(1, Ordering::Relaxed);
        let events = job.events.clone();
        let result = generate(&mut session, tokenizer, job);
        load.busy.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = result {
            let _ = events.send(Event::Failed(e));
        }
    }
}

fn generate<'a>(
    session: &mut Session<'_, 'a>,
    tokenizer: &Tokenizer<'a>,
    job: Job,
) -> Result<(), String> {
    session.reset();
    let stops: Vec<&str> = job.stops.iter().map(String::as_str).collect();
    let mut gen = Generator::new(session, tokenizer, job.sampling, &stops);
    gen.prefill(&job.ids).map_err(|e| e.to_string())?;
    let mut piece = String::new();
    let mut n = 0usize;
    let mut eog = false;
    while job.max_tokens.is_none_or(|m| n < m) {
        if job.cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        match gen
            .next(&mut |t| piece.push_str(t))
            .map_err(|e| e.to_string())?
        {
            Some(id) if tokenizer.is_eog(id) => eog = true,
            Some(_) => n += 1,
            None => break,
        }
        if !piece.is_empty()
            && job
                .events
                .send(Event::Text(std::mem::take(&mut piece)))
                .is_err()
        {
            // The HTTP thread has gone: nobody reads the rest.
            return Ok(());
        }
        if eog {
            break;
        }
    }
    let finish = gen.finish(&mut |t| piece.push_str(t));
    if !piece.is_empty() {
        let _ = job.events.send(Event::Text(piece));
    }
    let _ = job.events.send(Event::Done {
        finish,
        completion_tokens: n,
    });
    Ok(())
}

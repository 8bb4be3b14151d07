//! Token-by-token generation with streaming text, end-of-generation tokens and stop strings.
//! Every buffer is sized when the generator is made; a step does not allocate.

use alloc::string::String;
use alloc::vec::Vec;

use crate::sampler::{Sampler, SamplerConfig};
use crate::session::HeapSession as Session;
use crate::tokenizer::{StreamDecoder, Tokenizer};
use crate::Error;

/// Holds back text that may be the start of a stop string until it is sure.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: &[&str]) -> Self {
        let longest = stops.iter().map(|s| s.len()).max().unwrap_or(0);
        StopMatcher {
            stops: stops
                .iter()
                .filter(|s| !s.is_empty())
                .map(|&s| s.into())
                .collect(),
            pending: String::with_capacity(2 * longest + 64),
        }
    }

    /// Adds `text`; emits what is certainly not part of a stop string. Returns true when a
    /// stop string was completed (text before it is emitted, the stop string is not).
    pub fn push(&mut self, text: &str, emit: &mut dyn FnMut(&str)) -> bool {
        if self.stops.is_empty() {
            emit(text);
            return false;
        }
        self.pending.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            emit(&self.pending[..at]);
            self.pending.clear();
            return true;
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let mut keep = 0;
        for s in &self.stops {
            for n in (1..s.len().min(self.pending.len() + 1)).rev() {
                if self.pending.is_char_boundary(self.pending.len() - n)
                    && s.is_char_boundary(n)
                    && self.pending.ends_with(&s[..n])
                {
                    keep = keep.max(n);
                    break;
                }
            }
        }
        let cut = self.pending.len() - keep;
        emit(&self.pending[..cut]);
        self.pending.drain(..cut);
        false
    }

    /// Emits whatever is held back (generation ended without a stop string).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&str)) {
        emit(&self.pending);
        self.pending.clear();
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The model produced an end-of-generation token (not emitted as text).
    EndOfText,
    /// A stop string (or the chat template's end of turn) was generated.
    StopString,
    /// The caller's token budget ran out.
    Length,
    /// The KV cache is full: the last token was sampled but there is no position to feed it.
    Context,
}

impl Finish {
    /// The name `ember run --json` reports as `stop_reason` (llama.cpp's server uses the same
    /// words for the first three).
    pub fn name(self) -> &'static str {
        match self {
            Finish::EndOfText => "eos",
            Finish::StopString => "stop",
            Finish::Length => "length",
            Finish::Context => "context",
        }
    }
}

/// Drives a session: prefill a prompt, then one sampled token per `next` call.
pub struct Generator<'g, 'm, 'a> {
    pub session: &'g mut Session<'m, 'a>,
    tokenizer: &'g Tokenizer<'a>,
    sampler: Sampler,
    logits: Vec<f32>,
    /// Prompt and generated tokens so far (for the repetition penalty).
    pub history: Vec<u32>,
    decoder: StreamDecoder,
    stop: StopMatcher,
    finished: Option<Finish>,
    /// Forward passes made by `next` (tokens fed back), for honest decode rates: the first
    /// generated token comes from the prefill's logits.
    pub steps: usize,
}

impl<'g, 'm, 'a> Generator<'g, 'm, 'a> {
    pub fn new(
        session: &'g mut Session<'m, 'a>,
        tokenizer: &'g Tokenizer<'a>,
        sampling: SamplerConfig,
        stops: &[&str],
    ) -> Self {
        let v = session.model().config.vocab_size;
        let capacity = session.capacity();
        Generator {
            session,
            tokenizer,
            sampler: Sampler::new(sampling, v),
            logits: alloc::vec![0.0; v],
            history: Vec::with_capacity(capacity),
            // Generated text continues the prompt: keep its leading space (HF strips only the
            // first space of a whole decoded sequence).
            decoder: StreamDecoder::new(false),
            stop: StopMatcher::new(stops),
            finished: None,
            steps: 0,
        }
    }

    /// Feeds prompt tokens (may be called again for a later chat turn).
    pub fn prefill(&mut self, ids: &[u32]) -> Result<(), Error> {
        let logits = self.session.prefill(ids)?;
        self.logits.copy_from_slice(logits);
        self.history.extend_from_slice(ids);
        self.finished = None;
        Ok(())
    }

    /// Samples one token, feeds it back, streams its text. Returns the token, or `None` once
    /// generation has finished (see [`Generator::finish_reason`]).
    pub fn next(&mut self, emit: &mut dyn FnMut(&str)) -> Result<Option<u32>, Error> {
        if self.finished.is_some() {
            return Ok(None);
        }
        let id = self.sampler.sample(&mut self.logits, &self.history);
        self.history.push(id);
        if self.tokenizer.is_eog(id) {
            self.end(Finish::EndOfText, emit);
            return Ok(Some(id));
        }
        let mut stopped = false;
        let stop = &mut self.stop;
        self.decoder.push(self.tokenizer.token_bytes(id), |text| {
            if !stopped {
                stopped = stop.push(text, emit);
            }
        });
        if stopped {
            self.finished = Some(Finish::StopString);
            return Ok(Some(id));
        }
        // Feed the token only if there is room; a full cache ends generation cleanly.
        if self.session.position() >= self.session.capacity() {
            self.end(Finish::Context, emit);
            return Ok(Some(id));
        }
        let logits = self.session.step(id)?;
        self.steps += 1;
        self.logits.copy_from_slice(logits);
        Ok(Some(id))
    }

    fn end(&mut self, why: Finish, emit: &mut dyn FnMut(&str)) {
        let stop = &mut self.stop;
        self.decoder.flush(|t| {
            stop.push(t, emit);
        });
        stop.flush(emit);
        self.finished = Some(why);
    }

    /// Ends generation because of the caller's budget, emitting held-back text.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&str)) -> Finish {
        if self.finished.is_none() {
            self.end(Finish::Length, emit);
        }
        self.finished.unwrap_or(Finish::Length)
    }

    pub fn finish_reason(&self) -> Option<Finish> {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops);
        let mut out = String::new();
        let mut hit = false;
        for p in pieces {
            if m.push(p, &mut |t| out.push_str(t)) {
                hit = true;
                break;
            }
        }
        if !hit {
            m.flush(&mut |t| out.push_str(t));
        }
        (out, hit)
    }

    #[test]
    fn stop_strings_across_pieces() {
        assert_eq!(
            run(&["\nUser:"], &["Hi", " there\nUs", "er: more"]),
            ("Hi there".into(), true)
        );
        assert_eq!(
            run(&["\nUser:"], &["Hi", "\nUs", "ual"]),
            ("Hi\nUsual".into(), false)
        );
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["é!"], &["caf", "é", "!"]), ("caf".into(), true));
    }
}

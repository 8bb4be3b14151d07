//! A generation session: one model, its KV cache and scratch, and the position reached.

use alloc::boxed::Box;

use crate::exec::{Executor, Serial};
use crate::kernels::Kernels;
use crate::kv_cache::KvCache;
use crate::model::{Compute, Logits, Model, Observer, Scratch};
use crate::Error;

/// Tokens processed per forward call during prefill: big enough to reuse each dequantized
/// weight row across many tokens, small enough to keep activations in cache.
pub const DEFAULT_BATCH: usize = 32;

pub struct Session<'m, 'a> {
    observer: Option<&'m dyn Observer>,
    model: &'m Model<'a>,
    cache: KvCache,
    scratch: Scratch,
    mode: Logits,
    pos: usize,
    kernels: Kernels,
    exec: Box<dyn Executor>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// A session holding up to `capacity` positions (at most the model's context length).
    pub fn new(model: &'m Model<'a>, capacity: usize) -> Result<Self, Error> {
        Self::with_options(model, capacity, DEFAULT_BATCH, Logits::Last)
    }

    /// `logits = All` keeps every position's logits (for evaluation); batch bounds the
    /// tokens per forward call.
    pub fn with_options(
        model: &'m Model<'a>,
        capacity: usize,
        batch: usize,
        logits: Logits,
    ) -> Result<Self, Error> {
        let cfg = &model.config;
        if capacity == 0 || capacity > cfg.context_length {
            return Err(Error::ContextFull {
                needed: capacity,
                capacity: cfg.context_length,
            });
        }
        let batch = batch.clamp(1, capacity);
        #[cfg(feature = "std")]
        let kernels = Kernels::from_env().map_err(Error::Kernels)?;
        #[cfg(not(feature = "std"))]
        let kernels = Kernels::select(None).map_err(Error::Kernels)?;
        Ok(Session {
            observer: None,
            model,
            cache: KvCache::new(cfg, capacity),
            scratch: Scratch::new(cfg, batch, capacity, logits),
            mode: logits,
            pos: 0,
            kernels,
            exec: Box::new(Serial),
        })
    }

    /// Bytes of KV cache and scratch a session with these settings allocates.
    pub fn memory_required(model: &Model, capacity: usize, batch: usize, logits: Logits) -> usize {
        KvCache::bytes_required(&model.config, capacity)
            + Scratch::bytes_required(
                &model.config,
                batch.clamp(1, capacity.max(1)),
                capacity,
                logits,
            )
    }

    /// Runs matmuls on `exec` (a thread pool with std; see `set_threads`).
    pub fn set_executor(&mut self, exec: Box<dyn Executor>) {
        self.exec = exec;
    }

    /// Uses `threads` threads (a persistent pool); 0 means all cores.
    #[cfg(feature = "std")]
    pub fn set_threads(&mut self, threads: usize) {
        let n = if threads == 0 {
            crate::pool::ThreadPool::available()
        } else {
            threads
        };
        self.exec = crate::pool::executor(n);
    }

    /// Shows every matmul input to `observer` (calibration).
    pub fn set_observer(&mut self, observer: &'m dyn Observer) {
        self.observer = Some(observer);
    }

    /// Forces a kernel level (tests and comparisons).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    pub fn threads(&self) -> usize {
        self.exec.threads()
    }

    pub fn model(&self) -> &'m Model<'a> {
        self.model
    }

    /// Positions already in the cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Forgets every position (the cache is reused).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    fn check(&self, tokens: &[u32]) -> Result<(), Error> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let v = self.model.config.vocab_size;
        if let Some(&bad) = tokens.iter().find(|&&id| id as usize >= v) {
            return Err(Error::TokenOutOfRange(bad));
        }
        let needed = self.pos + tokens.len();
        if needed > self.capacity() {
            return Err(Error::ContextFull {
                needed,
                capacity: self.capacity(),
            });
        }
        Ok(())
    }

    /// Feeds `tokens` and returns the logits (V) after the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        self.check(tokens)?;
        for chunk in tokens.chunks(self.scratch.max_batch) {
            let cx = Compute {
                kernels: &self.kernels,
                exec: &*self.exec,
                observer: self.observer,
            };
            self.model.forward(
                cx,
                chunk,
                self.pos,
                &mut self.cache,
                &mut self.scratch,
                Logits::Last,
            );
            self.pos += chunk.len();
        }
        Ok(&self.scratch.logits[..self.model.config.vocab_size])
    }

    /// Feeds one token and returns the next logits (V).
    pub fn step(&mut self, token: u32) -> Result<&[f32], Error> {
        self.prefill(core::slice::from_ref(&token))
    }

    /// Feeds `tokens` (at most the batch size) and returns every position's logits (T, V).
    /// Needs a session made with `Logits::All`.
    pub fn forward_all(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        self.check(tokens)?;
        if self.mode != Logits::All || tokens.len() > self.scratch.max_batch {
            return Err(Error::BadConfig(
                "forward_all needs Logits::All and at most `batch` tokens",
            ));
        }
        let cx = Compute {
            kernels: &self.kernels,
            exec: &*self.exec,
            observer: self.observer,
        };
        self.model.forward(
            cx,
            tokens,
            self.pos,
            &mut self.cache,
            &mut self.scratch,
            Logits::All,
        );
        self.pos += tokens.len();
        Ok(&self.scratch.logits[..tokens.len() * self.model.config.vocab_size])
    }
}

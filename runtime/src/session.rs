//! A generation session: one model, its KV cache and scratch, and the position reached.
//!
//! With an allocator, `Session::new` sizes everything. Without one, `SessionPlan` says how
//! much memory a context needs and `Session::with_buffers` runs in caller-provided slices.

use crate::exec::Executor;
use crate::kernels::Kernels;
use crate::kv_cache::{KvCache, KvTypes};
use crate::model::{Compute, Layer, Logits, Model, Observer, Scratch, ScratchPlan};
use crate::Error;

/// Tokens processed per forward call during prefill: big enough to reuse each weight row
/// across many tokens, small enough to keep activations in cache.
pub const DEFAULT_BATCH: usize = 32;

/// The memory a session needs: KV cache and scratch, in elements and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPlan {
    pub capacity: usize,
    /// The cache's element types and the f32 elements of buffer it takes.
    pub kv_types: KvTypes,
    pub kv_floats: usize,
    pub scratch: ScratchPlan,
}

impl SessionPlan {
    /// Checks `capacity` against the model and plans buffers for `batch` tokens per pass,
    /// with an f32 KV cache.
    pub fn new(
        cfg: &crate::Config,
        capacity: usize,
        batch: usize,
        mode: Logits,
    ) -> Result<SessionPlan, Error> {
        Self::with_kv_types(cfg, capacity, batch, mode, KvTypes::default())
    }

    /// As [`SessionPlan::new`] with keys and values cached as `kv_types`.
    pub fn with_kv_types(
        cfg: &crate::Config,
        capacity: usize,
        batch: usize,
        mode: Logits,
        kv_types: KvTypes,
    ) -> Result<SessionPlan, Error> {
        if capacity == 0 || capacity > cfg.context_length {
            return Err(Error::ContextFull {
                needed: capacity,
                capacity: cfg.context_length,
            });
        }
        let batch = batch.clamp(1, capacity);
        // The plan's sizes are usize products of capacity; bound them first in u128, so a
        // context too large for the address space (a 32-bit target) is refused, not wrapped.
        // Every position in every layer, plus the per-head scores: at least the plan's
        // capacity-dependent floats (sliding-window rings only make them fewer).
        let per_position = (cfg.layers as u128 * 2 * cfg.kv_dim() as u128) + cfg.heads as u128;
        let bound = per_position * capacity as u128 * 4;
        if bound > isize::MAX as u128 {
            return Err(Error::OutOfMemory {
                capacity,
                needed: u64::try_from(bound).unwrap_or(u64::MAX),
                // The largest allocation Rust allows on this target.
                available: Some(isize::MAX as u64),
            });
        }
        Ok(SessionPlan {
            capacity,
            kv_types,
            kv_floats: KvCache::<()>::floats_required(cfg, capacity, batch, kv_types),
            scratch: ScratchPlan::new(cfg, batch, capacity, mode),
        })
    }

    /// Bytes of RAM: KV cache plus scratch.
    pub fn bytes_required(&self) -> usize {
        self.kv_floats * core::mem::size_of::<f32>() + self.scratch.bytes_required()
    }
}

/// A model plus its KV cache and scratch. `L` stores the layer views, `F`/`I` the f32 and
/// i8 buffers, `E` runs the matmuls (the defaults are the heap-backed ones).
pub struct Session<'m, 'a, L, F, I, E> {
    observer: Option<&'m dyn Observer>,
    model: &'m Model<'a, L>,
    cache: KvCache<F>,
    scratch: Scratch<F, I>,
    pos: usize,
    kernels: Kernels,
    exec: E,
}

/// The usual session: heap buffers and a thread pool (or serial) executor.
#[cfg(feature = "alloc")]
pub type HeapSession<'m, 'a, L = alloc::vec::Vec<Layer<'a>>> =
    Session<'m, 'a, L, alloc::vec::Vec<f32>, alloc::vec::Vec<i8>, alloc::boxed::Box<dyn Executor>>;

/// The kernels for this build: runtime detection (and `EMBER_KERNELS`) with std, compile-time
/// target features without.
fn default_kernels() -> Result<Kernels, Error> {
    #[cfg(feature = "std")]
    let k = Kernels::from_env();
    #[cfg(not(feature = "std"))]
    let k = Kernels::select(None);
    k.map_err(Error::Kernels)
}

#[cfg(feature = "alloc")]
impl<'m, 'a, L: AsRef<[Layer<'a>]>> HeapSession<'m, 'a, L> {
    /// A session holding up to `capacity` positions (at most the model's context length).
    pub fn new(model: &'m Model<'a, L>, capacity: usize) -> Result<Self, Error> {
        Self::with_options(model, capacity, DEFAULT_BATCH, Logits::Last)
    }

    /// `logits = All` keeps every position's logits (for evaluation); batch bounds the
    /// tokens per forward call.
    pub fn with_options(
        model: &'m Model<'a, L>,
        capacity: usize,
        batch: usize,
        logits: Logits,
    ) -> Result<Self, Error> {
        Self::with_kv_types(model, capacity, batch, logits, KvTypes::default())
    }

    /// As [`HeapSession::with_options`] with keys and values cached as `kv_types`.
    pub fn with_kv_types(
        model: &'m Model<'a, L>,
        capacity: usize,
        batch: usize,
        logits: Logits,
        kv_types: KvTypes,
    ) -> Result<Self, Error> {
        let plan = SessionPlan::with_kv_types(&model.config, capacity, batch, logits, kv_types)?;
        // Refused up front when the system says the memory is not there (with overcommit
        // the allocation would succeed and generation be killed once the pages are used),
        // and an error, not an abort, when the allocator refuses.
        let out_of_memory = |available| Error::OutOfMemory {
            capacity,
            needed: plan.bytes_required() as u64,
            available,
        };
        #[cfg(feature = "std")]
        if let Some(available) = crate::memory::available() {
            if plan.bytes_required() as u64 > available {
                return Err(out_of_memory(Some(available)));
            }
        }
        let zeroed = |n| crate::memory::zeroed_vec(n).ok_or(out_of_memory(None));
        let kv = zeroed(plan.kv_floats)?;
        let scratch_f = zeroed(plan.scratch.floats)?;
        let scratch_i = crate::memory::zeroed_vec(plan.scratch.bytes).ok_or(out_of_memory(None))?;
        Ok(Session {
            observer: None,
            model,
            cache: KvCache::with_buffer(
                &model.config,
                capacity,
                plan.scratch.max_batch,
                kv_types,
                kv,
            )?,
            scratch: Scratch::with_buffers(&model.config, plan.scratch, scratch_f, scratch_i)?,
            pos: 0,
            kernels: default_kernels()?,
            exec: alloc::boxed::Box::new(crate::exec::Serial),
        })
    }

    /// Runs matmuls on `exec`.
    pub fn set_executor(&mut self, exec: alloc::boxed::Box<dyn Executor>) {
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
}

impl<'m, 'a, L, F, I, E> Session<'m, 'a, L, F, I, E>
where
    L: AsRef<[Layer<'a>]>,
    F: AsRef<[f32]> + AsMut<[f32]>,
    I: AsMut<[i8]>,
    E: Executor,
{
    /// A session in caller-provided memory: `kv` holds `plan.kv_floats`, `scratch_f`
    /// `plan.scratch.floats` and `scratch_i` `plan.scratch.bytes` elements (no allocator).
    pub fn with_buffers(
        model: &'m Model<'a, L>,
        plan: SessionPlan,
        kv: F,
        scratch_f: F,
        scratch_i: I,
        exec: E,
    ) -> Result<Self, Error> {
        Ok(Session {
            observer: None,
            model,
            cache: KvCache::with_buffer(
                &model.config,
                plan.capacity,
                plan.scratch.max_batch,
                plan.kv_types,
                kv,
            )?,
            scratch: Scratch::with_buffers(&model.config, plan.scratch, scratch_f, scratch_i)?,
            pos: 0,
            kernels: default_kernels()?,
            exec,
        })
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

    pub fn model(&self) -> &'m Model<'a, L> {
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

    fn run(&mut self, tokens: &[u32], logits: Logits) {
        let cx = Compute {
            kernels: &self.kernels,
            exec: &self.exec,
            observer: self.observer,
        };
        let mut parts = self.scratch.parts();
        self.model
            .forward(cx, tokens, self.pos, &mut self.cache, &mut parts, logits);
        self.pos += tokens.len();
    }

    /// Feeds `tokens` and returns the logits (V) after the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        self.check(tokens)?;
        for chunk in tokens.chunks(self.scratch.plan().max_batch) {
            self.run(chunk, Logits::Last);
        }
        Ok(&self.scratch.logits()[..self.model.config.vocab_size])
    }

    /// Feeds one token and returns the next logits (V).
    pub fn step(&mut self, token: u32) -> Result<&[f32], Error> {
        self.prefill(core::slice::from_ref(&token))
    }

    /// Feeds `tokens` (at most the batch size) and returns every position's logits (T, V).
    /// Needs a session planned with `Logits::All`.
    pub fn forward_all(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        self.check(tokens)?;
        let plan = *self.scratch.plan();
        if plan.mode != Logits::All || tokens.len() > plan.max_batch {
            return Err(Error::BadConfig(
                "forward_all needs Logits::All and at most `batch` tokens",
            ));
        }
        self.run(tokens, Logits::All);
        Ok(&self.scratch.logits()[..tokens.len() * self.model.config.vocab_size])
    }
}

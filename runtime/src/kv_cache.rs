//! Keys and values of past positions, per layer, in one buffer: a `Vec` with an allocator,
//! or a caller's slice (`&mut [f32]`) on a microcontroller.
//!
//! Global layers keep every position (`capacity` slots). Local (sliding-window) layers see
//! only the last `window` positions, so they keep a ring of `window + batch - 1` slots
//! (position p in slot p % slots): enough for a forward pass of `batch` new tokens, the
//! first of which still needs the `window - 1` positions before it. Layers that share
//! another layer's keys and values (Gemma 4) have no cache of their own.
//!
//! Recurrent layers (LFM2, Granite 4) keep no keys and values but a state of constant size
//! (`Config::recurrent_state_floats`), after the keys and values in the same buffer.

use ember_format::schema::Attention;

use crate::model::{Config, LayerKinds};
use crate::Error;

/// K and V per layer, (slots, KVH·HS) each, f32; HS is the layer's (local or global).
#[derive(Clone, Debug)]
pub struct KvCache<B> {
    data: B,
    capacity: usize,
    local_slots: usize,
    /// KVH·HS of local and of global layers.
    kv_dim_local: usize,
    kv_dim_global: usize,
    kinds: LayerKinds,
    layers: usize,
    /// Floats of the keys and values; each recurrent layer's state follows.
    kv_floats: usize,
    state_floats: usize,
}

/// The slots a local layer needs; `capacity` when the model has no local layers.
fn local_slots(cfg: &Config, capacity: usize, batch: usize) -> usize {
    if cfg.sliding_window == 0 {
        return capacity;
    }
    (cfg.sliding_window + batch.max(1) - 1).min(capacity)
}

#[cfg(feature = "alloc")]
impl KvCache<alloc::vec::Vec<f32>> {
    /// A cache for `capacity` positions, written `batch` tokens at a time at most.
    pub fn new(cfg: &Config, capacity: usize, batch: usize) -> Self {
        let data = alloc::vec![0.0; Self::floats_required(cfg, capacity, batch)];
        match KvCache::with_buffer(cfg, capacity, batch, data) {
            Ok(c) => c,
            Err(_) => unreachable!("buffer sized by floats_required"),
        }
    }
}

impl<B> KvCache<B> {
    /// f32 values a cache of `capacity` positions holds, written `batch` tokens at a time.
    pub fn floats_required(cfg: &Config, capacity: usize, batch: usize) -> usize {
        let k = &cfg.layer_kinds;
        let local = k.own_kv_before(cfg.layers, Attention::Local);
        let global = k.own_kv_before(cfg.layers, Attention::Global);
        let (kl, kg) = (
            cfg.kv_heads * cfg.head_dim,
            cfg.kv_heads * cfg.head_dim_global,
        );
        (global * capacity * kg + local * local_slots(cfg, capacity, batch) * kl) * 2
            + Self::state_floats_required(cfg)
    }

    /// f32 values of the recurrent layers' states (0 without recurrent layers).
    pub fn state_floats_required(cfg: &Config) -> usize {
        cfg.layer_kinds.recurrent_before(cfg.layers) * cfg.recurrent_state_floats()
    }

    /// f32 values the same cache would hold if every layer with a cache kept every position.
    pub fn floats_without_rings(cfg: &Config, capacity: usize) -> usize {
        let k = &cfg.layer_kinds;
        let local = k.own_kv_before(cfg.layers, Attention::Local);
        let global = k.own_kv_before(cfg.layers, Attention::Global);
        (global * cfg.head_dim_global + local * cfg.head_dim) * cfg.kv_heads * 2 * capacity
            + Self::state_floats_required(cfg)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots of layer `layer`: position p lives in slot p % slots.
    pub fn slots(&self, layer: usize) -> usize {
        match self.kinds.attention(layer) {
            Attention::Global => self.capacity,
            Attention::Local => self.local_slots,
        }
    }

    /// KVH·HS of layer `layer`.
    pub fn kv_dim(&self, layer: usize) -> usize {
        match self.kinds.attention(layer) {
            Attention::Global => self.kv_dim_global,
            Attention::Local => self.kv_dim_local,
        }
    }

    /// Where layer `layer`'s keys start and how many floats they (and its values) hold: the
    /// layers with a cache of their own before it come first.
    fn layer_span(&self, layer: usize) -> (usize, usize) {
        let local = self.kinds.own_kv_before(layer, Attention::Local);
        let global = self.kinds.own_kv_before(layer, Attention::Global);
        let start = (global * self.capacity * self.kv_dim_global
            + local * self.local_slots * self.kv_dim_local)
            * 2;
        (start, self.slots(layer) * self.kv_dim(layer))
    }
}

impl<B: AsRef<[f32]> + AsMut<[f32]>> KvCache<B> {
    /// A cache in caller-provided memory of at least `floats_required` values.
    pub fn with_buffer(
        cfg: &Config,
        capacity: usize,
        batch: usize,
        data: B,
    ) -> Result<Self, Error> {
        let needed = Self::floats_required(cfg, capacity, batch);
        if data.as_ref().len() < needed {
            return Err(Error::BufferTooSmall {
                needed,
                got: data.as_ref().len(),
            });
        }
        Ok(KvCache {
            data,
            capacity,
            local_slots: local_slots(cfg, capacity, batch),
            kv_dim_local: cfg.kv_heads * cfg.head_dim,
            kv_dim_global: cfg.kv_heads * cfg.head_dim_global,
            kinds: cfg.layer_kinds,
            layers: cfg.layers,
            kv_floats: needed - Self::state_floats_required(cfg),
            state_floats: cfg.recurrent_state_floats(),
        })
    }

    /// (keys, values) of one layer with a cache of its own, each (slots, KVH·HS).
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        debug_assert!(layer < self.layers);
        let (start, n) = self.layer_span(layer);
        self.data.as_ref()[start..start + 2 * n].split_at(n)
    }

    pub fn layer_mut(&mut self, layer: usize) -> (&mut [f32], &mut [f32]) {
        debug_assert!(layer < self.layers);
        let (start, n) = self.layer_span(layer);
        self.data.as_mut()[start..start + 2 * n].split_at_mut(n)
    }

    /// The state of recurrent layer `layer` (`Config::recurrent_state_floats`).
    pub fn state_mut(&mut self, layer: usize) -> &mut [f32] {
        debug_assert!(layer < self.layers);
        let n = self.state_floats;
        let start = self.kv_floats + self.kinds.recurrent_before(layer) * n;
        &mut self.data.as_mut()[start..start + n]
    }
}

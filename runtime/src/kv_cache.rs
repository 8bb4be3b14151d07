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
//!
//! Keys and values are f32 or f16 each ([`KvTypes`], llama.cpp's `--cache-type-k/-v`): f16
//! halves the cache and the bytes attention reads per token at depth. The buffer stays f32
//! (caller-provided memory keeps one element type); an f16 region holds two values per f32.

use core::ops::Range;

use ember_format::schema::Attention;

use crate::model::{Config, LayerKinds};
use crate::Error;

/// The element type of cached keys or of cached values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvType {
    #[default]
    F32,
    F16,
}

impl KvType {
    pub const ALL: [KvType; 2] = [KvType::F32, KvType::F16];

    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
        }
    }

    pub fn parse(name: &str) -> Option<KvType> {
        KvType::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }

    /// f32 elements of buffer that `n` values of this type occupy.
    fn floats(self, n: usize) -> usize {
        (n * self.bytes()).div_ceil(4)
    }
}

/// The types of the keys and of the values (f32 both by default: the exact cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvTypes {
    pub k: KvType,
    pub v: KvType,
}

impl KvTypes {
    /// f32 elements of buffer one layer's keys and values take, `n` of each.
    fn floats(self, n: usize) -> usize {
        self.k.floats(n) + self.v.floats(n)
    }
}

/// Cached keys or values of one type: a layer's (KVH, slots, HS), or a slice of it.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
}

impl<'a> KvRows<'a> {
    /// Elements held.
    pub fn len(&self) -> usize {
        match self {
            KvRows::F32(v) => v.len(),
            KvRows::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `r` (whole rows, in elements).
    pub fn slice(self, r: Range<usize>) -> KvRows<'a> {
        match self {
            KvRows::F32(v) => KvRows::F32(&v[r]),
            KvRows::F16(v) => KvRows::F16(&v[r]),
        }
    }
}

/// One layer's keys or values for writing.
enum KvRowsMut<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [u16]),
}

impl KvRowsMut<'_> {
    fn store(&mut self, at: usize, x: &[f32]) {
        match self {
            KvRowsMut::F32(v) => v[at..at + x.len()].copy_from_slice(x),
            KvRowsMut::F16(v) => {
                for (o, &x) in v[at..at + x.len()].iter_mut().zip(x) {
                    *o = ember_format::blocks::f32_to_f16(x);
                }
            }
        }
    }
}

fn rows(t: KvType, floats: &[f32]) -> KvRows<'_> {
    match t {
        KvType::F32 => KvRows::F32(floats),
        KvType::F16 => KvRows::F16(bytemuck::cast_slice(floats)),
    }
}

fn rows_mut(t: KvType, floats: &mut [f32]) -> KvRowsMut<'_> {
    match t {
        KvType::F32 => KvRowsMut::F32(floats),
        KvType::F16 => KvRowsMut::F16(bytemuck::cast_slice_mut(floats)),
    }
}

/// K and V per layer, (KVH, slots, HS) each, of their [`KvTypes`]; HS is the layer's (local
/// or global). Head-major: attention streams one KV head's positions as one contiguous run,
/// which the hardware prefetcher follows (position-major rows of all heads left it
/// latency-bound at depth).
#[derive(Clone, Debug)]
pub struct KvCache<B> {
    data: B,
    types: KvTypes,
    kv_heads: usize,
    capacity: usize,
    local_slots: usize,
    /// KVH·HS of local and of global layers.
    kv_dim_local: usize,
    kv_dim_global: usize,
    kinds: LayerKinds,
    layers: usize,
    /// f32 elements of buffer the keys and values take (f16 ones two per element); each
    /// recurrent layer's state follows.
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
    pub fn new(cfg: &Config, capacity: usize, batch: usize, types: KvTypes) -> Self {
        let data = alloc::vec![0.0; Self::floats_required(cfg, capacity, batch, types)];
        match KvCache::with_buffer(cfg, capacity, batch, types, data) {
            Ok(c) => c,
            Err(_) => unreachable!("buffer sized by floats_required"),
        }
    }
}

impl<B> KvCache<B> {
    /// f32 elements of buffer a cache of `capacity` positions takes, written `batch` tokens
    /// at a time.
    pub fn floats_required(cfg: &Config, capacity: usize, batch: usize, types: KvTypes) -> usize {
        let k = &cfg.layer_kinds;
        let local = k.own_kv_before(cfg.layers, Attention::Local);
        let global = k.own_kv_before(cfg.layers, Attention::Global);
        let (kl, kg) = (
            cfg.kv_heads * cfg.head_dim,
            cfg.kv_heads * cfg.head_dim_global,
        );
        global * types.floats(capacity * kg)
            + local * types.floats(local_slots(cfg, capacity, batch) * kl)
            + Self::state_floats_required(cfg)
    }

    /// f32 values of the recurrent layers' states (0 without recurrent layers).
    pub fn state_floats_required(cfg: &Config) -> usize {
        cfg.layer_kinds.recurrent_before(cfg.layers) * cfg.recurrent_state_floats()
    }

    /// f32 elements the same cache would take if every layer with a cache kept every
    /// position.
    pub fn floats_without_rings(cfg: &Config, capacity: usize, types: KvTypes) -> usize {
        let k = &cfg.layer_kinds;
        let local = k.own_kv_before(cfg.layers, Attention::Local);
        let global = k.own_kv_before(cfg.layers, Attention::Global);
        global * types.floats(capacity * cfg.kv_heads * cfg.head_dim_global)
            + local * types.floats(capacity * cfg.kv_heads * cfg.head_dim)
            + Self::state_floats_required(cfg)
    }

    pub fn types(&self) -> KvTypes {
        self.types
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

    /// Where layer `layer`'s keys start, the f32 elements they take, and the f32 elements its
    /// values take: the layers with a cache of their own before it come first.
    fn layer_span(&self, layer: usize) -> (usize, usize, usize) {
        let local = self.kinds.own_kv_before(layer, Attention::Local);
        let global = self.kinds.own_kv_before(layer, Attention::Global);
        let start = global * self.types.floats(self.capacity * self.kv_dim_global)
            + local * self.types.floats(self.local_slots * self.kv_dim_local);
        let n = self.slots(layer) * self.kv_dim(layer);
        (start, self.types.k.floats(n), self.types.v.floats(n))
    }
}

impl<B: AsRef<[f32]> + AsMut<[f32]>> KvCache<B> {
    /// A cache in caller-provided memory of at least `floats_required` elements.
    pub fn with_buffer(
        cfg: &Config,
        capacity: usize,
        batch: usize,
        types: KvTypes,
        data: B,
    ) -> Result<Self, Error> {
        let needed = Self::floats_required(cfg, capacity, batch, types);
        if data.as_ref().len() < needed {
            return Err(Error::BufferTooSmall {
                needed,
                got: data.as_ref().len(),
            });
        }
        Ok(KvCache {
            data,
            types,
            kv_heads: cfg.kv_heads,
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

    /// (keys, values) of one layer with a cache of its own, each (KVH, slots, HS).
    pub fn layer(&self, layer: usize) -> (KvRows<'_>, KvRows<'_>) {
        debug_assert!(layer < self.layers);
        let (start, kf, vf) = self.layer_span(layer);
        let n = self.slots(layer) * self.kv_dim(layer);
        let (k, v) = self.data.as_ref()[start..start + kf + vf].split_at(kf);
        let (k, v) = (rows(self.types.k, k), rows(self.types.v, v));
        (k.slice(0..n), v.slice(0..n))
    }

    /// Stores one position's keys and values (KVH·HS each) of layer `layer` in `slot`.
    pub fn store(&mut self, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        debug_assert!(layer < self.layers);
        let (start, kf, vf) = self.layer_span(layer);
        let (slots, hs) = (self.slots(layer), self.kv_dim(layer) / self.kv_heads);
        let (keys, values) = self.data.as_mut()[start..start + kf + vf].split_at_mut(kf);
        let (mut keys, mut values) = (rows_mut(self.types.k, keys), rows_mut(self.types.v, values));
        for h in 0..self.kv_heads {
            let at = (h * slots + slot) * hs;
            keys.store(at, &k[h * hs..(h + 1) * hs]);
            values.store(at, &v[h * hs..(h + 1) * hs]);
        }
    }

    /// The state of recurrent layer `layer` (`Config::recurrent_state_floats`).
    pub fn state_mut(&mut self, layer: usize) -> &mut [f32] {
        debug_assert!(layer < self.layers);
        let n = self.state_floats;
        let start = self.kv_floats + self.kinds.recurrent_before(layer) * n;
        &mut self.data.as_mut()[start..start + n]
    }
}

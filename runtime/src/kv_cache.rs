//! Keys and values of every past position, per layer, in one buffer: a `Vec` with an
//! allocator, or a caller's slice (`&mut [f32]`) on a microcontroller.

use crate::model::Config;
use crate::Error;

/// K and V for `capacity` positions: per layer, (capacity, KVH·HS) each, f32.
#[derive(Clone, Debug)]
pub struct KvCache<B> {
    data: B,
    capacity: usize,
    kv_dim: usize,
}

#[cfg(feature = "alloc")]
impl KvCache<alloc::vec::Vec<f32>> {
    pub fn new(cfg: &Config, capacity: usize) -> Self {
        let data = alloc::vec![0.0; Self::floats_required(cfg, capacity)];
        KvCache {
            data,
            capacity,
            kv_dim: cfg.kv_dim(),
        }
    }
}

impl<B> KvCache<B> {
    /// f32 values a cache of `capacity` positions holds.
    pub fn floats_required(cfg: &Config, capacity: usize) -> usize {
        cfg.layers * 2 * capacity * cfg.kv_dim()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn layer_span(&self, layer: usize) -> (usize, usize) {
        let n = self.capacity * self.kv_dim;
        (layer * 2 * n, n)
    }
}

impl<B: AsRef<[f32]> + AsMut<[f32]>> KvCache<B> {
    /// A cache in caller-provided memory of at least `floats_required` values.
    pub fn with_buffer(cfg: &Config, capacity: usize, data: B) -> Result<Self, Error> {
        let needed = Self::floats_required(cfg, capacity);
        if data.as_ref().len() < needed {
            return Err(Error::BufferTooSmall {
                needed,
                got: data.as_ref().len(),
            });
        }
        Ok(KvCache {
            data,
            capacity,
            kv_dim: cfg.kv_dim(),
        })
    }

    /// (keys, values) of one layer, each (capacity, KVH·HS).
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        let (start, n) = self.layer_span(layer);
        self.data.as_ref()[start..start + 2 * n].split_at(n)
    }

    pub fn layer_mut(&mut self, layer: usize) -> (&mut [f32], &mut [f32]) {
        let (start, n) = self.layer_span(layer);
        self.data.as_mut()[start..start + 2 * n].split_at_mut(n)
    }
}

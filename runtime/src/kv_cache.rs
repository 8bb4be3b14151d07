//! Keys and values of every past position, per layer.

use alloc::vec;
use alloc::vec::Vec;

use crate::model::Config;

/// K and V for `capacity` positions: per layer, (capacity, KVH·HS) each, f32.
#[derive(Clone, Debug)]
pub struct KvCache {
    data: Vec<f32>,
    capacity: usize,
    kv_dim: usize,
}

impl KvCache {
    pub fn new(cfg: &Config, capacity: usize) -> KvCache {
        let kv_dim = cfg.kv_dim();
        KvCache {
            data: vec![0.0; cfg.layers * 2 * capacity * kv_dim],
            capacity,
            kv_dim,
        }
    }

    /// Bytes a cache of `capacity` positions needs.
    pub fn bytes_required(cfg: &Config, capacity: usize) -> usize {
        cfg.layers * 2 * capacity * cfg.kv_dim() * core::mem::size_of::<f32>()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn layer_span(&self, layer: usize) -> usize {
        layer * 2 * self.capacity * self.kv_dim
    }

    /// (keys, values) of one layer, each (capacity, KVH·HS).
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        let start = self.layer_span(layer);
        let n = self.capacity * self.kv_dim;
        let (k, v) = self.data[start..start + 2 * n].split_at(n);
        (k, v)
    }

    pub fn layer_mut(&mut self, layer: usize) -> (&mut [f32], &mut [f32]) {
        let start = self.layer_span(layer);
        let n = self.capacity * self.kv_dim;
        let (k, v) = self.data[start..start + 2 * n].split_at_mut(n);
        (k, v)
    }
}

//! Reading and writing f32 safetensors files.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::write_atomic;
use crate::error::{Result, TrainError};
use crate::model::Layout;

/// Serializes named f32 tensors (in the given order) to the safetensors format.
pub fn to_bytes(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), json!(metadata));
    }
    let mut off = 0usize;
    for (name, shape, data) in tensors {
        let end = off + data.len() * 4;
        header.insert(
            (*name).to_string(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [off, end]}),
        );
        off = end;
    }
    let mut h = serde_json::to_vec(&Value::Object(header)).expect("JSON of plain values");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + off);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for (_, _, data) in tensors {
        for v in data.iter() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Writes the model parameters under their Hugging Face names.
pub fn save_params(path: &Path, layout: &Layout, params: &[f32]) -> Result<()> {
    let tensors: Vec<(&str, &[usize], &[f32])> = layout
        .specs
        .iter()
        .map(|s| (s.name.as_str(), s.shape.as_slice(), &params[s.range()]))
        .collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_atomic(path, &to_bytes(&tensors, &meta))
}

/// Tensors by name: (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// All tensors of a safetensors file as f32 (F32 or BF16 on disk), by name.
pub fn read_tensors(path: &Path) -> Result<Tensors> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| TrainError::Format(format!("{}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            safetensors::Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            d => {
                return Err(TrainError::Format(format!(
                    "{}: tensor {name} has dtype {d:?}; the trainer reads F32 or BF16",
                    path.display()
                )))
            }
        };
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}

/// Loads parameters for `layout` from HF-named tensors; every tensor must be present with
/// the right shape (lm_head may be absent when embeddings are tied).
pub fn load_params(path: &Path, layout: &Layout) -> Result<Vec<f32>> {
    let tensors = read_tensors(path)?;
    let mut params = vec![0f32; layout.n_params];
    for spec in &layout.specs {
        let (shape, data) = tensors.get(&spec.name).ok_or_else(|| {
            TrainError::Format(format!("{}: missing tensor {}", path.display(), spec.name))
        })?;
        if shape != &spec.shape {
            return Err(TrainError::Format(format!(
                "{}: tensor {} has shape {shape:?}, expected {:?}",
                path.display(),
                spec.name,
                spec.shape
            )));
        }
        params[spec.range()].copy_from_slice(data);
    }
    Ok(params)
}

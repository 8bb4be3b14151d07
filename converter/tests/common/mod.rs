//! Helpers shared by the converter's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember_format::blocks::dequantize_row_ref;
use ember_format::{AlignedBytes, DType, EmberFile, Writer};

/// `converter/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `../shared/fixtures/<name>` beside the repository, if present.
pub fn shared_fixture(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(name);
    p.is_dir().then_some(p)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ember-convert-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The bytes of a written `.ember` file, aligned for the reader.
pub fn file_bytes(w: &Writer) -> AlignedBytes {
    AlignedBytes::from(w.to_vec())
}

/// Any tensor's values as f32.
pub fn to_f32(dtype: DType, shape: &[usize], data: &[u8]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut out = vec![0f32; n];
    dequantize_row_ref(dtype, data, &mut out);
    out
}

pub fn tensor_f32(f: &EmberFile<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = f
        .tensor(name)
        .unwrap_or_else(|| panic!("tensor {name} missing"));
    (t.shape().to_vec(), to_f32(t.dtype, t.shape(), t.data))
}

/// Every tensor of a safetensors file as (shape, f32 values).
pub fn load_safetensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            d => panic!("{name}: {d:?}"),
        };
        let shape = view.shape().to_vec();
        let vals = to_f32(dtype, &shape, view.data());
        out.insert(name, (shape, vals));
    }
    out
}

pub fn meta_str<'a>(f: &EmberFile<'a>, key: &str) -> &'a str {
    f.get(key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .as_str()
        .unwrap_or_else(|| panic!("{key} not a string"))
}

pub fn meta_u32(f: &EmberFile<'_>, key: &str) -> u32 {
    f.get(key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .as_u32()
        .unwrap_or_else(|| panic!("{key} not u32"))
}

pub fn meta_f32(f: &EmberFile<'_>, key: &str) -> f32 {
    f.get(key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .as_f32()
        .unwrap_or_else(|| panic!("{key} not f32"))
}

pub fn meta_bool(f: &EmberFile<'_>, key: &str) -> bool {
    f.get(key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .as_bool()
        .unwrap_or_else(|| panic!("{key} not bool"))
}

/// Transpose of a (rows, cols) matrix.
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}

/// A small deterministic PRNG (xorshift64*) for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

/// A copy of tiny-llama in a temp dir, to be damaged.
pub fn tiny_llama_copy(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    for f in std::fs::read_dir(fixture("tiny-llama")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    dir
}

/// A copy of a checkpoint directory's config, weights and tokenizer (not its GGUF or
/// reference) in a temp dir, to be damaged.
pub fn checkpoint_copy(src: &Path, tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && name != "reference.json" || name.ends_with(".safetensors") {
            std::fs::copy(f.path(), dir.join(&name)).unwrap();
        }
    }
    dir
}

pub fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

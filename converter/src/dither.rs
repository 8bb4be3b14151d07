//! A dithered f32 base for judging quantizers (`ember convert --dither SEED`).
//!
//! A model that only exists as a quantized GGUF is a poor base for comparing quantizers: its
//! exact f32 dequantization lies on the source's grids, so a type that can land on those
//! grids (the source type itself, or an affine 4-bit block on a Q4_1 source) rebuilds the
//! file almost exactly and looks better than it is. This module writes the exact f32
//! dequantization plus seeded uniform noise of ±half a quantization step of each weight's
//! source block, so no type can fall back onto the source grid while the model still writes
//! the same kind of text.
//!
//! - step = (max − min of the block's dequantized values) / (2^bits − 1), with `bits` of the
//!   source type ([`source_bits`]) and the block its quantization unit ([`step_block_len`]):
//!   32 weights for the 32-blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) and for the
//!   sub-blocks of Q4_K, Q5_K and IQ4_XS, 16 for Q6_K's sub-blocks. For a K-quant the range
//!   of a sub-block is at most (2^bits − 1) times its effective scale `d·sc`, so the step is
//!   that scale or a little less; it needs no knowledge of the block's packing.
//! - Float tensors (f32, f16, bf16) and 1-D tensors (norms, biases) get no noise.
//! - The noise of row `r` of tensor `name` comes from a generator seeded by (SEED, name, r),
//!   so the file is the same whatever the order or threading.
//!
//! The output is a GGUF v3 file with the source's metadata copied verbatim and in order
//! (except `general.file_type`, set to 0 = all f32, and two added `ember.dither.*` keys) and
//! every tensor in F32, 32-byte aligned: llama.cpp and Ember read it like any f32 GGUF.

use std::io::Write;
use std::path::Path;

use ember_format::blocks::dequantize_row_ref;
use ember_format::DType;

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, MAGIC};

/// Bits of the source type's integers, `None` for float types (which get no noise) and for
/// a block type this module does not know yet ([`dither_gguf`] refuses those).
pub fn source_bits(dtype: DType) -> Option<u32> {
    match dtype {
        DType::Q8_0 => Some(8),
        DType::Q6K => Some(6),
        DType::Q5_0 | DType::Q5_1 | DType::Q5K => Some(5),
        DType::Q4_0 | DType::Q4_1 | DType::Q4K | DType::IQ4NL | DType::IQ4XS | DType::Q4Z => {
            Some(4)
        }
        _ => None,
    }
}

/// The number of consecutive weights that share one scale in `dtype` (the unit whose range
/// sets the dither step).
pub fn step_block_len(dtype: DType) -> usize {
    match dtype {
        DType::Q6K => 16,
        _ => 32,
    }
}

/// A small deterministic generator (SplitMix64): the dither must not depend on a crate's
/// version.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-0.5, 0.5) with 24 bits (exactly representable in f32).
    pub fn centered(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32) - 0.5
    }
}

/// FNV-1a of a tensor name, to give every tensor its own stream.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The generator for row `row` of tensor `name` under `seed`.
pub fn row_rng(seed: u64, name: &str, row: usize) -> SplitMix64 {
    let mut g = SplitMix64::new(seed ^ name_hash(name));
    let a = g.next_u64();
    SplitMix64::new(a ^ (row as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Adds the dither to one dequantized row of a `dtype` tensor in place: each block of
/// [`step_block_len`] weights gets uniform noise in ±step/2 with step = range / (2^bits − 1).
/// Float dtypes are left alone.
pub fn dither_row(dtype: DType, row: &mut [f32], rng: &mut SplitMix64) {
    let Some(bits) = source_bits(dtype) else {
        return;
    };
    let levels = ((1u32 << bits) - 1) as f32;
    for block in row.chunks_mut(step_block_len(dtype)) {
        let (lo, hi) = block
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let step = (hi - lo) / levels;
        for v in block.iter_mut() {
            // Drawn even for a constant block (step 0), so streams stay aligned.
            let u = rng.centered();
            *v += u * step;
        }
    }
}

/// What [`dither_gguf`] did.
#[derive(Clone, Debug, Default)]
pub struct DitherSummary {
    pub tensors: usize,
    /// Tensors that got noise (block-quantized matrices).
    pub dithered: usize,
    /// Weights in those tensors.
    pub dithered_weights: u64,
    /// RMS of the added noise over those weights.
    pub noise_rms: f64,
    pub file_bytes: u64,
    pub seconds: f64,
}

const T_U32: u32 = 4;
const T_U64: u32 = 10;
const T_STR: u32 = 8;
const T_ARRAY: u32 = 9;

/// Size of a fixed-size GGUF value type, `None` for strings and arrays.
fn fixed_size(t: u32) -> Option<usize> {
    match t {
        0 | 1 | 7 => Some(1),
        2..=3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// The metadata key/value records of a GGUF file (already validated by
/// [`GgufFile::parse`]), each as (key, type id, the value's raw bytes), in file order.
fn raw_metadata(bytes: &[u8]) -> Result<Vec<(String, u32, &[u8])>> {
    fn bad() -> Error {
        Error("invalid GGUF: metadata section".into())
    }
    fn u32_at(b: &[u8], p: usize) -> Result<u32> {
        let s = b.get(p..p + 4).ok_or_else(bad)?;
        Ok(u32::from_le_bytes(s.try_into().expect("4")))
    }
    fn u64_at(b: &[u8], p: usize) -> Result<u64> {
        let s = b.get(p..p + 8).ok_or_else(bad)?;
        Ok(u64::from_le_bytes(s.try_into().expect("8")))
    }
    fn len_at(b: &[u8], p: usize) -> Result<usize> {
        usize::try_from(u64_at(b, p)?).map_err(|_| bad())
    }
    /// The end of a value of type `t` starting at `p`.
    fn skip(b: &[u8], p: usize, t: u32, depth: u32) -> Result<usize> {
        if let Some(n) = fixed_size(t) {
            return p.checked_add(n).filter(|&e| e <= b.len()).ok_or_else(bad);
        }
        match t {
            T_STR => {
                let n = len_at(b, p)?;
                (p + 8)
                    .checked_add(n)
                    .filter(|&e| e <= b.len())
                    .ok_or_else(bad)
            }
            T_ARRAY if depth < 4 => {
                let et = u32_at(b, p)?;
                let count = len_at(b, p + 4)?;
                let mut q = p + 12;
                if let Some(n) = fixed_size(et) {
                    return count
                        .checked_mul(n)
                        .and_then(|n| q.checked_add(n))
                        .filter(|&e| e <= b.len())
                        .ok_or_else(bad);
                }
                for _ in 0..count {
                    q = skip(b, q, et, depth + 1)?;
                }
                Ok(q)
            }
            _ => Err(bad()),
        }
    }
    let kv_count = u64_at(bytes, 16)?;
    let mut p = 24usize;
    let mut out = Vec::new();
    for _ in 0..kv_count {
        let klen = len_at(bytes, p)?;
        let key = bytes.get(p + 8..p + 8 + klen).ok_or_else(bad)?;
        let key = std::str::from_utf8(key).map_err(|_| bad())?.to_string();
        p += 8 + klen;
        let t = u32_at(bytes, p)?;
        p += 4;
        let end = skip(bytes, p, t, 0)?;
        out.push((key, t, &bytes[p..end]));
        p = end;
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// Writes the dithered f32 base of the GGUF file `input` to `output` (see the module docs).
pub fn dither_gguf(input: &Path, output: &Path, seed: u64) -> Result<DitherSummary> {
    let start = std::time::Instant::now();
    let file = std::fs::File::open(input)
        .map_err(|e| Error(format!("cannot open {}: {e}", input.display())))?;
    // SAFETY: the file is mapped read-only and not modified while mapped (a concurrent
    // writer is outside what any reader of a model file can guard against).
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| Error(format!("cannot map {}: {e}", input.display())))?;
    let bytes: &[u8] = &map;
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(Error(format!("{} is not a GGUF file", input.display())));
    }
    let g = GgufFile::parse(bytes)?;
    let meta = raw_metadata(bytes)?;
    const ALIGN: usize = 32;

    // Header and metadata.
    let mut head = Vec::new();
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(g.tensors.len() as u64).to_le_bytes());
    let mut kvs: Vec<(String, u32, Vec<u8>)> = Vec::new();
    for (k, t, v) in meta {
        match k.as_str() {
            // All tensors are f32 now (ggml's LLAMA_FTYPE_ALL_F32).
            "general.file_type" => kvs.push((k, T_U32, 0u32.to_le_bytes().to_vec())),
            // The data is written 32-byte aligned, ggml's default.
            "general.alignment" => {}
            _ if k.starts_with("ember.dither.") => {}
            _ => kvs.push((k, t, v.to_vec())),
        }
    }
    kvs.push((
        "ember.dither.seed".into(),
        T_U64,
        seed.to_le_bytes().to_vec(),
    ));
    let mut src = Vec::new();
    put_str(
        &mut src,
        input.file_name().map_or(b"", |n| n.as_encoded_bytes()),
    );
    kvs.push(("ember.dither.source".into(), T_STR, src));
    head.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, t, v) in &kvs {
        put_str(&mut head, k.as_bytes());
        head.extend_from_slice(&t.to_le_bytes());
        head.extend_from_slice(v);
    }

    // Tensor infos: every tensor f32, in the source's order.
    let mut offset = 0usize;
    for t in &g.tensors {
        put_str(&mut head, t.name.as_bytes());
        head.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for &d in t.shape.iter().rev() {
            head.extend_from_slice(&(d as u64).to_le_bytes());
        }
        head.extend_from_slice(&DType::F32.id().to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        let n: usize = t.shape.iter().product();
        offset = (offset + 4 * n).next_multiple_of(ALIGN);
    }
    head.resize(head.len().next_multiple_of(ALIGN), 0);

    let tmp = output.with_extension("gguf.part");
    let out = std::fs::File::create(&tmp)
        .map_err(|e| Error(format!("cannot create {}: {e}", tmp.display())))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    let io = |e: std::io::Error| Error(format!("writing {}: {e}", tmp.display()));
    w.write_all(&head).map_err(io)?;
    let mut written = head.len();

    let mut s = DitherSummary {
        tensors: g.tensors.len(),
        ..Default::default()
    };
    let mut noise_sq = 0f64;
    for t in &g.tensors {
        let cols = *t.shape.last().unwrap_or(&1);
        let rows = t.shape.iter().product::<usize>() / cols.max(1);
        let src_row = t
            .dtype
            .row_bytes(cols)
            .ok_or_else(|| Error(format!("tensor '{}': row of {cols}", t.name)))?;
        let float = matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16);
        if !float && source_bits(t.dtype).is_none() {
            return Err(Error(format!(
                "tensor '{}': no dither step known for {}",
                t.name, t.dtype
            )));
        }
        let noisy = t.shape.len() >= 2 && !float;
        let mut row = vec![0f32; cols];
        let mut buf = Vec::with_capacity(4 * cols);
        for (r, chunk) in t.data.chunks_exact(src_row).take(rows).enumerate() {
            dequantize_row_ref(t.dtype, chunk, &mut row);
            if noisy {
                let exact = row.clone();
                dither_row(t.dtype, &mut row, &mut row_rng(seed, &t.name, r));
                noise_sq += row
                    .iter()
                    .zip(&exact)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum::<f64>();
            }
            buf.clear();
            for v in &row {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf).map_err(io)?;
        }
        written += 4 * rows * cols;
        let pad = written.next_multiple_of(ALIGN) - written;
        w.write_all(&[0u8; ALIGN][..pad]).map_err(io)?;
        written += pad;
        if noisy {
            s.dithered += 1;
            s.dithered_weights += (rows * cols) as u64;
        }
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, output).map_err(|e| {
        Error(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            output.display()
        ))
    })?;
    s.noise_rms = (noise_sq / s.dithered_weights.max(1) as f64).sqrt();
    s.file_bytes = written as u64;
    s.seconds = start.elapsed().as_secs_f64();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufBuilder;
    use ember_format::blocks::quantize_row_ref;

    fn q_row(dtype: DType, n: usize) -> (Vec<u8>, Vec<f32>) {
        let mut g = SplitMix64::new(7);
        let x: Vec<f32> = (0..n).map(|_| g.centered() * 0.2).collect();
        let mut q = vec![0u8; dtype.row_bytes(n).unwrap()];
        assert!(quantize_row_ref(dtype, &x, &mut q));
        let mut deq = vec![0f32; n];
        dequantize_row_ref(dtype, &q, &mut deq);
        (q, deq)
    }

    #[test]
    fn noise_is_seeded_bounded_and_not_zero() {
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0] {
            let (_, exact) = q_row(dtype, 256);
            let mut a = exact.clone();
            let mut b = exact.clone();
            let mut c = exact.clone();
            dither_row(dtype, &mut a, &mut row_rng(1, "blk.0.ffn_up.weight", 3));
            dither_row(dtype, &mut b, &mut row_rng(1, "blk.0.ffn_up.weight", 3));
            dither_row(dtype, &mut c, &mut row_rng(2, "blk.0.ffn_up.weight", 3));
            assert_eq!(a, b, "{dtype}: same seed, same noise");
            assert_ne!(a, c, "{dtype}: another seed, other noise");
            let levels = ((1u32 << source_bits(dtype).unwrap()) - 1) as f32;
            let mut moved = 0;
            for (blk_a, blk_x) in a.chunks(32).zip(exact.chunks(32)) {
                let lo = blk_x.iter().cloned().fold(f32::INFINITY, f32::min);
                let hi = blk_x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let step = (hi - lo) / levels;
                for (y, x) in blk_a.iter().zip(blk_x) {
                    let e = (y - x).abs();
                    assert!(e <= 0.5 * step * (1.0 + 1e-5), "{dtype}: {e} > {step}/2");
                    moved += (e > 0.0) as usize;
                }
            }
            assert!(moved > 200, "{dtype}: only {moved} of 256 weights moved");
            // Uniform noise: the RMS is about step/sqrt(12) over the blocks.
        }
        let mut f = vec![0.5f32; 64];
        dither_row(DType::F16, &mut f, &mut row_rng(1, "x", 0));
        assert!(f.iter().all(|&v| v == 0.5), "float tensors get no noise");
    }

    #[test]
    fn dithered_gguf_is_f32_with_the_source_metadata() {
        let (q, exact) = q_row(DType::Q4_1, 64);
        let mut q2 = q.clone();
        q2.extend_from_slice(&q);
        let norm: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut b = GgufBuilder::new();
        b.str("general.architecture", "llama")
            .u32("general.file_type", 3)
            .str_array("tokenizer.ggml.tokens", &["a", "bc"])
            .tensor("w", DType::Q4_1, &[2, 64], q2)
            .tensor("n", DType::F32, &[2], norm.clone());
        let dir = std::env::temp_dir().join(format!("ember-dither-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, dst) = (dir.join("src.gguf"), dir.join("dst.gguf"));
        std::fs::write(&src, b.build()).unwrap();
        let s = dither_gguf(&src, &dst, 42).unwrap();
        assert_eq!((s.tensors, s.dithered, s.dithered_weights), (2, 1, 128));
        let bytes = std::fs::read(&dst).unwrap();
        let g = GgufFile::parse(&bytes).unwrap();
        assert_eq!(g.str("general.architecture").unwrap(), "llama");
        assert_eq!(g.u32("general.file_type").unwrap(), 0);
        let toks = g.opt_array("tokenizer.ggml.tokens").unwrap().unwrap();
        assert_eq!(toks.strings().unwrap(), vec![b"a".as_slice(), b"bc"]);
        assert_eq!(g.get("ember.dither.seed").unwrap().as_u64(), Some(42));
        let w = g.tensor("w").unwrap();
        assert_eq!((w.dtype, w.shape.clone()), (DType::F32, vec![2, 64]));
        let mut row0 = vec![0f32; 64];
        dequantize_row_ref(DType::F32, &w.data[..256], &mut row0);
        let mut want = exact.clone();
        dither_row(DType::Q4_1, &mut want, &mut row_rng(42, "w", 0));
        assert_eq!(row0, want);
        assert_ne!(row0, exact);
        assert_eq!(g.tensor("n").unwrap().data, &norm[..]);
        assert_eq!(g.data_offset % 32, 0);
        // The same seed writes the same file.
        let again = dir.join("again.gguf");
        dither_gguf(&src, &again, 42).unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Bits per tensor from measured sensitivity (`ember convert --quant q4 --calibration`,
//! `--target-bpw B`, `--target-size BYTES`).
//!
//! Every matrix is quantized with each candidate dtype (importance-weighted when calibration
//! statistics are given) and its weighted squared error `E_t(d) = Σ w_j (ŵ − x)²` recorded.
//! Then the sensitivity of the model's output to each matrix is *measured*: the f32 model is
//! run over `SENS_TOKENS` tokens of the calibration text once as it is and once per matrix
//! with only that matrix replaced by its quantization in the cheapest candidate; the mean KL
//! divergence of the logits, divided by that matrix's error, is its sensitivity `s_t`. The
//! KLD of a whole assignment is predicted as `Σ_t s_t E_t(d_t)` (independent, small errors
//! add), and the assignment that minimizes it within the byte budget is found by dynamic
//! programming over the budget (a multiple-choice knapsack, [`assign`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use ember_format::blocks::dequantize_row_ref;
use ember_format::{AlignedBytes, DType, EmberFile};
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{HeapSession, Logits, Model};

use crate::calibrate::Importance;
use crate::error::{Error, Result};
use crate::quant::{self, Recipe};

/// Tokens of the calibration text the sensitivities are measured on (one window).
pub const SENS_TOKENS: usize = 128;

/// The dtypes `--target-bpw` chooses from, cheapest first.
pub const CANDIDATES: [DType; 4] = [DType::IQ4NL, DType::Q5_0, DType::Q5_1, DType::Q8_0];

/// One matrix's measurements.
#[derive(Clone, Debug)]
pub struct Measured {
    pub name: String,
    pub elements: usize,
    /// Per candidate: (dtype, bytes, weighted squared error).
    pub options: Vec<(DType, usize, f64)>,
    /// Measured KLD with the matrix in the cheapest candidate.
    pub kld: f64,
    /// `kld / error` of the cheapest candidate.
    pub sensitivity: f64,
}

/// The result: a dtype per matrix.
#[derive(Clone, Debug)]
pub struct Allocation {
    pub choices: Vec<(String, DType)>,
    pub bytes: usize,
    pub elements: usize,
    pub predicted_kld: f64,
    pub measured: Vec<Measured>,
}

impl Allocation {
    pub fn bits_per_weight(&self) -> f64 {
        8.0 * self.bytes as f64 / self.elements.max(1) as f64
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error(format!("allocating bits: {e}"))
}

/// Weighted squared error of `q` (dtype `d`) against the row-major f32 matrix `x`.
fn weighted_error(d: DType, x: &[f32], cols: usize, q: &[u8], w: Option<&[f32]>) -> f64 {
    let row_bytes = d.row_bytes(cols).expect("whole blocks");
    let mut y = vec![0f32; cols];
    let mut e = 0f64;
    for (xr, qr) in x.chunks_exact(cols).zip(q.chunks_exact(row_bytes)) {
        dequantize_row_ref(d, qr, &mut y);
        for j in 0..cols {
            let diff = f64::from(xr[j] - y[j]);
            e += diff * diff * w.map_or(1.0, |w| f64::from(w[j]));
        }
    }
    e
}

/// log-softmax rows of `logits` (T, V) as f32.
fn log_softmax_rows(logits: &[f32], v: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in logits.chunks_exact(v) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
        let z = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        out.extend(row.iter().map(|&x| (x as f64 - z) as f32));
    }
}

/// Runs `model` over `tokens` (one window, all logits) into log-probs (T, V).
fn run(model: &Model<'_>, tokens: &[u32], out: &mut Vec<f32>) -> Result<()> {
    const BATCH: usize = 64;
    let v = model.config.vocab_size;
    let mut s = HeapSession::with_options(model, tokens.len(), BATCH, Logits::All).map_err(err)?;
    s.set_threads(0);
    let mut logits = Vec::with_capacity(tokens.len() * v);
    for chunk in tokens.chunks(BATCH) {
        logits.extend_from_slice(s.forward_all(chunk).map_err(err)?);
    }
    log_softmax_rows(&logits, v, out);
    Ok(())
}

fn mean_kld(p: &[f32], q: &[f32], v: usize) -> f64 {
    let rows = p.len() / v;
    let mut total = 0f64;
    for (pr, qr) in p.chunks_exact(v).zip(q.chunks_exact(v)) {
        let k: f64 = pr
            .iter()
            .zip(qr)
            .map(|(&a, &b)| (a as f64).exp() * (a as f64 - b as f64))
            .sum();
        total += k.max(0.0);
    }
    total / rows.max(1) as f64
}

/// Saves measurements as JSON (one object per matrix), for [`load`].
pub fn save(measured: &[Measured], path: &Path) -> Result<()> {
    let rows: Vec<serde_json::Value> = measured
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name,
                "elements": m.elements,
                "kld": m.kld,
                "sensitivity": m.sensitivity,
                "options": m.options.iter().map(|(d, b, e)| serde_json::json!([d.name(), b, e])).collect::<Vec<_>>(),
            })
        })
        .collect();
    std::fs::write(path, serde_json::to_vec_pretty(&rows).map_err(err)?)
        .map_err(|e| err(format!("{}: {e}", path.display())))
}

/// Loads what [`save`] wrote; `None` if it does not parse or was made with other candidates.
pub fn load(path: &Path) -> Option<Vec<Measured>> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    rows.iter()
        .map(|r| {
            let options = r["options"]
                .as_array()?
                .iter()
                .map(|o| {
                    Some((
                        DType::from_name(o[0].as_str()?)?,
                        o[1].as_u64()? as usize,
                        o[2].as_f64()?,
                    ))
                })
                .collect::<Option<Vec<_>>>()?;
            if options.iter().map(|o| o.0).ne(CANDIDATES) {
                return None;
            }
            Some(Measured {
                name: r["name"].as_str()?.to_string(),
                elements: r["elements"].as_u64()? as usize,
                options,
                kld: r["kld"].as_f64()?,
                sensitivity: r["sensitivity"].as_f64()?,
            })
        })
        .collect()
}

/// What the allocated matrices may spend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// Bits per weight over the allocated matrices (`--target-bpw`).
    BitsPerWeight(f64),
    /// Bytes of the whole file (`--target-size`): what is not an allocated matrix (the
    /// tokenizer, norms, metadata) is measured on the f32 conversion and subtracted first.
    FileBytes(u64),
    /// The recommended 4-bit recipe's budget (`--quant q4 --calibration`): the bytes of
    /// llama.cpp's most used 4-bit file, Q4_K_M, at its nominal mix: [`FOUR_BIT_BITS`] per
    /// weight and [`FOUR_BIT_HEAD_BITS`] on the output head (the `output` matrix, or a tied
    /// `token_embd`), placed where the measured sensitivities say.
    FourBit,
}

/// Bits per weight of [`Budget::FourBit`] outside the head: Q4_K_M's average over the
/// layers, Q4_K (4.5 bits) with Q6_K (6.5625) for attn_v and ffn_down in half the layers,
/// about 15% of a Llama layer's weights: 4.5 + 0.15 × 2.0625 ≈ 4.8.
pub const FOUR_BIT_BITS: f64 = 4.8;
/// ... and of the output head: Q6_K's 6.5625, as in every llama.cpp 4-bit type.
pub const FOUR_BIT_HEAD_BITS: f64 = 6.5625;

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::BitsPerWeight(b) => write!(f, "--target-bpw {b}"),
            Budget::FileBytes(n) => write!(f, "--target-size {n} bytes"),
            Budget::FourBit => write!(
                f,
                "the 4-bit budget: {FOUR_BIT_BITS} bits/weight, {FOUR_BIT_HEAD_BITS} on the head"
            ),
        }
    }
}

impl Budget {
    /// Bytes for the matrices in `measured`; `overhead` gives the rest of the file's bytes
    /// (asked for [`Budget::FileBytes`] only).
    fn matrix_bytes(
        self,
        measured: &[Measured],
        overhead: impl FnOnce() -> Result<u64>,
    ) -> Result<usize> {
        let bits = |m: &Measured, b: f64| b * m.elements as f64;
        Ok(match self {
            Budget::BitsPerWeight(b) => {
                (measured.iter().map(|m| bits(m, b)).sum::<f64>() / 8.0) as usize
            }
            Budget::FourBit => {
                let tied = !measured.iter().any(|m| m.name == "output.weight");
                let is_head = |n: &str| n == "output.weight" || (tied && n == "token_embd.weight");
                let total: f64 = measured
                    .iter()
                    .map(|m| {
                        let b = if is_head(&m.name) {
                            FOUR_BIT_HEAD_BITS
                        } else {
                            FOUR_BIT_BITS
                        };
                        bits(m, b)
                    })
                    .sum();
                (total / 8.0) as usize
            }
            Budget::FileBytes(target) => {
                let rest = overhead()?;
                target.checked_sub(rest).ok_or_else(|| {
                    err(format!(
                        "--target-size {target} bytes is smaller than the file's tokenizer, norms and metadata alone ({rest} bytes)"
                    ))
                })? as usize
            }
        })
    }
}

/// Bytes of `input`'s conversion under `recipe` that no allocated matrix takes: 1-D
/// tensors, the matrices not allocated (in the recipe's dtype), tokenizer and metadata,
/// measured on the f32 conversion; plus room for alignment and the per-tensor provenance
/// keys a quantized file adds.
fn non_matrix_bytes(input: &Path, recipe: Recipe, measured: &[Measured]) -> Result<u64> {
    let (w, _) = crate::convert::build(input, Some(Recipe::F32), false)?;
    let bytes = AlignedBytes::from(w.to_vec());
    drop(w);
    let file = EmberFile::parse(&bytes).map_err(err)?;
    let allocated: HashSet<&str> = measured.iter().map(|m| m.name.as_str()).collect();
    let mut rest = bytes.len() as u64;
    for t in file.tensors().filter(|t| t.shape().len() >= 2) {
        rest -= t.data.len() as u64;
        if !allocated.contains(t.name) {
            let (d, _) = quant::target_dtype(recipe, t.name, DType::F32, t.shape());
            rest += d.tensor_bytes(t.shape()).unwrap_or(t.data.len()) as u64;
        }
    }
    let slack = 64 * file.tensors().count() as u64 + 256 * measured.len() as u64;
    Ok(rest + slack)
}

/// Measures every matrix of `input` and assigns dtypes within `budget` (see the module
/// docs); the other matrices are written in `recipe`. `text` is the calibration text. With
/// `cache`, the measurements are read from that file when it holds them (same candidates)
/// and written to it otherwise: they do not depend on the budget, so several budgets
/// measure once.
pub fn allocate(
    input: &Path,
    recipe: Recipe,
    text: &Path,
    importance: Option<&Importance>,
    budget: Budget,
    cache: Option<&Path>,
    progress: bool,
) -> Result<Allocation> {
    let measured = match cache.and_then(load) {
        Some(m) => m,
        None => {
            let m = measure(input, text, importance, progress)?;
            if let Some(c) = cache {
                save(&m, c)?;
            }
            m
        }
    };
    let elements: usize = measured.iter().map(|m| m.elements).sum();
    let bytes = budget.matrix_bytes(&measured, || non_matrix_bytes(input, recipe, &measured))?;
    let cheapest: usize = measured.iter().map(|m| m.options[0].1).sum();
    if cheapest > bytes {
        return Err(err(format!(
            "{budget} leaves {:.3} bits/weight for the {} matrices, below the cheapest candidate, {} ({:.3} bits/weight)",
            8.0 * bytes as f64 / elements.max(1) as f64,
            measured.len(),
            CANDIDATES[0].name(),
            8.0 * cheapest as f64 / elements.max(1) as f64,
        )));
    }
    let pick = assign(&measured, bytes);
    let bytes_used: usize = measured
        .iter()
        .zip(&pick)
        .map(|(m, &k)| m.options[k].1)
        .sum();
    let predicted_kld = measured
        .iter()
        .zip(&pick)
        .map(|(m, &k)| m.sensitivity * m.options[k].2)
        .sum();
    Ok(Allocation {
        choices: measured
            .iter()
            .zip(&pick)
            .map(|(m, &k)| (m.name.clone(), m.options[k].0))
            .collect(),
        bytes: bytes_used,
        elements,
        predicted_kld,
        measured,
    })
}

/// Quantizes every matrix in every candidate and measures its sensitivity (module docs).
pub fn measure(
    input: &Path,
    text: &Path,
    importance: Option<&Importance>,
    progress: bool,
) -> Result<Vec<Measured>> {
    let (w, _) = crate::convert::build(input, Some(Recipe::F32), false)?;
    let mut bytes = AlignedBytes::from(w.to_vec());
    drop(w);
    // Matrices: (name, offset, rows, cols).
    let mats: Vec<(String, usize, usize, usize)> = {
        let file = EmberFile::parse(&bytes).map_err(err)?;
        file.tensors()
            .filter(|t| t.shape().len() == 2 && t.dtype == DType::F32)
            .filter(|t| {
                CANDIDATES
                    .iter()
                    .all(|d| d.row_bytes(t.shape()[1]).is_some())
            })
            .map(|t| {
                (
                    t.name.to_string(),
                    t.offset as usize,
                    t.shape()[0],
                    t.shape()[1],
                )
            })
            .collect()
    };
    let (tokens, v) = {
        let file = EmberFile::parse(&bytes).map_err(err)?;
        let tok = Tokenizer::from_file(&file).map_err(err)?;
        let raw = std::fs::read(text).map_err(|e| err(format!("{}: {e}", text.display())))?;
        let mut ids = Vec::new();
        tok.encode(&String::from_utf8_lossy(&raw), &mut ids);
        ids.truncate(SENS_TOKENS);
        if let (true, Some(bos)) = (tok.adds_bos(), tok.bos_id()) {
            if let Some(first) = ids.first_mut() {
                *first = bos;
            }
        }
        let model = Model::load(&file).map_err(err)?;
        (ids, model.config.vocab_size)
    };
    if tokens.len() < 8 {
        return Err(err("the calibration text has fewer than 8 tokens"));
    }
    let mut reference = Vec::new();
    {
        let file = EmberFile::parse(&bytes).map_err(err)?;
        let model = Model::load(&file).map_err(err)?;
        run(&model, &tokens, &mut reference)?;
    }

    let mut measured = Vec::with_capacity(mats.len());
    let mut probe = Vec::new();
    for (i, (name, offset, rows, cols)) in mats.iter().enumerate() {
        let (rows, cols, offset) = (*rows, *cols, *offset);
        let n = rows * cols;
        let x: Vec<f32> = bytemuck::cast_slice::<u8, f32>(&bytes[offset..offset + 4 * n]).to_vec();
        let weights = importance
            .and_then(|imp| imp.weights(name))
            .filter(|w| w.len() == cols);
        let raw: Vec<u8> = bytemuck::cast_slice(&x).to_vec();
        let mut options = Vec::new();
        let mut cheapest: Option<Vec<f32>> = None;
        for &d in &CANDIDATES {
            let q = quant::convert(
                raw.clone(),
                DType::F32,
                d,
                &[rows, cols],
                weights.as_deref(),
            )?;
            let e = weighted_error(d, &x, cols, &q, weights.as_deref());
            if cheapest.is_none() {
                let mut y = vec![0f32; n];
                let rb = d.row_bytes(cols).expect("whole blocks");
                for (yr, qr) in y.chunks_exact_mut(cols).zip(q.chunks_exact(rb)) {
                    dequantize_row_ref(d, qr, yr);
                }
                cheapest = Some(y);
            }
            options.push((d, q.len(), e));
        }
        // The model with only this matrix quantized.
        let y = cheapest.expect("a candidate");
        bytes.as_mut_slice()[offset..offset + 4 * n].copy_from_slice(bytemuck::cast_slice(&y));
        let kld = {
            let file = EmberFile::parse(&bytes).map_err(err)?;
            let model = Model::load(&file).map_err(err)?;
            run(&model, &tokens, &mut probe)?;
            mean_kld(&reference, &probe, v)
        };
        bytes.as_mut_slice()[offset..offset + 4 * n].copy_from_slice(&raw);
        let e0 = options[0].2;
        let sensitivity = if e0 > 0.0 { kld / e0 } else { 0.0 };
        if progress {
            eprint!(
                "\r\x1b[2K  sensitivity [{}/{}] {name}: KLD {kld:.5} at {}",
                i + 1,
                mats.len(),
                CANDIDATES[0]
            );
        }
        measured.push(Measured {
            name: name.clone(),
            elements: n,
            options,
            kld,
            sensitivity,
        });
    }
    if progress {
        eprintln!();
    }
    Ok(measured)
}

/// Budget units of [`assign`]'s table: each option's bytes are rounded up to
/// `budget / KNAPSACK_UNITS`, so the rounding costs at most `matrices / KNAPSACK_UNITS` of
/// the budget (0.2% for 127 matrices) before the greedy pass spends it again.
const KNAPSACK_UNITS: usize = 1 << 16;

/// The option index per matrix minimizing `Σ s_t E_t` within `budget` bytes (module docs):
/// a multiple-choice knapsack, solved by dynamic programming over the budget in units.
/// Exact up to the units, so a large matrix whose next type costs more than the bytes the
/// others leave (Gemma 3's 262,144 × 640 embedding: q5_1 → q8_0 is 52 MB) still gets it
/// when downgrading smaller matrices to pay for it predicts a lower KLD; a Lagrange
/// multiplier only reaches the convex hull's corners and missed that. The bytes the
/// rounding leaves are then spent greedily on the best predicted KLD saved per byte.
pub fn assign(measured: &[Measured], budget: usize) -> Vec<usize> {
    let cost = |m: &Measured, k: usize| m.sensitivity * m.options[k].2;
    let unit = budget.div_ceil(KNAPSACK_UNITS).max(1);
    let cap = budget / unit;
    let units = |bytes: usize| bytes.div_ceil(unit);
    // best[c]: the least predicted KLD of the matrices so far within c units;
    // choice[i * (cap + 1) + c]: matrix i's option there (u8::MAX: nothing fits).
    let mut best = vec![0f64; cap + 1];
    let mut next = vec![0f64; cap + 1];
    let mut choice = vec![u8::MAX; measured.len() * (cap + 1)];
    for (i, m) in measured.iter().enumerate() {
        let row = &mut choice[i * (cap + 1)..(i + 1) * (cap + 1)];
        for c in 0..=cap {
            next[c] = f64::INFINITY;
            for k in 0..m.options.len() {
                let w = units(m.options[k].1);
                if w <= c && best[c - w].is_finite() {
                    let v = best[c - w] + cost(m, k);
                    if v < next[c] {
                        next[c] = v;
                        row[c] = k as u8;
                    }
                }
            }
        }
        std::mem::swap(&mut best, &mut next);
    }
    let mut pick = vec![0usize; measured.len()];
    if !best[cap].is_finite() {
        // Only when rounding up pushed the cheapest options past a budget they meet
        // exactly (the caller checked that): take them.
        return pick;
    }
    let mut c = cap;
    for i in (0..measured.len()).rev() {
        let k = choice[i * (cap + 1) + c] as usize;
        pick[i] = k;
        c -= units(measured[i].options[k].1);
    }
    // Spend what the rounding left: the upgrade saving the most predicted KLD per byte.
    let mut used: usize = measured
        .iter()
        .zip(&pick)
        .map(|(m, &k)| m.options[k].1)
        .sum();
    loop {
        let mut up: Option<(f64, usize, usize)> = None;
        for (i, m) in measured.iter().enumerate() {
            let k = pick[i];
            for k2 in 0..m.options.len() {
                let extra = m.options[k2].1 as i64 - m.options[k].1 as i64;
                let gain = cost(m, k) - cost(m, k2);
                if gain <= 0.0 || extra < 0 || used + extra as usize > budget {
                    continue;
                }
                let ratio = gain / (extra.max(1) as f64);
                if up.is_none_or(|p| ratio > p.0) {
                    up = Some((ratio, i, k2));
                }
            }
        }
        let Some((_, i, k2)) = up else { break };
        used = used + measured[i].options[k2].1 - measured[i].options[pick[i]].1;
        pick[i] = k2;
    }
    pick
}

/// Matrix name → dtype, for [`quant::TypeRules`].
pub fn as_map(a: &Allocation) -> HashMap<String, DType> {
    a.choices.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, s: f64, errs: [f64; 3]) -> Measured {
        Measured {
            name: name.into(),
            elements: 64,
            options: vec![
                (DType::Q4_0, 36, errs[0]),
                (DType::Q5_0, 44, errs[1]),
                (DType::Q8_0, 68, errs[2]),
            ],
            kld: s * errs[0],
            sensitivity: s,
        }
    }

    #[test]
    fn measurements_round_trip_through_the_cache_file() {
        let ms: Vec<Measured> = (0..3)
            .map(|i| Measured {
                name: format!("blk.{i}.ffn_up.weight"),
                elements: 64,
                options: CANDIDATES
                    .iter()
                    .enumerate()
                    .map(|(k, &d)| (d, 36 + 8 * k, 1.0 / (k + 1) as f64))
                    .collect(),
                kld: 0.01 * i as f64,
                sensitivity: 0.01 * i as f64,
            })
            .collect();
        let path = std::env::temp_dir().join(format!("ember-sens-{}.json", std::process::id()));
        save(&ms, &path).unwrap();
        let back = load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in ms.iter().zip(&back) {
            assert_eq!(
                (&a.name, a.elements, &a.options),
                (&b.name, b.elements, &b.options)
            );
            assert_eq!((a.kld, a.sensitivity), (b.kld, b.sensitivity));
        }
    }

    #[test]
    fn assignment_fits_the_budget_and_favours_sensitive_matrices() {
        let ms = vec![
            m("a", 10.0, [1.0, 0.3, 0.01]),
            m("b", 1.0, [1.0, 0.3, 0.01]),
        ];
        // Room for one upgrade to q8_0: the sensitive matrix gets it.
        let p = assign(&ms, 36 + 68);
        assert_eq!(p, vec![2, 0]);
        // Everything cheapest when the budget is tight; everything best when it is ample.
        assert_eq!(assign(&ms, 72), vec![0, 0]);
        assert_eq!(assign(&ms, 10_000), vec![2, 2]);
        // Never above the budget when it can be met.
        for budget in 72..=136 {
            let p = assign(&ms, budget);
            let used: usize = ms.iter().zip(&p).map(|(m, &k)| m.options[k].1).sum();
            assert!(used <= budget, "{budget}: {used}");
        }
    }

    #[test]
    fn assignment_is_the_best_within_the_budget_even_across_a_large_step() {
        // One large matrix whose upgrade is worth more than the others' together: it gets it
        // when the others are downgraded to pay (Gemma 3's embedding, q5_1 -> q8_0).
        let big = Measured {
            elements: 640,
            options: vec![
                (DType::Q4_0, 360, 1.0),
                (DType::Q5_0, 440, 0.3),
                (DType::Q8_0, 680, 0.01),
            ],
            ..m("big", 1.0, [1.0, 0.3, 0.01])
        };
        let ms = vec![
            big,
            m("a", 0.1, [1.0, 0.3, 0.01]),
            m("b", 0.1, [1.0, 0.3, 0.01]),
        ];
        assert_eq!(assign(&ms, 440 + 68 + 68), vec![1, 2, 2]);
        assert_eq!(assign(&ms, 680 + 36 + 36), vec![2, 0, 0]);

        // Against every assignment of small random instances (1-byte units: exact).
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..200 {
            let ms: Vec<Measured> = (0..5)
                .map(|i| {
                    let s = 10f64.powf(3.0 * rnd() - 1.5);
                    let scale = 1 + (rnd() * 8.0) as usize;
                    let mut e = 1.0;
                    let mut bytes = 0;
                    let options = [DType::Q4_0, DType::Q5_0, DType::Q5_1, DType::Q8_0]
                        .into_iter()
                        .map(|d| {
                            bytes += scale * (1 + (rnd() * 20.0) as usize);
                            e *= 0.1 + 0.8 * rnd();
                            (d, bytes, e)
                        })
                        .collect();
                    Measured {
                        options,
                        ..m(&format!("m{i}"), s, [1.0, 1.0, 1.0])
                    }
                })
                .collect();
            let cost = |p: &[usize]| -> f64 {
                ms.iter()
                    .zip(p)
                    .map(|(m, &k)| m.sensitivity * m.options[k].2)
                    .sum()
            };
            let size =
                |p: &[usize]| -> usize { ms.iter().zip(p).map(|(m, &k)| m.options[k].1).sum() };
            let budget = size(&[0; 5]) + (rnd() * 300.0) as usize;
            let mut optimum = f64::INFINITY;
            for code in 0..4usize.pow(5) {
                let p: Vec<usize> = (0..5).map(|i| code / 4usize.pow(i) % 4).collect();
                if size(&p) <= budget {
                    optimum = optimum.min(cost(&p));
                }
            }
            let p = assign(&ms, budget);
            assert!(size(&p) <= budget);
            assert!(
                cost(&p) <= optimum * (1.0 + 1e-12),
                "{} vs {optimum}",
                cost(&p)
            );
        }
    }
}

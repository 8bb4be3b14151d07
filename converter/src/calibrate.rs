//! Calibration for importance-weighted quantization: the input converted to f32 in memory,
//! run by the runtime over a text, with the mean x² of every input channel of every matrix
//! collected through the runtime's `Observer`. A weight that meets large activations
//! matters more: the quantizers weight its squared error by that mean (as llama.cpp's
//! imatrix does).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use ember_format::{AlignedBytes, EmberFile};
use ember_runtime::model::Observer;
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{HeapSession, Logits, Model};

use crate::error::Result;
use crate::quant::Recipe;

/// Per-input-channel statistics of each matrix.
#[derive(Clone, Debug, Default)]
pub struct Importance {
    /// The calibration text's file name (provenance).
    pub source: String,
    /// Tokens the model was run over.
    pub tokens: usize,
    /// Tensor name → mean x² per input column.
    pub columns: HashMap<String, Vec<f32>>,
}

impl Importance {
    /// Per-element quantization weights for the matrix `name`: the mean x² of each column,
    /// floored at 1% of its mean so no column is ignored entirely.
    pub fn weights(&self, name: &str) -> Option<Vec<f32>> {
        let c = self.columns.get(name)?;
        let mean = c.iter().map(|&v| v as f64).sum::<f64>() / c.len().max(1) as f64;
        let floor = (mean * 0.01) as f32;
        Some(c.iter().map(|&v| v.max(floor)).collect())
    }
}

/// A matrix as the observer names it: (layer, weight), layer None for the head.
type Key = (Option<usize>, &'static str);

/// Sums of x² per channel and the rows seen, per matrix.
#[derive(Default)]
struct Stats {
    sums: Mutex<HashMap<Key, (Vec<f64>, usize)>>,
}

impl Observer for Stats {
    fn matmul_input(&self, layer: Option<usize>, weight: &'static str, x: &[f32], t: usize) {
        if t == 0 {
            return;
        }
        let cols = x.len() / t;
        let mut sums = self.sums.lock().expect("calibration stats");
        let (acc, n) = sums
            .entry((layer, weight))
            .or_insert_with(|| (vec![0f64; cols], 0));
        if acc.len() != cols {
            return;
        }
        for row in x.chunks_exact(cols) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += (v as f64) * (v as f64);
            }
        }
        *n += t;
    }
}

/// Tokens per window while calibrating.
pub const DEFAULT_CTX: usize = 512;

/// Runs the f32 conversion of `input` over the first `max_tokens` tokens of `text` in
/// windows of `ctx` tokens (each starting fresh, with BOS where the model adds it).
pub fn calibrate(
    input: &Path,
    text: &Path,
    max_tokens: usize,
    ctx: usize,
    progress: bool,
) -> Result<Importance> {
    let (w, _) = crate::convert::build(input, Some(Recipe::F32), false)?;
    let bytes = AlignedBytes::from(w.to_vec());
    let file = EmberFile::parse(&bytes).map_err(|e| crate::Error(format!("calibration: {e}")))?;
    let model = Model::load(&file).map_err(|e| crate::Error(format!("calibration: {e}")))?;
    let tokenizer =
        Tokenizer::from_file(&file).map_err(|e| crate::Error(format!("calibration: {e}")))?;
    let raw = std::fs::read(text).map_err(|e| crate::Error(format!("{}: {e}", text.display())))?;
    let s = String::from_utf8_lossy(&raw);
    let mut tokens = Vec::new();
    tokenizer.encode(&s, &mut tokens);
    tokens.truncate(max_tokens);
    let ctx = ctx.min(model.config.context_length).max(2);
    if tokens.len() < 2 {
        crate::bail!(
            "{}: calibration text has fewer than 2 tokens",
            text.display()
        );
    }

    const BATCH: usize = 64;
    let stats = Stats::default();
    let mut session = HeapSession::with_options(&model, ctx, BATCH, Logits::All)
        .map_err(|e| crate::Error(format!("calibration: {e}")))?;
    session.set_threads(0);
    session.set_observer(&stats);
    let windows = tokens.len().div_ceil(ctx);
    for (i, window) in tokens.chunks(ctx).enumerate() {
        let mut window = window.to_vec();
        if let (true, Some(bos)) = (tokenizer.adds_bos(), tokenizer.bos_id()) {
            window[0] = bos;
        }
        session.reset();
        for chunk in window.chunks(BATCH) {
            // All logits: the output head then sees every position, as the others do.
            session
                .forward_all(chunk)
                .map_err(|e| crate::Error(format!("calibration: {e}")))?;
        }
        if progress {
            eprint!("\r  calibrating: window {}/{windows}", i + 1);
        }
    }
    if progress {
        eprintln!();
    }
    drop(session);

    let has_output = file.tensor("output.weight").is_some();
    let mut columns = HashMap::new();
    for ((layer, weight), (sums, n)) in stats.sums.into_inner().expect("calibration stats") {
        let name = match layer {
            Some(l) => format!("blk.{l}.{weight}.weight"),
            None if weight == "output" && !has_output => "token_embd.weight".to_string(),
            None => format!("{weight}.weight"),
        };
        let mean = sums.iter().map(|&s| (s / n.max(1) as f64) as f32).collect();
        columns.insert(name, mean);
    }
    Ok(Importance {
        source: text
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        tokens: tokens.len(),
        columns,
    })
}

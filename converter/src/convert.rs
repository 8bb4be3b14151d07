//! The top level: detect the input, plan, convert tensor by tensor, write the `.ember` file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ember_format::{DType, Layout, Writer};

use crate::calibrate::Importance;
use crate::error::{Context, Result};
use crate::import::{gguf::GgufSource, hf::HfSource};
use crate::plan::Plan;
use crate::quant::{self, Recipe};
use crate::quant_alloc::Budget;

/// What an input path turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A Hugging Face checkpoint directory (also the trainer's output).
    HfDir,
    Gguf,
}

impl InputKind {
    /// The recipe used when `--quant` is not given: GGUF blocks are kept as they are; HF
    /// checkpoints (usually f32 or bf16) become f16, which the runtime multiplies directly.
    pub fn default_recipe(self) -> Recipe {
        match self {
            InputKind::HfDir => Recipe::F16,
            InputKind::Gguf => Recipe::Same,
        }
    }
}

/// Classifies `input`; a `config.json` or `*.safetensors` file stands for its directory.
pub fn detect(input: &Path) -> Result<(InputKind, PathBuf)> {
    let meta = std::fs::metadata(input).context(format!("{}", input.display()))?;
    if meta.is_dir() {
        return Ok((InputKind::HfDir, input.to_path_buf()));
    }
    let mut magic = [0u8; 4];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(input).context(format!("opening {}", input.display()))?;
        f.read(&mut magic)
            .context(format!("reading {}", input.display()))?
    };
    if n == 4 && &magic == crate::gguf::MAGIC {
        return Ok((InputKind::Gguf, input.to_path_buf()));
    }
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "config.json" || name.ends_with(".safetensors") {
        let dir = match input.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        return Ok((InputKind::HfDir, dir));
    }
    crate::bail!(
        "{}: not a GGUF file (bad magic) and not a Hugging Face checkpoint directory",
        input.display()
    )
}

/// What was converted.
#[derive(Clone, Debug)]
pub struct Summary {
    pub recipe: Recipe,
    pub tensors: usize,
    /// Elements of all tensors.
    pub params: u64,
    /// Bytes of tensor data (without padding).
    pub tensor_bytes: u64,
    /// Bytes of the whole file (0 until written).
    pub file_bytes: u64,
    pub seconds: f64,
    /// Matrices that could not take the recipe's block type and were written as f16.
    pub fallbacks: Vec<String>,
    /// Matrices written in the rows16 layout.
    pub rows16: usize,
}

impl Summary {
    pub fn bits_per_weight(&self) -> f64 {
        if self.params == 0 {
            0.0
        } else {
            self.tensor_bytes as f64 * 8.0 / self.params as f64
        }
    }
}

/// Progress on stderr: a rewritten line on a terminal, a few lines otherwise.
struct Progress {
    on: bool,
    tty: bool,
    total: usize,
    last_pct: usize,
}

impl Progress {
    fn step(&mut self, n: usize, name: &str) {
        if !self.on {
            return;
        }
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K  [{n}/{}] {name}", self.total);
            if n == self.total {
                let _ = writeln!(e);
            }
        } else {
            let pct = n * 100 / self.total.max(1);
            if pct / 25 > self.last_pct / 25 || n == self.total {
                let _ = writeln!(e, "  [{n}/{}]", self.total);
                self.last_pct = pct;
            }
        }
    }
}

/// Builds the `.ember` contents of `input` in memory. `recipe` `None` means the input
/// kind's default. `progress` prints to stderr.
pub fn build(input: &Path, recipe: Option<Recipe>, progress: bool) -> Result<(Writer, Summary)> {
    build_with(input, recipe, None, progress)
}

/// [`build`] with calibration statistics weighting the quantization error
/// ([`crate::calibrate`]).
pub fn build_with(
    input: &Path,
    recipe: Option<Recipe>,
    importance: Option<&Importance>,
    progress: bool,
) -> Result<(Writer, Summary)> {
    build_ruled(
        input,
        recipe,
        importance,
        &quant::TypeRules::default(),
        progress,
    )
}

/// [`build_with`] with per-tensor dtype rules on top of the recipe.
pub fn build_ruled(
    input: &Path,
    recipe: Option<Recipe>,
    importance: Option<&Importance>,
    rules: &quant::TypeRules,
    progress: bool,
) -> Result<(Writer, Summary)> {
    let start = Instant::now();
    let (kind, path) = detect(input)?;
    let recipe = recipe.unwrap_or(kind.default_recipe());
    // `general.source`: the file name of the input as given (a directory's own name).
    let source = input
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| input.display().to_string());
    let label = input.display().to_string();
    match kind {
        InputKind::HfDir => {
            let src = HfSource::open(&path)?;
            let plan = src.plan()?;
            write_plan(
                plan, &source, &label, recipe, importance, rules, progress, start,
            )
        }
        InputKind::Gguf => {
            let src = GgufSource::open(&path)?;
            let plan = src.plan()?;
            write_plan(
                plan, &source, &label, recipe, importance, rules, progress, start,
            )
        }
    }
}

/// [`build`] for a GGUF file already in memory (tests, fuzzing); `name` stands for the file
/// name in `general.source` and messages.
pub fn build_gguf_bytes(bytes: &[u8], name: &str, recipe: Recipe) -> Result<(Writer, Summary)> {
    let start = Instant::now();
    let g = crate::gguf::GgufFile::parse(bytes)?;
    let stem = name.strip_suffix(".gguf").unwrap_or(name);
    let plan = crate::import::gguf::plan(g, stem)?;
    let rules = quant::TypeRules::default();
    write_plan(plan, name, name, recipe, None, &rules, false, start)
}

#[allow(clippy::too_many_arguments)]
fn write_plan(
    plan: Plan<'_>,
    source: &str,
    label: &str,
    recipe: Recipe,
    importance: Option<&Importance>,
    rules: &quant::TypeRules,
    progress: bool,
    start: Instant,
) -> Result<(Writer, Summary)> {
    plan.check_against_config()?;
    if let Some(tv) = plan.tokenizer.vocab_size() {
        if tv > plan.config.vocab_size {
            crate::bail!(
                "the tokenizer has {tv} tokens but the model's vocabulary is {}",
                plan.config.vocab_size
            );
        }
    }

    let mut w = Writer::new();
    plan.config.write(&mut w)?;
    w.set_str("general.source", source);
    w.set_str(
        "general.converter",
        &format!("ember-convert {}", env!("CARGO_PKG_VERSION")),
    );
    w.set_str("general.quantization", recipe.name());
    if rules.is_empty() {
        w.set_str("quantization.recipe", &recipe.describe());
    } else {
        let origin = rules.origin.as_deref().unwrap_or("--tensor-type");
        w.set_str(
            "quantization.recipe",
            &format!(
                "{}; per-tensor types: {} ({origin})",
                recipe.describe(),
                rules.rules.len()
            ),
        );
    }
    if let Some(imp) = importance {
        w.set_str(
            "quantization.calibration",
            &format!(
                "{}: mean x² per input channel over {} tokens",
                imp.source, imp.tokens
            ),
        );
    }
    plan.tokenizer.write(&mut w);

    let total = plan.tensors.len();
    let mut prog = Progress {
        on: progress,
        tty: std::io::stderr().is_terminal(),
        total,
        last_pct: 0,
    };
    if progress {
        eprintln!(
            "converting {total} tensors from {label} ({}, --quant {recipe}) ...",
            plan.config.arch.name()
        );
    }
    let mut summary = Summary {
        recipe,
        tensors: total,
        params: 0,
        tensor_bytes: 0,
        file_bytes: 0,
        seconds: 0.0,
        fallbacks: Vec::new(),
        rows16: 0,
    };
    for (i, t) in plan.tensors.iter().enumerate() {
        let (dst, fallback) = rules.target_dtype(recipe, &t.name, t.dtype, &t.shape);
        if fallback {
            summary.fallbacks.push(t.name.clone());
        }
        let data = t.materialize()?;
        let weights = importance
            .filter(|_| dst.is_quantized() && dst != t.dtype)
            .and_then(|imp| imp.weights(&t.name))
            .filter(|w| Some(&w.len()) == t.shape.last());
        if t.shape.len() >= 2 {
            w.set_str(
                &format!("quantization.tensor.{}", t.name),
                &quant::method(t.dtype, dst, weights.is_some()),
            );
        }
        let data = quant::convert(data, t.dtype, dst, &t.shape, weights.as_deref())
            .map_err(|e| crate::Error(format!("tensor {}: {e}", t.name)))?;
        summary.params += t.elements() as u64;
        summary.tensor_bytes += data.len() as u64;
        w.add_tensor(&t.name, dst, &t.shape, data)
            .map_err(|e| crate::Error(format!("tensor {}: {e}", t.name)))?;
        prog.step(i + 1, &t.name);
    }
    if progress && !summary.fallbacks.is_empty() {
        eprintln!(
            "note: {} matrices have rows that are not whole {} blocks and were written as {}: {}",
            summary.fallbacks.len(),
            recipe,
            DType::F16,
            summary.fallbacks.join(", ")
        );
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok((w, summary))
}

/// Options of `ember convert`.
#[derive(Clone, Debug)]
pub struct Options {
    pub input: PathBuf,
    pub output: PathBuf,
    /// `None`: the input kind's default ([`InputKind::default_recipe`]).
    pub quant: Option<Recipe>,
    /// Replace an existing output file.
    pub force: bool,
    /// Progress and notes on stderr.
    pub progress: bool,
    /// A text to run the model over first, weighting each matrix's quantization error by
    /// the activations its columns meet ([`crate::calibrate`]).
    pub calibration: Option<PathBuf>,
    /// At most this many calibration tokens.
    pub calibration_tokens: usize,
    /// `Rows16` (the default of `ember convert`) stores every block-quantized matrix with a
    /// multiple of 16 rows in the kernels' interleaved layout (but a Q6_K head:
    /// `Writer::use_rows16`); `RowMajor` keeps GGUF order.
    pub layout: Layout,
    /// Per-tensor dtype overrides on top of the recipe (`--tensor-type`).
    pub rules: quant::TypeRules,
    /// A byte budget: dtypes per matrix from measured sensitivity on the calibration text
    /// ([`crate::quant_alloc`]; needs `calibration`). `None` with recipe `q4` and a
    /// calibration text: [`Budget::FourBit`].
    pub budget: Option<Budget>,
    /// A file for the budget's measurements (read when it holds them, else written).
    pub sensitivity_cache: Option<PathBuf>,
}

/// Converts `opts.input` and writes `opts.output` (via a temporary file renamed into place).
pub fn convert(opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    if opts.output.exists() && !opts.force {
        crate::bail!(
            "{} already exists (use --force to overwrite)",
            opts.output.display()
        );
    }
    if opts.output.is_dir() {
        crate::bail!("{} is a directory", opts.output.display());
    }
    let importance = match &opts.calibration {
        Some(text) => {
            if opts.progress {
                eprintln!(
                    "calibrating on {} (up to {} tokens) ...",
                    text.display(),
                    opts.calibration_tokens
                );
            }
            Some(crate::calibrate::calibrate(
                &opts.input,
                text,
                opts.calibration_tokens,
                crate::calibrate::DEFAULT_CTX,
                opts.progress,
            )?)
        }
        None => None,
    };
    let mut rules = opts.rules.clone();
    // The recommended 4-bit recipe, given a text to measure on, places its bytes by
    // measurement (docs/QUANTIZATION.md "Bits where they matter").
    let budget = opts.budget.or(
        (opts.quant == Some(Recipe::Q4) && opts.calibration.is_some()).then_some(Budget::FourBit),
    );
    if let Some(budget) = budget {
        let Some(text) = &opts.calibration else {
            crate::bail!(
                "--target-bpw and --target-size need --calibration (the sensitivities are measured on it)"
            );
        };
        if opts.progress {
            eprintln!("measuring each matrix's sensitivity for {budget} ...");
        }
        let a = crate::quant_alloc::allocate(
            &opts.input,
            opts.quant.unwrap_or(Recipe::Q4),
            text,
            importance.as_ref(),
            budget,
            opts.sensitivity_cache.as_deref(),
            opts.progress,
        )?;
        if opts.progress {
            let mut counts: std::collections::BTreeMap<DType, usize> = Default::default();
            for (_, d) in &a.choices {
                *counts.entry(*d).or_default() += 1;
            }
            eprintln!(
                "allocated {:.3} bits/weight over {} matrices ({counts:?}); predicted KLD {:.5}",
                a.bits_per_weight(),
                a.choices.len(),
                a.predicted_kld
            );
        }
        rules.origin = Some(format!(
            "{:.3} bits/weight over {} matrices placed by measured sensitivity ({budget})",
            a.bits_per_weight(),
            a.choices.len()
        ));
        // Explicit --tensor-type rules still win over the allocation.
        rules.rules.extend(a.choices);
    }
    let (mut w, mut summary) = build_ruled(
        &opts.input,
        opts.quant,
        importance.as_ref(),
        &rules,
        opts.progress,
    )?;
    if opts.layout == Layout::Rows16 {
        summary.rows16 = w.use_rows16();
    }
    summary.file_bytes = w
        .write_file(&opts.output)
        .context(format!("writing {}", opts.output.display()))?;
    if let Some(Budget::FileBytes(target)) = budget {
        // The non-matrix bytes are estimated before quantizing; say so if they were short.
        if summary.file_bytes > target {
            eprintln!(
                "warning: {} is {} bytes, {} over --target-size",
                opts.output.display(),
                summary.file_bytes,
                summary.file_bytes - target
            );
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

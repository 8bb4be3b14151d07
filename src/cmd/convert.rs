//! `ember convert`: a Hugging Face checkpoint directory or a GGUF file to `.ember`.
use std::path::{Path, PathBuf};

use ember_convert::{Options, Recipe};
use ember_format::Layout;

use super::CmdResult;

#[derive(clap::Args)]
#[command(after_help = "\
Inputs:
  A Hugging Face checkpoint directory (config.json, model.safetensors or shards,
  tokenizer.json): Llama 2/3, Mistral, SmolLM, TinyLlama, Qwen2, GPT-2, and the output
  of `ember train`. Or a GGUF v2/v3 file of the llama architecture.

Quantization (--quant):
  f32, f16, bf16    every matrix in that type
  q8_0              every matrix q8_0
  q4_0, q4_1, q4_z, iq4_nl, q5_0, q5_1
                    the per-layer matrices in that type, the token embedding and output
                    head in q8_0 (as llama.cpp); q4_z is Ember's 4.5-bit affine type
  q4                the recommended 4-bit recipe (q4_z; see docs/QUANTIZATION.md)
  same              keep each matrix's source type byte for byte (GGUF blocks are copied)
  Block types are written by a least-squares search over candidate scales per block; a
  matrix whose rows are not multiples of 32 is written as f16 instead (listed on stderr).
  --calibration TEXT runs the f32 model over TEXT first and weights each matrix's
  quantization error by the mean x² of the activations its columns meet.
  --tensor-type PATTERN=TYPE overrides the type of matching matrices; --target-bpw B
  (with --calibration) chooses each matrix's type from its measured sensitivity.
  Norm weights and biases are always f32. Re-quantizing a quantized GGUF dequantizes it
  exactly to f32 first; a matrix already in the target type is copied unchanged.
  Default: `same` for GGUF input, `f16` for Hugging Face input.

Dithered base (--dither SEED): instead of a .ember file, writes OUTPUT as an f32 GGUF:
  the exact f32 dequantization of a quantized GGUF plus seeded uniform noise of ±half a
  quantization step of each weight's source block (step = block range / (2^bits - 1)),
  same metadata and tokenizer. A base for comparing quantizers that lies on no type's grid,
  which llama.cpp's tools read too (docs/QUANTIZATION.md).

Layout (--layout): rows16 (default) stores each block-quantized matrix whose row count is a
  multiple of 16 in groups of 16 interleaved rows, so the kernels stream it without
  shuffles; the bytes are the same blocks, moved (docs/FORMAT.md). row-major keeps GGUF order.

Example:
  ember convert SmolLM2-135M-Instruct.Q4_1.gguf -o smollm2.ember
  ember convert ./my-hf-model -o model.ember --quant q4 --calibration wiki.txt
  ember convert gemma-3-270m-q4_k_m.gguf -o gemma-dithered.gguf --dither 1")]
pub struct Args {
    /// Hugging Face checkpoint directory or GGUF file.
    pub input: PathBuf,
    /// Output .ember file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Weight type: f32, f16, bf16, q8_0, q5_1, q5_0, iq4_nl, q4_0, q4_1, q4_z, q4 or same [default: same for GGUF, f16 for HF].
    #[arg(short, long, value_parser = parse_recipe)]
    pub quant: Option<Recipe>,
    /// Overwrite OUTPUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// No progress on stderr (the summary line is still printed).
    #[arg(long)]
    pub quiet: bool,
    /// Calibration text (UTF-8) for importance-weighted quantization.
    #[arg(long, value_name = "TEXT")]
    pub calibration: Option<PathBuf>,
    /// At most this many calibration tokens.
    #[arg(long, default_value_t = 8192)]
    pub calibration_tokens: usize,
    /// Weight layout: rows16 (block-quantized matrices interleaved in groups of 16 rows
    /// for the SIMD kernels) or row-major (GGUF order).
    #[arg(long, default_value = "rows16", value_parser = parse_layout)]
    pub layout: Layout,
    /// Per-tensor type: PATTERN=TYPE (repeatable) gives every matrix whose name contains
    /// PATTERN that dtype (q8_0, q5_1, q5_0, iq4_nl, q4_z, q4_1, q4_0, f16), e.g.
    /// token_embd=q5_0 or blk.3.ffn_down=q8_0.
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE", value_parser = ember_convert::quant::TypeRules::parse_rule)]
    pub tensor_type: Vec<(String, ember_format::DType)>,
    /// Bits per weight over all matrices (embedding and head included): each matrix's type
    /// (iq4_nl, q5_0, q5_1, q8_0) is chosen from its measured effect on the output over the
    /// calibration text. Needs --calibration.
    #[arg(long, value_name = "BPW", requires = "calibration")]
    pub target_bpw: Option<f64>,
    /// Keep --target-bpw's measurements in FILE (JSON) and reuse them when it exists (they
    /// do not depend on the target; delete FILE after changing the input or calibration).
    #[arg(long, value_name = "FILE", requires = "target_bpw")]
    pub sensitivity_cache: Option<PathBuf>,
    /// Write OUTPUT as a dithered f32 GGUF of the (quantized GGUF) INPUT with this seed.
    #[arg(long, value_name = "SEED", conflicts_with_all = ["quant", "calibration"])]
    pub dither: Option<u64>,
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    match s {
        "rows16" => Ok(Layout::Rows16),
        "row-major" => Ok(Layout::RowMajor),
        _ => Err(format!("unknown layout '{s}' (choose rows16 or row-major)")),
    }
}

fn parse_recipe(s: &str) -> Result<Recipe, String> {
    Recipe::from_name(&s.to_ascii_lowercase()).ok_or_else(|| {
        let names: Vec<&str> = Recipe::ALL.iter().map(|r| r.name()).collect();
        format!("unknown recipe '{s}' (choose one of: {})", names.join(", "))
    })
}

/// Checks that OUTPUT can be written before converting (which may take minutes).
fn check_output(out: &Path, force: bool) -> Result<(), String> {
    let shown = out.display();
    if out.is_dir() {
        return Err(format!("{shown} is a directory: give -o a file name"));
    }
    if out.exists() && !force {
        return Err(format!("{shown} exists (--force overwrites it)"));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "{shown}: the directory {} does not exist",
            parent.display()
        ));
    }
    let probe = parent.join(format!(".ember-write-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "{shown}: cannot write in {}: {e}",
            parent.display()
        )),
    }
}

pub fn run(args: Args) -> CmdResult {
    check_output(&args.output, args.force)?;
    if let Some(seed) = args.dither {
        let s = ember_convert::dither::dither_gguf(&args.input, &args.output, seed)?;
        eprintln!(
            "wrote {}: {} tensors in f32, {} dithered ({} weights, noise rms {:.3e}), {:.1} MB, {:.2} s",
            args.output.display(),
            s.tensors,
            s.dithered,
            s.dithered_weights,
            s.noise_rms,
            s.file_bytes as f64 / 1e6,
            s.seconds
        );
        return Ok(());
    }
    let summary = ember_convert::convert(&Options {
        input: args.input.clone(),
        output: args.output.clone(),
        quant: args.quant,
        force: args.force,
        progress: !args.quiet,
        calibration: args.calibration.clone(),
        calibration_tokens: args.calibration_tokens,
        layout: args.layout,
        rules: ember_convert::quant::TypeRules {
            rules: args.tensor_type.clone(),
        },
        target_bpw: args.target_bpw,
        sensitivity_cache: args.sensitivity_cache.clone(),
    })?;
    eprintln!(
        "wrote {}: {} tensors ({} in rows16), {} parameters, {:.1} MB, {:.2} bits/weight (--quant {}), {:.2} s",
        args.output.display(),
        summary.tensors,
        summary.rows16,
        summary.params,
        summary.file_bytes as f64 / 1e6,
        summary.bits_per_weight(),
        summary.recipe,
        summary.seconds
    );
    Ok(())
}

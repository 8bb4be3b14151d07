//! `ember convert`: a Hugging Face checkpoint directory or a GGUF file to `.ember`.
use std::path::{Path, PathBuf};

use ember_convert::quant_alloc::Budget;
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
  q4                the recommended 4-bit recipe (docs/QUANTIZATION.md): q4_z per-layer
                    matrices, q8_0 embedding/head; with --calibration, the bytes of
                    llama.cpp's Q4_K_M mix (4.8 bits/weight, 6.5625 on the output head)
                    placed by measured sensitivity (as --target-bpw, below)
  same              keep each matrix's source type byte for byte (GGUF blocks are copied)
  Block types are written by a least-squares search over candidate scales per block; a
  matrix whose rows are not multiples of 32 is written as f16 instead (listed on stderr).
  --calibration TEXT runs the f32 model over TEXT first and weights each matrix's
  quantization error by the mean x² of the activations its columns meet.
  --tensor-type PATTERN=TYPE overrides the type of matching matrices. With --calibration,
  --target-bpw B or --target-size SIZE chooses each matrix's type (iq4_nl, q5_0, q5_1,
  q8_0) from its measured effect on the output within that budget.
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
  shuffles; the bytes are the same blocks, moved (docs/FORMAT.md). A Q6_K output head stays
  row-major (its row dot is faster for one token at a time). row-major keeps GGUF order.

Example:
  ember convert SmolLM2-135M-Instruct.Q4_1.gguf -o smollm2.ember
  ember convert ./my-hf-model -o model.ember --quant q4 --calibration wiki.txt
  ember convert base.gguf -o small.ember --quant q4 --calibration wiki.txt --target-size 240.9MB
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
    #[arg(long, value_name = "BPW", requires = "calibration", value_parser = parse_bpw)]
    pub target_bpw: Option<f64>,
    /// As --target-bpw, for a whole file of at most SIZE bytes (e.g. 240.9MB, 230MiB,
    /// 1.2GB, 250000000): to match or undercut a file you have.
    #[arg(long, value_name = "SIZE", requires = "calibration", conflicts_with = "target_bpw", value_parser = parse_size)]
    pub target_size: Option<u64>,
    /// Keep the sensitivity measurements (of --target-bpw, --target-size or `--quant q4
    /// --calibration`) in FILE (JSON) and reuse them when it exists (they do not depend on
    /// the budget; delete FILE after changing the input or calibration).
    #[arg(long, value_name = "FILE", requires = "calibration")]
    pub sensitivity_cache: Option<PathBuf>,
    /// Write OUTPUT as a dithered f32 GGUF of the (quantized GGUF) INPUT with this seed.
    #[arg(long, value_name = "SEED", conflicts_with_all = ["quant", "calibration"])]
    pub dither: Option<u64>,
}

fn parse_bpw(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(b) if b.is_finite() && b > 0.0 && b <= 32.0 => Ok(b),
        _ => Err(format!(
            "'{s}' is not a number of bits per weight in (0, 32]"
        )),
    }
}

/// A size in bytes: a number with an optional unit (B, kB, MB, GB in powers of 1000; KiB,
/// MiB, GiB in powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "'{s}': unknown unit '{u}' (B, kB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let x: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 240.9MB or 250000000"))?;
    let bytes = x * scale;
    if !(1.0..1e15).contains(&bytes) {
        return Err(format!("'{s}' is not a size between 1 byte and 1 PB"));
    }
    Ok(bytes as u64)
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
            origin: None,
        },
        budget: match (args.target_bpw, args.target_size) {
            (Some(b), _) => Some(Budget::BitsPerWeight(b)),
            (None, Some(n)) => Some(Budget::FileBytes(n)),
            (None, None) => None,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bits_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_size("240.9MB"), Ok(240_900_000));
        assert_eq!(parse_size("250000000"), Ok(250_000_000));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5kb"), Ok(1500));
        for bad in ["", "MB", "12XB", "-5MB", "0", "1e3", "nan", "1..2MB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bpw("6.75"), Ok(6.75));
        for bad in ["0", "-1", "33", "inf", "NaN", "x"] {
            assert!(parse_bpw(bad).is_err(), "{bad}");
        }
    }
}

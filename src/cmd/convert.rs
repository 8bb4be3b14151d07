//! `ember convert`: a Hugging Face checkpoint directory or a GGUF file to `.ember`.
use std::path::PathBuf;

use ember_convert::{Options, Recipe};

use super::CmdResult;

#[derive(clap::Args)]
#[command(after_help = "\
Inputs:
  A Hugging Face checkpoint directory (config.json, model.safetensors or shards,
  tokenizer.json): Llama 2/3, Mistral, SmolLM, TinyLlama, Qwen2, GPT-2, and the output
  of `ember train`. Or a GGUF v2/v3 file of the llama architecture.

Quantization (--quant):
  f32, f16, bf16    every matrix in that type
  q8_0, q4_0, q4_1  ggml block types (reference quantizers); a matrix whose rows are not
                    multiples of 32 is written as f16 instead (listed on stderr)
  same              keep each matrix's source type byte for byte (GGUF blocks are copied)
  Norm weights and biases are always f32. Re-quantizing a quantized GGUF dequantizes it
  exactly to f32 first; a matrix already in the target type is copied unchanged.
  Default: `same` for GGUF input, `f16` for Hugging Face input.")]
pub struct Args {
    /// Hugging Face checkpoint directory or GGUF file.
    pub input: PathBuf,
    /// Output .ember file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Weight type: f32, f16, bf16, q8_0, q4_0, q4_1 or same [default: same for GGUF, f16 for HF].
    #[arg(short, long, value_parser = parse_recipe)]
    pub quant: Option<Recipe>,
    /// Overwrite OUTPUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// No progress on stderr (the summary line is still printed).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_recipe(s: &str) -> Result<Recipe, String> {
    Recipe::from_name(&s.to_ascii_lowercase()).ok_or_else(|| {
        let names: Vec<&str> = Recipe::ALL.iter().map(|r| r.name()).collect();
        format!("unknown recipe '{s}' (choose one of: {})", names.join(", "))
    })
}

pub fn run(args: Args) -> CmdResult {
    let summary = ember_convert::convert(&Options {
        input: args.input.clone(),
        output: args.output.clone(),
        quant: args.quant,
        force: args.force,
        progress: !args.quiet,
    })?;
    eprintln!(
        "wrote {}: {} tensors, {} parameters, {:.1} MB, {:.2} bits/weight (--quant {}), {:.2} s",
        args.output.display(),
        summary.tensors,
        summary.params,
        summary.file_bytes as f64 / 1e6,
        summary.bits_per_weight(),
        summary.recipe,
        summary.seconds
    );
    Ok(())
}

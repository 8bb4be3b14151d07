//! The whole path in one program: train a small character-level model on a text, convert
//! the checkpoint to a q8_0 `.ember` file, and generate from it with the runtime.
//!
//!     cargo run --release --example train_convert_generate -- ../shared/data/tinyshakespeare.txt
//!
//! The same steps on the command line:
//!     ember train --data corpus.txt --out run --tokenizer char --layers 4 --dim 128 --steps 300
//!     ember convert run -o run/model.ember --quant q8_0
//!     ember run run/model.ember -p "ROMEO:" -n 200

use std::path::PathBuf;

use ember_convert::Recipe;
use ember_runtime::generate::Generator;
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{HeapSession, MappedFile, Model, SamplerConfig};
use ember_train::train::{train, TrainOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/tinyshakespeare.txt"));
    let out = std::env::temp_dir().join("ember-example-run");

    // 1. Train: a 4-layer character model, a few hundred steps (about a minute on 2 cores).
    let opts = TrainOptions {
        data,
        out: out.clone(),
        steps: 300,
        eval_every: 100,
        force: true,
        ..TrainOptions::default()
    };
    let metrics = train(&opts)?;
    println!(
        "trained {} steps: validation loss {:.3}",
        metrics.steps, metrics.val_loss
    );

    // 2. Convert the Hugging Face-layout checkpoint to one q8_0 file.
    let model_path = out.join("model.ember");
    let (writer, summary) = ember_convert::build(&out, Some(Recipe::Q8_0), false)?;
    writer.write_file(&model_path)?;
    println!(
        "converted: {} tensors, {:.2} bits/weight",
        summary.tensors,
        summary.bits_per_weight()
    );

    // 3. Generate: map the file, load, sample 300 characters.
    let mapped = MappedFile::open(&model_path)?;
    let file = mapped.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;
    let mut prompt = Vec::new();
    tokenizer.encode("ROMEO:\n", &mut prompt);
    let mut session = HeapSession::new(&model, model.config.context_length)?;
    let sampling = SamplerConfig {
        temperature: 0.8,
        ..SamplerConfig::default()
    };
    let mut gen = Generator::new(&mut session, &tokenizer, sampling, &[]);
    gen.prefill(&prompt)?;
    println!("ROMEO:");
    let mut emit = |t: &str| print!("{t}");
    for _ in prompt.len()..model.config.context_length {
        if gen.next(&mut emit)?.is_none() {
            break;
        }
    }
    gen.finish(&mut emit);
    println!();
    Ok(())
}

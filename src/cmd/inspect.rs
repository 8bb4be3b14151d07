//! `ember inspect FILE [--json] [--verify]`: what a `.ember` file holds.

use std::path::PathBuf;

use ember_format::{EmberFile, Value};
use ember_runtime::MappedFile;
use serde_json::json;

use super::CmdResult;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  ember inspect smollm2.ember\n  ember inspect smollm2.ember --verify\n  ember inspect smollm2.ember --json | jq .tensors[0]"
)]
pub struct Args {
    /// The .ember file.
    pub file: PathBuf,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also check the checksum (reads every byte).
    #[arg(long)]
    pub verify: bool,
    /// Report the memory a device needs: flash (the file) and RAM (KV cache and scratch).
    #[arg(long)]
    pub memory: bool,
    /// Context length for --memory (default: the model's).
    #[arg(long, requires = "memory")]
    pub ctx: Option<usize>,
}

pub fn run(args: Args) -> CmdResult {
    let mapped = MappedFile::open(&args.file)?;
    let file = mapped.parse()?;
    if args.verify {
        file.verify_checksum()
            .map_err(|e| format!("{}: {e}", args.file.display()))?;
    }
    if args.memory {
        return print_memory(&args, &file);
    }
    let stats = Stats::of(&file);
    if args.json {
        print_json(&file, &stats, args.verify);
    } else {
        print_text(&args.file, &file, &stats, args.verify);
    }
    Ok(())
}

struct Stats {
    file_bytes: u64,
    tensor_bytes: u64,
    weights: u64,
}

impl Stats {
    fn of(file: &EmberFile) -> Stats {
        let (mut tensor_bytes, mut weights) = (0u64, 0u64);
        for t in file.tensors() {
            tensor_bytes += t.data.len() as u64;
            weights += t.elements() as u64;
        }
        Stats {
            file_bytes: file.bytes().len() as u64,
            tensor_bytes,
            weights,
        }
    }

    fn bits_per_weight(&self) -> f64 {
        if self.weights == 0 {
            0.0
        } else {
            self.tensor_bytes as f64 * 8.0 / self.weights as f64
        }
    }
}

/// A one-line rendering of a metadata value; long arrays are summarized.
fn short_value(v: &Value) -> String {
    fn list<T: std::fmt::Debug>(v: &[T]) -> String {
        match v {
            [one] => format!("{one:?}"),
            _ if v.len() <= 8 => format!("{v:?}"),
            _ => format!(
                "[{:?}, {:?}, {:?}, ... {} values]",
                v[0],
                v[1],
                v[2],
                v.len()
            ),
        }
    }
    match v {
        Value::U8(x) => list(x),
        Value::I32(x) => list(x),
        Value::U32(x) => list(x),
        Value::F32(x) => list(x),
        Value::U64(x) => list(x),
        Value::I64(x) => list(x),
        Value::F64(x) => list(x),
        Value::Str(s) => {
            let one_line: String = s.chars().take(80).collect::<String>().replace('\n', "\\n");
            if s.chars().count() > 80 {
                format!("{one_line:?}... ({} bytes)", s.len())
            } else {
                format!("{one_line:?}")
            }
        }
        Value::BytesArray(a) => {
            let items: Vec<String> = a
                .iter()
                .take(4)
                .map(|b| format!("{:?}", String::from_utf8_lossy(b)))
                .collect();
            format!(
                "[{}{}] ({} items)",
                items.join(", "),
                if a.len() > 4 { ", ..." } else { "" },
                a.len()
            )
        }
    }
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::U8(x) if x.len() == 1 => json!(x[0]),
        Value::U32(x) if x.len() == 1 => json!(x[0]),
        Value::I32(x) if x.len() == 1 => json!(x[0]),
        Value::F32(x) if x.len() == 1 => json!(x[0]),
        Value::U64(x) if x.len() == 1 => json!(x[0]),
        Value::I64(x) if x.len() == 1 => json!(x[0]),
        Value::F64(x) if x.len() == 1 => json!(x[0]),
        Value::Str(s) => json!(s),
        other => json!({ "type": other.type_name(), "len": array_len(other) }),
    }
}

fn array_len(v: &Value) -> usize {
    match v {
        Value::U8(x) => x.len(),
        Value::I32(x) => x.len(),
        Value::U32(x) => x.len(),
        Value::F32(x) => x.len(),
        Value::U64(x) => x.len(),
        Value::I64(x) => x.len(),
        Value::F64(x) => x.len(),
        Value::Str(s) => s.len(),
        Value::BytesArray(a) => a.len(),
    }
}

fn print_json(file: &EmberFile, stats: &Stats, verified: bool) {
    let h = file.header();
    let metadata: serde_json::Map<String, serde_json::Value> = file
        .metadata()
        .map(|(k, v)| (k.to_string(), json_value(&v)))
        .collect();
    let tensors: Vec<serde_json::Value> = file
        .tensors()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "layout": t.layout.name(),
                "shape": t.shape(),
                "offset": t.offset,
                "bytes": t.data.len(),
            })
        })
        .collect();
    let out = json!({
        "format_version": format!("{}.{}", h.major, h.minor),
        "file_bytes": stats.file_bytes,
        "tensor_bytes": stats.tensor_bytes,
        "weights": stats.weights,
        "bits_per_weight": stats.bits_per_weight(),
        "checksum": format!("{:016x}", h.checksum),
        "checksum_verified": verified,
        "metadata": metadata,
        "tensors": tensors,
    });
    println!("{out}");
}

fn print_text(path: &std::path::Path, file: &EmberFile, stats: &Stats, verified: bool) {
    let h = file.header();
    println!(
        "{}: .ember v{}.{}, {} tensors, {} metadata keys",
        path.display(),
        h.major,
        h.minor,
        file.tensor_count(),
        h.meta_count
    );
    println!("\nmetadata:");
    for (k, v) in file.metadata() {
        println!("  {k:<32} {}", short_value(&v));
    }
    println!("\ntensors:");
    let width = file
        .tensors()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "  {:<width$}  {:<6} {:<9} {:<16} {:>12}",
        "name", "dtype", "layout", "shape", "bytes"
    );
    for t in file.tensors() {
        let shape = format!("{:?}", t.shape());
        println!(
            "  {:<width$}  {:<6} {:<9} {:<16} {:>12}",
            t.name,
            t.dtype.name(),
            t.layout.name(),
            shape,
            t.data.len()
        );
    }
    println!(
        "\ntotal: {} bytes ({:.1} MiB), {} weights, {:.2} bits per weight",
        stats.file_bytes,
        stats.file_bytes as f64 / (1 << 20) as f64,
        stats.weights,
        stats.bits_per_weight()
    );
    if verified {
        println!(
            "checksum {:016x}: ok; every tensor within bounds",
            h.checksum
        );
    }
}

/// Flash and RAM for running the model with a context of `--ctx` tokens, one token per
/// forward pass (the allocation-free runtime's minimum) and with the default prefill batch.
fn print_memory(args: &Args, file: &EmberFile) -> CmdResult {
    use ember_runtime::model::Layer;
    use ember_runtime::session::{SessionPlan, DEFAULT_BATCH};
    use ember_runtime::{Config, Logits};
    let cfg = Config::from_file(file)?;
    let ctx = args.ctx.unwrap_or(cfg.context_length);
    let flash = file.bytes().len();
    let layers = cfg.layers * std::mem::size_of::<Layer>();
    let one = SessionPlan::new(&cfg, ctx, 1, Logits::Last)?;
    let batched = SessionPlan::new(&cfg, ctx, DEFAULT_BATCH, Logits::Last)?;
    let kv = one.kv_floats * 4;
    // Local (sliding-window) layers keep a ring of window + batch - 1 positions.
    let kv_full = ember_runtime::kv_cache::KvCache::<()>::floats_without_rings(&cfg, ctx) * 4;
    let local_layers = cfg.layer_kinds.local_before(cfg.layers);
    let ram = |p: &SessionPlan| p.bytes_required() + layers;
    if args.json {
        let out = json!({
            "flash_bytes": flash,
            "ctx": ctx,
            "kv_cache_bytes": kv,
            "kv_cache_bytes_batched": batched.kv_floats * 4,
            "kv_cache_bytes_without_sliding_window": kv_full,
            "sliding_window": cfg.sliding_window,
            "local_layers": local_layers,
            "scratch_bytes": one.scratch.bytes_required(),
            "layer_table_bytes": layers,
            "ram_bytes": ram(&one),
            "ram_bytes_prefill_batch": ram(&batched),
            "prefill_batch": DEFAULT_BATCH,
        });
        println!("{out}");
    } else {
        println!("{}: memory for a {ctx}-token context", args.file.display());
        println!("  flash (the file, used in place)  {flash:>12} bytes");
        println!("  RAM: KV cache                    {kv:>12} bytes");
        if local_layers > 0 {
            println!(
                "       {local_layers} of {} layers are local (window {}): their ring buffers save {} bytes \
                 ({:.0}% of a full cache, {} bytes)",
                cfg.layers,
                cfg.sliding_window,
                kv_full - kv,
                100.0 * (kv_full - kv) as f64 / kv_full as f64,
                kv_full
            );
        }
        println!(
            "  RAM: scratch (1 token per pass)  {:>12} bytes",
            one.scratch.bytes_required()
        );
        println!("  RAM: layer table                 {layers:>12} bytes");
        println!(
            "  RAM total                        {:>12} bytes ({:.1} KiB)",
            ram(&one),
            ram(&one) as f64 / 1024.0
        );
        println!(
            "  RAM with {DEFAULT_BATCH}-token prefill batches {:>9} bytes",
            ram(&batched)
        );
    }
    Ok(())
}

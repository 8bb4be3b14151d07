//! `ember inspect FILE [--json] [--verify] [--memory] [--provenance]`: what a `.ember` file
//! holds, opening with a summary (architecture, parameters, type, context, chat format,
//! tokenizer, kernels).

use std::path::PathBuf;

use ember_format::{EmberFile, Value};
use ember_runtime::MappedFile;
use serde_json::json;

use super::CmdResult;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  ember inspect smollm2.ember\n  ember inspect smollm2.ember --verify\n  ember inspect smollm2.ember --provenance    # how each tensor was quantized\n  ember inspect smollm2.ember --memory --ctx 2048 --verify\n  ember inspect smollm2.ember --json | jq .tensors[0]"
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
    #[arg(short = 'c', long, requires = "memory")]
    pub ctx: Option<usize>,
    /// Also list how each tensor was converted (the quantization.tensor.* keys).
    #[arg(long)]
    pub provenance: bool,
    /// The KV cache's types, for --memory.
    #[command(flatten)]
    pub cache: super::shared::CacheTypeArgs,
}

/// The metadata keys that record each tensor's conversion, shown with --provenance.
const PROVENANCE: &str = "quantization.tensor.";

/// Orders tensor names as a person would: `blk.2` before `blk.10`.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = u64::from(c as u8 - b'0');
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(u64::from(d));
                chars.next();
            }
            parts.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    parts.push((text, u64::MAX));
    parts
}

/// What the model is, in a few lines: the part of a file a person reads first.
struct Summary {
    architecture: String,
    name: Option<String>,
    quantization: Option<String>,
    context: Option<u64>,
    layers: Option<u64>,
    dim: Option<u64>,
    vocab: Option<u64>,
    tokenizer: Option<String>,
    chat: String,
    kernels: String,
}

fn meta_str(file: &EmberFile, key: &str) -> Option<String> {
    match file.get(key) {
        Some(Value::Str(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn meta_u64(file: &EmberFile, key: &str) -> Option<u64> {
    match file.get(key)? {
        Value::U32(x) if x.len() == 1 => Some(u64::from(x[0])),
        Value::U64(x) if x.len() == 1 => Some(x[0]),
        Value::I32(x) if x.len() == 1 => u64::try_from(x[0]).ok(),
        Value::U8(x) if x.len() == 1 => Some(u64::from(x[0])),
        _ => None,
    }
}

impl Summary {
    fn of(file: &EmberFile) -> Summary {
        let template = meta_str(file, "tokenizer.chat_template");
        let chat = match &template {
            None => "none (run --chat and chat use ChatML, with a note)".to_string(),
            Some(t) => {
                let family = [
                    ("<|im_start|>", "ChatML"),
                    ("<|start_header_id|>", "Llama 3"),
                    ("[INST]", "Llama 2"),
                    ("<start_of_turn>", "Gemma"),
                    ("<|user|>", "Zephyr"),
                ]
                .iter()
                .find(|(m, _)| t.contains(m))
                .map_or("custom", |f| f.1);
                format!("its own Jinja template ({family} turns, {} bytes)", t.len())
            }
        };
        let kernels = match ember_runtime::kernels::Kernels::from_env() {
            Ok(k) => super::shared::describe_kernels(&k, file),
            Err(e) => e.to_string(),
        };
        Summary {
            architecture: meta_str(file, "general.architecture").unwrap_or_else(|| "?".into()),
            name: meta_str(file, "general.name"),
            quantization: meta_str(file, "general.quantization"),
            context: meta_u64(file, "model.context_length"),
            layers: meta_u64(file, "model.layer_count"),
            dim: meta_u64(file, "model.embedding_dim"),
            vocab: meta_u64(file, "model.vocab_size"),
            tokenizer: meta_str(file, "tokenizer.model").map(|m| {
                match meta_str(file, "tokenizer.pre") {
                    Some(pre) => format!("{m} ({pre} pre-tokenizer)"),
                    None => m,
                }
            }),
            chat,
            kernels,
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn run(args: Args) -> CmdResult {
    let mapped = MappedFile::open(&args.file)?;
    let file = mapped.parse()?;
    if args.verify {
        file.verify_checksum()
            .map_err(|e| format!("{}: {e}", args.file.display()))?;
    }
    if args.memory {
        print_memory(&args, &file)?;
        if args.verify && !args.json {
            println!(
                "checksum {:016x}: ok; every tensor within bounds",
                file.header().checksum
            );
        }
        return Ok(());
    }
    let stats = Stats::of(&file);
    if args.json {
        print_json(&file, &stats, args.verify);
    } else {
        print_text(&args, &file, &stats);
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
    let sum = Summary::of(file);
    let out = json!({
        "format_version": format!("{}.{}", h.major, h.minor),
        "architecture": sum.architecture,
        "parameters": stats.weights,
        "context_length": sum.context,
        "chat_template": sum.chat,
        "kernels": sum.kernels,
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

fn print_text(args: &Args, file: &EmberFile, stats: &Stats) {
    let h = file.header();
    let sum = Summary::of(file);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{}: .ember v{}.{}, {} tensors, {} metadata keys",
        args.file.display(),
        h.major,
        h.minor,
        file.tensor_count(),
        h.meta_count
    );
    let unknown = || "?".to_string();
    let row = |k: &str, v: String| println!("  {k:<13} {v}");
    row(
        "architecture",
        match &sum.name {
            Some(n) => format!("{} ({n})", sum.architecture),
            None => sum.architecture.clone(),
        },
    );
    row(
        "parameters",
        format!(
            "{} ({:.1} M){}",
            thousands(stats.weights),
            stats.weights as f64 / 1e6,
            match (sum.layers, sum.dim) {
                (Some(l), Some(d)) => format!(", {l} layers, dim {d}"),
                _ => String::new(),
            }
        ),
    );
    row(
        "file type",
        format!(
            "{}, {:.1} MiB ({} bytes), {:.2} bits per weight",
            sum.quantization.clone().unwrap_or_else(unknown),
            mib(stats.file_bytes),
            thousands(stats.file_bytes),
            stats.bits_per_weight()
        ),
    );
    row(
        "context",
        sum.context
            .map_or_else(unknown, |c| format!("{} tokens", thousands(c))),
    );
    row(
        "tokenizer",
        match (&sum.tokenizer, sum.vocab) {
            (Some(t), Some(v)) => format!("{t}, {} tokens", thousands(v)),
            (Some(t), None) => t.clone(),
            (None, _) => "none".into(),
        },
    );
    row("chat format", sum.chat.clone());
    row("kernels", sum.kernels.clone());

    let provenance = file
        .metadata()
        .filter(|(k, _)| k.starts_with(PROVENANCE))
        .count();
    println!("\nmetadata:");
    for (k, v) in file.metadata() {
        if !args.provenance && k.starts_with(PROVENANCE) {
            continue;
        }
        println!("  {k:<32} {}", short_value(&v));
    }
    if provenance > 0 && !args.provenance {
        println!(
            "  ({provenance} {PROVENANCE}* keys on how each tensor was converted: --provenance)"
        );
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
    let mut tensors: Vec<_> = file.tensors().collect();
    tensors.sort_by_cached_key(|t| natural_key(t.name));
    for t in tensors {
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
        mib(stats.file_bytes),
        stats.weights,
        stats.bits_per_weight()
    );
    if args.verify {
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
    let types = args.cache.types();
    let one = SessionPlan::with_kv_types(&cfg, ctx, 1, Logits::Last, types)?;
    let batched = SessionPlan::with_kv_types(&cfg, ctx, DEFAULT_BATCH, Logits::Last, types)?;
    let kv = one.kv_floats * 4;
    // Local (sliding-window) layers keep a ring of window + batch - 1 positions.
    let kv_full =
        ember_runtime::kv_cache::KvCache::<()>::floats_without_rings(&cfg, ctx, types) * 4;
    // "f16", or "f16/f32" for keys and values of different types.
    let kv_dtype = if types.k == types.v {
        types.k.name().to_string()
    } else {
        format!("{}/{}", types.k.name(), types.v.name())
    };
    // Recurrent layers' state: constant, whatever the context.
    let state = ember_runtime::kv_cache::KvCache::<()>::state_floats_required(&cfg) * 4;
    let local_layers = cfg.layer_kinds.local_before(cfg.layers);
    let ram = |p: &SessionPlan| p.bytes_required() + layers;
    // Weights one generated token reads (a mixture: the router and k experts) and in all.
    let model = ember_runtime::Model::load(file)?;
    let (per_token, total) = (model.matrix_bytes_per_token(), model.matrix_bytes_total());
    if args.json {
        let out = json!({
            "flash_bytes": flash,
            "ctx": ctx,
            "kv_cache_bytes": kv,
            "kv_cache_bytes_batched": batched.kv_floats * 4,
            "kv_cache_bytes_without_sliding_window": kv_full,
            "recurrent_state_bytes": state,
            "sliding_window": cfg.sliding_window,
            "local_layers": local_layers,
            "scratch_bytes": one.scratch.bytes_required(),
            "layer_table_bytes": layers,
            "ram_bytes": ram(&one),
            "ram_bytes_prefill_batch": ram(&batched),
            "prefill_batch": DEFAULT_BATCH,
            "kv_dtype": kv_dtype,
            "weights_bytes_per_token": per_token,
            "weights_bytes_total": total,
            "experts": cfg.experts,
            "experts_used": cfg.experts_used,
        });
        println!("{out}");
    } else {
        let mib = |b: usize| {
            format!(
                "{:>10.2} MiB  {:>13} bytes",
                b as f64 / (1 << 20) as f64,
                thousands(b as u64)
            )
        };
        println!(
            "{}: memory for a {ctx}-token context (KV cache in {kv_dtype})",
            args.file.display()
        );
        println!("  {:<34}{}", "flash: the file, used in place", mib(flash));
        println!("  {:<34}{}", "weights read per token", mib(per_token));
        if cfg.experts > 0 {
            println!(
                "    {} of {} experts per token: {:.1}% of the {:.2} MiB of matrices (active / total)",
                cfg.experts_used,
                cfg.experts,
                100.0 * per_token as f64 / total as f64,
                total as f64 / (1 << 20) as f64
            );
        }
        println!("  {:<34}{}", format!("RAM: KV cache ({kv_dtype})"), mib(kv));
        if state > 0 {
            println!(
                "    of which {} recurrent layers' state (constant in the context): {:.2} MiB",
                cfg.layer_kinds.recurrent_before(cfg.layers),
                state as f64 / (1 << 20) as f64
            );
        }
        if local_layers > 0 {
            println!(
                "    {local_layers} of {} layers are local (window {}): their ring buffers save {:.2} MiB ({:.0}% of a full cache, {:.2} MiB)",
                cfg.layers,
                cfg.sliding_window,
                (kv_full - kv) as f64 / (1 << 20) as f64,
                100.0 * (kv_full - kv) as f64 / kv_full as f64,
                kv_full as f64 / (1 << 20) as f64
            );
        }
        println!(
            "  {:<34}{}",
            "RAM: scratch (1 token per pass)",
            mib(one.scratch.bytes_required())
        );
        println!("  {:<34}{}", "RAM: layer table", mib(layers));
        println!("  {:<34}{}", "RAM total", mib(ram(&one)));
        println!(
            "  {:<34}{}",
            format!("RAM with {DEFAULT_BATCH}-token prefill batches"),
            mib(ram(&batched))
        );
    }
    Ok(())
}

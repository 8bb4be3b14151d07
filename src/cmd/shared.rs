//! What the model-running commands share: the model argument (positional or llama.cpp's
//! `-m`), text from a file or stdin, thread checks, and which kernels a file will run on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember_format::EmberFile;
use ember_runtime::kernels::Kernels;

/// The model, as `ember run MODEL` or, as llama.cpp's tools take it, `ember run -m MODEL`.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArg {
    /// The model: a .ember file, or a GGUF file or Hugging Face directory (converted with
    /// --quant same on first use and cached; see --no-cache).
    #[arg(value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// The model, as llama.cpp's -m gives it (instead of the positional MODEL).
    #[arg(short = 'm', long = "model", value_name = "MODEL")]
    pub model_flag: Option<PathBuf>,
}

impl ModelArg {
    /// The model's path: exactly one of MODEL and -m.
    pub fn path(&self) -> Result<&Path, String> {
        match (&self.model, &self.model_flag) {
            (Some(p), None) | (None, Some(p)) => Ok(p),
            (Some(a), Some(b)) => Err(format!(
                "two models given ({} and -m {}): give one",
                a.display(),
                b.display()
            )),
            (None, None) => Err("give a model: MODEL or -m MODEL".into()),
        }
    }
}

/// Reads a UTF-8 text file, or stdin for `-`, with the one wording every command uses.
pub fn read_text(path: &Path) -> Result<String, String> {
    let (bytes, name) = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| format!("reading stdin: {e}"))?;
        (buf, "stdin".to_string())
    } else {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        (bytes, path.display().to_string())
    };
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{name}: not valid UTF-8 text (byte {} is not)",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The worker count for `-t` (0 or absent: all cores), with a warning when it exceeds the
/// cores: threads beyond them wait on each other at every matmul, and decode slows sharply.
/// A `--ctx` the user gave, checked against the model's context length: `None` when not
/// given (or 0), so each command picks its own default.
pub fn explicit_ctx(ctx: Option<usize>, context: usize) -> Result<Option<usize>, String> {
    match ctx {
        Some(c) if c > context => Err(format!(
            "--ctx {c} is beyond the model's context length {context}: use --ctx {context} or less"
        )),
        Some(c) if c > 0 => Ok(Some(c)),
        _ => Ok(None),
    }
}

pub fn threads(requested: Option<usize>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match requested {
        None | Some(0) => cores,
        Some(t) => {
            if t > cores {
                eprintln!(
                    "warning: -t {t} is more threads than the {cores} cores here: generation will be slower than with -t {cores}"
                );
            }
            t
        }
    }
}

/// Touches every page of a mapped model so that load time, not the first prompt, pays for
/// reading it from disk.
pub fn fault_in(bytes: &[u8]) {
    let mut x = 0u8;
    for i in (0..bytes.len()).step_by(4096) {
        x ^= bytes[i];
    }
    std::hint::black_box(x);
}

/// Which kernels multiply the file's matrices at `kernels`' level: one entry per dtype and
/// layout, e.g. `avx2 (q4_1 rows16, q6_k rows16)`.
pub fn describe_kernels(kernels: &Kernels, file: &EmberFile) -> String {
    use ember_runtime::kernels::KernelPath;
    let mut seen: BTreeMap<(String, &'static str), String> = BTreeMap::new();
    for t in file.tensors() {
        if t.shape().len() != 2 {
            continue;
        }
        let how = match kernels.path(t.dtype, t.layout) {
            KernelPath::Simd => String::new(),
            KernelPath::Reference => ": scalar reference".to_string(),
        };
        seen.insert((t.dtype.name().to_string(), t.layout.name()), how);
    }
    let parts: Vec<String> = seen
        .into_iter()
        .map(|((dtype, layout), how)| format!("{dtype} {layout}{how}"))
        .collect();
    format!("{} ({})", kernels.level.name(), parts.join(", "))
}

/// The KV cache's element types, as llama.cpp's `--cache-type-k` / `--cache-type-v`
/// (`-ctk` / `-ctv` there; `--ctk` / `--ctv` here).
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct CacheTypeArgs {
    /// Element type of the cached keys: f32 (exact: the default) or f16 (half the memory and
    /// of the bytes attention reads; logits move by about 1e-3).
    #[arg(long = "cache-type-k", visible_alias = "ctk", value_name = "TYPE", default_value = "f32", value_parser = parse_kv_type)]
    pub k: ember_runtime::kv_cache::KvType,
    /// Element type of the cached values: f32 or f16.
    #[arg(long = "cache-type-v", visible_alias = "ctv", value_name = "TYPE", default_value = "f32", value_parser = parse_kv_type)]
    pub v: ember_runtime::kv_cache::KvType,
}

impl CacheTypeArgs {
    pub fn types(&self) -> ember_runtime::kv_cache::KvTypes {
        ember_runtime::kv_cache::KvTypes {
            k: self.k,
            v: self.v,
        }
    }

    /// A generation session (the default prefill batch, last-position logits) with this
    /// cache: what run, chat and bench open.
    pub fn session<'m, 'a>(
        &self,
        model: &'m ember_runtime::Model<'a>,
        capacity: usize,
    ) -> Result<ember_runtime::HeapSession<'m, 'a>, ember_runtime::Error> {
        ember_runtime::HeapSession::with_kv_types(
            model,
            capacity,
            ember_runtime::session::DEFAULT_BATCH,
            ember_runtime::Logits::Last,
            self.types(),
        )
    }
}

fn parse_kv_type(s: &str) -> Result<ember_runtime::kv_cache::KvType, String> {
    use ember_runtime::kv_cache::KvType;
    KvType::parse(s).ok_or_else(|| {
        let names: Vec<&str> = KvType::ALL.iter().map(|t| t.name()).collect();
        let later = if ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "bf16"].contains(&s) {
            " (llama.cpp's quantized cache types are not supported yet)"
        } else {
            ""
        };
        format!(
            "unknown cache type {s:?}{later}: one of {}",
            names.join(", ")
        )
    })
}

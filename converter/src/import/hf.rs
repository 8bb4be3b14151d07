//! Hugging Face checkpoint directories: config.json, model.safetensors (or shards listed by
//! model.safetensors.index.json), tokenizer files. Llama family (Llama 2/3, Mistral, SmolLM,
//! TinyLlama, Qwen2 with attention biases) and GPT-2.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use ember_format::DType;
use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};
use serde_json::Value;

use crate::error::{Context, Error, Result};
use crate::model::{Arch, ModelConfig};
use crate::plan::{Op, Plan, Planned};

/// An opened HF directory: the parsed config and the memory-mapped safetensors files.
pub struct HfSource {
    dir: PathBuf,
    config: Value,
    files: Vec<(String, Mmap)>,
}

/// One safetensors tensor: dtype, shape, bytes.
#[derive(Clone)]
struct StTensor<'a> {
    dtype: DType,
    shape: Vec<usize>,
    data: &'a [u8],
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).context(format!("opening {}", path.display()))?;
    // SAFETY: the file is opened read-only and the map is only read. If another process
    // truncates or rewrites it while we convert, reads may fault or see new bytes; every
    // length we use was validated against the map's own length, so this cannot cause
    // out-of-bounds access in our code.
    let map = unsafe { Mmap::map(&file) }.context(format!("mapping {}", path.display()))?;
    Ok(map)
}

impl HfSource {
    pub fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            crate::bail!(
                "{} has no config.json: not a Hugging Face checkpoint directory",
                dir.display()
            );
        }
        let text = std::fs::read_to_string(&config_path)
            .context(format!("reading {}", config_path.display()))?;
        let config: Value =
            serde_json::from_str(&text).context(format!("parsing {}", config_path.display()))?;
        if !config.is_object() {
            crate::bail!("{}: expected a JSON object", config_path.display());
        }

        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let mut names: Vec<String> = if index.is_file() {
            let text =
                std::fs::read_to_string(&index).context(format!("reading {}", index.display()))?;
            let v: Value =
                serde_json::from_str(&text).context(format!("parsing {}", index.display()))?;
            let Some(map) = v.get("weight_map").and_then(Value::as_object) else {
                crate::bail!("{}: no \"weight_map\" object", index.display());
            };
            let mut files = Vec::new();
            for (tensor, file) in map {
                let Some(file) = file.as_str() else {
                    crate::bail!("{}: weight_map[{tensor}] is not a string", index.display());
                };
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    crate::bail!(
                        "{}: shard name {file:?} must be a plain file name",
                        index.display()
                    );
                }
                files.push(file.to_string());
            }
            files
        } else if single.is_file() {
            vec!["model.safetensors".into()]
        } else {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(dir).context(format!("listing {}", dir.display()))? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name.ends_with(".safetensors") {
                    found.push(name);
                }
            }
            found
        };
        names.sort();
        names.dedup();
        if names.is_empty() {
            crate::bail!("{} has no *.safetensors weights", dir.display());
        }
        let files = names
            .into_iter()
            .map(|n| Ok((n.clone(), map_file(&dir.join(&n))?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(HfSource {
            dir: dir.to_path_buf(),
            config,
            files,
        })
    }

    /// Every tensor of every shard, by name.
    fn tensors(&self) -> Result<BTreeMap<String, (StTensor<'_>, &str)>> {
        let mut out = BTreeMap::new();
        for (file, map) in &self.files {
            let bytes: &[u8] = map;
            let (n, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
                Error(format!(
                    "{}: not a valid safetensors file ({e}); truncated or corrupt?",
                    self.dir.join(file).display()
                ))
            })?;
            let data = &bytes[n + 8..]; // read_metadata checked 8 + n + data == file length
            for (name, info) in meta.tensors() {
                let dtype = match info.dtype {
                    StDtype::F32 => DType::F32,
                    StDtype::F16 => DType::F16,
                    StDtype::BF16 => DType::BF16,
                    other => crate::bail!(
                        "tensor {name} in {file} has dtype {other:?}; ember converts F32, F16 and BF16"
                    ),
                };
                let (s, e) = info.data_offsets;
                let t = StTensor {
                    dtype,
                    shape: info.shape.clone(),
                    data: &data[s..e],
                };
                if dtype.tensor_bytes(&t.shape) != Some(t.data.len()) {
                    crate::bail!("tensor {name} in {file}: data length does not match its shape");
                }
                if out.insert(name.clone(), (t, file.as_str())).is_some() {
                    crate::bail!("tensor {name} appears in more than one safetensors file");
                }
            }
        }
        Ok(out)
    }

    pub fn plan(&self) -> Result<Plan<'_>> {
        let cfg = &self.config;
        let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
        let arch = match model_type {
            "llama" | "mistral" | "qwen2" => Arch::Llama,
            "gpt2" => Arch::Gpt2,
            "" => crate::bail!(
                "config.json has no \"model_type\" (supported: llama, mistral, qwen2, gpt2)"
            ),
            other => crate::bail!(
                "unsupported architecture '{other}' in config.json (supported: llama, mistral, qwen2, gpt2)"
            ),
        };
        let tensors = self.tensors()?;
        let name = self
            .dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        let mut planned = Vec::new();
        let mut hints = HashMap::new();
        let config = match arch {
            Arch::Llama => plan_llama(cfg, model_type, &tensors, name, &mut planned, &mut hints)?,
            Arch::Gpt2 => plan_gpt2(cfg, &tensors, name, &mut planned, &mut hints)?,
        };
        let tokenizer = crate::tok::from_hf_dir(&self.dir)?;
        Ok(Plan {
            config,
            tensors: planned,
            tokenizer,
            source_names: hints,
        })
    }
}

type Tensors<'a> = BTreeMap<String, (StTensor<'a>, &'a str)>;

// ---- config.json accessors ----

fn cfg_usize(cfg: &Value, keys: &[&str]) -> Result<Option<usize>> {
    for k in keys {
        match cfg.get(*k) {
            None | Some(Value::Null) => continue,
            Some(v) => {
                return match v.as_u64().and_then(|x| usize::try_from(x).ok()) {
                    Some(x) => Ok(Some(x)),
                    None => crate::bail!(
                        "config.json: \"{k}\" should be a non-negative integer, got {v}"
                    ),
                }
            }
        }
    }
    Ok(None)
}

fn cfg_req(cfg: &Value, keys: &[&str]) -> Result<usize> {
    cfg_usize(cfg, keys)?.ok_or_else(|| {
        Error(format!(
            "config.json: missing \"{}\"",
            keys.join("\" or \"")
        ))
    })
}

fn cfg_f32(cfg: &Value, keys: &[&str]) -> Result<Option<f32>> {
    for k in keys {
        match cfg.get(*k) {
            None | Some(Value::Null) => continue,
            Some(v) => {
                return match v.as_f64() {
                    Some(x) => Ok(Some(x as f32)),
                    None => crate::bail!("config.json: \"{k}\" should be a number, got {v}"),
                }
            }
        }
    }
    Ok(None)
}

fn cfg_bool(cfg: &Value, key: &str) -> Result<Option<bool>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => crate::bail!("config.json: \"{key}\" should be true or false, got {v}"),
    }
}

fn cfg_str<'a>(cfg: &'a Value, key: &str) -> Option<&'a str> {
    cfg.get(key).and_then(Value::as_str)
}

/// RoPE scaling (Llama 3.1 "llama3", "linear", "yarn", ...) changes the rotation; the
/// runtime implements plain RoPE only, so refuse rather than produce a subtly wrong model.
fn check_plain_rope(cfg: &Value) -> Result<()> {
    for key in ["rope_scaling", "rope_parameters"] {
        let Some(obj) = cfg.get(key).and_then(Value::as_object) else {
            continue;
        };
        let ty = obj
            .get("rope_type")
            .or_else(|| obj.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        if ty != "default" {
            crate::bail!(
                "config.json: RoPE scaling type '{ty}' ({key}) is not supported; ember implements plain RoPE"
            );
        }
    }
    Ok(())
}

/// Takes `src` out of `tensors` (so leftovers can be reported).
fn take<'a>(tensors: &mut Tensors<'a>, src: &str) -> Option<(StTensor<'a>, &'a str)> {
    tensors.remove(src)
}

fn plan_copy<'a>(out: &mut Vec<Planned<'a>>, name: String, src: &str, t: StTensor<'a>) {
    out.push(Planned {
        name,
        shape: t.shape,
        dtype: t.dtype,
        src_name: src.to_string(),
        src: t.data,
        op: Op::Copy,
    });
}

/// Llama, Mistral, Qwen2 (and anything else with Llama's module names).
fn plan_llama<'a>(
    cfg: &Value,
    model_type: &str,
    all: &Tensors<'a>,
    name: String,
    out: &mut Vec<Planned<'a>>,
    hints: &mut HashMap<String, String>,
) -> Result<ModelConfig> {
    if let Some(act) = cfg_str(cfg, "hidden_act") {
        if act != "silu" {
            crate::bail!(
                "config.json: hidden_act '{act}' is not supported for {model_type} (expected silu)"
            );
        }
    }
    check_plain_rope(cfg)?;
    let embedding_dim = cfg_req(cfg, &["hidden_size"])?;
    let head_count = cfg_req(cfg, &["num_attention_heads"])?;
    let kv_head_count = cfg_usize(cfg, &["num_key_value_heads"])?.unwrap_or(head_count);
    let head_dim = match cfg_usize(cfg, &["head_dim"])? {
        Some(hd) => hd,
        None => {
            if head_count == 0 || !embedding_dim.is_multiple_of(head_count) {
                crate::bail!("config.json: hidden_size {embedding_dim} is not a multiple of num_attention_heads {head_count}");
            }
            embedding_dim / head_count
        }
    };
    let mut tensors = all.clone();
    let tied = match cfg_bool(cfg, "tie_word_embeddings")? {
        Some(t) => t,
        None => !tensors.contains_key("lm_head.weight"),
    };
    let rope_theta = match cfg_f32(cfg, &["rope_theta"])? {
        Some(t) => t,
        None => cfg
            .get("rope_parameters")
            .map(|p| cfg_f32(p, &["rope_theta"]))
            .transpose()?
            .flatten()
            .unwrap_or(10_000.0),
    };
    // Sliding-window attention (Mistral 7B v0.1; Qwen2 with use_sliding_window) sees only
    // the last W positions; the runtime attends to all of them, which is the same while the
    // sequence is at most W long, so the context is capped there.
    let mut context_length = cfg_req(cfg, &["max_position_embeddings"])?;
    let windowed = match model_type {
        "qwen2" => cfg_bool(cfg, "use_sliding_window")?.unwrap_or(false),
        _ => true,
    };
    if windowed {
        if let Some(w) = cfg_usize(cfg, &["sliding_window"])?.filter(|&w| w > 0) {
            context_length = context_length.min(w);
        }
    }
    let config = ModelConfig {
        arch: Arch::Llama,
        name,
        vocab_size: cfg_req(cfg, &["vocab_size"])?,
        context_length,
        embedding_dim,
        layer_count: cfg_req(cfg, &["num_hidden_layers"])?,
        head_count,
        kv_head_count,
        head_dim,
        ffn_dim: cfg_req(cfg, &["intermediate_size"])?,
        norm_eps: cfg_f32(cfg, &["rms_norm_eps"])?.unwrap_or(1e-6),
        rope_theta: Some(rope_theta),
        tied_embeddings: tied,
    };
    config.validate()?;
    config.check_layer_count(all.len())?;

    let mut map = vec![
        (
            "model.embed_tokens.weight".to_string(),
            "token_embd.weight".to_string(),
        ),
        ("model.norm.weight".into(), "output_norm.weight".into()),
    ];
    if !tied {
        map.push(("lm_head.weight".into(), "output.weight".into()));
    }
    for n in 0..config.layer_count {
        let p = format!("model.layers.{n}");
        let b = format!("blk.{n}");
        map.push((
            format!("{p}.input_layernorm.weight"),
            format!("{b}.attn_norm.weight"),
        ));
        map.push((
            format!("{p}.post_attention_layernorm.weight"),
            format!("{b}.ffn_norm.weight"),
        ));
        for (hf, ember) in [
            ("self_attn.q_proj", "attn_q"),
            ("self_attn.k_proj", "attn_k"),
            ("self_attn.v_proj", "attn_v"),
            ("self_attn.o_proj", "attn_output"),
            ("mlp.gate_proj", "ffn_gate"),
            ("mlp.up_proj", "ffn_up"),
            ("mlp.down_proj", "ffn_down"),
        ] {
            for suffix in ["weight", "bias"] {
                map.push((
                    format!("{p}.{hf}.{suffix}"),
                    format!("{b}.{ember}.{suffix}"),
                ));
            }
        }
    }
    for (src, dst) in map {
        hints.insert(dst.clone(), src.clone());
        if let Some((t, _)) = take(&mut tensors, &src) {
            plan_copy(out, dst, &src, t);
        }
    }
    // Tied models may still carry a copy of the head; buffers of old checkpoints.
    if tied {
        tensors.remove("lm_head.weight");
    }
    tensors.retain(|k, _| !k.ends_with(".rotary_emb.inv_freq"));
    report_leftovers(&tensors)?;
    Ok(config)
}

fn report_leftovers(tensors: &Tensors<'_>) -> Result<()> {
    if let Some((name, (_, file))) = tensors.iter().next() {
        crate::bail!(
            "unexpected tensor {name} in {file} ({} unmapped in all): not part of a supported model with this config",
            tensors.len()
        );
    }
    Ok(())
}

/// GPT-2: Conv1D weights are stored (in, out) and c_attn fuses Q, K, V.
fn plan_gpt2<'a>(
    cfg: &Value,
    all: &Tensors<'a>,
    name: String,
    out: &mut Vec<Planned<'a>>,
    hints: &mut HashMap<String, String>,
) -> Result<ModelConfig> {
    match cfg_str(cfg, "activation_function") {
        None | Some("gelu_new") | Some("gelu_pytorch_tanh") => {}
        Some(a) => crate::bail!(
            "config.json: activation_function '{a}' is not supported for gpt2 (expected gelu_new)"
        ),
    }
    let c = cfg_req(cfg, &["n_embd", "hidden_size"])?;
    let nh = cfg_req(cfg, &["n_head", "num_attention_heads"])?;
    if nh == 0 || c % nh != 0 {
        crate::bail!("config.json: n_embd {c} is not a multiple of n_head {nh}");
    }
    let mut tensors = all.clone();
    // Checkpoints saved from GPT2LMHeadModel prefix names with "transformer.", the original
    // OpenAI-converted ones do not.
    let prefix = if tensors.contains_key("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let tied = cfg_bool(cfg, "tie_word_embeddings")?.unwrap_or(true);
    if !tied {
        crate::bail!("config.json: untied GPT-2 heads are not supported");
    }
    let config = ModelConfig {
        arch: Arch::Gpt2,
        name,
        vocab_size: cfg_req(cfg, &["vocab_size"])?,
        context_length: cfg_req(cfg, &["n_positions", "n_ctx", "max_position_embeddings"])?,
        embedding_dim: c,
        layer_count: cfg_req(cfg, &["n_layer", "num_hidden_layers"])?,
        head_count: nh,
        kv_head_count: nh,
        head_dim: c / nh,
        ffn_dim: cfg_usize(cfg, &["n_inner"])?.unwrap_or(4 * c),
        norm_eps: cfg_f32(cfg, &["layer_norm_epsilon"])?.unwrap_or(1e-5),
        rope_theta: None,
        tied_embeddings: true,
    };
    config.validate()?;
    config.check_layer_count(all.len())?;

    let p = prefix;
    for (src, dst) in [
        ("wte.weight", "token_embd.weight"),
        ("wpe.weight", "pos_embd.weight"),
        ("ln_f.weight", "output_norm.weight"),
        ("ln_f.bias", "output_norm.bias"),
    ] {
        let src = format!("{p}{src}");
        hints.insert(dst.to_string(), src.clone());
        if let Some((t, _)) = take(&mut tensors, &src) {
            plan_copy(out, dst.into(), &src, t);
        }
    }
    for n in 0..config.layer_count {
        let h = format!("{p}h.{n}");
        let b = format!("blk.{n}");
        for (src, dst) in [
            ("ln_1.weight", "attn_norm.weight"),
            ("ln_1.bias", "attn_norm.bias"),
            ("ln_2.weight", "ffn_norm.weight"),
            ("ln_2.bias", "ffn_norm.bias"),
            ("attn.c_proj.bias", "attn_output.bias"),
            ("mlp.c_fc.bias", "ffn_up.bias"),
            ("mlp.c_proj.bias", "ffn_down.bias"),
        ] {
            let src = format!("{h}.{src}");
            hints.insert(format!("{b}.{dst}"), src.clone());
            if let Some((t, _)) = take(&mut tensors, &src) {
                plan_copy(out, format!("{b}.{dst}"), &src, t);
            }
        }
        // Conv1D (in, out) → Linear (out, in).
        for (src, dst) in [
            ("attn.c_proj.weight", "attn_output.weight"),
            ("mlp.c_fc.weight", "ffn_up.weight"),
            ("mlp.c_proj.weight", "ffn_down.weight"),
        ] {
            let src = format!("{h}.{src}");
            hints.insert(format!("{b}.{dst}"), src.clone());
            if let Some((t, _)) = take(&mut tensors, &src) {
                let (rows, cols) = matrix(&src, &t)?;
                out.push(Planned {
                    name: format!("{b}.{dst}"),
                    shape: vec![cols, rows],
                    dtype: t.dtype,
                    src_name: src,
                    src: t.data,
                    op: Op::TransposeCols {
                        rows,
                        cols: 0..cols,
                    },
                });
            }
        }
        // c_attn: (C, 3C) in → out, columns [Q | K | V]; bias (3C).
        let src = format!("{h}.attn.c_attn.weight");
        for part in ["attn_q", "attn_k", "attn_v"] {
            hints.insert(format!("{b}.{part}.weight"), src.clone());
            hints.insert(format!("{b}.{part}.bias"), format!("{h}.attn.c_attn.bias"));
        }
        if let Some((t, _)) = take(&mut tensors, &src) {
            let (rows, cols) = matrix(&src, &t)?;
            if cols != 3 * c || rows != c {
                crate::bail!(
                    "tensor {src} has shape {:?}, expected [{c}, {}]",
                    t.shape,
                    3 * c
                );
            }
            for (i, part) in ["attn_q", "attn_k", "attn_v"].into_iter().enumerate() {
                out.push(Planned {
                    name: format!("{b}.{part}.weight"),
                    shape: vec![c, rows],
                    dtype: t.dtype,
                    src_name: src.clone(),
                    src: t.data,
                    op: Op::TransposeCols {
                        rows,
                        cols: i * c..(i + 1) * c,
                    },
                });
            }
        }
        let src = format!("{h}.attn.c_attn.bias");
        if let Some((t, _)) = take(&mut tensors, &src) {
            if t.shape[..] != [3 * c] {
                crate::bail!("tensor {src} has shape {:?}, expected [{}]", t.shape, 3 * c);
            }
            for (i, part) in ["attn_q", "attn_k", "attn_v"].into_iter().enumerate() {
                out.push(Planned {
                    name: format!("{b}.{part}.bias"),
                    shape: vec![c],
                    dtype: t.dtype,
                    src_name: src.clone(),
                    src: t.data,
                    op: Op::Slice(i * c..(i + 1) * c),
                });
            }
        }
        // Attention-mask buffers of old checkpoints.
        tensors.remove(&format!("{h}.attn.bias"));
        tensors.remove(&format!("{h}.attn.masked_bias"));
    }
    tensors.remove("lm_head.weight");
    report_leftovers(&tensors)?;
    Ok(config)
}

fn matrix(name: &str, t: &StTensor<'_>) -> Result<(usize, usize)> {
    match t.shape[..] {
        [rows, cols] => Ok((rows, cols)),
        _ => crate::bail!("tensor {name} has shape {:?}, expected a matrix", t.shape),
    }
}

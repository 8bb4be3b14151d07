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
use ember_format::schema::{
    self, Attention, LayerFfn, LayerKv, LayerMixer, LayerPositions, Need, Role, Shape, TensorName,
};

use crate::model::{Arch, ModelConfig, RopeScaling};
use crate::plan::{Op, Plan, Planned};
use ember_format::Hparams;

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
        let mut cfg = &self.config;
        let mut model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
        // Gemma 4 and Qwen3.5 ship as multimodal checkpoints: the text model is text_config,
        // with weights under model.language_model.; the vision and audio towers are left out.
        let mut text_prefix = None;
        if let Some(&(wrapper, text)) = MULTIMODAL.iter().find(|(w, _)| *w == model_type) {
            let Some(text_cfg) = cfg.get("text_config").filter(|t| t.is_object()) else {
                crate::bail!("config.json: model_type '{wrapper}' without a text_config object");
            };
            cfg = text_cfg;
            model_type = cfg
                .get("model_type")
                .and_then(Value::as_str)
                .unwrap_or(text);
            text_prefix = Some("model.language_model.");
        }
        let supported = Arch::list(|a| a.hf);
        let arch = match (model_type, Arch::from_hf(model_type)) {
            (_, Some(a)) => a,
            ("gemma3", None) => crate::bail!(
                "config.json: model_type 'gemma3' is the multimodal Gemma 3 (4B and up); ember runs the text-only gemma3_text checkpoints (270M, 1B)"
            ),
            ("", None) => crate::bail!("config.json has no \"model_type\" (supported: {supported})"),
            (other, None) => crate::bail!(
                "unsupported architecture '{other}' in config.json (supported: {supported})"
            ),
        };
        let mut tensors = self.tensors()?;
        if let Some(prefix) = text_prefix {
            tensors = tensors
                .into_iter()
                .filter_map(|(name, t)| {
                    if name == "lm_head.weight" {
                        return Some((name, t));
                    }
                    let rest = name.strip_prefix(prefix)?;
                    Some((format!("model.{rest}"), t))
                })
                .collect();
        }
        let name = self
            .dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        let mut planned = Vec::new();
        let mut hints = HashMap::new();
        let config = match arch {
            Arch::Gpt2 => plan_gpt2(cfg, &tensors, name, &mut planned, &mut hints)?,
            _ => plan_decoder(
                cfg,
                arch,
                model_type,
                &tensors,
                name,
                &mut planned,
                &mut hints,
            )?,
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

/// Multimodal checkpoints whose text model Ember runs: (model_type, the text model's).
const MULTIMODAL: &[(&str, &str)] = &[("gemma4", "gemma4_text"), ("qwen3_5", "qwen3_5_text")];

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

/// The RoPE base and scaling of layers of `layer_type` (`full_attention` or
/// `sliding_attention`), from transformers 5's `rope_parameters` (flat, or one dict per layer
/// type) or 4's `rope_theta` / `rope_scaling` / `rope_local_base_freq`.
fn rope_params(cfg: &Value, layer_type: &str) -> Result<(Option<f32>, RopeScaling)> {
    let sliding = layer_type == "sliding_attention";
    if let Some(p) = cfg.get("rope_parameters").filter(|p| p.is_object()) {
        let nested = p.get("full_attention").is_some() || p.get("sliding_attention").is_some();
        let p = if nested {
            match p.get(layer_type) {
                Some(q) => q,
                None => return Ok((None, RopeScaling::None)),
            }
        } else {
            p
        };
        let theta = match cfg_f32(p, &["rope_theta"])? {
            Some(t) => Some(t),
            None => cfg_f32(cfg, &["rope_theta"])?,
        };
        return Ok((theta, rope_scaling(cfg, p)?));
    }
    if sliding {
        return Ok((cfg_f32(cfg, &["rope_local_base_freq"])?, RopeScaling::None));
    }
    let scaling = match cfg.get("rope_scaling").filter(|p| p.is_object()) {
        Some(p) => rope_scaling(cfg, p)?,
        None => RopeScaling::None,
    };
    Ok((cfg_f32(cfg, &["rope_theta"])?, scaling))
}

/// One RoPE parameter dict (`rope_type` or `type`): default, linear, llama3 or yarn, as
/// transformers' modeling_rope_utils reads them; anything else is refused by name.
fn rope_scaling(cfg: &Value, p: &Value) -> Result<RopeScaling> {
    let ty = p
        .get("rope_type")
        .or_else(|| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let factor = cfg_f32(p, &["factor"])?;
    let need = |v: Option<f32>, what: &str| {
        v.ok_or_else(|| Error(format!("config.json: RoPE scaling '{ty}' lacks \"{what}\"")))
    };
    let original = match cfg_usize(p, &["original_max_position_embeddings"])? {
        Some(o) => Some(o),
        None => cfg_usize(cfg, &["original_max_position_embeddings"])?,
    };
    match ty {
        "default" => Ok(RopeScaling::None),
        "longrope" => {
            let factors = |key: &str| -> Result<Vec<f32>> {
                match p.get(key).and_then(Value::as_array) {
                    Some(a) => a
                        .iter()
                        .map(|v| {
                            v.as_f64().map(|x| x as f32).ok_or_else(|| {
                                Error(format!("config.json: LongRoPE {key} holds {v}"))
                            })
                        })
                        .collect(),
                    None => crate::bail!("config.json: RoPE scaling 'longrope' lacks \"{key}\""),
                }
            };
            let max_pos = cfg_req(cfg, &["max_position_embeddings"])?;
            let Some(original) = original else {
                crate::bail!("config.json: LongRoPE needs original_max_position_embeddings");
            };
            // transformers: factor from the contexts when not given; the attention factor
            // sqrt(1 + ln(factor) / ln(original)).
            let factor = factor.unwrap_or(max_pos as f32 / original as f32) as f64;
            let attention_factor = match cfg_f32(p, &["attention_factor"])? {
                Some(a) => a,
                None => RopeScaling::longrope_attention_factor(factor, original),
            };
            Ok(RopeScaling::LongRope {
                short: factors("short_factor")?,
                long: factors("long_factor")?,
                original_context: original,
                attention_factor,
            })
        }
        // The share that rotates comes with partial_rotary_factor (gemma4_config).
        "proportional" => Ok(RopeScaling::Proportional {
            pairs: 0,
            factor: factor.unwrap_or(1.0),
        }),
        "linear" => Ok(RopeScaling::Linear {
            factor: need(factor, "factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: need(factor, "factor")?,
            low_freq_factor: need(cfg_f32(p, &["low_freq_factor"])?, "low_freq_factor")?,
            high_freq_factor: need(cfg_f32(p, &["high_freq_factor"])?, "high_freq_factor")?,
            original_context: match original {
                Some(o) => o,
                None => cfg_req(cfg, &["max_position_embeddings"])?,
            },
        }),
        "yarn" => {
            let max_pos = cfg_req(cfg, &["max_position_embeddings"])?;
            let original = original.unwrap_or(max_pos);
            let factor = match factor {
                Some(f) => f,
                None => max_pos as f32 / original as f32,
            };
            let get_mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let attention_factor = match cfg_f32(p, &["attention_factor"])? {
                Some(a) => a,
                None => {
                    let f = factor as f64;
                    match (cfg_f32(p, &["mscale"])?, cfg_f32(p, &["mscale_all_dim"])?) {
                        (Some(m), Some(all)) if m != 0.0 && all != 0.0 => {
                            (get_mscale(f, m as f64) / get_mscale(f, all as f64)) as f32
                        }
                        _ => get_mscale(f, 1.0) as f32,
                    }
                }
            };
            Ok(RopeScaling::Yarn {
                factor,
                original_context: original,
                beta_fast: cfg_f32(p, &["beta_fast"])?.filter(|&b| b != 0.0).unwrap_or(32.0),
                beta_slow: cfg_f32(p, &["beta_slow"])?.filter(|&b| b != 0.0).unwrap_or(1.0),
                attention_factor,
                truncate: cfg_bool(p, "truncate")?.unwrap_or(true),
            })
        }
        other => crate::bail!(
            "config.json: RoPE scaling type '{other}' is not supported (supported: default, linear, llama3, yarn, longrope, proportional)"
        ),
    }
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

/// Every architecture with Llama's module names (all but GPT-2): config.json read into a
/// [`ModelConfig`], then each layer's tensors mapped by the architecture's `hf_layer` table.
fn plan_decoder<'a>(
    cfg: &Value,
    arch: Arch,
    model_type: &str,
    all: &Tensors<'a>,
    name: String,
    out: &mut Vec<Planned<'a>>,
    hints: &mut HashMap<String, String>,
) -> Result<ModelConfig> {
    let info = arch.info();
    let gemma = matches!(arch, Arch::Gemma3 | Arch::Gemma4);
    let add_one = info.hf_norms_add_one;
    let (act_key, act) = if gemma {
        ("hidden_activation", "gelu_pytorch_tanh")
    } else {
        ("hidden_act", "silu")
    };
    if let Some(a) = cfg_str(cfg, act_key).or_else(|| cfg_str(cfg, "hidden_act")) {
        if a != act {
            crate::bail!(
                "config.json: {act_key} '{a}' is not supported for {model_type} (expected {act})"
            );
        }
    }
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
        None => gemma || !tensors.contains_key("lm_head.weight"),
    };
    let layer_count = cfg_req(cfg, &["num_hidden_layers"])?;
    let mut config = ModelConfig::basic(arch, name);
    config.vocab_size = cfg_req(cfg, &["vocab_size"])?;
    config.context_length = cfg_req(cfg, &["max_position_embeddings"])?;
    config.embedding_dim = embedding_dim;
    config.layer_count = layer_count;
    config.head_count = head_count;
    config.kv_head_count = kv_head_count;
    config.head_dim = head_dim;
    config.ffn_dim = cfg_req(cfg, &["intermediate_size"])?;
    config.norm_eps = cfg_f32(cfg, &["rms_norm_eps", "norm_eps"])?.unwrap_or(1e-6);
    config.tied_embeddings = tied;
    let (theta, scaling) = rope_params(cfg, "full_attention")?;
    config.rope_theta = Some(theta.unwrap_or(10_000.0));
    config.rope_scaling = scaling;
    config.rope_dim = partial_rotary(cfg, "full_attention", head_dim)?;
    // Readers from before partial RoPE ignore model.rope_dim: files of the architectures
    // they know must not need it.
    if config.rope_dim.is_some() && arch.readable_by_format_1_3() {
        crate::bail!(
            "config.json: partial RoPE (partial_rotary_factor) is not supported for {model_type}"
        );
    }
    config.check_layer_count(all.len())?;
    match arch {
        Arch::Gemma3 => gemma3_config(cfg, &mut config)?,
        Arch::Gemma4 => gemma4_config(cfg, &mut config)?,
        Arch::SmolLm3 => smollm3_layers(cfg, &mut config)?,
        Arch::Qwen3Moe => qwen3_moe_config(cfg, &mut config)?,
        Arch::Lfm2 => lfm2_config(cfg, &mut config)?,
        Arch::GraniteHybrid => granite_hybrid_config(cfg, &mut config)?,
        Arch::Qwen35 => qwen35_config(cfg, &mut config)?,
        _ => {}
    }
    // Recurrent layers where layer_types says (an architecture without them refuses).
    if let Some(kinds) = layer_kinds(cfg, layer_count)? {
        if kinds.iter().any(|(m, _)| *m == LayerMixer::Recurrent) {
            if arch.features().recurrent == schema::Recurrent::None {
                crate::bail!(
                    "config.json: recurrent layers in layer_types are not supported for {model_type}"
                );
            }
            config.set_layers(|i, l| {
                l.mixer = kinds[i].0;
                Ok(())
            })?;
        }
    }
    if let RopeScaling::Proportional { pairs: 0, .. } = config.rope_scaling {
        crate::bail!("config.json: RoPE type 'proportional' without a rotated share (Gemma 4's partial_rotary_factor)");
    }
    if !gemma {
        // Sliding-window attention of Mistral 7B v0.1 or Qwen with use_sliding_window sees
        // only the last W positions; full attention is the same while the sequence is at
        // most W long, so the context is capped there.
        let windowed = match model_type {
            "qwen2" | "qwen3" | "qwen3_moe" | "smollm3" => {
                cfg_bool(cfg, "use_sliding_window")?.unwrap_or(false)
            }
            _ => true,
        };
        let mut capped = false;
        if windowed {
            if let Some(w) = cfg_usize(cfg, &["sliding_window"])?.filter(|&w| w > 0) {
                config.context_length = config.context_length.min(w);
                capped = config.context_length == w;
            }
        }
        // Sliding-window layers see what full attention sees within a capped context.
        let kinds = layer_types(cfg, layer_count)?;
        if !capped && kinds.is_some_and(|k| k.contains(&Attention::Local)) {
            crate::bail!(
                "config.json: sliding_attention layers in layer_types are not supported for {model_type}"
            );
        }
    }
    let hp = config.validate()?;

    // (HF name, ember name, how the values change)
    let norm = if add_one {
        Values::AddOne
    } else {
        Values::Same
    };
    // LFM2's last norm is named for the embedding but applied after the last layer.
    let final_norm = match arch {
        Arch::Lfm2 => "model.embedding_norm.weight",
        _ => "model.norm.weight",
    };
    let mut map: Vec<(String, String, Values)> = vec![
        (
            "model.embed_tokens.weight".into(),
            schema::TOKEN_EMBD.into(),
            Values::Same,
        ),
        (final_norm.into(), "output_norm.weight".into(), norm),
    ];
    if config.per_layer_dim > 0 {
        for (hf, ember) in [
            (
                "model.embed_tokens_per_layer.weight",
                schema::PER_LAYER_TOKEN_EMBD,
            ),
            (
                "model.per_layer_model_projection.weight",
                schema::PER_LAYER_MODEL_PROJ,
            ),
            (
                "model.per_layer_projection_norm.weight",
                schema::PER_LAYER_PROJ_NORM,
            ),
        ] {
            map.push((hf.into(), ember.into(), Values::Same));
        }
    }
    if !tied {
        map.push(("lm_head.weight".into(), schema::OUTPUT.into(), Values::Same));
    }
    let (dims, ft) = (hp.dims(), arch.features());
    let specs = config.layer_specs();
    for (n, spec) in specs.iter().enumerate() {
        for &(module, roles) in info.hf_layer.iter().flat_map(|g| g.iter()) {
            if module.contains('*') {
                if spec.ffn == LayerFfn::Experts {
                    plan_experts(&mut tensors, &hp, n, module, roles, out, hints)?;
                }
                continue;
            }
            if let [role] = roles {
                if ft.weight(*role, spec) == Need::Absent && ft.bias(*role, spec) == Need::Absent {
                    // Layers sharing keys and values may still carry unused K/V weights.
                    if spec.kv == LayerKv::Shared {
                        for suffix in ["weight", "bias"] {
                            tensors.remove(&format!("model.layers.{n}.{module}.{suffix}"));
                        }
                    }
                    continue;
                }
                for (suffix, bias) in [("weight", false), ("bias", true)] {
                    let dst = TensorName::layer(n, *role, bias).as_str().to_string();
                    let mut src = format!("model.layers.{n}.{module}.{suffix}");
                    // A scalar buffer (Gemma 4's layer_scalar) has no suffix.
                    let bare = format!("model.layers.{n}.{module}");
                    if !bias && !tensors.contains_key(&src) && tensors.contains_key(&bare) {
                        src = bare;
                    }
                    let values = match role {
                        Role::SsmA => Values::NegExp,
                        // The recurrent mixers' gated norms are plain w (Qwen3.5's too).
                        Role::SsmNorm => Values::Same,
                        r if r.is_norm() => norm,
                        _ => Values::Same,
                    };
                    map.push((src, dst, values));
                }
                continue;
            }
            // A fused module: its rows are the roles' rows, in order.
            for (suffix, bias) in [("weight", false), ("bias", true)] {
                let src = format!("model.layers.{n}.{module}.{suffix}");
                for role in roles.iter() {
                    hints.insert(
                        TensorName::layer(n, *role, bias).as_str().into(),
                        src.clone(),
                    );
                }
                let Some((t, _)) = take(&mut tensors, &src) else {
                    continue;
                };
                let sizes: Vec<usize> =
                    roles.iter().map(|r| r.bias_len(&dims, &ft, spec)).collect();
                let total: usize = sizes.iter().sum();
                let cols = match (bias, &t.shape[..]) {
                    (false, &[rows, cols]) if rows == total => cols,
                    (true, &[rows]) if rows == total => 0,
                    _ => crate::bail!(
                        "tensor {src} has shape {:?}: expected {total} rows (the parts {sizes:?})",
                        t.shape
                    ),
                };
                let mut first = 0;
                for (role, size) in roles.iter().zip(sizes) {
                    let rows = first..first + size;
                    first += size;
                    out.push(Planned {
                        name: TensorName::layer(n, *role, bias).as_str().to_string(),
                        shape: if bias { vec![size] } else { vec![size, cols] },
                        dtype: t.dtype,
                        src_name: src.clone(),
                        src: t.data,
                        op: Op::Rows { rows, of: total },
                    });
                }
            }
        }
    }
    for (src, dst, values) in map {
        hints.insert(dst.clone(), src.clone());
        if let Some((mut t, _)) = take(&mut tensors, &src) {
            // Convolution kernels (C, 1, K) are (C, K); A, D and norms (H, 1) are (H).
            if t.shape.len() > 1 && Role::of_tensor(&dst).is_some_and(Role::keeps_f32) {
                t.shape.retain(|&d| d != 1);
            }
            let op = match values {
                Values::Same => {
                    plan_copy(out, dst, &src, t);
                    continue;
                }
                Values::AddOne => Op::AddOne { from: t.dtype },
                Values::NegExp => Op::NegExp { from: t.dtype },
            };
            out.push(Planned {
                name: dst,
                shape: t.shape,
                dtype: DType::F32,
                src_name: src,
                src: t.data,
                op,
            });
        }
    }
    out.extend(Planned::rope_tables(&config));
    // Tied models may still carry a copy of the head; buffers of old checkpoints.
    if tied {
        tensors.remove("lm_head.weight");
    }
    tensors.retain(|k, _| !k.ends_with(".rotary_emb.inv_freq"));
    // Qwen3.5's multi-token-prediction head drafts tokens; plain decoding does not use it.
    if arch == Arch::Qwen35 {
        tensors.retain(|k, _| !k.starts_with("mtp."));
    }
    report_leftovers(&tensors)?;
    Ok(config)
}

/// How a tensor's values change on the way in.
#[derive(Clone, Copy)]
enum Values {
    Same,
    /// Gemma's (1 + w) norms, stored folded.
    AddOne,
    /// Mamba's A_log, stored as A = -exp(A_log).
    NegExp,
}

/// The dimensions of each head RoPE rotates in layers of `layer_type`, from
/// `partial_rotary_factor` (top level or in `rope_parameters`); None: all.
fn partial_rotary(cfg: &Value, layer_type: &str, head_dim: usize) -> Result<Option<usize>> {
    let params = cfg.get("rope_parameters").filter(|p| p.is_object());
    let nested = params
        .and_then(|p| p.get(layer_type))
        .filter(|p| p.is_object());
    let mut factor = cfg_f32(cfg, &["partial_rotary_factor"])?;
    for p in [params, nested].into_iter().flatten() {
        if let Some(f) = cfg_f32(p, &["partial_rotary_factor"])? {
            factor = Some(f);
        }
    }
    match factor {
        None => Ok(None),
        Some(f) if f > 0.0 && f <= 1.0 => {
            // transformers: int(head_dim * factor)
            Ok(Some((head_dim as f64 * f as f64) as usize).filter(|&r| r != head_dim))
        }
        Some(f) => crate::bail!("config.json: partial_rotary_factor {f} is not in (0, 1]"),
    }
}

/// Gemma 4 text: Gemma 3's local/global layers with a larger global head and "proportional"
/// RoPE there, attention scale 1, per-layer inputs, KV sharing in the last layers.
fn gemma4_config(cfg: &Value, config: &mut ModelConfig) -> Result<()> {
    for (key, what) in [
        (
            "attention_k_eq_v",
            "values from the key projection (attention_k_eq_v)",
        ),
        (
            "enable_moe_block",
            "the mixture-of-experts block (enable_moe_block)",
        ),
    ] {
        if cfg_bool(cfg, key)? == Some(true) {
            crate::bail!("config.json: {what} of the larger Gemma 4 models is not supported yet");
        }
    }
    let layers = config.layer_count;
    let kinds: Vec<Attention> = match layer_types(cfg, layers)? {
        Some(kinds) => kinds,
        // transformers: every sixth layer global, and the last one always.
        None => (0..layers)
            .map(|i| {
                if (i + 1) % 6 == 0 || i + 1 == layers {
                    Attention::Global
                } else {
                    Attention::Local
                }
            })
            .collect(),
    };
    // The global layers' head: `global_head_dim`, or transformers 5.25's per_layer_config.
    let mut global_hd = cfg_usize(cfg, &["global_head_dim"])?;
    if let Some(per) = cfg.get("per_layer_config").filter(|v| !v.is_null()) {
        let Some(per) = per.as_object() else {
            crate::bail!("config.json: per_layer_config should be an object");
        };
        for (layer, v) in per {
            let i: usize = match layer.parse() {
                Ok(i) if i < layers => i,
                _ => crate::bail!("config.json: per_layer_config key {layer:?} is not a layer"),
            };
            if let Some(kv) = cfg_usize(v, &["num_key_value_heads"])? {
                if kv != config.kv_head_count {
                    crate::bail!("config.json: per-layer KV head counts are not supported");
                }
            }
            if let Some(hd) = cfg_usize(v, &["head_dim"])? {
                let expected = match kinds[i] {
                    Attention::Global => *global_hd.get_or_insert(hd),
                    Attention::Local => config.head_dim,
                };
                if hd != expected {
                    crate::bail!(
                        "config.json: layer {i}'s head_dim {hd}: head sizes must be one per layer kind"
                    );
                }
            }
        }
    }
    config.head_dim_global = global_hd.filter(|&hd| hd != config.head_dim);
    let (local_theta, local_scaling) = rope_params(cfg, "sliding_attention")?;
    if local_scaling != RopeScaling::None {
        crate::bail!("config.json: RoPE scaling of sliding-window layers is not supported");
    }
    config.rope_theta_local = Some(local_theta.unwrap_or(10_000.0));
    // "proportional" RoPE is a full-head RoPE with the frequencies past the rotated share
    // set to 0; partial_rotary_factor gives the share.
    let hg = config.head_dim_global();
    if let RopeScaling::Proportional { pairs, .. } = &mut config.rope_scaling {
        let share = partial_rotary(cfg, "full_attention", hg)?.unwrap_or(hg);
        *pairs = share / 2;
        config.rope_dim = None;
    }
    config.sliding_window = Some(cfg_req(cfg, &["sliding_window"])?);
    let shared = cfg_usize(cfg, &["num_kv_shared_layers"])?.unwrap_or(0);
    if shared > layers {
        crate::bail!("config.json: num_kv_shared_layers {shared} exceeds the {layers} layers");
    }
    if cfg_bool(cfg, "use_double_wide_mlp")? == Some(true) {
        config.ffn_dim_shared_kv = Some(2 * config.ffn_dim);
    }
    config.set_layers(|i, l| {
        l.attention = kinds[i];
        if i >= layers - shared {
            l.kv = LayerKv::Shared;
        }
        Ok(())
    })?;
    config.per_layer_dim = cfg_req(cfg, &["hidden_size_per_layer_input"])?;
    if let Some(v) = cfg_usize(cfg, &["vocab_size_per_layer_input"])? {
        if v != config.vocab_size {
            crate::bail!(
                "config.json: vocab_size_per_layer_input {v} differs from vocab_size {}",
                config.vocab_size
            );
        }
    }
    // The q and k norms stand in for 1/sqrt(HS).
    config.attention_scale = Some(1.0);
    config.final_logit_softcap = cfg_f32(cfg, &["final_logit_softcapping"])?;
    if cfg_f32(cfg, &["attn_logit_softcapping"])?.is_some() {
        crate::bail!("config.json: attn_logit_softcapping is not supported");
    }
    Ok(())
}

/// Gemma 3: local layers with their own RoPE base and window, the query scale, soft-caps.
fn gemma3_config(cfg: &Value, config: &mut ModelConfig) -> Result<()> {
    let (local_theta, local_scaling) = rope_params(cfg, "sliding_attention")?;
    if local_scaling != RopeScaling::None {
        crate::bail!("config.json: RoPE scaling of sliding-window layers is not supported");
    }
    config.rope_theta_local = Some(local_theta.unwrap_or(10_000.0));
    let window = cfg_req(cfg, &["sliding_window"])?;
    config.sliding_window = Some(window);
    let kinds: Vec<Attention> = match layer_types(cfg, config.layer_count)? {
        Some(kinds) => kinds,
        None => {
            let pattern = cfg_usize(cfg, &["sliding_window_pattern", "_sliding_window_pattern"])?
                .unwrap_or(6)
                .max(1);
            (0..config.layer_count)
                .map(|i| {
                    if (i + 1) % pattern == 0 {
                        Attention::Global
                    } else {
                        Attention::Local
                    }
                })
                .collect()
        }
    };
    config.set_layers(|i, l| {
        l.attention = kinds[i];
        Ok(())
    })?;
    let scalar = cfg_f32(cfg, &["query_pre_attn_scalar"])?.unwrap_or(config.head_dim as f32);
    config.attention_scale = Some((1.0 / (scalar as f64).sqrt()) as f32);
    config.final_logit_softcap = cfg_f32(cfg, &["final_logit_softcapping"])?;
    if let Some(cap) = cfg_f32(cfg, &["attn_logit_softcapping"])? {
        crate::bail!("config.json: attn_logit_softcapping {cap} is not supported");
    }
    if cfg_bool(cfg, "use_bidirectional_attention")? == Some(true) {
        crate::bail!(
            "config.json: use_bidirectional_attention is not supported (a decoder-only runtime)"
        );
    }
    Ok(())
}

/// transformers' `layer_types` (one per layer) as attention kinds; None where absent.
fn layer_types(cfg: &Value, layers: usize) -> Result<Option<Vec<Attention>>> {
    Ok(layer_kinds(cfg, layers)?.map(|k| k.into_iter().map(|(_, a)| a).collect()))
}

/// transformers' `layer_types` as each layer's mixer and attention: `conv` (LFM2),
/// `mamba` and `linear_attention` (Granite 4, Qwen3.5) are recurrent.
fn layer_kinds(cfg: &Value, layers: usize) -> Result<Option<Vec<(LayerMixer, Attention)>>> {
    let Some(list) = cfg.get("layer_types").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(list) = list.as_array() else {
        crate::bail!("config.json: layer_types should be a list, got {list}");
    };
    let kinds = list
        .iter()
        .map(|v| match v.as_str() {
            Some("sliding_attention") => Ok((LayerMixer::Attention, Attention::Local)),
            Some("full_attention" | "attention") => Ok((LayerMixer::Attention, Attention::Global)),
            Some("conv" | "mamba" | "linear_attention") => {
                Ok((LayerMixer::Recurrent, Attention::Global))
            }
            _ => crate::bail!(
                "config.json: unknown layer type {v} in layer_types (supported: full_attention, sliding_attention, conv, mamba, linear_attention)"
            ),
        })
        .collect::<Result<Vec<_>>>()?;
    per_layer_list("layer_types", kinds.len(), layers)?;
    Ok(Some(kinds))
}

fn per_layer_list(key: &str, len: usize, layers: usize) -> Result<()> {
    if len != layers {
        crate::bail!("config.json: \"{key}\" has {len} entries for {layers} layers");
    }
    Ok(())
}

/// LFM2: short-convolution layers of `conv_L_cache` taps; the feed-forward width follows
/// `block_auto_adjust_ff_dim` as transformers' Lfm2MLP computes it.
fn lfm2_config(cfg: &Value, config: &mut ModelConfig) -> Result<()> {
    config.conv_kernel = cfg_req(cfg, &["conv_L_cache"])?;
    if cfg_bool(cfg, "block_auto_adjust_ff_dim")?.unwrap_or(false) {
        let mut ff = 2 * config.ffn_dim / 3;
        if let Some(m) = cfg_f32(cfg, &["block_ffn_dim_multiplier"])? {
            ff = (m as f64 * ff as f64) as usize;
        }
        let multiple = cfg_usize(cfg, &["block_multiple_of"])?
            .unwrap_or(256)
            .max(1);
        config.ffn_dim = ff.div_ceil(multiple) * multiple;
    }
    // Without layer_types, full_attn_idxs names the attention layers.
    if cfg.get("layer_types").is_none_or(Value::is_null) {
        let Some(list) = cfg.get("full_attn_idxs").and_then(Value::as_array) else {
            crate::bail!("config.json: LFM2 needs layer_types or full_attn_idxs");
        };
        let attention: Vec<u64> = list.iter().filter_map(Value::as_u64).collect();
        if attention.len() != list.len() {
            crate::bail!("config.json: full_attn_idxs should be a list of layer indices");
        }
        config.set_layers(|i, l| {
            if !attention.contains(&(i as u64)) {
                l.mixer = LayerMixer::Recurrent;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Granite 4 hybrid: Mamba-2 layers, muP multipliers, a shared (dense) feed-forward of
/// `shared_intermediate_size`; positions from `position_embedding_type` (`nope` or `rope`).
fn granite_hybrid_config(cfg: &Value, config: &mut ModelConfig) -> Result<()> {
    if let Some(n) = cfg_usize(cfg, &["num_local_experts"])?.filter(|&n| n > 0) {
        crate::bail!("config.json: Granite 4 with {n} experts (num_local_experts) is not supported; the dense models (H Micro, H 350M, H 1B) are");
    }
    if let Some(f) = cfg_usize(cfg, &["shared_intermediate_size"])? {
        config.ffn_dim = f;
    }
    config.conv_kernel = cfg_req(cfg, &["mamba_d_conv"])?;
    config.ssm_heads = cfg_req(cfg, &["mamba_n_heads"])?;
    config.ssm_head_dim = cfg_req(cfg, &["mamba_d_head"])?;
    config.ssm_state = cfg_req(cfg, &["mamba_d_state"])?;
    config.ssm_groups = cfg_usize(cfg, &["mamba_n_groups"])?.unwrap_or(1);
    let expand = cfg_usize(cfg, &["mamba_expand"])?.unwrap_or(2);
    if config.ssm_heads * config.ssm_head_dim != expand * config.embedding_dim {
        crate::bail!(
            "config.json: mamba_n_heads x mamba_d_head ({} x {}) differs from mamba_expand x hidden_size ({expand} x {})",
            config.ssm_heads,
            config.ssm_head_dim,
            config.embedding_dim
        );
    }
    // transformers clamps dt to time_step_limit only where it is not (0, inf).
    if let Some(limit) = cfg.get("time_step_limit").and_then(Value::as_array) {
        let lower = limit.first().and_then(Value::as_f64).unwrap_or(0.0);
        let upper_infinite = limit.get(1).is_some_and(|u| {
            u.as_f64().is_some_and(f64::is_infinite)
                || u.get("__float__").and_then(Value::as_str) == Some("Infinity")
                || u.as_str() == Some("Infinity")
        });
        if lower != 0.0 || !upper_infinite {
            crate::bail!(
                "config.json: Mamba time_step_limit {limit:?} is not supported (only (0, inf))"
            );
        }
    }
    for (key, slot) in [
        ("embedding_multiplier", &mut config.embedding_scale),
        ("residual_multiplier", &mut config.residual_scale),
        ("logits_scaling", &mut config.logits_divisor),
    ] {
        *slot = cfg_f32(cfg, &[key])?.filter(|&v| v != 1.0);
    }
    if let Some(a) = cfg_f32(cfg, &["attention_multiplier"])? {
        config.attention_scale = Some(a);
    }
    match cfg_str(cfg, "position_embedding_type").unwrap_or("rope") {
        "rope" => {}
        "nope" => config.set_layers(|_, l| {
            l.positions = LayerPositions::None;
            Ok(())
        })?,
        other => crate::bail!(
            "config.json: position_embedding_type '{other}' is not supported (rope, nope)"
        ),
    }
    Ok(())
}

/// Qwen3.5: Gated DeltaNet sizes; without layer_types, every `full_attention_interval`-th
/// layer is attention (transformers' default 4).
fn qwen35_config(cfg: &Value, config: &mut ModelConfig) -> Result<()> {
    config.conv_kernel = cfg_req(cfg, &["linear_conv_kernel_dim"])?;
    config.ssm_groups = cfg_req(cfg, &["linear_num_key_heads"])?;
    config.ssm_state = cfg_req(cfg, &["linear_key_head_dim"])?;
    config.ssm_heads = cfg_req(cfg, &["linear_num_value_heads"])?;
    config.ssm_head_dim = cfg_req(cfg, &["linear_value_head_dim"])?;
    if cfg.get("layer_types").is_none_or(Value::is_null) {
        let interval = cfg_usize(cfg, &["full_attention_interval"])?.unwrap_or(4);
        if interval == 0 {
            crate::bail!("config.json: full_attention_interval must be positive");
        }
        config.set_layers(|i, l| {
            if (i + 1) % interval != 0 {
                l.mixer = LayerMixer::Recurrent;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// SmolLM3: `no_rope_layers[i]` is 1 where layer i uses RoPE, 0 where it has no positions;
/// without the list, every `no_rope_layer_interval`-th layer has none (transformers).
fn smollm3_layers(cfg: &Value, config: &mut ModelConfig) -> Result<()> {
    let layers = config.layer_count;
    let uses_rope: Vec<bool> = match cfg.get("no_rope_layers").filter(|v| !v.is_null()) {
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| match v.as_u64() {
                Some(1) => Ok(true),
                Some(0) => Ok(false),
                _ => crate::bail!("config.json: no_rope_layers entries must be 0 or 1, got {v}"),
            })
            .collect::<Result<_>>()?,
        Some(v) => crate::bail!("config.json: no_rope_layers should be a list, got {v}"),
        None => {
            let interval = cfg_usize(cfg, &["no_rope_layer_interval"])?.unwrap_or(4);
            if interval == 0 {
                crate::bail!("config.json: no_rope_layer_interval must be positive");
            }
            (0..layers).map(|i| (i + 1) % interval != 0).collect()
        }
    };
    per_layer_list("no_rope_layers", uses_rope.len(), layers)?;
    config.set_layers(|i, l| {
        if !uses_rope[i] {
            l.positions = LayerPositions::None;
        }
        Ok(())
    })
}

/// Qwen3-MoE: N experts (`num_experts`, transformers 5's `num_local_experts`), k per token,
/// each `moe_intermediate_size` wide; dense layers where `mlp_only_layers` or
/// `decoder_sparse_step` say.
fn qwen3_moe_config(cfg: &Value, config: &mut ModelConfig) -> Result<()> {
    config.experts = cfg_req(cfg, &["num_experts", "num_local_experts"])?;
    config.experts_used = cfg_req(cfg, &["num_experts_per_tok"])?;
    config.expert_ffn_dim = cfg_req(cfg, &["moe_intermediate_size"])?;
    config.expert_weights_norm = cfg_bool(cfg, "norm_topk_prob")?.unwrap_or(false);
    let step = cfg_usize(cfg, &["decoder_sparse_step"])?.unwrap_or(1);
    if step == 0 {
        crate::bail!("config.json: decoder_sparse_step must be positive");
    }
    let mut dense_layers = Vec::new();
    if let Some(list) = cfg.get("mlp_only_layers").filter(|v| !v.is_null()) {
        let Some(list) = list.as_array() else {
            crate::bail!("config.json: mlp_only_layers should be a list of layer indices");
        };
        for v in list {
            match v.as_u64().map(|i| i as usize) {
                Some(i) if i < config.layer_count => dense_layers.push(i),
                _ => crate::bail!("config.json: mlp_only_layers entry {v} is not a layer index"),
            }
        }
    }
    config.set_layers(|i, l| {
        if dense_layers.contains(&i) || (i + 1) % step != 0 {
            l.ffn = LayerFfn::Dense;
        }
        Ok(())
    })
}

/// Layer `n`'s experts of `module` (`mlp.experts.*.gate_proj`), stacked by rows into one
/// matrix (N·FE, C) or (N·C, FE).
fn plan_experts<'a>(
    tensors: &mut Tensors<'a>,
    hp: &Hparams,
    n: usize,
    module: &str,
    roles: &[Role],
    out: &mut Vec<Planned<'a>>,
    hints: &mut HashMap<String, String>,
) -> Result<()> {
    let [role] = roles else {
        crate::bail!("internal: experts map to one role each");
    };
    let dst = TensorName::layer(n, *role, false).as_str().to_string();
    let src_of = |e: usize| {
        format!(
            "model.layers.{n}.{}.weight",
            module.replace('*', &e.to_string())
        )
    };
    hints.insert(dst.clone(), src_of(0));
    let spec = hp.layer(n);
    let Shape::Matrix(rows, cols) = role.shape(&hp.dims(), &hp.features, &spec) else {
        crate::bail!("internal: experts are matrices");
    };
    let per = rows / hp.experts;
    let mut parts = Vec::with_capacity(hp.experts);
    let mut dtype = None;
    for e in 0..hp.experts {
        let src = src_of(e);
        let Some((t, _)) = take(tensors, &src) else {
            crate::bail!("missing tensor {src} (expert {e} of {})", hp.experts);
        };
        if t.shape[..] != [per, cols] {
            crate::bail!(
                "tensor {src} has shape {:?}, expected [{per}, {cols}]",
                t.shape
            );
        }
        if dtype.is_some_and(|d| d != t.dtype) {
            crate::bail!("tensor {src}: experts of one layer must share a dtype");
        }
        dtype = Some(t.dtype);
        parts.push(t.data);
    }
    let first = parts.remove(0);
    out.push(Planned {
        name: dst,
        shape: vec![rows, cols],
        dtype: dtype.unwrap_or(DType::F32),
        src_name: src_of(0),
        src: first,
        op: Op::Stack(parts),
    });
    Ok(())
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
    let mut config = ModelConfig::basic(Arch::Gpt2, name);
    config.vocab_size = cfg_req(cfg, &["vocab_size"])?;
    config.context_length = cfg_req(cfg, &["n_positions", "n_ctx", "max_position_embeddings"])?;
    config.embedding_dim = c;
    config.layer_count = cfg_req(cfg, &["n_layer", "num_hidden_layers"])?;
    config.head_count = nh;
    config.kv_head_count = nh;
    config.head_dim = c / nh;
    config.ffn_dim = cfg_usize(cfg, &["n_inner"])?.unwrap_or(4 * c);
    config.norm_eps = cfg_f32(cfg, &["layer_norm_epsilon"])?.unwrap_or(1e-5);
    config.tied_embeddings = true;
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

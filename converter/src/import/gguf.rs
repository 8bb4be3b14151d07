//! GGUF files of the `llama` architecture (as written by llama.cpp's convert_hf_to_gguf).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Context, Error, Result};
use crate::gguf::GgufFile;
use crate::model::{Arch, ModelConfig};
use crate::plan::{Op, Plan, Planned};

pub struct GgufSource {
    path: PathBuf,
    map: Mmap,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).context(format!("opening {}", path.display()))?;
        // SAFETY: read-only map that we only read. A concurrent writer could change the
        // bytes under us; the parser validates every offset against the map's length, so
        // that can give wrong data but not out-of-bounds access.
        let map = unsafe { Mmap::map(&file) }.context(format!("mapping {}", path.display()))?;
        Ok(GgufSource {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn parse(&self) -> Result<GgufFile<'_>> {
        GgufFile::parse(&self.map).map_err(|e| Error(format!("{}: {e}", self.path.display())))
    }

    pub fn plan(&self) -> Result<Plan<'_>> {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        plan(self.parse()?, &stem).map_err(|e| Error(format!("{}: {e}", self.path.display())))
    }
}

/// Plans the conversion of a parsed GGUF file; `stem` names the model when the file has no
/// `general.name`.
pub fn plan<'a>(g: GgufFile<'a>, stem: &str) -> Result<Plan<'a>> {
    let arch = g.str("general.architecture")?;
    if arch != "llama" {
        crate::bail!("unsupported GGUF architecture '{arch}' (supported: llama)");
    }
    let key = |k: &str| format!("llama.{k}");
    if g.opt_u32(&key("expert_count"))?.unwrap_or(0) > 0 {
        crate::bail!("mixture-of-experts llama models are not supported");
    }
    if let Some(v) = g.get(&key("rope.scaling.type")) {
        let ty = v.as_str().unwrap_or("?");
        if ty != "none" {
            crate::bail!("RoPE scaling type '{ty}' is not supported; ember implements plain RoPE");
        }
    }
    if g.tensor("rope_freqs.weight").is_some() {
        crate::bail!("tensor rope_freqs.weight (Llama 3.1 RoPE scaling) is not supported; ember implements plain RoPE");
    }
    let embedding_dim = g.u32(&key("embedding_length"))? as usize;
    let head_count = g.u32(&key("attention.head_count"))? as usize;
    let kv_head_count = g
        .opt_u32(&key("attention.head_count_kv"))?
        .map_or(head_count, |v| v as usize);
    let head_dim = match g.opt_u32(&key("attention.key_length"))? {
        Some(hd) => hd as usize,
        None => {
            if head_count == 0 || !embedding_dim.is_multiple_of(head_count) {
                crate::bail!(
                    "embedding_length {embedding_dim} is not a multiple of head_count {head_count}"
                );
            }
            embedding_dim / head_count
        }
    };
    if let Some(rd) = g.opt_u32(&key("rope.dimension_count"))? {
        if rd as usize != head_dim {
            crate::bail!(
                "partial RoPE (rope.dimension_count {rd} of head size {head_dim}) is not supported"
            );
        }
    }
    let embd = g
        .tensor("token_embd.weight")
        .ok_or_else(|| Error("missing tensor token_embd.weight".into()))?;
    let vocab_size = match g.opt_u32(&key("vocab_size"))? {
        Some(v) => v as usize,
        None => match g.opt_array("tokenizer.ggml.tokens")? {
            Some(a) => a.len(),
            None => embd.shape[0],
        },
    };
    let name = match g.get("general.name").and_then(|v| v.as_str()) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => stem.to_string(),
    };
    let config = ModelConfig {
        arch: Arch::Llama,
        name,
        vocab_size,
        context_length: g.u32(&key("context_length"))? as usize,
        embedding_dim,
        layer_count: g.u32(&key("block_count"))? as usize,
        head_count,
        kv_head_count,
        head_dim,
        ffn_dim: g.u32(&key("feed_forward_length"))? as usize,
        norm_eps: g
            .opt_f32(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5),
        rope_theta: Some(g.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0)),
        tied_embeddings: g.tensor("output.weight").is_none(),
    };
    config.validate()?;

    let mut tensors = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        let role = t.name.rsplit('.').nth(1).unwrap_or("");
        let op = match role {
            "attn_q" => Op::UnpermuteRope { heads: head_count },
            "attn_k" => Op::UnpermuteRope {
                heads: kv_head_count,
            },
            _ => Op::Copy,
        };
        tensors.push(Planned {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            src_name: t.name.clone(),
            src: t.data,
            op,
        });
    }
    let tokenizer = crate::tok::from_gguf(&g)?;
    Ok(Plan {
        config,
        tensors,
        tokenizer,
        source_names: Default::default(),
    })
}

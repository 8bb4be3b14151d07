//! A decoder-only transformer: config, weights, and the forward pass.

mod forward;
mod recurrent;
mod weights;

/// The model's hyperparameters: ember-format's one record ([`ember_format::Hparams`]).
pub use ember_format::hparams::{Hparams as Config, LayerKinds};
pub use ember_format::schema::{
    Arch, Attention, BlockNorms, EmbedScale, Features, FfnKind, NormKind, Positions, QkNorm,
};
pub use forward::{Compute, Logits, Observer, Parts, Scratch, ScratchPlan};
pub use weights::{
    AttentionWeights, ConvKernel, Experts, Ffn, GatedDeltaNet, Layer, Linear, Mamba2, Matrix,
    Mixer, Norm, PerLayerBranch, PerLayerEmbeddings, ShortConv, Weights,
};

use ember_format::EmberFile;

use crate::Error;

/// A loaded model: configuration and weights borrowed from the file's bytes. `L` holds the
/// per-layer tensor views: a `Vec` (with `alloc`) or a caller's slice (no allocator).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
pub struct Model<'a, L = alloc::vec::Vec<Layer<'a>>> {
    pub config: Config,
    pub weights: Weights<'a, L>,
}

/// A loaded model: configuration and weights borrowed from the file's bytes. `L` holds the
/// per-layer tensor views in a caller's slice.
#[cfg(not(feature = "alloc"))]
#[derive(Clone, Debug)]
pub struct Model<'a, L> {
    pub config: Config,
    pub weights: Weights<'a, L>,
}

#[cfg(feature = "alloc")]
impl<'a> Model<'a> {
    /// Reads the config and checks every tensor's presence, shape and dtype.
    pub fn load(file: &EmberFile<'a>) -> Result<Model<'a>, Error> {
        let config = Config::from_file(file)?;
        let layers = alloc::vec::Vec::with_capacity(config.layers);
        let weights = Weights::load_with(file, &config, layers, |v, _, l| v.push(l))?;
        Ok(Model { config, weights })
    }
}

impl<'a, 's> Model<'a, &'s [Layer<'a>]> {
    /// Loads without an allocator: the layer views go into `storage` (at least one per
    /// layer, e.g. `[Layer::EMPTY; 8]`).
    pub fn load_into(
        file: &EmberFile<'a>,
        storage: &'s mut [Layer<'a>],
    ) -> Result<Model<'a, &'s [Layer<'a>]>, Error> {
        let config = Config::from_file(file)?;
        if storage.len() < config.layers {
            return Err(Error::BufferTooSmall {
                needed: config.layers,
                got: storage.len(),
            });
        }
        let w = Weights::load_with(file, &config, &mut *storage, |s, i, l| s[i] = l)?;
        let (token_embd, pos_embd, rope_inv_freq, rope_inv_freq_long, per_layer) = (
            w.token_embd,
            w.pos_embd,
            w.rope_inv_freq,
            w.rope_inv_freq_long,
            w.per_layer,
        );
        let (output_norm, output) = (w.output_norm, w.output);
        let storage: &'s [Layer<'a>] = storage;
        let weights = Weights {
            token_embd,
            pos_embd,
            rope_inv_freq,
            rope_inv_freq_long,
            per_layer,
            layers: &storage[..config.layers],
            output_norm,
            output,
        };
        Ok(Model { config, weights })
    }
}

impl<'a, L: AsRef<[Layer<'a>]>> Model<'a, L> {
    pub fn layers(&self) -> &[Layer<'a>] {
        self.weights.layers.as_ref()
    }

    /// Bytes of weight matrices one decode step streams: every layer's projections (of a
    /// mixture, the router and k experts) and the output head (the token embedding is read
    /// one row at a time). The memory-bandwidth
    /// floor of generation is this over the machine's read bandwidth.
    pub fn matrix_bytes_per_token(&self) -> usize {
        self.matrix_bytes(|f| f.bytes_per_token(self.config.experts_used))
    }

    /// Bytes of all weight matrices but the token embedding: with experts, every expert's.
    pub fn matrix_bytes_total(&self) -> usize {
        self.matrix_bytes(|f| f.bytes())
    }

    /// The layers' projections, their feed-forwards as `ffn` counts them, the per-layer
    /// embeddings' projection and the output head.
    fn matrix_bytes(&self, ffn: impl Fn(&Ffn) -> usize) -> usize {
        let layers: usize = self
            .layers()
            .iter()
            .map(|l| {
                l.mixer
                    .matrices()
                    .chain(l.per_layer.iter().flat_map(|b| [&b.gate, &b.proj]))
                    .map(|m| m.w.data.len())
                    .sum::<usize>()
                    + ffn(&l.ffn)
            })
            .sum();
        let per_layer = self
            .weights
            .per_layer
            .map_or(0, |p| p.model_proj.data.len());
        layers + per_layer + self.weights.output.data.len()
    }
}

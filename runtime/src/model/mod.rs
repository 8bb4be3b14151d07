//! A decoder-only transformer: config, weights, and the forward pass.

mod config;
mod forward;
mod weights;

pub use config::{Architecture, Config, FfnKind, NormKind, Positions};
pub use forward::{Compute, Logits, Observer, Scratch};
pub use weights::{Layer, Linear, Matrix, Norm, Weights};

use ember_format::EmberFile;

use crate::Error;

/// A loaded model: configuration and weights borrowed from the file's bytes.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    pub config: Config,
    pub weights: Weights<'a>,
}

impl<'a> Model<'a> {
    /// Reads the config and checks every tensor's presence, shape and dtype.
    pub fn load(file: &EmberFile<'a>) -> Result<Model<'a>, Error> {
        let config = Config::from_file(file)?;
        let weights = Weights::load(file, &config)?;
        Ok(Model { config, weights })
    }
}

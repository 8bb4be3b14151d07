//! `ember run` (being built).
use super::CmdResult;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err("`ember run` is not built yet".into())
}

//! `nhm train` (being written).
//! NOTE to the author: `crate::source::DataArgs` (flatten it with `#[command(flatten)]`) already
//! handles `--data synth|PATH`, `--subjects`, `--impressions`, `--data-seed`; please use it.

/// Arguments of `nhm train`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `nhm train`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("nhm train is not built yet")
}

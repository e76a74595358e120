//! `nhm serve` (being written).

/// Arguments of `nhm serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `nhm serve`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("nhm serve is not built yet")
}

//! `nhm encode` (being written).

/// Arguments of `nhm encode`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `nhm encode`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("nhm encode is not built yet")
}

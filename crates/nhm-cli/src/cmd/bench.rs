//! `nhm bench` (being written).

/// Arguments of `nhm bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `nhm bench`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("nhm bench is not built yet")
}

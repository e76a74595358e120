//! `nhm key` (being written).

/// Subcommands of `nhm key`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Placeholder.
    Todo,
}

/// Runs `nhm key`.
pub fn run(_c: Command) -> anyhow::Result<()> {
    anyhow::bail!("nhm key is not built yet")
}

//! `nhm serve`: the hashmap service (crate nhm-server). The arguments and the subcommands
//! (`token new`, `seed-gallery`, `synth-template`) live in `nhm_server::cli`, shared with the
//! `nhm-server` binary.

/// Arguments of `nhm serve`.
pub type Args = nhm_server::cli::ServeArgs;

/// Runs `nhm serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    nhm_server::cli::run(args)
}

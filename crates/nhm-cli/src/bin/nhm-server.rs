//! `nhm-server`: the service without the rest of the `nhm` tool (same arguments as `nhm serve`).

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[path = "../cmd/serve.rs"]
mod serve;

/// The Neural Hashmaps service.
#[derive(Debug, Parser)]
#[command(name = "nhm-server", version, about)]
struct Cli {
    #[command(flatten)]
    serve: serve::Args,
}

fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match serve::run(Cli::parse().serve) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

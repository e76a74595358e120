//! `nhm`: the Neural Hashmaps command-line tool.
//!
//! Every subcommand lives in its own module under `cmd/`, with an `Args` struct (clap derive)
//! and a `run` function. Library errors are typed; here they become `anyhow` errors with
//! context and an exit code.

mod cmd;
mod models;
mod pipeline;
mod progress;
mod source;
mod training;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Neural Hashmaps: learned, renewable, protected biometric templates.
#[derive(Debug, Parser)]
#[command(name = "nhm", version, about, long_about = None)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Hide progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate synthetic fingerprints (SFinGe-style), the embedded default dataset.
    Synth(cmd::synth::Args),
    /// Inspect a dataset folder: layout, subjects, samples, image sizes, problems.
    #[command(subcommand)]
    Dataset(cmd::dataset::Command),
    /// Make or inspect secret keys (32 bytes, kept by the client).
    #[command(subcommand)]
    Key(cmd::key::Command),
    /// Train an encoder on a dataset.
    Train(cmd::train::Args),
    /// The learned defence: fine-tune an encoder against inversion decoders.
    Harden(cmd::harden::Args),
    /// Add the whitening defence to an encoder checkpoint (fitted on public data): lowers the
    /// linkage of one person across services, at a cost in EER.
    Whiten(cmd::whiten::Args),
    /// Turn samples into hashmaps (protected templates) with an encoder and a key.
    Encode(cmd::encode::Args),
    /// Evaluate an encoder on unseen subjects: recognition metrics, score files, plots, report.
    Eval(cmd::eval::Args),
    /// Face models: build a checkpoint from the pretrained parts and a trained head, or show
    /// what the face pipeline finds in images.
    #[command(subcommand)]
    Face(cmd::face::Command),
    /// Federated training: simulate many clients, or train one client against a server.
    #[command(subcommand)]
    Fed(cmd::fed::Command),
    /// Run the whole pipeline on synthetic data: generate, train, encode, enrol, verify, identify, report.
    Demo(cmd::demo::Args),
    /// Run the hashmap service (HTTP).
    Serve(cmd::serve::Args),
    /// Enrol a subject at a server: image -> encoder -> key -> hashmap -> HTTP.
    Enroll(cmd::client::EnrollArgs),
    /// Verify a probe against a subject at a server (1:1).
    Verify(cmd::client::VerifyArgs),
    /// Identify a probe at a server (1:N).
    Identify(cmd::client::IdentifyArgs),
    /// Attack the protection (inversion, known-sample, masquerade, hill-climbing, wolf, replay,
    /// linkage) under each set of defences, on subjects the encoder never saw.
    Attack(cmd::attack::Args),
    /// Benchmarks: synthesis rate, training and encoding throughput, matching speed.
    Bench(cmd::bench::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    progress::set_quiet(cli.quiet);

    let result = match cli.command {
        Command::Synth(a) => cmd::synth::run(a),
        Command::Dataset(c) => cmd::dataset::run(c),
        Command::Key(c) => cmd::key::run(c),
        Command::Train(a) => cmd::train::run(a),
        Command::Harden(a) => cmd::harden::run(a),
        Command::Whiten(a) => cmd::whiten::run(a),
        Command::Encode(a) => cmd::encode::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Face(c) => cmd::face::run(c),
        Command::Fed(c) => cmd::fed::run(c),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Enroll(a) => cmd::client::enroll(a),
        Command::Verify(a) => cmd::client::verify(a),
        Command::Identify(a) => cmd::client::identify(a),
        Command::Attack(a) => cmd::attack::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `nhm serve`: the hashmap service (crate nhm-server) and its administrative commands. The
//! `nhm-server` binary (the service without the rest of the tool) includes this same module.
//!
//! ```text
//! nhm serve --bind 127.0.0.1:8080 --data DIR [--config FILE.toml]
//! nhm serve token new --role verify --tokens tokens.toml [--name NAME]
//! nhm serve seed-gallery --data DIR [--config FILE.toml] --n 10000 --seed 1
//! nhm serve synth-template --seed 1 --index 42 [--dim 256]
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use nhm_template::Hashmap;

use nhm_server::auth::{new_token, Role};
use nhm_server::index::synthetic_binary;
use nhm_server::server::{open_store, resolve_pepper, serve};
use nhm_server::store::{StoredSubject, SubjectInfo};
use nhm_server::Config;

/// Arguments of `nhm serve`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Data directory of the embedded store.
    #[arg(long, default_value = "nhm-data")]
    pub data: PathBuf,
    /// Configuration file (TOML; see the nhm-server README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Administrative commands instead of serving.
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
}

/// Administrative commands of `nhm serve`.
#[derive(Debug, clap::Subcommand)]
pub enum ServeCommand {
    /// Bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Bulk-load a seeded synthetic gallery straight into the store (load tests).
    SeedGallery {
        /// Data directory of the embedded store.
        #[arg(long, default_value = "nhm-data")]
        data: PathBuf,
        /// Configuration file (store, pepper, dim).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Number of subjects (ids s0000000, s0000001, ...).
        #[arg(long)]
        n: u64,
        /// Seed of the templates.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print the base64 synthetic template of subject `index` of a seeded gallery.
    SynthTemplate {
        /// Seed of the gallery.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Subject index.
        #[arg(long)]
        index: u64,
        /// Dimension.
        #[arg(long, default_value_t = 256)]
        dim: usize,
    },
}

/// `token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token, print it once, store its hash in the tokens file.
    New {
        /// enrol, verify or admin.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Tokens file (created if missing).
        #[arg(long)]
        tokens: PathBuf,
        /// Name of the token's holder (default: the role and a number).
        #[arg(long)]
        name: Option<String>,
    },
}

/// A token's role on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// Enrol, replace, revoke, list; the negatives relay.
    Enrol,
    /// Verify and identify.
    Verify,
    /// Everything, and the threshold.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Enrol => Role::Enrol,
            RoleArg::Verify => Role::Verify,
            RoleArg::Admin => Role::Admin,
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("reading configuration {}", p.display())),
        None => Ok(Config::default()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Subject id of index `i` in a seeded gallery.
pub fn seeded_subject_id(i: u64) -> String {
    format!("s{i:07}")
}

/// A token name when the user gives none: the role and eight random hex digits, so that two
/// tokens made in a row never share a name (the audit and the token file tell them apart).
pub fn default_token_name(role: Role) -> String {
    format!("{role:?}-{}", &nhm_template::Key::random().fingerprint()[..8]).to_lowercase()
}

/// Runs `nhm serve` (or one of its subcommands).
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        None => {
            let config = load_config(args.config.as_deref())?;
            runtime()?
                .block_on(serve(config, &args.bind, &args.data))
                .context("serving")
        }
        Some(ServeCommand::Token(TokenCommand::New { role, tokens, name })) => {
            let role = Role::from(role);
            let name = name.unwrap_or_else(|| default_token_name(role));
            let token = new_token(&tokens, &name, role)
                .with_context(|| format!("adding a token to {}", tokens.display()))?;
            eprintln!(
                "token {name:?} ({role:?}) added to {}; it is shown only now:",
                tokens.display()
            );
            println!("{token}");
            Ok(())
        }
        Some(ServeCommand::SynthTemplate { seed, index, dim }) => {
            println!(
                "{}",
                Hashmap::Binary(synthetic_binary(seed, index, dim)?).to_base64()
            );
            Ok(())
        }
        Some(ServeCommand::SeedGallery {
            data,
            config,
            n,
            seed,
        }) => {
            let config = load_config(config.as_deref())?;
            runtime()?.block_on(seed_gallery(&config, &data, n, seed))
        }
    }
}

/// Writes `n` seeded synthetic subjects (one binary template each, peppered when the
/// configuration has a pepper) straight into the store, in batches of 10 000 per transaction.
pub async fn seed_gallery(config: &Config, data: &std::path::Path, n: u64, seed: u64) -> anyhow::Result<()> {
    let store = open_store(config, data).await.context("opening the store")?;
    let key = resolve_pepper(config, data, &*store).await?;
    let pepper = key.as_ref().map(|k| nhm_template::Pepper::new(k, config.dim));
    // Record the gallery configuration as the server would (kind, dim, pepper).
    nhm_server::AppState::new(
        Config {
            threshold: None,
            threshold_file: None,
            relay_enabled: false,
            ..config.clone()
        },
        store.clone(),
        nhm_server::Tokens::default(),
        key.as_ref(),
    )
    .await
    .context("checking the store against the configuration")?;
    let now = nhm_server::unix_now();
    let mut i = 0;
    while i < n {
        let end = (i + 10_000).min(n);
        let mut batch = Vec::with_capacity((end - i) as usize);
        for j in i..end {
            let mut h = Hashmap::Binary(synthetic_binary(seed, j, config.dim)?);
            if let Some(p) = &pepper {
                h = p.apply_hashmap(&h)?;
            }
            let info = SubjectInfo {
                id: seeded_subject_id(j),
                templates: 1,
                created: now,
                updated: now,
            };
            batch.push(StoredSubject {
                info,
                templates: vec![h],
            });
        }
        store.bulk_put(batch).await?;
        i = end;
    }
    eprintln!("seeded {n} subjects (seed {seed})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_token_names_do_not_collide() {
        let names: std::collections::HashSet<String> =
            (0..50).map(|_| default_token_name(Role::Verify)).collect();
        assert_eq!(names.len(), 50);
        assert!(names
            .iter()
            .all(|n| n.starts_with("verify-") && n.len() == "verify-".len() + 8));
    }
}

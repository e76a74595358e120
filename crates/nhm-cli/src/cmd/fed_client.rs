//! `nhm fed client`: one federated client. Its images (one person) never leave it: it downloads
//! the global model, registers its training hashmap, and in each round it is sampled trains
//! locally against the relayed negatives and sends back only the weight update and its new
//! hashmap.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nhm_fed::wire::{JoinRequest, StatusResponse, TaskResponse, UpdateRequest};
use nhm_fed::{Task, Weights};
use nhm_model::fed::{encoder_from_weights, FedClient};
use nhm_model::ClientModel;
use reqwest::Method;

use super::client::send_to;
use super::fed::LocalArgs;

/// `nhm fed client`.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "NHM_SERVER")]
    pub server: String,
    /// Bearer token (role enrol); the server knows this client by the token's name.
    #[arg(long, env = "NHM_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Encoder checkpoint folder giving the architecture and input contract (the weights come
    /// from the server); default: the shipped fingerprint model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub local: LocalArgs,
    /// Seed of local augmentation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Stop after answering this many rounds (default: until the server stops opening rounds).
    #[arg(long)]
    pub rounds: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub max_secs: u64,
    /// How often to ask the server for work, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
    /// The resolution (dpi) of images whose file states none.
    #[arg(long, value_parser = crate::source::parse_dpi)]
    pub dpi: Option<f32>,
    /// This person's images (at least 2).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Runs one client until the server's last round or `--rounds` answered rounds.
pub fn run(a: ClientArgs) -> Result<()> {
    let local = a.local.config()?;
    let dir = super::encode::model_dir(a.model.as_deref())?;
    let (model, _) =
        ClientModel::load(&dir).with_context(|| format!("loading the model {}", dir.display()))?;
    let ClientModel::Image(encoder) = model else {
        bail!(
            "{} is a face model: federated training trains image encoders only (a face head is not \
             federated yet)",
            dir.display()
        );
    };
    super::fed::refuse_whitened(&encoder, &dir)?;
    let cfg = encoder.config().clone();
    let input = encoder.input().clone();
    let mut images = Vec::with_capacity(a.images.len());
    for p in &a.images {
        let (img, _) = input
            .prepare_file(p, a.dpi)
            .with_context(|| format!("reading image {}", p.display()))?;
        images.push(img);
    }
    let client = FedClient::new("local", images)?;
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;

    let (_, global) = download_model(&http, &a)?;
    let enc = encoder_from_weights(&cfg, input.clone(), &global)
        .context("the server's model does not fit this encoder")?;
    let status: StatusResponse = send_to(
        &a.server,
        &a.token,
        Method::POST,
        &["v1", "fed", "join"],
        &JoinRequest {
            hashmap: client.hashmap(&enc)?,
        },
    )?;
    eprintln!(
        "joined: {} clients registered, {} rounds closed of {}",
        status.clients, status.rounds_closed, status.max_rounds
    );
    let start = Instant::now();
    let mut answered = 0u64;
    loop {
        if a.rounds.is_some_and(|r| answered >= r) {
            break;
        }
        if start.elapsed() > Duration::from_secs(a.max_secs) {
            bail!("gave up after {} s (--max-secs)", a.max_secs);
        }
        let status: StatusResponse =
            send_to(&a.server, &a.token, Method::GET, &["v1", "fed", "status"], &())?;
        if status.open_round.is_none() && status.rounds_closed >= status.max_rounds {
            break;
        }
        if !status.has_task {
            std::thread::sleep(Duration::from_millis(a.poll_ms));
            continue;
        }
        let task: Option<TaskResponse> =
            send_to(&a.server, &a.token, Method::GET, &["v1", "fed", "task"], &())?;
        let Some(task) = task else { continue };
        let (version, global) = download_model(&http, &a)?;
        if version + 1 != task.round {
            // The model moved on between the two requests: ask again.
            continue;
        }
        let task = Task {
            round: task.round,
            negatives: task.negatives,
            own: task.own,
        };
        let update = client.train(&cfg, &global, &task, &local, a.seed)?;
        let _: serde_json::Value = send_to(
            &a.server,
            &a.token,
            Method::POST,
            &["v1", "fed", "update"],
            &UpdateRequest::from_update(&update),
        )?;
        answered += 1;
        eprintln!(
            "round {}: update sent (|Δ| = {:.4})",
            task.round,
            update.delta.norm()
        );
    }
    println!("{}", serde_json::json!({ "rounds_answered": answered }));
    Ok(())
}

/// The current global model and the number of rounds it has seen.
fn download_model(http: &reqwest::blocking::Client, a: &ClientArgs) -> Result<(u64, Weights)> {
    let u = super::client::url(&a.server, &["v1", "fed", "model"])?;
    let resp = http
        .get(u.clone())
        .bearer_auth(&a.token)
        .send()
        .with_context(|| format!("sending to {u}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().unwrap_or_default();
        bail!("server answered {status} to {u}: {body}");
    }
    let round = resp
        .headers()
        .get("x-nhm-fed-round")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .context("the model answer has no x-nhm-fed-round header")?;
    let bytes = resp.bytes().with_context(|| format!("reading {u}"))?;
    let w = Weights::from_safetensors(&bytes).context("the server's model is not safetensors")?;
    Ok((round, w))
}

//! `nhm fed`: federated training. `simulate` runs many clients in one process through the
//! protocol's coordinator; `client` trains one person's samples against a running service.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nhm_data::input::InputSpec;
use nhm_data::synth::SynthConfig;
use nhm_data::Dataset;
use nhm_fed::{DpConfig, FedConfig};
use nhm_model::fed::{FedClient, FedLoss, LocalConfig, SimConfig, SimRound};
use nhm_model::{Encoder, EncoderConfig, LossKind, TrainConfig};
use serde_json::json;

use crate::progress;

/// `nhm fed ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run N simulated clients (one synthetic finger each) through the federated protocol in
    /// one process, or the centralised baseline on the same data and budget; writes
    /// report.json and eer_vs_round.png.
    Simulate(SimulateArgs),
    /// Train this client's samples (one person) against a federated training server.
    Client(super::fed_client::ClientArgs),
}

/// Runs a `nhm fed` subcommand.
pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Simulate(a) => simulate(a),
        Command::Client(a) => super::fed_client::run(a),
    }
}

/// Local training options shared by the simulator and the client.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Local SGD steps per round (each on all of the client's samples).
    #[arg(long, default_value_t = 2)]
    pub local_steps: usize,
    /// Local SGD learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Local loss: `softmax` (supervised contrastive over own samples and relayed negatives),
    /// `proxy` (pull towards the own hashmap the server holds, push from the negatives) or
    /// `contrastive` (the seed's pairwise loss with a margin).
    #[arg(long, default_value = "softmax")]
    pub loss: String,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.1)]
    pub temperature: f32,
    /// Contrastive margin.
    #[arg(long, default_value_t = 1.0)]
    pub margin: f32,
    /// Augment the client's samples in each local step.
    #[arg(long)]
    pub augment: bool,
}

impl LocalArgs {
    /// The local training configuration.
    pub fn config(&self) -> Result<LocalConfig> {
        let loss = match self.loss.as_str() {
            "softmax" => FedLoss::Softmax {
                temperature: self.temperature,
            },
            "contrastive" => FedLoss::Contrastive { margin: self.margin },
            "proxy" => FedLoss::Proxy {
                temperature: self.temperature,
            },
            other => bail!("unknown --loss {other:?} (softmax, proxy, contrastive)"),
        };
        let cfg = LocalConfig {
            steps: self.local_steps,
            learning_rate: self.lr,
            loss,
            augment: self.augment,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `nhm fed simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Clients, each holding one synthetic finger.
    #[arg(long, default_value_t = 1000)]
    clients: u32,
    /// Impressions of each finger (a client's samples; evaluation subjects get as many).
    #[arg(long, default_value_t = 4)]
    impressions: u32,
    /// Fingers no client holds, evaluated after training.
    #[arg(long, default_value_t = 200)]
    eval_subjects: u32,
    /// Seed of the synthetic fingers.
    #[arg(long, default_value_t = 42)]
    data_seed: u64,
    /// Rounds.
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    /// Clients sampled per round (expected number under differential privacy).
    #[arg(long, default_value_t = 50)]
    per_round: usize,
    /// Other clients' hashmaps relayed to each client as negatives (0: positives only).
    #[arg(long, default_value_t = 64)]
    negatives: usize,
    /// Relay the nearest hashmaps instead of a uniform sample.
    #[arg(long)]
    hard_negatives: bool,
    /// Server learning rate (1 = FedAvg).
    #[arg(long, default_value_t = 1.0)]
    server_lr: f32,
    /// Server momentum (0 = none).
    #[arg(long, default_value_t = 0.0)]
    server_momentum: f32,
    /// Apply the aggregated update with Adam on the server (FedAdam) at --server-lr.
    #[arg(long)]
    server_adam: bool,
    /// Server-side spreadout step on the stored hashmaps after each round (0 = off; FedAwS).
    #[arg(long, default_value_t = 0.0)]
    spreadout: f32,
    /// Reject updates above this multiple of the round's median norm (0 = off).
    #[arg(long, default_value_t = 5.0)]
    max_norm_ratio: f32,
    #[command(flatten)]
    local: LocalArgs,
    /// User-level differential privacy: clip each client's update to this L2 norm.
    #[arg(long)]
    dp_clip: Option<f32>,
    /// Noise multiplier (σ / clip); exclusive with --dp-epsilon.
    #[arg(long, requires = "dp_clip", conflicts_with = "dp_epsilon")]
    dp_noise: Option<f64>,
    /// Target ε at δ = 1/clients after all rounds: the noise multiplier is computed for it.
    #[arg(long, requires = "dp_clip")]
    dp_epsilon: Option<f64>,
    /// Train centrally on the union of the clients' samples with the same image budget (rounds
    /// × clients per round × local steps × impressions), as the baseline.
    #[arg(long)]
    centralised: bool,
    /// Start from a trained encoder folder (pre-training); default: a fresh small encoder.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Validate every this many rounds.
    #[arg(long, default_value_t = 5)]
    eval_every: usize,
    /// Seed of initialisation, sampling, negatives and noise.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output folder: report.json, eer_vs_round.png, and the final encoder.
    #[arg(long, default_value = "artifacts/fed")]
    out: PathBuf,
}

fn simulate(a: SimulateArgs) -> Result<()> {
    anyhow::ensure!(a.clients >= 2, "--clients must be at least 2");
    anyhow::ensure!(
        a.impressions >= 2,
        "--impressions must be at least 2 (a positive pair)"
    );
    anyhow::ensure!(a.eval_subjects >= 2, "--eval-subjects must be at least 2");
    anyhow::ensure!(a.rounds >= 1, "--rounds must be at least 1");
    let t0 = std::time::Instant::now();
    let local = a.local.config()?;
    let delta = 1.0 / f64::from(a.clients);
    let dp = match a.dp_clip {
        None => None,
        Some(clip) => {
            let q = (a.per_round as f64 / f64::from(a.clients)).min(1.0);
            let noise = match (a.dp_noise, a.dp_epsilon) {
                (Some(n), _) => n,
                (None, Some(eps)) => nhm_fed::accountant::noise_for_epsilon(q, a.rounds as u64, delta, eps)?,
                (None, None) => bail!("--dp-clip needs --dp-noise or --dp-epsilon"),
            };
            Some(DpConfig {
                clip_norm: clip,
                noise_multiplier: noise,
            })
        }
    };
    let fed = FedConfig {
        clients_per_round: a.per_round,
        min_updates: 1,
        negatives: a.negatives,
        hard_negatives: a.hard_negatives,
        server_lr: a.server_lr,
        server_momentum: a.server_momentum,
        server_adam: a.server_adam,
        spreadout: a.spreadout,
        max_norm_ratio: a.max_norm_ratio,
        dp,
        seed: a.seed,
    };
    let sim = SimConfig {
        fed,
        local,
        rounds: a.rounds,
        eval_every: a.eval_every,
        delta,
        max_val_impostor_pairs: 100_000,
    };
    sim.fed.validate()?;
    let init = match &a.init {
        Some(dir) => {
            let e = Encoder::load(dir).with_context(|| format!("loading --init {}", dir.display()))?;
            refuse_whitened(&e, dir)?;
            e
        }
        None => Encoder::new(&EncoderConfig::default(), a.seed)?,
    };
    let input = init.input().clone();
    let (clients_ds, eval_ds) = synth_split(&a, &input)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let budget = a.rounds * a.per_round * a.local.local_steps * a.impressions as usize;
    let (mode, curve, final_eer, initial_eer, extra, encoder) = if a.centralised {
        centralised(&a, &init, &clients_ds, &eval_ds, budget)?
    } else {
        federated(&a, &init, &clients_ds, &eval_ds, &sim)?
    };
    let leakage = relayed_hashmap_linkage(&encoder, &eval_ds)?;
    let meta = nhm_model::CheckpointMeta::new(
        None,
        format!("nhm fed simulate ({mode})"),
        a.rounds,
        Some(final_eer),
    );
    encoder.save(&a.out.join("model"), &meta)?;
    let plot = a.out.join("eer_vs_round.png");
    nhm_eval::plot_rate_series(
        &plot,
        &[(mode, &curve)],
        &format!(
            "{mode}: {} clients, EER on {} unseen fingers",
            a.clients, a.eval_subjects
        ),
        "Round (centralised: equivalent images)",
        "EER (%)",
    )?;
    let report = json!({
        "format": "nhm-fed-report/1",
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "mode": mode,
        "clients": a.clients,
        "impressions": a.impressions,
        "eval_subjects": a.eval_subjects,
        "data_seed": a.data_seed,
        "seed": a.seed,
        "image_budget": budget,
        "config": sim,
        "initial_eer": initial_eer,
        "final_eer": final_eer,
        "rounds_to_converge": rounds_to_converge(&curve),
        "curve": curve,
        "extra": extra,
        "relayed_hashmap_linkage": leakage,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    let path = a.out.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{mode}: EER {} on {} unseen fingers (start {}), report {}",
        crate::training::pct(final_eer),
        a.eval_subjects,
        crate::training::pct(initial_eer),
        path.display()
    );
    Ok(())
}

/// The first evaluated round whose EER is within 10% (relative) of the final one: a simple
/// convergence point for the report. `None` when the run ended no better than it started.
fn rounds_to_converge(curve: &[(f64, f64)]) -> Option<f64> {
    let (first, last) = (curve.first()?.1, curve.last()?.1);
    if last >= first {
        return None;
    }
    curve
        .iter()
        .skip(1)
        .find(|(_, e)| *e <= last * 1.1)
        .map(|(r, _)| *r)
}

/// The clients' fingers and the unseen evaluation fingers, prepared for the encoder.
fn synth_split(a: &SimulateArgs, input: &InputSpec) -> Result<(Dataset, Dataset)> {
    let side = if input.front_end.is_some() {
        input.view_side()
    } else {
        input.size
    };
    let total = a.clients + a.eval_subjects;
    let cfg = SynthConfig {
        seed: a.data_seed,
        subjects: total,
        impressions: a.impressions,
        size: side,
        ..SynthConfig::default()
    };
    let pb = progress::bar(u64::from(total) * u64::from(a.impressions), "synth");
    let mut ds = cfg
        .generate_with(&|n| pb.inc(u64::from(n)))
        .context("generating synthetic fingerprints")?;
    pb.finish_and_clear();
    if side != input.size {
        use rayon::prelude::*;
        ds.samples
            .par_iter_mut()
            .for_each(|s| s.image = input.prepare(&s.image, None));
    }
    let (clients, eval) = ds.split_subjects(f64::from(a.clients) / f64::from(total), None);
    Ok((clients, eval))
}

type Outcome = (
    &'static str,
    Vec<(f64, f64)>,
    f64,
    f64,
    serde_json::Value,
    Encoder,
);

fn federated(
    a: &SimulateArgs,
    init: &Encoder,
    clients_ds: &Dataset,
    eval: &Dataset,
    sim: &SimConfig,
) -> Result<Outcome> {
    // A finger whose generator kept fewer than two impressions has no positive pair: it sits out.
    let clients: Vec<FedClient> = (0..clients_ds.n_subjects() as u32)
        .filter_map(|s| {
            let images: Vec<_> = clients_ds.samples_of(s).map(|x| x.image.clone()).collect();
            FedClient::new(format!("client-{s:05}"), images).ok()
        })
        .collect();
    let left_out = clients_ds.n_subjects() - clients.len();
    if left_out > 0 {
        tracing::warn!(left_out, "clients with fewer than 2 samples sit out");
    }
    anyhow::ensure!(clients.len() >= 2, "fewer than 2 clients hold 2 or more samples");
    let pb = progress::bar(a.rounds as u64, "rounds");
    let mut last = f64::NAN;
    let outcome = nhm_model::fed::simulate(init, &clients, eval, sim, &mut |r: &SimRound| {
        pb.inc(1);
        if let Some(e) = r.val_eer {
            last = e;
            let line = format!(
                "round {:>4}  EER {:>8}  accepted {}/{}  |Δ| {:.3}  {}{:.1} s",
                r.summary.round,
                crate::training::pct(e),
                r.summary.accepted,
                r.summary.sampled,
                r.summary.mean_update_norm,
                r.epsilon.map(|e| format!("ε {e:.2}  ")).unwrap_or_default(),
                r.seconds
            );
            if pb.is_hidden() {
                eprintln!("{line}");
            } else {
                pb.println(line);
            }
        }
        pb.set_message(format!("EER {}", crate::training::pct(last)));
    })?;
    pb.finish_and_clear();
    let initial = outcome.initial_val_eer.unwrap_or(f64::NAN);
    let mut curve = vec![(0.0, initial)];
    curve.extend(
        outcome
            .rounds
            .iter()
            .filter_map(|r| r.val_eer.map(|e| (r.summary.round as f64, e))),
    );
    let final_eer = curve.last().map_or(f64::NAN, |c| c.1);
    let s0 = outcome.rounds.first().map(|r| &r.summary);
    let mode = match (a.negatives, a.dp_clip.is_some()) {
        (0, _) => "federated-positives-only",
        (_, true) => "federated-dp",
        _ => "federated",
    };
    let extra = json!({
        "bytes_down_per_client_per_round": s0.map(|s| s.bytes_down_per_client),
        "bytes_up_per_client_per_round": s0.map(|s| s.bytes_up_per_client),
        "events": outcome.counts,
        "epsilon": outcome.rounds.last().and_then(|r| r.epsilon),
        "delta": sim.delta,
        "noise_multiplier": sim.fed.dp.map(|d| d.noise_multiplier),
        "rounds": outcome.rounds,
    });
    Ok((mode, curve, final_eer, initial, extra, outcome.encoder))
}

fn centralised(
    a: &SimulateArgs,
    init: &Encoder,
    train: &Dataset,
    eval: &Dataset,
    budget: usize,
) -> Result<Outcome> {
    let samples = train.samples.len();
    let epochs = budget.div_ceil(samples).max(1);
    let init_dir = a.out.join("init");
    init.save(
        &init_dir,
        &nhm_model::CheckpointMeta::new(None, "fed simulate init", 0, None),
    )?;
    let temperature = a.local.temperature;
    let cfg = TrainConfig {
        loss: LossKind::SupCon { temperature },
        epochs,
        samples_per_subject: a.impressions as usize,
        augment: a.local.augment,
        patience: 0,
        seed: a.seed,
        init: Some(init_dir.clone()),
        input: Some(init.input().clone()),
        ..TrainConfig::default()
    };
    let initial = initial_eer(init, eval)?;
    let out = crate::training::train_with_progress(train, eval, init.config(), &cfg, None, None)?;
    let _ = std::fs::remove_dir_all(&init_dir);
    let per_round = (a.per_round * a.local.local_steps * a.impressions as usize) as f64;
    let mut curve = vec![(0.0, initial)];
    curve.extend(
        out.history
            .iter()
            .map(|h| ((h.epoch * samples) as f64 / per_round, h.val_eer)),
    );
    // The last epoch's figure, like the federated run's last round (not the best epoch).
    let final_eer = out.history.last().map_or(f64::NAN, |h| h.val_eer);
    let extra = json!({ "epochs": epochs, "history": out.history });
    let enc = nhm_model::fed::encoder_from_weights(
        init.config(),
        init.input().clone(),
        &nhm_model::fed::encoder_weights(&out.encoder)?,
    )?;
    Ok(("centralised", curve, final_eer, initial, extra, enc))
}

/// What a curious party holding one relayed training hashmap (the unkeyed mean embedding the
/// protocol sends) learns: whether a fresh sample is the same person's. Measured on the
/// evaluation fingers under the final model: each finger's hashmap from all but its last
/// impression, probed with every finger's last impression.
fn relayed_hashmap_linkage(enc: &Encoder, eval: &Dataset) -> Result<serde_json::Value> {
    let n = eval.n_subjects() as u32;
    let mut hashmaps = Vec::new();
    let mut probes = Vec::new();
    for s in 0..n {
        let imgs: Vec<_> = eval.samples_of(s).map(|x| x.image.clone()).collect();
        let Some((last, rest)) = imgs.split_last() else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        hashmaps.push(nhm_model::fed::mean_direction(&enc.embed(rest)?));
        probes.push(enc.embed(std::slice::from_ref(last))?.remove(0));
    }
    let (mut g, mut i) = (Vec::new(), Vec::new());
    for (a, h) in hashmaps.iter().enumerate() {
        for (b, p) in probes.iter().enumerate() {
            let s: f64 = h.iter().zip(p).map(|(x, y)| (x * y) as f64).sum();
            if a == b {
                g.push(s);
            } else {
                i.push(s);
            }
        }
    }
    let scores = nhm_eval::ScoreSet::new(g, i)?;
    let fnmr = scores.fnmr_at_fmr(1e-3);
    Ok(json!({
        "what": "a relayed training hashmap against a fresh sample of the same person (mated) or another (non-mated), final model",
        "mated_pairs": scores.genuine().len(),
        "non_mated_pairs": scores.impostor().len(),
        "eer": scores.eer().eer,
        "linked_at_fmr_0.1%": 1.0 - fnmr,
    }))
}

fn initial_eer(enc: &Encoder, eval: &Dataset) -> Result<f64> {
    let images: Vec<_> = eval.samples.iter().map(|s| s.image.clone()).collect();
    let emb = enc.embed(&images)?;
    let (mut g, mut i) = (Vec::new(), Vec::new());
    for x in 0..emb.len() {
        for y in x + 1..emb.len() {
            let s: f64 = emb[x].iter().zip(&emb[y]).map(|(p, q)| (p * q) as f64).sum();
            if eval.samples[x].subject == eval.samples[y].subject {
                g.push(s);
            } else {
                i.push(s);
            }
        }
    }
    Ok(nhm_eval::ScoreSet::new(g, i)?.eer().eer)
}

/// Federated training changes the network a whitening was fitted to, and the exchanged weights
/// carry the network alone: a whitened model is refused rather than silently un-whitened.
pub(crate) fn refuse_whitened(encoder: &Encoder, dir: &std::path::Path) -> Result<()> {
    anyhow::ensure!(
        encoder.whitening().is_none(),
        "{} whitens its embeddings (`nhm whiten`): federated training changes the network the \
         whitening was fitted to; train the model it was made from and whiten the result",
        dir.display()
    );
    Ok(())
}

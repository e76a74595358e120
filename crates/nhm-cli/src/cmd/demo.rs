//! `nhm demo`: the whole pipeline from nothing, on the embedded synthetic fingerprints:
//! generate → train → encode → enrol → verify / identify → report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use nhm_data::Dataset;
use nhm_model::{EncoderConfig, LossKind, TrainConfig};
use nhm_server::protocol::{
    EnrolRequest, IdentifyRequest, IdentifyResponse, SubjectResponse, VerifyRequest, VerifyResponse,
    WriteMode,
};
use nhm_server::{Role, Tokens};
use nhm_template::{Hashmap, Key, Protector, Threshold};
use reqwest::Method;
use serde_json::json;

use crate::cmd::client::send_to;
use crate::pipeline::{self, Embedded, EvalOptions};
use crate::source::DataArgs;
use crate::training::{pct, train_with_progress};

/// Arguments of `nhm demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the model, score files, plots and the report.
    #[arg(long, default_value = "artifacts/demo")]
    pub out: PathBuf,
    /// A smaller run (fewer fingers, fewer epochs) that finishes in well under two minutes.
    #[arg(long)]
    pub quick: bool,
    /// Seed of training, keys and sampling (the data has its own `--data-seed`).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Training objective: contrastive (the seed's), arcface, supcon, ...
    #[arg(long, default_value = "supcon")]
    pub loss: String,
    /// Training epochs (default 6 over 2600 fingers; 3 over 80 with --quick).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Encoder configuration (TOML); default: the embedded small encoder.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// Runs `nhm demo`.
pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    let data = DataArgs {
        data: "synth".into(),
        // Synthetic fingers are free, and at a fixed budget of training images many fingers
        // beat many epochs: 1820 training fingers for 4 epochs reached binary EER 4.5% on
        // unseen fingers where 420 fingers for 20 epochs (about as many images) reached 6.3%
        // (the 420-finger model matched its own training fingers at 1.7%: it had memorised
        // them). 20% of 2600 gives 520 unseen fingers to evaluate on.
        subjects: if args.quick { 80 } else { 2600 },
        impressions: 8,
        data_seed: 42,
        synth_view: nhm_data::synth::View::Whole,
        synth_texture: 0.0,
        eval_fraction: 0.2,
        val_fraction: 0.1,
        dpi: None,
        naming: None,
    };
    let enc = match &args.model {
        Some(p) => EncoderConfig::from_toml_file(p)?,
        None => EncoderConfig::default(),
    };
    let loss: LossKind = args.loss.parse().map_err(|e| anyhow::anyhow!("--loss: {e}"))?;
    let defaults = TrainConfig::default();
    let cfg = TrainConfig {
        loss,
        epochs: args.epochs.unwrap_or(if args.quick { 3 } else { 6 }),
        seed: args.seed,
        ..defaults
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    println!(
        "1/5 generating {} synthetic fingers x {} impressions ({} px)",
        data.subjects, data.impressions, enc.input_size
    );
    let ds = data.load(&nhm_data::input::InputSpec::plain(enc.input_size as u32))?;
    let splits = data.split(&ds)?;
    println!(
        "    subjects: {} train, {} validation, {} evaluation (never trained on)",
        splits.train.n_subjects(),
        splits.val.n_subjects(),
        splits.test.n_subjects()
    );

    println!(
        "2/5 training the encoder ({} loss, up to {} epochs)",
        cfg.loss.name(),
        cfg.epochs
    );
    let t_train = Instant::now();
    let model_dir = args.out.join("model");
    let outcome = train_with_progress(&splits.train, &splits.val, &enc, &cfg, Some(&model_dir), None)?;
    let train_s = t_train.elapsed().as_secs_f64();
    println!(
        "    best epoch {} (val EER {}), {:.0} s, checkpoint in {}",
        outcome.best_epoch,
        outcome
            .history
            .get(outcome.best_epoch.saturating_sub(1))
            .map_or("-".into(), |h| pct(h.val_eer)),
        train_s,
        model_dir.display()
    );

    println!(
        "3/5 encoding and evaluating {} unseen fingers",
        splits.test.n_subjects()
    );
    let opts = EvalOptions {
        seed: args.seed,
        protocol: nhm_eval::protocol::Protocol {
            seed: args.seed,
            ..Default::default()
        },
        target_fmr: 1e-3,
        fvc_protocol: false,
        config: json!({
            "command": "nhm demo",
            "quick": args.quick,
            "data": data.describe(),
            "encoder": enc,
            "training": cfg,
            "best_epoch": outcome.best_epoch,
            "history": outcome.history,
            "train_seconds": train_s,
            "git_revision": pipeline::git_revision(),
        }),
        title: "Neural Hashmaps demo: synthetic fingerprints, unseen subjects".into(),
        hashmap_dim: None,
    };
    let mut report = pipeline::evaluate_encoder(
        &outcome.encoder,
        &splits.test,
        Some(&splits.val),
        &opts,
        &args.out,
    )?;

    println!("4/5 enrolling, verifying and identifying with binary hashmaps");
    let threshold: Threshold =
        serde_json::from_str(&std::fs::read_to_string(args.out.join("threshold.json"))?)?;
    session(&outcome.encoder, &splits.test, &threshold, args.seed, &args.out)?;

    println!("5/5 report");
    pipeline::print_summary(&report, "    ");
    println!(
        "    report: {} (also report.md, report.json)",
        args.out.join("report.html").display()
    );
    let shipped = shipped_model_on_real_scans(args.seed, &args.out)?;
    if !shipped.is_empty() {
        // The demo's report carries the shipped model's real-scan figures beside its own.
        for row in &shipped {
            report.notes.push(format!(
                "Shipped fingerprint model on {} (never trained on; FVC protocol, {} genuine / {} impostor pairs): binary-hashmap EER {}, raw pixels {}.",
                row["set"].as_str().unwrap_or("?"),
                row["genuine_pairs"],
                row["impostor_pairs"],
                pct(row["binary_eer"].as_f64().unwrap_or(f64::NAN)),
                pct(row["raw_pixels_eer"].as_f64().unwrap_or(f64::NAN)),
            ));
        }
        report.extra["shipped_model_real_scans"] = serde_json::Value::Array(shipped);
        report
            .write(&args.out)
            .context("rewriting the report with the shipped model's figures")?;
    }
    if let Some(face) = shipped_face_model_on_orl(args.seed, args.quick, &args.out)? {
        report.notes.push(format!(
            "Shipped face model on AT&T/ORL ({} identities, none trained on): binary-hashmap EER {} at {} bits, raw descriptor {}, raw pixels {}.",
            face["identities"],
            pct(face["binary_eer"].as_f64().unwrap_or(f64::NAN)),
            face["hashmap_bits"],
            pct(face["raw_embedding_eer"].as_f64().unwrap_or(f64::NAN)),
            pct(face["raw_pixels_eer"].as_f64().unwrap_or(f64::NAN)),
        ));
        report.extra["shipped_face_model"] = face;
        report
            .write(&args.out)
            .context("rewriting the report with the shipped face model's figures")?;
    }
    println!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// The shipped face model (`models/face`: detection, alignment, the pretrained backbone) on
/// AT&T/ORL, every identity unseen (the first 10 with `--quick`), binary hashmaps at the
/// model's length; report in `out/shipped/face-orl/`. `None`, saying why, when the model or the
/// data is not there.
fn shipped_face_model_on_orl(seed: u64, quick: bool, out: &Path) -> Result<Option<serde_json::Value>> {
    let Ok(dir) = crate::models::default_face_model() else {
        println!("    shipped face model not found: face figures skipped");
        return Ok(None);
    };
    let Some(orl) = crate::models::shared_data_root()
        .map(|r| r.join("orl_faces"))
        .filter(|p| p.is_dir())
    else {
        println!("    AT&T/ORL faces not found in the shared data folder: face figures skipped");
        return Ok(None);
    };
    let (model, _) =
        nhm_model::ClientModel::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
    let ds = crate::source::read_folder(&orl, model.input(), None, None)?;
    let ds = if quick {
        ds.select_subjects(&(0..10.min(ds.n_subjects() as u32)).collect::<Vec<_>>())
    } else {
        ds
    };
    let ds = super::eval::prepare(&model, ds)?;
    let bits = model.default_hashmap_dim();
    let opts = shipped_eval_options(
        seed,
        false,
        json!({ "command": "nhm demo (shipped face model)", "model": dir, "data": orl, "hashmap_dim": bits }),
        "shipped face model on AT&T/ORL".into(),
        bits,
    );
    let report_dir = out.join("shipped").join("face-orl");
    let report = pipeline::evaluate_encoder(model.embedder(), &ds, None, &opts, &report_dir)?;
    let (Some(b), Some(raw), Some(px)) = (
        report.system("binary hashmap ("),
        report.system("raw embedding"),
        report.system("raw pixels"),
    ) else {
        return Ok(None);
    };
    let bits = bits.unwrap_or_else(|| model.embedder().embedding_dim());
    println!(
        "    the shipped face model ({}) on AT&T/ORL, {} identities it never trained on: binary EER {} at {bits} bits (raw descriptor {}, raw pixels {})",
        dir.display(),
        ds.n_subjects(),
        pct(b.eer),
        pct(raw.eer),
        pct(px.eer)
    );
    Ok(Some(json!({
        "model": dir,
        "identities": ds.n_subjects(),
        "hashmap_bits": bits,
        "binary_eer": b.eer,
        "raw_embedding_eer": raw.eer,
        "raw_pixels_eer": px.eer,
        "genuine_pairs": b.genuine_pairs,
        "impostor_pairs": b.impostor_pairs,
        "report": report_dir,
    })))
}

/// The evaluation settings of the demo's figures for a shipped model: FMR 0.1%, the demo's seed.
fn shipped_eval_options(
    seed: u64,
    fvc_protocol: bool,
    config: serde_json::Value,
    title: String,
    hashmap_dim: Option<usize>,
) -> EvalOptions {
    EvalOptions {
        seed,
        protocol: nhm_eval::protocol::Protocol {
            seed,
            ..Default::default()
        },
        target_fmr: 1e-3,
        fvc_protocol,
        config,
        title,
        hashmap_dim,
    }
}

/// The real scans the shipped model is reported on in the demo (FVC2002 sets B: never trained on).
const REAL_SCAN_SETS: [(&str, &str); 2] = [
    ("FVC2002 DB1_B", "fvc2002/DB1_B"),
    ("FVC2002 DB4_B", "fvc2002/DB4_B"),
];

/// The shipped fingerprint model's figures on real scans, beside the demo's own model (which is
/// trained for minutes on synthetic prints only): FVC protocol, binary hashmaps, reports in
/// `out/shipped/`. Skipped, saying why, when the model or the data
/// ([`crate::models::shared_data_root`]) is not there.
fn shipped_model_on_real_scans(seed: u64, out: &Path) -> Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    let Ok(model) = crate::models::default_fingerprint_model() else {
        println!("    shipped fingerprint model not found: real-scan figures skipped");
        return Ok(rows);
    };
    let Some(root) = crate::models::shared_data_root() else {
        println!("    no shared data folder ($NHM_DATA, ../shared/data): real-scan figures skipped");
        return Ok(rows);
    };
    let encoder = nhm_model::Encoder::load(&model).with_context(|| format!("loading {}", model.display()))?;
    println!(
        "    the shipped model ({}) on real scans it never trained on:",
        model.display()
    );
    for (name, rel) in REAL_SCAN_SETS {
        let path = root.join(rel);
        if !path.is_dir() {
            println!("      {name}: {} not found, skipped", path.display());
            continue;
        }
        // The FVC2002 sets are 500-dpi scans whose files do not state it.
        let ds = crate::source::read_folder(&path, encoder.input(), Some(500.0), None)?;
        let opts = shipped_eval_options(
            seed,
            true,
            json!({ "command": "nhm demo (shipped model)", "model": model, "data": path, "input": encoder.input() }),
            format!("shipped fingerprint model on {name}"),
            None,
        );
        let dir = out.join("shipped").join(rel.replace('/', "-"));
        let report = pipeline::evaluate_encoder(&encoder, &ds, None, &opts, &dir)?;

        if let (Some(b), Some(px)) = (report.system("binary hashmap"), report.system("raw pixels")) {
            println!(
                "      {name}: binary EER {} (raw pixels {}), FVC protocol, {} genuine / {} impostor pairs",
                pct(b.eer),
                pct(px.eer),
                b.genuine_pairs,
                b.impostor_pairs
            );
            rows.push(json!({
                "set": name,
                "model": model,
                "protocol": "fvc",
                "genuine_pairs": b.genuine_pairs,
                "impostor_pairs": b.impostor_pairs,
                "binary_eer": b.eer,
                "raw_pixels_eer": px.eer,
                "report": dir,
            }));
        }
    }
    Ok(rows)
}

/// The client/server picture for real: a hashmap service on loopback (embedded store in
/// `out/server`, a server pepper, the threshold from the development split), and clients that
/// encode and protect on their side and talk HTTP. Every evaluation finger enrols its first
/// impression; each second impression verifies against its own finger and, as an impostor,
/// against the next finger, and is identified 1:N.
fn session(
    encoder: &nhm_model::Encoder,
    test: &Dataset,
    threshold: &Threshold,
    seed: u64,
    out: &Path,
) -> Result<()> {
    let store_dir = out.join("server");
    if store_dir.exists() {
        std::fs::remove_dir_all(&store_dir).with_context(|| format!("clearing {}", store_dir.display()))?;
    }
    std::fs::create_dir_all(&store_dir)?;
    let enrol_token = Key::random().fingerprint();
    let verify_token = Key::random().fingerprint();
    let config = nhm_server::Config {
        threshold: Some(*threshold),
        dim: encoder.config().embedding_dim,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr = rt.block_on(async {
        let store = nhm_server::server::open_store(&config, &store_dir).await?;
        let tokens = Tokens::from_plain(&[
            ("demo-client", Role::Enrol, enrol_token.as_str()),
            ("demo-kiosk", Role::Verify, verify_token.as_str()),
        ]);
        let state = nhm_server::AppState::new(config, store, tokens, Some(&Key::random())).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(nhm_server::server::serve_on(listener, state));
        anyhow::Ok(addr)
    })?;
    let server = format!("http://{addr}");

    let emb = Embedded::new(encoder, test)?;
    let protector = Protector::new(
        &pipeline::application_key(seed, "evaluation"),
        encoder.config().embedding_dim,
    )?;
    let mut probes = Vec::new();
    let pb = crate::progress::bar(emb.samples.len() as u64, "enrol");
    for (s, e) in emb.samples.iter().zip(&emb.embeddings) {
        let h = Hashmap::Binary(protector.binary(e)?);
        match s.index {
            0 => {
                let body = EnrolRequest {
                    templates: vec![h.to_base64()],
                    mode: WriteMode::Create,
                };
                let segs = [
                    "v1",
                    "subjects",
                    &format!("finger-{}", s.subject_label),
                    "templates",
                ];
                let _: SubjectResponse = send_to(&server, &enrol_token, Method::POST, &segs, &body)?;
            }
            1 => probes.push((format!("finger-{}", s.subject_label), h)),
            _ => {}
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let labels: Vec<String> = probes.iter().map(|(l, _)| l.clone()).collect();
    let (mut genuine_ok, mut impostor_ok, mut ident_ok) = (0, 0, 0);
    for (i, (label, h)) in probes.iter().enumerate() {
        let body = VerifyRequest {
            template: h.to_base64(),
        };
        let verify = |who: &str| -> Result<bool> {
            let v: VerifyResponse = send_to(
                &server,
                &verify_token,
                Method::POST,
                &["v1", "subjects", who, "verify"],
                &body,
            )?;
            Ok(v.matched)
        };
        genuine_ok += usize::from(verify(label)?);
        impostor_ok += usize::from(verify(&labels[(i + 1) % labels.len()])?);
        let probe = IdentifyRequest {
            template: h.to_base64(),
            k: 1,
        };
        let v: IdentifyResponse = send_to(&server, &verify_token, Method::POST, &["v1", "identify"], &probe)?;
        ident_ok += usize::from(v.candidates.first().is_some_and(|c| &c.subject == label));
    }
    rt.shutdown_background();
    let n = probes.len();
    println!(
        "    server {server}: {} fingers enrolled over HTTP (durable, peppered store in {})",
        labels.len(),
        store_dir.display()
    );
    println!(
        "    threshold {:.4}: FMR {:.1e} measured on the development split ({} impostor pairs)",
        threshold.score, threshold.measured_fmr, threshold.impostor_comparisons
    );
    println!("    verify, genuine:  {genuine_ok}/{n} accepted");
    println!("    verify, impostor: {impostor_ok}/{n} accepted");
    println!("    identify 1:N:     {ident_ok}/{n} found at rank 1 above the threshold");
    Ok(())
}

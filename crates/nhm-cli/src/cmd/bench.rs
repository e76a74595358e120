//! `nhm bench`: throughput of each stage on this machine, each against its anchor from
//! DESIGN.md §5 in the same run (printed as a ratio). Timing lives here and in `cargo bench`,
//! never in tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nhm_data::synth::SynthConfig;
use nhm_model::EncoderConfig;
use nhm_template::{BinaryHashmap, Fusion, Gallery, Key, Protector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// SourceAFIS (an unprotected minutiae matcher): about 12 500 comparisons per second per core.
const SOURCEAFIS_PER_CORE: f64 = 12_500.0;

/// Arguments of `nhm bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stages to measure, comma-separated: synth, model, match (default: all).
    #[arg(long, default_value = "synth,model,match")]
    pub only: String,
    /// Encoder configuration to time (default: the embedded small encoder).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Templates in the 1:N gallery.
    #[arg(long, default_value_t = 1_000_000)]
    pub gallery: usize,
    /// Also run the PyTorch twin of the encoder (bench/torch_encoder.py; needs `pip install torch`).
    #[arg(long)]
    pub torch: bool,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the figures as JSON to this file as well.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `nhm bench`.
pub fn run(args: Args) -> Result<()> {
    let stages: Vec<&str> = args.only.split(',').map(str::trim).collect();
    for s in &stages {
        anyhow::ensure!(
            ["synth", "model", "match"].contains(s),
            "unknown stage `{s}` (synth, model, match)"
        );
    }
    let mut all = serde_json::Map::new();
    if stages.contains(&"synth") {
        all.insert("synth".into(), bench_synth(args.seed)?);
    }
    if stages.contains(&"model") {
        all.insert("model".into(), bench_model(&args)?);
    }
    if stages.contains(&"match") {
        all.insert("match".into(), bench_match(args.gallery, args.seed)?);
    }
    if let Some(p) = &args.out {
        std::fs::write(p, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn bench_synth(seed: u64) -> Result<serde_json::Value> {
    let cfg = SynthConfig {
        seed,
        subjects: 20,
        impressions: 8,
        size: 96,
        ..Default::default()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let t = Instant::now();
    let ds = pool.install(|| cfg.generate())?;
    let secs = t.elapsed().as_secs_f64();
    let rate = ds.samples.len() as f64 / secs;
    println!(
        "synth    {:>8.0} impressions/s at 96x96 on one core (20 fingers x 8, master prints included)",
        rate
    );
    Ok(json!({ "impressions_per_sec_one_core": rate, "size": 96, "impressions": ds.samples.len() }))
}

fn bench_model(args: &Args) -> Result<serde_json::Value> {
    let enc = match &args.model {
        Some(p) => EncoderConfig::from_toml_file(p)?,
        None => EncoderConfig::default(),
    };
    let t = nhm_model::benchmark(&enc, 64, 10, args.seed)?;
    println!(
        "model    train {:>7.1} img/s, encode {:>7.1} img/s (batch 64), latency {:.2} ms (batch 1); {} px, {} parameters",
        t.train_images_per_sec, t.encode_images_per_sec, t.latency_b1_ms, enc.input_size, t.parameters
    );
    let mut out = json!({ "burn_flex": t, "encoder": enc });
    if args.torch {
        match torch_twin(&enc) {
            Ok(v) => {
                let tr = v["train_images_per_sec"].as_f64().unwrap_or(f64::NAN);
                let inf = v["encode_images_per_sec"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "pytorch  train {tr:>7.1} img/s, encode {inf:>7.1} img/s -> burn/pytorch ratio: train {:.2}x, encode {:.2}x",
                    t.train_images_per_sec / tr,
                    t.encode_images_per_sec / inf
                );
                out["pytorch"] = v;
            }
            Err(e) => println!("pytorch  not measured: {e:#}"),
        }
    }
    Ok(out)
}

/// Runs the PyTorch twin of the encoder on the same machine and reads its JSON line.
fn torch_twin(enc: &EncoderConfig) -> Result<serde_json::Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/torch_encoder.py");
    let channels: Vec<String> = enc.channels.iter().map(|c| c.to_string()).collect();
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--size",
            &enc.input_size.to_string(),
            "--channels",
            &channels.join(","),
        ])
        .args([
            "--dim",
            &enc.embedding_dim.to_string(),
            "--pool-grid",
            &enc.pool_grid.to_string(),
            "--space-to-depth",
            &enc.space_to_depth.to_string(),
            "--mirror-average",
            &u8::from(enc.mirror_average).to_string(),
        ])
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON line from the PyTorch twin")?;
    Ok(serde_json::from_str(line)?)
}

fn bench_match(n: usize, seed: u64) -> Result<serde_json::Value> {
    const DIM: usize = 256;
    anyhow::ensure!(n >= 1, "--gallery must be at least 1");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut random = || BinaryHashmap::from_words(DIM, (0..DIM / 64).map(|_| rng.gen()).collect());
    let mut gallery = Gallery::new(DIM);
    for i in 0..n {
        gallery.insert(&format!("s{i}"), &random()?)?;
    }
    let probes: Vec<BinaryHashmap> = (0..50).map(|_| random()).collect::<Result<_, _>>()?;
    let mut lat: Vec<Duration> = Vec::new();
    let t_all = Instant::now();
    for p in &probes {
        let t = Instant::now();
        std::hint::black_box(gallery.identify(p, 10, Fusion::Best)?);
        lat.push(t.elapsed());
    }
    let secs = t_all.elapsed().as_secs_f64();
    lat.sort();
    let comparisons_per_sec = (n * probes.len()) as f64 / secs;
    let p50 = lat[lat.len() / 2].as_secs_f64() * 1e3;
    let p99 = lat[(lat.len() * 99).div_ceil(100) - 1].as_secs_f64() * 1e3;
    println!(
        "match    1:N over {n} binary hashmaps (d={DIM}): p50 {p50:.2} ms, p99 {p99:.2} ms, {:.0} comparisons/s on one core = {:.0}x SourceAFIS ({SOURCEAFIS_PER_CORE} /s/core, unprotected)",
        comparisons_per_sec,
        comparisons_per_sec / SOURCEAFIS_PER_CORE
    );
    let protector = Protector::new(&Key::from_seed(seed), DIM)?;
    let e: Vec<f32> = (0..DIM).map(|i| ((i as f32) * 0.37).sin()).collect();
    let t = Instant::now();
    let reps = 20_000;
    for _ in 0..reps {
        std::hint::black_box(protector.binary(std::hint::black_box(&e))?);
    }
    let protect_rate = reps as f64 / t.elapsed().as_secs_f64();
    println!(
        "protect  {protect_rate:>8.0} embeddings/s -> binary hashmaps (keyed transform + sign), one core"
    );
    Ok(json!({
        "gallery": n,
        "identify_p50_ms": p50,
        "identify_p99_ms": p99,
        "comparisons_per_sec_one_core": comparisons_per_sec,
        "sourceafis_ratio": comparisons_per_sec / SOURCEAFIS_PER_CORE,
        "protect_per_sec": protect_rate,
    }))
}

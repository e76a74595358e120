//! `nhm attack`: the attack suite (`nhm-attack`) on subjects the encoder never saw, under each
//! set of defences; writes `report.json`, `report.md` (the attack × defence table) and pictures.

use std::path::PathBuf;

use anyhow::{Context, Result};
use nhm_attack::{
    AttackKind, Defences, InversionConfig, KnownSampleConfig, MasqueradeConfig, SuiteConfig, World,
};
use nhm_data::synth::View;
use serde_json::json;

use crate::source::DataArgs;

/// Which attacks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// Every attack.
    All,
    /// A decoder trained on public data turns stolen templates back into images.
    Inversion,
    /// Known (sample, hashmap) pairs recover a preimage.
    KnownSample,
    /// Gradient descent on an image through the white-box encoder towards a target.
    Masquerade,
    /// Bit flips against the running service (with scores, or accept/reject only).
    HillClimbing,
    /// One crafted hashmap against the whole gallery in 1:N.
    Wolf,
    /// A stolen template sent back to the service or to another application.
    Replay,
    /// One person linked across two services.
    Linkage,
}

/// Which defences to run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DefenceArg {
    /// No defences, each defence alone, longer hashmaps, and the shipped defaults.
    Table,
    /// The shipped defaults only.
    Default,
    /// Every defence off.
    None,
}

/// Arguments of `nhm attack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attack, or `all`.
    pub kind: KindArg,
    /// The white-box encoder (default: the shipped fingerprint model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Victims: `synth` or a dataset folder of subjects the encoder never saw.
    #[arg(long, default_value = "synth")]
    pub victims: String,
    /// Synthetic victims: fingers.
    #[arg(long, default_value_t = 100)]
    pub victim_subjects: u32,
    /// Synthetic data: impressions per finger (victims and public).
    #[arg(long, default_value_t = 8)]
    pub impressions: u32,
    /// Synthetic victims' data seed (the shipped model trained on seed 42: keep away from it).
    #[arg(long, default_value_t = 99)]
    pub victim_seed: u64,
    /// The attacker's public data: `synth` or a dataset folder disjoint from the victims.
    #[arg(long, default_value = "synth")]
    pub public: String,
    /// Synthetic public data: fingers.
    #[arg(long, default_value_t = 125)]
    pub public_subjects: u32,
    /// Synthetic public data's seed.
    #[arg(long, default_value_t = 1234)]
    pub public_seed: u64,
    /// Dataset folders whose files state no resolution: their dpi.
    #[arg(long, value_parser = crate::source::parse_dpi)]
    pub dpi: Option<f32>,
    /// Which defences.
    #[arg(long, value_enum, default_value = "table")]
    pub defences: DefenceArg,
    /// Stolen templates (victims) attacked per attack.
    #[arg(long, default_value_t = 100)]
    pub targets: usize,
    /// Victims enrolled in the running service for hill-climbing and replay.
    #[arg(long, default_value_t = 20)]
    pub service_victims: usize,
    /// Queries each hill-climb may spend.
    #[arg(long, default_value_t = 2000)]
    pub query_budget: usize,
    /// Decoder training epochs (inversion).
    #[arg(long)]
    pub decoder_epochs: Option<usize>,
    /// Targets of the masquerade (each an optimisation through the encoder; default: 40).
    #[arg(long, default_value_t = 40)]
    pub masquerade_targets: usize,
    /// Gradient steps of the masquerade.
    #[arg(long)]
    pub masquerade_steps: Option<usize>,
    /// Shrinkage of the whitening defence (0 whitens fully, 1 only centres), fitted on the
    /// public data; the columns with whitening use it.
    #[arg(long, default_value_t = nhm_attack::WHITENING_SHRINKAGE)]
    pub whitening: f64,
    /// The learned defence: an encoder hardened against inversion (`nhm harden`) from the model
    /// under attack. Its two columns (alone, and with the shipped defaults) join the table, on
    /// the same victims and public data.
    #[arg(long)]
    pub hardened_model: Option<PathBuf>,
    /// Seed of keys and of every attack's random choices.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output folder.
    #[arg(long, default_value = "artifacts/attack")]
    pub out: PathBuf,
}

/// Data arguments for one population: synthetic prints as the model sees scans (the centre view
/// with skin texture, when its contract has a front end), or a folder.
fn population(
    data: &str,
    subjects: u32,
    impressions: u32,
    seed: u64,
    dpi: Option<f32>,
    scan: bool,
) -> DataArgs {
    DataArgs {
        data: data.to_string(),
        subjects,
        impressions,
        data_seed: seed,
        synth_view: if scan { View::Centre } else { View::Whole },
        synth_texture: if scan { 0.7 } else { 0.0 },
        eval_fraction: 1.0,
        val_fraction: 0.0,
        dpi,
        naming: None,
    }
}

/// Runs `nhm attack`.
pub fn run(args: Args) -> Result<()> {
    anyhow::ensure!(args.targets > 0, "--targets must be at least 1");
    anyhow::ensure!(
        !(args.victims == "synth" && args.public == "synth" && args.victim_seed == args.public_seed),
        "--victim-seed and --public-seed are equal: the attacker's public data would be the victims"
    );
    let model = match &args.model {
        Some(m) => m.clone(),
        None => crate::models::default_fingerprint_model()?,
    };
    let encoder = nhm_model::Encoder::load(&model).with_context(|| format!("loading {}", model.display()))?;
    let scan = encoder.input().front_end.is_some();
    let victims = population(
        &args.victims,
        args.victim_subjects,
        args.impressions,
        args.victim_seed,
        args.dpi,
        scan,
    )
    .load(encoder.input())
    .context("loading the victims")?;
    let public = population(
        &args.public,
        args.public_subjects,
        args.impressions,
        args.public_seed,
        args.dpi,
        scan,
    )
    .load(encoder.input())
    .context("loading the public data")?;
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.whitening),
        "--whitening {} is outside [0, 1] (0 whitens fully, 1 only centres)",
        args.whitening
    );
    let dim = encoder.config().embedding_dim;
    // The columns choose whitening themselves (fitted on the public data): the base world runs
    // on the network's own embeddings even when the checkpoint carries a whitening.
    let world = World::new(encoder.without_whitening(), &victims, &public, args.seed)?;
    let kinds: Vec<AttackKind> = match args.kind {
        KindArg::All => AttackKind::ALL.to_vec(),
        KindArg::Inversion => vec![AttackKind::Inversion],
        KindArg::KnownSample => vec![AttackKind::KnownSample],
        KindArg::Masquerade => vec![AttackKind::Masquerade],
        KindArg::HillClimbing => vec![AttackKind::HillClimbing],
        KindArg::Wolf => vec![AttackKind::Wolf],
        KindArg::Replay => vec![AttackKind::Replay],
        KindArg::Linkage => vec![AttackKind::Linkage],
    };
    let defences = match args.defences {
        DefenceArg::Table => Defences::table(dim),
        DefenceArg::Default => vec![(
            "defaults (all)".into(),
            Defences {
                hashmap_bits: dim,
                ..Defences::default()
            },
        )],
        DefenceArg::None => vec![("none".into(), Defences::none(dim))],
    };
    let defences: Vec<(String, Defences)> = defences
        .into_iter()
        .map(|(label, mut d)| {
            if d.whitening.is_some() {
                d.whitening = Some(args.whitening);
            }
            (label, d)
        })
        .collect();
    let mut inversion = InversionConfig {
        targets: args.targets,
        seed: args.seed,
        ..InversionConfig::default()
    };
    if let Some(e) = args.decoder_epochs {
        inversion.epochs = e;
    }
    let mut masquerade = MasqueradeConfig {
        targets: args.masquerade_targets,
        seed: args.seed,
        ..MasqueradeConfig::default()
    };
    if let Some(s) = args.masquerade_steps {
        masquerade.steps = s;
    }
    let cfg = SuiteConfig {
        known_sample: KnownSampleConfig {
            targets: args.targets,
            ..KnownSampleConfig::default()
        },
        inversion,
        masquerade,
        service_victims: args.service_victims,
        query_budget: args.query_budget,
        picture_rows: 8,
    };
    let mut report = nhm_attack::run_suite(&world, &kinds, &defences, &cfg)?;
    if let Some(path) = &args.hardened_model {
        let hardened = nhm_model::Encoder::load(path)
            .with_context(|| format!("loading {}", path.display()))?
            .without_whitening();
        anyhow::ensure!(
            hardened.input() == world.encoder.input() && hardened.config() == world.encoder.config(),
            "--hardened-model {} has another architecture or input contract than {}: harden that \
             model (`nhm harden --model`)",
            path.display(),
            model.display()
        );
        let hardened_world = World::new(hardened, &victims, &public, args.seed)?;
        let columns = vec![
            ("learned defence".to_string(), Defences::none(dim)),
            (
                "learned + defaults".to_string(),
                Defences {
                    hashmap_bits: dim,
                    ..Defences::default()
                },
            ),
        ];
        let extra = nhm_attack::run_suite(&hardened_world, &kinds, &columns, &cfg)?;
        for mut run in extra.runs {
            for r in &mut run.results {
                r.defences = format!("hardened encoder, {}", r.defences);
            }
            report.runs.push(run);
        }
        report.pictures.extend(extra.pictures);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let table = report.markdown_table();
    for (label, sheet) in &report.pictures {
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = args.out.join(format!("inversion-{name}.png"));
        sheet
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let json = json!({
        "config": {
            "model": model.display().to_string(),
            "hardened_model": args.hardened_model.as_ref().map(|p| p.display().to_string()),
            "victims": format!("{} ({} subjects, {} samples)", args.victims, world.victims.subject_count(), world.victims.len()),
            "public": format!("{} ({} subjects, {} samples)", args.public, world.public.subject_count(), world.public.len()),
            "victim_seed": args.victim_seed,
            "public_seed": args.public_seed,
            "seed": args.seed,
            "targets": args.targets,
            "operating_fmr": nhm_attack::OPERATING_FMR,
        },
        "report": report,
    });
    let path = args.out.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let md = format!(
        "# Attacks on the protection\n\nSuccess at the operating threshold (FMR {} on the victims' impostor comparisons); victims: {}; public data: {}; seed {}.\n\n{table}",
        nhm_attack::OPERATING_FMR, json["config"]["victims"], json["config"]["public"], args.seed
    );
    let path = args.out.join("report.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("{table}");
    println!("wrote {}", args.out.join("report.json").display());
    Ok(())
}

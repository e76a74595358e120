//! `nhm synth`: generate synthetic fingerprints, optionally write them (FVC naming), preview
//! them, and measure how hard they are for raw-pixel matching.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use nhm_data::synth::{contact_sheet, write_fvc_with, SynthConfig, Variation, View};
use nhm_data::Dataset;
use rayon::prelude::*;

/// Arguments of `nhm synth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of fingers (subjects).
    #[arg(long, default_value_t = 100)]
    subjects: u32,
    /// Impressions per finger.
    #[arg(long, default_value_t = 8)]
    impressions: u32,
    /// Image side, pixels.
    #[arg(long, default_value_t = 96)]
    size: u32,
    /// Seed: the same seed gives the same images.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output folder for `{finger}_{impression}.png` and `manifest.json`; without it nothing is written.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write `contact_sheet.png` (up to 20 fingers × 8 impressions) in the output folder.
    #[arg(long, requires = "out")]
    preview: bool,
    /// Print the EER of raw-pixel cosine similarity over all mated and non-mated pairs.
    #[arg(long)]
    baseline: bool,
    /// Largest rotation, degrees (default: the generator's hard default).
    #[arg(long)]
    max_rotation: Option<f32>,
    /// Elastic distortion, RMS in ridge periods.
    #[arg(long)]
    distortion: Option<f32>,
    /// Sensor noise in [0, 1].
    #[arg(long)]
    noise: Option<f32>,
    /// Skin texture in [0, 1]: dry-skin ridge breaks and creases, as optical scans show (default 0).
    #[arg(long)]
    texture: Option<f32>,
    /// No variation at all: every impression is the clean, centred master print.
    #[arg(long)]
    clean: bool,
    /// Which part of the finger to show: `whole` (the pad, outline included) or `centre` (the
    /// middle of a realistically sized pad, as `--roi 144` shows of a 500-dpi scan).
    #[arg(long, default_value = "whole")]
    view: View,
}

/// Runs `nhm synth`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut variation = if args.clean {
        Variation::none()
    } else {
        Variation::default()
    };
    if let Some(v) = args.max_rotation {
        variation.max_rotation_deg = v;
    }
    if let Some(v) = args.distortion {
        variation.distortion = v;
    }
    if let Some(v) = args.noise {
        variation.noise = v;
    }
    if let Some(v) = args.texture {
        variation.texture = v;
    }
    let cfg = SynthConfig {
        seed: args.seed,
        subjects: args.subjects,
        impressions: args.impressions,
        size: args.size,
        variation,
        view: args.view,
    };
    cfg.validate().context("invalid generator settings")?;

    let total = cfg.subjects as u64 * cfg.impressions as u64;
    let pb = crate::progress::bar(total, "generate");
    let t0 = Instant::now();
    let ds = cfg
        .generate_with(&|n| pb.inc(n as u64))
        .context("generating synthetic fingerprints")?;
    let secs = t0.elapsed().as_secs_f64();
    pb.finish_and_clear();
    println!(
        "generated {} impressions of {} fingers at {}x{} in {:.2} s ({:.0} impressions/s, {} threads)",
        ds.samples.len(),
        cfg.subjects,
        cfg.size,
        cfg.size,
        secs,
        ds.samples.len() as f64 / secs.max(1e-9),
        rayon::current_num_threads()
    );

    if let Some(out) = &args.out {
        let pb = crate::progress::bar(ds.samples.len() as u64, "write");
        let manifest = write_fvc_with(&ds, out, Some(&cfg), &|| pb.inc(1))
            .with_context(|| format!("writing images to {}", out.display()))?;
        pb.finish_and_clear();
        println!("wrote {} images and {}", ds.samples.len(), manifest.display());
        if args.preview {
            let path = out.join("contact_sheet.png");
            contact_sheet(&ds, 20, 8)
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }

    if args.baseline {
        let (genuine, impostor) = raw_pixel_scores(&ds);
        let (ng, ni) = (genuine.len(), impostor.len());
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (mg, mi) = (mean(&genuine), mean(&impostor));
        let eer = nhm_eval::ScoreSet::new(genuine, impostor)
            .context("raw-pixel baseline needs at least two impressions per finger and two fingers")?
            .eer();
        println!(
            "raw-pixel cosine baseline: EER {:.2}% ({ng} mated, {ni} non-mated pairs; mean score {mg:.3} mated, {mi:.3} non-mated)",
            100.0 * eer.eer
        );
    }
    Ok(())
}

/// Cosine similarity of standardised pixels for every pair of samples: mated and non-mated.
fn raw_pixel_scores(ds: &Dataset) -> (Vec<f64>, Vec<f64>) {
    let vecs: Vec<Vec<f32>> = ds
        .samples
        .par_iter()
        .map(|s| {
            let mut v = nhm_data::preprocess::to_f32(&s.image);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect();
    let pairs: Vec<(bool, f64)> = (0..vecs.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let vecs = &vecs;
            (i + 1..vecs.len()).map(move |j| {
                let dot: f32 = vecs[i].iter().zip(&vecs[j]).map(|(a, b)| a * b).sum();
                (ds.samples[i].subject == ds.samples[j].subject, dot as f64)
            })
        })
        .collect();
    let mut genuine = vec![];
    let mut impostor = vec![];
    for (mated, s) in pairs {
        if mated {
            genuine.push(s);
        } else {
            impostor.push(s);
        }
    }
    (genuine, impostor)
}

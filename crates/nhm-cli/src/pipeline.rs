//! The evaluation pipeline shared by `nhm eval` and `nhm demo` (DESIGN.md §4).
//!
//! Given an encoder and samples of subjects it never saw, it measures four systems on the same
//! comparisons: raw pixels (the naive baseline), raw embeddings (unprotected), dense hashmaps and
//! binary hashmaps. Hashmaps are made under one application key shared by every subject: the
//! worst case for recognition (a stolen or shared key), so the binary figures measure what the
//! protection costs, not what the key hides. The per-subject-key scenario, unlinkability across
//! two applications, renewability, an operating threshold chosen on a development split, and the
//! server-side classifiers are reported beside them.

use std::path::Path;

use anyhow::{Context, Result};
use nhm_data::{preprocess, Dataset, Sample};
use nhm_eval::protocol::{evaluate, Comparisons, Protocol, RecognitionFigures, ScoreRecord};
use nhm_eval::report::{Report, SystemResult};
use nhm_eval::ScoreSet;
use nhm_template::{
    BinaryHashmap, Classifier, DenseHashmap, Hashmap, Key, LinearConfig, LogisticClassifier, NearestCentroid,
    Protector, Threshold,
};
use rayon::prelude::*;
use serde_json::json;

use crate::progress;
use crate::training::pct;

/// How an evaluation runs.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Seed of keys, impostor sampling and classifier training.
    pub seed: u64,
    /// The recognition protocol (enrolment counts, impostor sampling, FMR targets).
    pub protocol: Protocol,
    /// FMR at which the operating threshold is chosen on the development split.
    pub target_fmr: f64,
    /// Use the FVC protocol for verification (all mated pairs; impostors first sample against
    /// first sample of other subjects) instead of all non-mated pairs.
    pub fvc_protocol: bool,
    /// Free-form description of the run, copied into the report.
    pub config: serde_json::Value,
    /// Title of the report.
    pub title: String,
    /// Length of the hashmaps (values or bits): the embedding dimension times 1 to 16 stacked
    /// keyed rotations (`None`: the embedding dimension).
    pub hashmap_dim: Option<usize>,
}

/// The protection transform of `key` for this evaluation's hashmap length.
fn protector(key: &Key, dim: usize, opts: &EvalOptions) -> Result<Protector> {
    Ok(Protector::with_output_dim(
        key,
        dim,
        opts.hashmap_dim.unwrap_or(dim),
    )?)
}

/// Embeddings (and the images they came from) of one set of subjects.
pub struct Embedded<'a> {
    /// The samples, in dataset order.
    pub samples: &'a [Sample],
    /// L2-normalised embeddings, one per sample.
    pub embeddings: Vec<Vec<f32>>,
}

impl<'a> Embedded<'a> {
    /// Embeds every sample of `data` with a progress bar.
    pub fn new(encoder: &dyn nhm_model::Embedder, data: &'a Dataset) -> Result<Self> {
        let pb = progress::bar(data.samples.len() as u64, "encode");
        let mut embeddings = Vec::with_capacity(data.samples.len());
        for chunk in data.samples.chunks(64) {
            let images: Vec<_> = chunk.iter().map(|s| s.image.clone()).collect();
            embeddings.extend(encoder.embed_images(&images).context("encoding samples")?);
            pb.inc(chunk.len() as u64);
        }
        pb.finish_and_clear();
        Ok(Embedded {
            samples: &data.samples,
            embeddings,
        })
    }

    fn subjects(&self) -> Vec<u32> {
        self.samples.iter().map(|s| s.subject).collect()
    }

    fn sample_ids(&self) -> Vec<u32> {
        self.samples.iter().map(|s| s.index).collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let n = (dot(a, a) * dot(b, b)).sqrt();
    if n > 0.0 {
        dot(a, b) / n
    } else {
        0.0
    }
}

/// The application key of an evaluation run: one per seed, shared by every subject.
pub fn application_key(seed: u64, app: &str) -> Key {
    Key::from_seed(seed).for_application(app)
}

/// A subject's own key in the per-subject-key scenario (simulated clients).
fn subject_key(seed: u64, subject: u32) -> Key {
    Key::from_seed(seed ^ 0x9E37_79B9_7F4A_7C15).for_application(&format!("subject-{subject}"))
}

fn binary_all(p: &Protector, e: &[Vec<f32>]) -> Result<Vec<BinaryHashmap>> {
    e.par_iter()
        .map(|x| p.binary(x).context("protecting an embedding"))
        .collect()
}

/// Runs one system through the protocol (or the FVC protocol).
fn run_system<T: Sync>(
    name: &str,
    items: &[T],
    emb: &Embedded,
    score: impl Fn(&T, &T) -> f64 + Sync,
    opts: &EvalOptions,
) -> Result<(SystemResult, Comparisons)> {
    let (subjects, ids) = (emb.subjects(), emb.sample_ids());
    let (mut figures, comparisons) = evaluate(items, &subjects, &ids, &score, &opts.protocol)
        .with_context(|| format!("evaluating {name}"))?;
    let comparisons = if opts.fvc_protocol {
        let c = fvc_comparisons(items, &subjects, &ids, &score)?;
        let ident = std::mem::take(&mut figures.identification);
        figures =
            RecognitionFigures::from_scores(&c.scores, &opts.protocol.fmr_targets, opts.protocol.det_points)?;
        figures.identification = ident;
        c
    } else {
        comparisons
    };
    Ok((
        SystemResult {
            name: name.to_string(),
            figures,
        },
        comparisons,
    ))
}

/// FVC2002 protocol: every pair of samples of one subject is genuine; impostors are the first
/// sample of each subject against the first sample of every other subject.
fn fvc_comparisons<T: Sync>(
    items: &[T],
    subject: &[u32],
    sample: &[u32],
    score: impl Fn(&T, &T) -> f64 + Sync,
) -> Result<Comparisons> {
    let mut records = Vec::new();
    let first: Vec<usize> = (0..items.len())
        .filter(|&i| !(0..items.len()).any(|j| subject[j] == subject[i] && sample[j] < sample[i]))
        .collect();
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            let mated = subject[i] == subject[j];
            if mated || (first.contains(&i) && first.contains(&j)) {
                records.push(ScoreRecord {
                    reference_subject: subject[i],
                    reference_sample: sample[i],
                    probe_subject: subject[j],
                    probe_sample: sample[j],
                    score: score(&items[i], &items[j]),
                });
            }
        }
    }
    let (g, imp): (Vec<&ScoreRecord>, Vec<&ScoreRecord>) = records.iter().partition(|r| r.is_mated());
    let scores = ScoreSet::new(
        g.iter().map(|r| r.score).collect(),
        imp.iter().map(|r| r.score).collect(),
    )?;
    let available = imp.len() as u64;
    Ok(Comparisons {
        records,
        scores,
        impostor_pairs_available: available,
    })
}

/// Evaluates `encoder` on the unseen subjects of `test`; `dev` (subjects disjoint from `test`)
/// fixes the operating threshold. Writes score files, plots and the report into `out`.
pub fn evaluate_encoder(
    encoder: &dyn nhm_model::Embedder,
    test: &Dataset,
    dev: Option<&Dataset>,
    opts: &EvalOptions,
    out: &Path,
) -> Result<Report> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let dim = encoder.embedding_dim();
    let emb = Embedded::new(encoder, test)?;
    let app = protector(&application_key(opts.seed, "evaluation"), dim, opts)?;

    let pixels: Vec<Vec<f32>> = test
        .samples
        .par_iter()
        .map(|s| preprocess::to_f32(&s.image))
        .collect();
    let dense: Vec<DenseHashmap> = emb
        .embeddings
        .par_iter()
        .map(|e| app.dense(e))
        .collect::<Result<_, _>>()
        .context("dense hashmaps")?;
    let binary = binary_all(&app, &emb.embeddings)?;
    // One transform per subject (its key derivation and rotations), shared by its samples.
    let mut subjects = emb.subjects();
    subjects.sort_unstable();
    subjects.dedup();
    let own: std::collections::HashMap<u32, Protector> = subjects
        .into_par_iter()
        .map(|s| Ok((s, protector(&subject_key(opts.seed, s), dim, opts)?)))
        .collect::<Result<_>>()?;
    let own_key: Vec<BinaryHashmap> = emb
        .embeddings
        .par_iter()
        .zip(emb.samples.par_iter())
        .map(|(e, s)| Ok(own[&s.subject].binary(e)?))
        .collect::<Result<_>>()
        .context("per-subject hashmaps")?;

    let pb = progress::spinner("evaluate");
    let mut systems = Vec::new();
    pb.set_message("raw pixels");
    let (px, _) = run_system("raw pixels (cosine)", &pixels, &emb, |a, b| cosine(a, b), opts)?;
    pb.set_message("raw embedding");
    let (raw, raw_cmp) = run_system(
        "raw embedding (cosine)",
        &emb.embeddings,
        &emb,
        |a, b| dot(a, b),
        opts,
    )?;
    pb.set_message("dense hashmap");
    let (dn, _) = run_system(
        "dense hashmap (cosine)",
        &dense,
        &emb,
        |a, b| a.cosine(b).unwrap_or(f64::NAN),
        opts,
    )?;
    pb.set_message("binary hashmap");
    let (bin, bin_cmp) = run_system(
        "binary hashmap (Hamming)",
        &binary,
        &emb,
        |a, b| a.similarity(b).unwrap_or(f64::NAN),
        opts,
    )?;
    pb.set_message("per-subject keys");
    // Verification only: a 1:N probe cannot be protected with the key of a subject it has not
    // yet been identified as, so identification under per-subject keys means nothing.
    let mut no_ident = opts.clone();
    no_ident.protocol.enrolment_counts.clear();
    let (own, _) = run_system(
        "binary hashmap, per-subject keys",
        &own_key,
        &emb,
        |a, b| a.similarity(b).unwrap_or(f64::NAN),
        &no_ident,
    )?;
    pb.finish_and_clear();

    // Score files of the deployed system (binary hashmaps).
    // Score files name subjects by their source label, made safe for whitespace-separated formats.
    let labels = |s: u32| {
        let l = test
            .subjects
            .get(s as usize)
            .cloned()
            .unwrap_or_else(|| s.to_string());
        let l: String = l
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        if l.is_empty() || l.starts_with('#') {
            format!("subject{s}")
        } else {
            l
        }
    };
    nhm_eval::scorefile::write_csv(&out.join("scores-binary.csv"), &bin_cmp.records, &labels)?;
    nhm_eval::scorefile::write_bob4(&out.join("scores-binary.txt"), &bin_cmp.records, &labels)?;
    nhm_eval::scorefile::write_csv(&out.join("scores-embedding.csv"), &raw_cmp.records, &labels)?;

    // Plots.
    let curves: Vec<(&str, &[nhm_eval::det::DetPoint])> = [&px, &raw, &dn, &bin]
        .iter()
        .map(|s| (s.name.as_str(), s.figures.det.as_slice()))
        .collect();
    nhm_eval::plot::plot_det(&out.join("det.png"), &curves, "DET, unseen subjects")?;

    // Operating threshold from the development split, applied to the test subjects.
    let threshold = match dev {
        Some(dev) => Some(operating_threshold(encoder, dev, &app, opts)?),
        None => None,
    };
    nhm_eval::plot::plot_score_distributions(
        &out.join("scores-binary.png"),
        &bin_cmp.scores,
        "Binary hashmap scores (1 - Hamming/d)",
        threshold.as_ref().map(|t| t.score),
    )?;
    let operating = threshold.as_ref().map(|t| {
        json!({
            "threshold": t,
            "test_fmr": bin_cmp.scores.fmr(t.score),
            "test_fnmr": bin_cmp.scores.fnmr(t.score),
            "test_impostor_pairs": bin_cmp.scores.impostor().len(),
            "test_genuine_pairs": bin_cmp.scores.genuine().len(),
        })
    });
    if let Some(t) = &threshold {
        std::fs::write(out.join("threshold.json"), serde_json::to_string_pretty(t)?)?;
    }

    // Protection (ISO/IEC 24745): unlinkability across two applications, renewability.
    let protection = protection_figures(&emb, dim, opts, &bin, threshold.as_ref(), out)?;
    let classifiers = classifier_figures(&binary, &emb, opts)?;

    let mut notes = vec![
        format!(
            "Hashmaps in the first rows share one application key (the stolen-key worst case); with a secret key per subject the binary EER is {:.3}% (the key, not the biometric, separates subjects there).",
            own.figures.eer * 100.0
        ),
        format!(
            "Performance preservation (ISO/IEC 24745): binary-hashmap EER / raw-embedding EER = {}.",
            ratio(bin.figures.eer, raw.figures.eer)
        ),
    ];
    notes.extend(summary_notes(&operating, &protection, &classifiers));
    systems.extend([px, raw, dn, bin, own]);
    let report = Report {
        title: opts.title.clone(),
        created: now_rfc3339(),
        config: opts.config.clone(),
        systems,
        extra: json!({
            "operating_point": operating,
            "protection": protection,
            "classifiers": classifiers,
            "subjects": test.n_subjects(),
            "samples": test.samples.len(),
        }),
        notes,
        plots: vec![
            ("DET curves of the four systems".into(), "det.png".into()),
            (
                "Binary hashmap genuine and impostor scores".into(),
                "scores-binary.png".into(),
            ),
            (
                "Unlinkability across two applications (binary hashmaps)".into(),
                "unlinkability.png".into(),
            ),
        ],
    };
    report.write(out)?;
    Ok(report)
}

/// Prints the report's headline figures, one row per system, each line starting with `indent`.
pub fn print_summary(report: &Report, indent: &str) {
    println!(
        "{indent}{:<34} {:>8} {:>10} {:>10} {:>8} {:>9} {:>9}",
        "system", "EER", "FNMR@0.1%", "rank-1@1", "rank-1@5", "genuine", "impostor"
    );
    for s in &report.systems {
        let f = &s.figures;
        let at = f.fnmr_at_fmr.iter().find(|x| (x.fmr_target - 1e-3).abs() < 1e-12);
        let at = at.map_or(
            "-".into(),
            |x| if x.resolvable { pct(x.fnmr) } else { "n/r".into() },
        );
        let rank1 = |k: usize| {
            f.identification
                .iter()
                .find(|r| r.enrolled == k)
                .map_or("-".into(), |r| pct(r.rank1))
        };
        println!(
            "{indent}{:<34} {:>8} {:>10} {:>10} {:>8} {:>9} {:>9}",
            s.name,
            pct(f.eer),
            at,
            rank1(1),
            rank1(5),
            f.genuine_pairs,
            f.impostor_pairs
        );
    }
}

/// One-line summaries of the operating point, protection and classifier figures, so the
/// report's reader need not open report.json for them.
fn summary_notes(
    operating: &Option<serde_json::Value>,
    protection: &serde_json::Value,
    classifiers: &serde_json::Value,
) -> Vec<String> {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let mut out = Vec::new();
    match operating {
        Some(o) => out.push(format!(
            "Operating point: threshold {:.4} chosen for FMR {} on the development subjects gives FMR {:.3}% and FNMR {:.3}% on the evaluation subjects ({} impostor, {} genuine pairs).",
            f(&o["threshold"]["score"]),
            f(&o["threshold"]["target_fmr"]),
            f(&o["test_fmr"]) * 100.0,
            f(&o["test_fnmr"]) * 100.0,
            o["test_impostor_pairs"],
            o["test_genuine_pairs"]
        )),
        None => out.push("No development subjects: no operating threshold was chosen.".into()),
    }
    let u = &protection["unlinkability"];
    out.push(format!(
        "Unlinkability across two application keys: D_sys = {:.3} (0 = fully unlinkable; {} mated, {} non-mated pairs).",
        f(&u["d_sys"]),
        u["mated_pairs"],
        u["non_mated_pairs"]
    ));
    let r = &protection["renewability"];
    out.push(format!(
        "Renewability: a sample's old and re-keyed hashmaps score {:.3} on average; {} of {} pairs accepted at the operating threshold.",
        f(&r["old_vs_renewed_mean_score"]),
        r["old_vs_renewed_accepted"],
        r["pairs"]
    ));
    for row in classifiers.as_array().into_iter().flatten() {
        out.push(format!(
            "Server-side classification of binary hashmaps, {} enrolled per subject: nearest centroid {:.1}%, logistic regression {:.1}% ({} probes).",
            row["enrolled"],
            f(&row["nearest_centroid_accuracy"]) * 100.0,
            f(&row["logistic_accuracy"]) * 100.0,
            row["probes"]
        ));
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else if a == 0.0 {
        "1.00 (both zero)".into()
    } else {
        "inf (raw EER is zero)".into()
    }
}

/// The binary-hashmap threshold for the target FMR, from impostor scores on `dev`.
fn operating_threshold(
    encoder: &dyn nhm_model::Embedder,
    dev: &Dataset,
    app: &Protector,
    opts: &EvalOptions,
) -> Result<Threshold> {
    let emb = Embedded::new(encoder, dev)?;
    let h = binary_all(app, &emb.embeddings)?;
    let mut p = opts.protocol.clone();
    p.enrolment_counts = vec![1];
    let c = nhm_eval::protocol::verification_scores(
        &h,
        &emb.subjects(),
        &emb.sample_ids(),
        |a, b| a.similarity(b).unwrap_or(f64::NAN),
        &p,
    )?;
    Ok(Threshold::for_target_fmr(c.scores.impostor(), opts.target_fmr)?)
}

fn protection_figures(
    emb: &Embedded,
    dim: usize,
    opts: &EvalOptions,
    binary: &SystemResult,
    threshold: Option<&Threshold>,
    out: &Path,
) -> Result<serde_json::Value> {
    let a = binary_all(
        &protector(&application_key(opts.seed, "application-a"), dim, opts)?,
        &emb.embeddings,
    )?;
    let b = binary_all(
        &protector(&application_key(opts.seed, "application-b"), dim, opts)?,
        &emb.embeddings,
    )?;
    // Linkage scores: application A's template against application B's template.
    let subjects = emb.subjects();
    let n = a.len();
    let mut mated = Vec::new();
    let mut non_mated = Vec::new();
    let stride = (n * n / 200_000).max(1);
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let s = a[i].similarity(&b[j])?;
            if subjects[i] == subjects[j] {
                mated.push(s);
            } else if (i * n + j) % stride == 0 {
                non_mated.push(s);
            }
        }
    }
    let u = nhm_eval::unlinkability::unlinkability(&mated, &non_mated, 50)?;
    nhm_eval::plot::plot_unlinkability(&out.join("unlinkability.png"), &u, "Linkage of A and B templates")?;
    // Renewability: the same sample before and after re-keying.
    let renewed: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.similarity(y))
        .collect::<Result<_, _>>()?;
    let mean = renewed.iter().sum::<f64>() / renewed.len().max(1) as f64;
    let accepted = threshold.map(|t| renewed.iter().filter(|&&s| t.accepts(s)).count());
    Ok(json!({
        "performance_preservation": { "binary_eer": binary.figures.eer },
        "unlinkability": { "d_sys": u.d_sys, "mated_pairs": mated.len(), "non_mated_pairs": non_mated.len() },
        "renewability": {
            "old_vs_renewed_mean_score": mean,
            "old_vs_renewed_accepted": accepted,
            "pairs": renewed.len(),
        },
    }))
}

/// The seed's server-side "discriminator": trained classifiers against nearest centroid, over
/// binary hashmaps, at 1, 2, 3 and 5 enrolment samples per subject.
fn classifier_figures(
    binary: &[BinaryHashmap],
    emb: &Embedded,
    opts: &EvalOptions,
) -> Result<serde_json::Value> {
    let mut rows = Vec::new();
    for &k in &opts.protocol.enrolment_counts {
        let mut train = Vec::new();
        let mut probes = Vec::new();
        for (h, s) in binary.iter().zip(emb.samples) {
            let rank = emb
                .samples
                .iter()
                .filter(|o| o.subject == s.subject && o.index < s.index)
                .count();
            let item = (s.subject as usize, Hashmap::Binary(h.clone()));
            if rank < k {
                train.push(item);
            } else {
                probes.push(item);
            }
        }
        if probes.is_empty() || train.is_empty() {
            continue;
        }
        let accuracy = |c: &dyn Classifier| -> Result<f64> {
            let mut right = 0usize;
            for (label, h) in &probes {
                if c.predict(h)?.first().map(|(c, _)| c) == Some(label) {
                    right += 1;
                }
            }
            Ok(right as f64 / probes.len() as f64)
        };
        let centroid = NearestCentroid::fit(&train)?;
        let logistic = LogisticClassifier::fit(
            &train,
            &LinearConfig {
                seed: opts.seed,
                ..Default::default()
            },
        )?;
        rows.push(json!({
            "enrolled": k,
            "probes": probes.len(),
            "nearest_centroid_accuracy": accuracy(&centroid)?,
            "logistic_accuracy": accuracy(&logistic)?,
        }));
    }
    Ok(serde_json::Value::Array(rows))
}

/// The current UTC time as RFC 3339, without a date crate.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Where `git rev-parse HEAD` says we are, if anywhere.
pub fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One system's figures in a cross-capture evaluation.
#[derive(Debug, serde::Serialize)]
pub struct CrossSystem {
    /// The system, as in [`evaluate_encoder`]'s reports.
    pub name: String,
    /// Its figures.
    pub figures: nhm_eval::CrossFigures,
}

/// Cross-capture evaluation (the same subjects captured twice, for example one finger on two
/// sensors): `references` are enrolled, `probes` compared with them; subjects are matched by
/// label, and only labels on both sides take part. Raw pixels, the raw embedding and binary
/// hashmaps under the shared evaluation key. Writes `cross.json` into `out`.
pub fn evaluate_cross(
    encoder: &dyn nhm_model::Embedder,
    references: &Dataset,
    probes: &Dataset,
    opts: &EvalOptions,
    out: &Path,
) -> Result<Vec<CrossSystem>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // One subject id per label across both sides.
    let mut ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    for s in references.samples.iter().chain(&probes.samples) {
        let next = ids.len() as u32;
        ids.entry(s.subject_label.as_str()).or_insert(next);
    }
    let subj =
        |d: &Dataset| -> Vec<u32> { d.samples.iter().map(|s| ids[s.subject_label.as_str()]).collect() };
    let (rs, ps) = (subj(references), subj(probes));
    let shared = rs
        .iter()
        .filter(|s| ps.contains(s))
        .collect::<std::collections::HashSet<_>>()
        .len();
    anyhow::ensure!(
        shared >= 2,
        "the two datasets share {shared} subject label(s); a cross-capture evaluation needs at least two"
    );
    let (re, pe) = (
        Embedded::new(encoder, references)?,
        Embedded::new(encoder, probes)?,
    );
    let app = protector(
        &application_key(opts.seed, "evaluation"),
        encoder.embedding_dim(),
        opts,
    )?;
    let (rb, pb) = (
        binary_all(&app, &re.embeddings)?,
        binary_all(&app, &pe.embeddings)?,
    );
    let px = |d: &Dataset| -> Vec<Vec<f32>> {
        d.samples
            .par_iter()
            .map(|s| preprocess::to_f32(&s.image))
            .collect()
    };
    let (rp, pp) = (px(references), px(probes));
    let p = &opts.protocol;
    let systems = vec![
        CrossSystem {
            name: "raw pixels (cosine)".into(),
            figures: nhm_eval::cross_comparison(&rp, &rs, &pp, &ps, |a, b| cosine(a, b), p)?,
        },
        CrossSystem {
            name: "raw embedding (cosine)".into(),
            figures: nhm_eval::cross_comparison(
                &re.embeddings,
                &rs,
                &pe.embeddings,
                &ps,
                |a, b| dot(a, b),
                p,
            )?,
        },
        CrossSystem {
            name: "binary hashmap (Hamming)".into(),
            figures: nhm_eval::cross_comparison(
                &rb,
                &rs,
                &pb,
                &ps,
                |a, b| a.similarity(b).unwrap_or(f64::NAN),
                p,
            )?,
        },
    ];
    let doc = json!({ "config": opts.config, "shared_subjects": shared, "systems": systems });
    std::fs::write(out.join("cross.json"), serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", out.join("cross.json").display()))?;
    Ok(systems)
}

//! The recognition protocol of DESIGN.md §4, over any template type that has a similarity score.
//!
//! - Verification: every mated pair (two templates of the same subject, each unordered pair once)
//!   and every non-mated pair (two templates of different subjects), or, when there are more
//!   non-mated pairs than [`Protocol::max_impostor_pairs`], a seeded uniform sample of them
//!   without replacement.
//! - Identification: for each enrolment count `k`, every subject with more than `k` samples
//!   enrols its first `k` samples (by sample index) and probes with each of the rest; a probe's
//!   score against a subject fuses its scores against that subject's enrolled templates
//!   ([`Fusion`]). Subjects with `k` samples or fewer take no part (neither enrolled nor probed)
//!   and are counted in [`RankAt::skipped_subjects`].
//!
//! Templates are described by three parallel slices: the templates, each one's subject id and
//! each one's sample index (the `(subject, sample)` pairs must be unique). Scores are
//! similarities: higher means more alike.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::det::{det_curve, DetPoint};
use crate::{Error, Result, ScoreSet};

/// How a probe's scores against one subject's several enrolled templates become one score: the
/// same rule the server's gallery applies, so evaluation measures what is deployed.
pub use nhm_template::Fusion;

/// The knobs of the evaluation protocol; [`Protocol::default`] is DESIGN.md §4's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Protocol {
    /// Identification is run once per entry: that many samples enrolled per subject.
    pub enrolment_counts: Vec<usize>,
    /// At most this many non-mated pairs are compared: all of them when there are fewer, else a
    /// seeded uniform sample without replacement.
    pub max_impostor_pairs: usize,
    /// Seed of the non-mated sample.
    pub seed: u64,
    /// Score fusion over a subject's enrolled templates in identification.
    pub fusion: Fusion,
    /// FMR values at which FNMR is reported, as fractions.
    pub fmr_targets: Vec<f64>,
    /// Most points kept on the DET curve.
    pub det_points: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            enrolment_counts: vec![1, 2, 3, 5],
            max_impostor_pairs: 200_000,
            seed: 0,
            fusion: Fusion::Best,
            fmr_targets: vec![1e-2, 1e-3, 1e-4],
            det_points: 200,
        }
    }
}

/// One comparison: the reference is the template earlier in the input, the probe the later.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    /// Subject id of the reference template.
    pub reference_subject: u32,
    /// Sample index of the reference template.
    pub reference_sample: u32,
    /// Subject id of the probe template.
    pub probe_subject: u32,
    /// Sample index of the probe template.
    pub probe_sample: u32,
    /// Similarity score (higher = more similar).
    pub score: f64,
}

impl ScoreRecord {
    /// Whether both templates belong to the same subject (a genuine comparison).
    pub fn is_mated(&self) -> bool {
        self.reference_subject == self.probe_subject
    }
}

/// The verification comparisons of a protocol run.
#[derive(Debug, Clone)]
pub struct Comparisons {
    /// Every comparison made, ordered by (reference position, probe position) in the input.
    pub records: Vec<ScoreRecord>,
    /// The same scores split into genuine and impostor.
    pub scores: ScoreSet,
    /// How many non-mated pairs exist; more than were compared when they were sampled.
    pub impostor_pairs_available: u64,
}

/// Identification accuracy at one enrolment count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankAt {
    /// Samples enrolled per subject.
    pub enrolled: usize,
    /// Probes searched.
    pub probes: usize,
    /// Share of probes whose own subject ranks first (ties count against the probe).
    pub rank1: f64,
    /// Share of probes whose own subject ranks among the first five.
    pub rank5: f64,
    /// Subjects in the gallery (those with more than `enrolled` samples).
    pub gallery_subjects: usize,
    /// Subjects left out because they have `enrolled` samples or fewer.
    pub skipped_subjects: usize,
}

/// FNMR at one target FMR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FnmrAt {
    /// The target FMR, as a fraction.
    pub fmr_target: f64,
    /// The lowest threshold whose measured FMR is at most the target.
    pub threshold: f64,
    /// The FMR measured at that threshold.
    pub fmr: f64,
    /// The FNMR measured at that threshold.
    pub fnmr: f64,
    /// False when there are too few impostor pairs to measure an FMR as small as the target
    /// (1 / impostor pairs > target): the threshold then lies above every impostor score and
    /// `fnmr` is the FNMR there, not an estimate at the target.
    pub resolvable: bool,
}

/// Every recognition figure of one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognitionFigures {
    /// Genuine (mated) comparisons made.
    pub genuine_pairs: usize,
    /// Impostor (non-mated) comparisons made.
    pub impostor_pairs: usize,
    /// Non-mated pairs that exist (more than `impostor_pairs` when sampled).
    pub impostor_pairs_available: u64,
    /// Equal error rate, as a fraction.
    pub eer: f64,
    /// Threshold at the equal error rate.
    pub eer_threshold: f64,
    /// FNMR at each target FMR, in the protocol's order.
    pub fnmr_at_fmr: Vec<FnmrAt>,
    /// Identification accuracy per enrolment count (counts with no probe are left out).
    pub identification: Vec<RankAt>,
    /// The DET curve, by ascending threshold.
    pub det: Vec<DetPoint>,
}

impl RecognitionFigures {
    /// Verification figures from scores alone (for example a score file read back); the
    /// identification list is empty and `impostor_pairs_available` is the impostor count.
    pub fn from_scores(s: &ScoreSet, fmr_targets: &[f64], det_points: usize) -> Result<Self> {
        check_targets(fmr_targets)?;
        let e = s.eer();
        let n_imp = s.impostor().len();
        let fnmr_at_fmr = fmr_targets
            .iter()
            .map(|&target| {
                let threshold = s.threshold_at_fmr(target);
                FnmrAt {
                    fmr_target: target,
                    threshold,
                    fmr: s.fmr(threshold),
                    fnmr: s.fnmr(threshold),
                    resolvable: 1.0 / n_imp as f64 <= target,
                }
            })
            .collect();
        Ok(RecognitionFigures {
            genuine_pairs: s.genuine().len(),
            impostor_pairs: n_imp,
            impostor_pairs_available: n_imp as u64,
            eer: e.eer,
            eer_threshold: e.threshold,
            fnmr_at_fmr,
            identification: Vec::new(),
            det: det_curve(s, det_points),
        })
    }
}

fn check_targets(targets: &[f64]) -> Result<()> {
    for &t in targets {
        if !(t > 0.0 && t < 1.0) {
            return Err(Error::InvalidParameter {
                name: "fmr_targets",
                reason: format!("{t} is not strictly between 0 and 1"),
            });
        }
    }
    Ok(())
}

/// Checks the parallel slices and groups template positions by subject, each group sorted by
/// sample index.
fn group_by_subject(n: usize, subject: &[u32], sample: &[u32]) -> Result<BTreeMap<u32, Vec<usize>>> {
    if subject.len() != n {
        return Err(Error::LengthMismatch {
            what: "subject",
            got: subject.len(),
            expected: n,
        });
    }
    if sample.len() != n {
        return Err(Error::LengthMismatch {
            what: "sample",
            got: sample.len(),
            expected: n,
        });
    }
    let mut seen: HashMap<(u32, u32), usize> = HashMap::with_capacity(n);
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        if let Some(&first) = seen.get(&(subject[i], sample[i])) {
            return Err(Error::DuplicateSample {
                subject: subject[i],
                sample: sample[i],
                first,
                second: i,
            });
        }
        seen.insert((subject[i], sample[i]), i);
        groups.entry(subject[i]).or_default().push(i);
    }
    for g in groups.values_mut() {
        g.sort_by_key(|&i| sample[i]);
    }
    Ok(groups)
}

/// Verification comparisons: every mated pair, and every non-mated pair or a seeded sample of
/// `p.max_impostor_pairs` of them. Scores are computed in parallel.
pub fn verification_scores<T: Sync>(
    items: &[T],
    subject: &[u32],
    sample: &[u32],
    score: impl Fn(&T, &T) -> f64 + Sync,
    p: &Protocol,
) -> Result<Comparisons> {
    let n = items.len();
    let groups = group_by_subject(n, subject, sample)?;
    if p.max_impostor_pairs == 0 {
        return Err(Error::InvalidParameter {
            name: "max_impostor_pairs",
            reason: "must be at least 1".into(),
        });
    }
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for g in groups.values() {
        let mut g = g.clone();
        g.sort_unstable();
        for (a, &i) in g.iter().enumerate() {
            pairs.extend(g[a + 1..].iter().map(|&j| (i, j)));
        }
    }
    let total = (n as u64) * (n as u64).saturating_sub(1) / 2;
    let available = total - pairs.len() as u64;
    if available <= p.max_impostor_pairs as u64 {
        for i in 0..n {
            pairs.extend((i + 1..n).filter(|&j| subject[i] != subject[j]).map(|j| (i, j)));
        }
    } else {
        // Uniform sample without replacement by rejection: there are more non-mated pairs than
        // we want, so each draw succeeds with probability at least (available - wanted) / n².
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut chosen: HashSet<(usize, usize)> = HashSet::with_capacity(p.max_impostor_pairs);
        while chosen.len() < p.max_impostor_pairs {
            let i = rng.gen_range(0..n as u64) as usize;
            let j = rng.gen_range(0..n as u64) as usize;
            if subject[i] != subject[j] {
                chosen.insert((i.min(j), i.max(j)));
            }
        }
        pairs.extend(chosen);
    }
    pairs.sort_unstable();

    let scores: Vec<f64> = pairs
        .par_iter()
        .map(|&(i, j)| score(&items[i], &items[j]))
        .collect();
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    let mut records = Vec::with_capacity(pairs.len());
    for (&(i, j), &s) in pairs.iter().zip(&scores) {
        if !s.is_finite() {
            return Err(Error::NonFiniteScore {
                index: records.len(),
                value: s,
            });
        }
        let r = ScoreRecord {
            reference_subject: subject[i],
            reference_sample: sample[i],
            probe_subject: subject[j],
            probe_sample: sample[j],
            score: s,
        };
        if r.is_mated() {
            genuine.push(s);
        } else {
            impostor.push(s);
        }
        records.push(r);
    }
    let scores = ScoreSet::new(genuine, impostor)?;
    Ok(Comparisons {
        records,
        scores,
        impostor_pairs_available: available,
    })
}

/// Closed-set identification at each of `p.enrolment_counts` (see the module documentation).
/// Enrolment counts at which no subject has a sample left to probe with are left out.
pub fn identification<T: Sync>(
    items: &[T],
    subject: &[u32],
    sample: &[u32],
    score: impl Fn(&T, &T) -> f64 + Sync,
    p: &Protocol,
) -> Result<Vec<RankAt>> {
    let groups = group_by_subject(items.len(), subject, sample)?;
    let mut out = Vec::with_capacity(p.enrolment_counts.len());
    for &k in &p.enrolment_counts {
        if k == 0 {
            return Err(Error::InvalidParameter {
                name: "enrolment_counts",
                reason: "each count must be at least 1".into(),
            });
        }
        let gallery: Vec<&[usize]> = groups.values().filter(|g| g.len() > k).map(|g| &g[..k]).collect();
        let probes: Vec<(usize, usize)> = groups
            .values()
            .filter(|g| g.len() > k)
            .enumerate()
            .flat_map(|(own, g)| g[k..].iter().map(move |&i| (i, own)))
            .collect();
        if probes.is_empty() {
            continue;
        }
        let ranks: Vec<usize> = probes
            .par_iter()
            .map(|&(probe, own)| {
                let fused: Vec<f64> = gallery
                    .iter()
                    .map(|enrolled| {
                        let s = enrolled.iter().map(|&r| score(&items[r], &items[probe]));
                        match p.fusion {
                            Fusion::Best => s.fold(f64::NEG_INFINITY, f64::max),
                            Fusion::Mean => s.sum::<f64>() / enrolled.len() as f64,
                        }
                    })
                    .collect();
                if let Some((pos, &v)) = fused.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(Error::NonFiniteScore { index: pos, value: v });
                }
                let mine = fused[own];
                // Pessimistic ranking: any other subject scoring at least as high is ahead.
                let ahead = fused
                    .iter()
                    .enumerate()
                    .filter(|&(s, &v)| s != own && v >= mine)
                    .count();
                Ok(ahead + 1)
            })
            .collect::<Result<_>>()?;
        let share = |r: usize| ranks.iter().filter(|&&x| x <= r).count() as f64 / ranks.len() as f64;
        out.push(RankAt {
            enrolled: k,
            probes: ranks.len(),
            rank1: share(1),
            rank5: share(5),
            gallery_subjects: gallery.len(),
            skipped_subjects: groups.len() - gallery.len(),
        });
    }
    Ok(out)
}

/// Runs verification and identification and gathers every figure; also returns the
/// comparisons, for score files and plots.
pub fn evaluate<T: Sync>(
    items: &[T],
    subject: &[u32],
    sample: &[u32],
    score: impl Fn(&T, &T) -> f64 + Sync,
    p: &Protocol,
) -> Result<(RecognitionFigures, Comparisons)> {
    check_targets(&p.fmr_targets)?;
    let comparisons = verification_scores(items, subject, sample, &score, p)?;
    let mut figures = RecognitionFigures::from_scores(&comparisons.scores, &p.fmr_targets, p.det_points)?;
    figures.impostor_pairs_available = comparisons.impostor_pairs_available;
    figures.identification = identification(items, subject, sample, &score, p)?;
    Ok((figures, comparisons))
}

/// Figures of a cross-capture comparison: references from one capture (a sensor, a session),
/// probes from another, matched by subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossFigures {
    /// Verification figures over every (reference, probe) pair.
    pub verification: RecognitionFigures,
    /// Mated pairs compared (same subject, one template from each side).
    pub genuine_pairs: usize,
    /// Non-mated pairs compared.
    pub impostor_pairs: usize,
    /// Closed-set rank-1: each probe against every subject's references (best score fused),
    /// over the subjects present on both sides.
    pub rank1: f64,
    /// Probes ranked.
    pub probes: usize,
}

/// Compares every reference template with every probe template: mated when their subjects agree.
/// Only subjects present on both sides take part (the others could only add impostors of another
/// population). Measures, for example, the same fingers scanned on two sensors.
///
/// # Errors
/// [`Error::NoScores`] when no subject is on both sides, [`Error::NonFiniteScore`] for a NaN score.
pub fn cross_comparison<T: Sync>(
    references: &[T],
    reference_subject: &[u32],
    probes: &[T],
    probe_subject: &[u32],
    score: impl Fn(&T, &T) -> f64 + Sync,
    p: &Protocol,
) -> Result<CrossFigures> {
    check_targets(&p.fmr_targets)?;
    let on_ref: HashSet<u32> = reference_subject.iter().copied().collect();
    let on_probe: HashSet<u32> = probe_subject.iter().copied().collect();
    let refs: Vec<usize> = (0..references.len().min(reference_subject.len()))
        .filter(|&i| on_probe.contains(&reference_subject[i]))
        .collect();
    let probe_ids: Vec<usize> = (0..probes.len().min(probe_subject.len()))
        .filter(|&j| on_ref.contains(&probe_subject[j]))
        .collect();
    let rows: Vec<Vec<f64>> = probe_ids
        .par_iter()
        .map(|&j| refs.iter().map(|&i| score(&references[i], &probes[j])).collect())
        .collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    let mut hits = 0usize;
    for (row, &j) in rows.iter().zip(&probe_ids) {
        let mut best: HashMap<u32, f64> = HashMap::new();
        for (&s, &i) in row.iter().zip(&refs) {
            if !s.is_finite() {
                return Err(Error::NonFiniteScore { index: i, value: s });
            }
            let subject = reference_subject[i];
            if subject == probe_subject[j] {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
            let e = best.entry(subject).or_insert(f64::NEG_INFINITY);
            *e = e.max(s);
        }
        let mine = best.get(&probe_subject[j]).copied().unwrap_or(f64::NEG_INFINITY);
        if best.iter().all(|(&s, &v)| s == probe_subject[j] || v < mine) {
            hits += 1;
        }
    }
    let (genuine_pairs, impostor_pairs) = (genuine.len(), impostor.len());
    let scores = ScoreSet::new(genuine, impostor)?;
    let verification = RecognitionFigures::from_scores(&scores, &p.fmr_targets, p.det_points)?;
    Ok(CrossFigures {
        verification,
        genuine_pairs,
        impostor_pairs,
        rank1: hits as f64 / probe_ids.len().max(1) as f64,
        probes: probe_ids.len(),
    })
}

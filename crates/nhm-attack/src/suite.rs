//! The whole suite: every chosen attack under every chosen set of defences, one report, and the
//! attack × defence table with the recognition each defence costs.

use nhm_eval::ScoreSet;
use serde::{Deserialize, Serialize};

use crate::{
    known_sample, linkage, wolf, AttackResult, Defences, KnownSampleConfig, Result, World, OPERATING_FMR,
};

/// One attack of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// Known (sample, hashmap) pairs under the victims' key recover a preimage.
    KnownSample,
    /// One crafted hashmap matches many subjects in 1:N.
    Wolf,
    /// Templates of one person linked across two services.
    Linkage,
}

impl AttackKind {
    /// Every attack, in report order.
    pub const ALL: [AttackKind; 3] = [AttackKind::KnownSample, AttackKind::Wolf, AttackKind::Linkage];

    /// The attack's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::KnownSample => "known-sample",
            AttackKind::Wolf => "wolf",
            AttackKind::Linkage => "linkage",
        }
    }
}

/// Settings of a suite run.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The known-sample attack's settings.
    pub known_sample: KnownSampleConfig,
}

/// What the recognition costs under one set of defences: binary hashmaps of the victims, every
/// mated pair against every non-mated pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognitionCost {
    /// Equal error rate.
    pub eer: f64,
    /// FNMR at the operating FMR.
    pub fnmr_at_operating_fmr: f64,
    /// Mated comparisons.
    pub mated: usize,
    /// Non-mated comparisons.
    pub non_mated: usize,
}

/// The recognition of the victims' binary hashmaps under `defences` (application A's key).
pub fn recognition_cost(world: &World, defences: &Defences) -> Result<RecognitionCost> {
    let p = world.protector(&world.victim_key(defences, "app-a"), defences)?;
    let h = World::hashmaps(&p, &world.victims.embeddings)?;
    let s = &world.victims.subjects;
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for i in 0..h.len() {
        for j in i + 1..h.len() {
            let v = h[i].similarity(&h[j])?;
            if s[i] == s[j] {
                genuine.push(v);
            } else {
                impostor.push(v);
            }
        }
    }
    let (mated, non_mated) = (genuine.len(), impostor.len());
    let set = ScoreSet::new(genuine, impostor)?;
    Ok(RecognitionCost {
        eer: set.eer().eer,
        fnmr_at_operating_fmr: set.fnmr_at_fmr(OPERATING_FMR),
        mated,
        non_mated,
    })
}

/// One column of the defence table: a set of defences, what it costs, what the attacks achieved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefenceRun {
    /// The column's label (`none`, `pepper`, ..., `defaults (all)`).
    pub label: String,
    /// The switches.
    pub defences: Defences,
    /// Recognition under them.
    pub cost: RecognitionCost,
    /// Every attack's results under them.
    pub results: Vec<AttackResult>,
}

/// The suite's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    /// One entry per set of defences.
    pub runs: Vec<DefenceRun>,
}

/// Runs `kinds` under each labelled set of defences.
pub fn run_suite(
    world: &World,
    kinds: &[AttackKind],
    defences: &[(String, Defences)],
    cfg: &SuiteConfig,
) -> Result<SuiteReport> {
    let mut runs = Vec::new();
    for (label, d) in defences {
        tracing::info!("defences: {label}");
        let mut results = Vec::new();
        for &k in kinds {
            match k {
                AttackKind::KnownSample => results.extend(known_sample(world, d, &cfg.known_sample)?),
                AttackKind::Wolf => results.extend(wolf(world, d)?),
                AttackKind::Linkage => results.push(linkage(world, d)?),
            }
        }
        runs.push(DefenceRun {
            label: label.clone(),
            defences: d.clone(),
            cost: recognition_cost(world, d)?,
            results,
        });
    }
    Ok(SuiteReport { runs })
}

impl SuiteReport {
    /// The attack × defence table in Markdown: one row per attack and scenario, one column per
    /// set of defences, each cell the success rate with its counts; the last row the EER.
    pub fn markdown_table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        for run in &self.runs {
            for r in &run.results {
                let key = (r.attack.clone(), r.scenario.clone());
                if !rows.contains(&key) {
                    rows.push(key);
                }
            }
        }
        let mut out = String::from("| attack | scenario |");
        for run in &self.runs {
            out.push_str(&format!(" {} |", run.label));
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(self.runs.len()));
        out.push('\n');
        for (attack, scenario) in &rows {
            out.push_str(&format!("| {attack} | {scenario} |"));
            for run in &self.runs {
                match run
                    .results
                    .iter()
                    .find(|r| &r.attack == attack && &r.scenario == scenario)
                {
                    Some(r) => out.push_str(&format!(
                        " {:.1}% ({}/{}) |",
                        100.0 * r.rate(),
                        r.success.successes,
                        r.success.attempts
                    )),
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out.push_str("| recognition | binary EER (FNMR at FMR 0.1%) |");
        for run in &self.runs {
            out.push_str(&format!(
                " {:.2}% ({:.1}%) |",
                100.0 * run.cost.eer,
                100.0 * run.cost.fnmr_at_operating_fmr
            ));
        }
        out.push('\n');
        out
    }
}

//! The whole suite: every chosen attack under every chosen set of defences, one report, and the
//! attack × defence table with the recognition each defence costs.

use nhm_eval::ScoreSet;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use image::GrayImage;
use nhm_model::Decoder;

use crate::{
    inversion_pictures, inversion_with, known_sample, linkage, masquerade, service_attacks, train_decoder,
    wolf, AttackResult, Defences, InversionConfig, KnownSampleConfig, MasqueradeConfig, Result, World,
    OPERATING_FMR,
};

/// One attack of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// A decoder trained on public data turns a stolen template back into an image.
    Inversion,
    /// Known (sample, hashmap) pairs under the victims' key recover a preimage.
    KnownSample,
    /// One crafted hashmap matches many subjects in 1:N.
    Wolf,
    /// Gradient descent on an input image through the white-box encoder towards a target.
    Masquerade,
    /// Bit flips against the running service, with scores or accept/reject only.
    HillClimbing,
    /// A stolen template sent back to the service, or to another application.
    Replay,
    /// Templates of one person linked across two services.
    Linkage,
}

impl AttackKind {
    /// Every attack, in report order.
    pub const ALL: [AttackKind; 7] = [
        AttackKind::Inversion,
        AttackKind::KnownSample,
        AttackKind::Masquerade,
        AttackKind::HillClimbing,
        AttackKind::Wolf,
        AttackKind::Replay,
        AttackKind::Linkage,
    ];

    /// The attack's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::Inversion => "inversion",
            AttackKind::KnownSample => "known-sample",
            AttackKind::Masquerade => "masquerade",
            AttackKind::HillClimbing => "hill-climbing",
            AttackKind::Wolf => "wolf",
            AttackKind::Replay => "replay",
            AttackKind::Linkage => "linkage",
        }
    }
}

/// Settings of a suite run.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The known-sample attack's settings.
    pub known_sample: KnownSampleConfig,
    /// The inversion attack's settings.
    pub inversion: InversionConfig,
    /// The masquerade attack's settings.
    pub masquerade: MasqueradeConfig,
    /// Victims enrolled in the running service for hill-climbing and replay.
    pub service_victims: usize,
    /// Queries each hill-climb may spend.
    pub query_budget: usize,
    /// Rows of the inversion pictures (0: none).
    pub picture_rows: usize,
}

impl AttackKind {
    /// Whether the attack runs offline on stolen material (it reads the key policy, the pepper
    /// and the hashmap length, not the service's attempt limits or score hiding).
    fn offline(self) -> bool {
        !matches!(self, AttackKind::HillClimbing | AttackKind::Replay)
    }
}

/// What the recognition costs under one set of defences: binary hashmaps of the victims, every
/// mated pair against every non-mated pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognitionCost {
    /// Equal error rate with one application key for every subject: what an impostor who
    /// holds the key (an insider, or a thief of the key) faces.
    pub eer: f64,
    /// Equal error rate when every subject has a key of its own and impostors probe under
    /// theirs (verification only: 1:N needs a shared key): the normal case for per-user keys.
    pub eer_own_keys: f64,
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
    // Every subject under a key of its own: genuine scores are unchanged (an orthogonal
    // transform keeps angles), impostor probes are made under the impostor's key.
    let own: Vec<_> = (0..h.len())
        .map(|i| {
            let k = world
                .victim_key(defences, "app-a")
                .for_application(&format!("subject-{}", s[i]));
            world
                .protector(&k, defences)
                .and_then(|p| Ok(p.binary(&world.victims.embeddings[i])?))
        })
        .collect::<Result<_>>()?;
    let mut own_impostor = Vec::with_capacity(impostor.len());
    for i in 0..h.len() {
        for j in i + 1..h.len() {
            if s[i] != s[j] {
                own_impostor.push(own[i].similarity(&own[j])?);
            }
        }
    }
    let own_set = ScoreSet::new(genuine.clone(), own_impostor)?;
    let (mated, non_mated) = (genuine.len(), impostor.len());
    let set = ScoreSet::new(genuine, impostor)?;
    Ok(RecognitionCost {
        eer: set.eer().eer,
        eer_own_keys: own_set.eer().eer,
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
/// The suite's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    /// One entry per set of defences.
    pub runs: Vec<DefenceRun>,
    /// Inversion contact sheets (original, then each scenario's reconstruction), by defence label.
    #[serde(skip)]
    pub pictures: Vec<(String, GrayImage)>,
}

/// Runs `kinds` under each labelled set of defences. An offline attack is run once per
/// combination of the switches it reads (key policy, pepper, hashmap length) and its results
/// are shared by the columns that differ only in the service's switches; the service attacks run
/// against a fresh service for every column. The inversion decoder is trained once per hashmap
/// length and encoder. A column with whitening runs in [`World::whitened`] (the attacker's
/// white-box encoder includes the whitening).
pub fn run_suite(
    world: &World,
    kinds: &[AttackKind],
    defences: &[(String, Defences)],
    cfg: &SuiteConfig,
) -> Result<SuiteReport> {
    let mut runs = Vec::new();
    let mut pictures = Vec::new();
    let mut decoders: BTreeMap<(usize, Option<u64>), Decoder> = BTreeMap::new();
    let mut offline: BTreeMap<(AttackKind, String), Vec<AttackResult>> = BTreeMap::new();
    // One whitened world per shrinkage, built before the runs borrow them.
    let mut whitened: BTreeMap<u64, World> = BTreeMap::new();
    for (_, d) in defences {
        if let Some(a) = d.whitening {
            if let std::collections::btree_map::Entry::Vacant(e) = whitened.entry(a.to_bits()) {
                e.insert(world.whitened(a)?);
            }
        }
    }
    for (label, d) in defences {
        let world = match d.whitening {
            Some(a) => &whitened[&a.to_bits()],
            None => world,
        };
        tracing::info!("defences: {label}");
        let mut results = Vec::new();
        let mut service: Option<Vec<AttackResult>> = None;
        for &k in kinds {
            let reads = format!("{:?}/{}/{}/{:?}", d.keys, d.pepper, d.hashmap_bits, d.whitening);
            if k.offline() {
                if let Some(r) = offline.get(&(k, reads.clone())) {
                    results.extend(r.iter().cloned().map(|mut r| {
                        r.defences = d.label();
                        r
                    }));
                    continue;
                }
            }
            let r = match k {
                AttackKind::Inversion => {
                    let decoder = match decoders.entry((d.hashmap_bits, d.whitening.map(f64::to_bits))) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert(train_decoder(world, d, &cfg.inversion, &mut |epoch, loss| {
                                tracing::info!("decoder epoch {epoch}: loss {loss:.4}");
                            })?)
                        }
                    };
                    if cfg.picture_rows > 0 {
                        pictures.push((
                            label.clone(),
                            inversion_pictures(world, d, &cfg.inversion, decoder, cfg.picture_rows)?,
                        ));
                    }
                    inversion_with(world, d, &cfg.inversion, decoder)?
                }
                AttackKind::KnownSample => known_sample(world, d, &cfg.known_sample)?,
                AttackKind::Masquerade => masquerade(world, d, &cfg.masquerade)?,
                AttackKind::Wolf => wolf(world, d)?,
                AttackKind::Linkage => vec![linkage(world, d)?],
                AttackKind::HillClimbing | AttackKind::Replay => {
                    if service.is_none() {
                        service = Some(service_attacks(world, d, cfg.service_victims, cfg.query_budget)?);
                    }
                    let name = k.name();
                    service
                        .iter()
                        .flatten()
                        .filter(|r| r.attack == name)
                        .cloned()
                        .collect()
                }
            };
            if k.offline() {
                offline.insert((k, reads), r.clone());
            }
            results.extend(r);
        }
        runs.push(DefenceRun {
            label: label.clone(),
            defences: d.clone(),
            cost: recognition_cost(world, d)?,
            results,
        });
    }
    Ok(SuiteReport { runs, pictures })
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
        out.push_str("| recognition | binary EER, key known to impostors (FNMR at FMR 0.1%) |");
        for run in &self.runs {
            out.push_str(&format!(
                " {:.2}% ({:.1}%) |",
                100.0 * run.cost.eer,
                100.0 * run.cost.fnmr_at_operating_fmr
            ));
        }
        out.push_str("\n| recognition | binary EER, a key per subject |");
        for run in &self.runs {
            out.push_str(&format!(" {:.2}% |", 100.0 * run.cost.eer_own_keys));
        }
        out.push('\n');
        out
    }
}

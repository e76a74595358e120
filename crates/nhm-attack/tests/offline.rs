//! The attacks that work on embeddings and hashmaps alone (known-sample, wolf, linkage), on
//! made-up populations: subjects are random directions inside a narrow cone, as a trained
//! encoder's embeddings are, and samples are noisy copies of them.

use nhm_attack::{known_sample, linkage, wolf, Defences, KeyPolicy, KnownSampleConfig, Population, World};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 64;

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// `subjects` × `samples` embeddings: each subject's centre draws coordinate `i` as
/// `offset(i) + spread(i)·u` with `u` uniform in [-1, 1], each sample adds uniform noise of
/// `noise` and is normalised.
fn embeddings(
    subjects: u32,
    samples: u32,
    seed: u64,
    offset: impl Fn(usize) -> f32,
    spread: impl Fn(usize) -> f32,
    noise: f32,
) -> Population {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Population {
        subjects: Vec::new(),
        images: Vec::new(),
        embeddings: Vec::new(),
    };
    for s in 0..subjects {
        let centre: Vec<f32> = (0..DIM)
            .map(|i| offset(i) + spread(i) * rng.gen_range(-1.0..1.0f32))
            .collect();
        for _ in 0..samples {
            let e: Vec<f32> = centre.iter().map(|c| c + rng.gen_range(-noise..noise)).collect();
            out.subjects.push(s);
            out.images.push(image::GrayImage::new(1, 1));
            out.embeddings.push(unit(e));
        }
    }
    out
}

/// Subjects as random directions inside a narrow cone around a common axis.
fn population(subjects: u32, samples: u32, seed: u64) -> Population {
    embeddings(
        subjects,
        samples,
        seed,
        |i| if i == 0 { 2.0 } else { 0.0 },
        |_| 1.0,
        0.15,
    )
}

/// Subjects that spread along a few large directions (the anisotropy of a trained encoder that
/// lets two services' templates be linked).
fn skewed_population(subjects: u32, samples: u32, seed: u64) -> Population {
    embeddings(subjects, samples, seed, |_| 0.0, |i| 4.0 / (1.0 + i as f32), 0.05)
}

fn world(seed: u64) -> World {
    let cfg = nhm_model::EncoderConfig {
        embedding_dim: DIM,
        ..Default::default()
    };
    let encoder = nhm_model::Encoder::new(&cfg, 1).unwrap();
    World::from_populations(
        encoder,
        population(40, 5, seed),
        population(400, 2, seed + 1),
        seed,
    )
    .unwrap()
}

fn bits(keys: KeyPolicy, pepper: bool) -> Defences {
    Defences {
        keys,
        pepper,
        ..Defences::none(DIM)
    }
}

#[test]
fn shared_keys_link_people_across_services_and_application_keys_do_not() {
    let w = world(3);
    let shared = linkage(&w, &bits(KeyPolicy::Shared, false)).unwrap();
    let apart = linkage(&w, &bits(KeyPolicy::PerApplication, false)).unwrap();
    let chance = shared.details["chance"].as_f64().unwrap();
    assert!(
        shared.rate() > 0.6,
        "shared keys: rank-1 linkage {}",
        shared.rate()
    );
    assert!(
        shared.details["d_sys"].as_f64().unwrap() > 0.8,
        "{}",
        shared.details
    );
    assert!(
        apart.rate() < 4.0 * chance,
        "application keys: {} (chance {chance})",
        apart.rate()
    );
    let d = apart.details["d_sys"].as_f64().unwrap();
    let floor = apart.details["d_sys_floor_of_the_estimator"].as_f64().unwrap();
    assert!(
        d < 0.2 && floor < 0.2,
        "application keys: D_sys {d}, floor {floor}"
    );
    // The pepper alone keeps the two services' bits apart even under one key.
    let peppered = linkage(&w, &bits(KeyPolicy::Shared, true)).unwrap();
    assert!(peppered.rate() < 4.0 * chance, "pepper: {}", peppered.rate());
}

#[test]
fn whitening_unlinks_anisotropic_embeddings_across_application_keys() {
    let cfg = nhm_model::EncoderConfig {
        embedding_dim: DIM,
        ..Default::default()
    };
    let encoder = nhm_model::Encoder::new(&cfg, 1).unwrap();
    let w = World::from_populations(
        encoder,
        skewed_population(150, 4, 11),
        skewed_population(600, 2, 12),
        11,
    )
    .unwrap();
    let keys = bits(KeyPolicy::PerApplication, false);
    let plain = linkage(&w, &keys).unwrap();
    let whitened_world = w.whitened(0.0).unwrap();
    let whitened = linkage(&whitened_world, &keys).unwrap();
    let d = |r: &nhm_attack::AttackResult| r.details["d_sys"].as_f64().unwrap();
    let floor = whitened.details["d_sys_floor_of_the_estimator"].as_f64().unwrap();
    assert!(
        d(&plain) > 2.0 * d(&whitened) && d(&whitened) < floor + 0.03,
        "D_sys {} unwhitened, {} whitened (floor {floor})",
        d(&plain),
        d(&whitened)
    );
    assert_eq!(
        plain.details["d_sys_per_pair"].as_array().unwrap().len(),
        nhm_attack::LINKAGE_SERVICE_PAIRS
    );
    // The whitened world's white-box encoder carries the whitening, and cannot be whitened twice.
    assert!(whitened_world.encoder.whitening().is_some());
    let err = whitened_world.whitened(0.0).unwrap_err().to_string();
    assert!(err.contains("already whitens"), "{err}");
    assert!(w
        .whitened(2.0)
        .unwrap_err()
        .to_string()
        .contains("outside [0, 1]"));
}

#[test]
fn known_pairs_recover_preimages_and_the_pepper_does_not_stop_them() {
    let w = world(5);
    let cfg = KnownSampleConfig {
        pairs: vec![2, 400],
        targets: 30,
    };
    let plain = known_sample(&w, &bits(KeyPolicy::PerApplication, false), &cfg).unwrap();
    let peppered = known_sample(&w, &bits(KeyPolicy::PerApplication, true), &cfg).unwrap();
    let (few, many) = (&plain[0], &plain[1]);
    assert!(many.rate() > 0.8, "400 pairs: {}", many.rate());
    assert!(
        many.rate() > few.rate(),
        "2 pairs {} vs 400 pairs {}",
        few.rate(),
        many.rate()
    );
    // A pepper permutes and flips bits: the pairs read from the store are as good as clean ones.
    assert!(
        (peppered[1].rate() - many.rate()).abs() <= 0.1,
        "{} vs {}",
        peppered[1].rate(),
        many.rate()
    );
    assert!(known_sample(
        &w,
        &Defences::none(DIM),
        &KnownSampleConfig {
            pairs: vec![0],
            targets: 3
        }
    )
    .is_err());
    assert!(known_sample(
        &w,
        &Defences::none(DIM),
        &KnownSampleConfig {
            pairs: vec![3],
            targets: 0
        }
    )
    .is_err());
}

#[test]
fn a_stolen_gallerys_majority_is_a_wolf_until_the_pepper_scrambles_it() {
    let w = world(9);
    let plain = wolf(&w, &bits(KeyPolicy::Shared, false)).unwrap();
    let peppered = wolf(&w, &bits(KeyPolicy::Shared, true)).unwrap();
    let stolen =
        |r: &[nhm_attack::AttackResult]| r.iter().find(|x| x.scenario == "stolen gallery").unwrap().clone();
    assert_eq!(stolen(&plain).success.attempts, 40);
    assert!(
        stolen(&peppered).rate() <= stolen(&plain).rate(),
        "{:?} {:?}",
        stolen(&peppered),
        stolen(&plain)
    );
    assert!(stolen(&peppered).rate() <= 0.05, "{:?}", stolen(&peppered));
    // Same seed, same figures.
    assert_eq!(wolf(&w, &bits(KeyPolicy::Shared, false)).unwrap(), plain);
}

#[test]
fn victims_without_mates_are_refused() {
    let cfg = nhm_model::EncoderConfig {
        embedding_dim: DIM,
        ..Default::default()
    };
    let encoder = nhm_model::Encoder::new(&cfg, 1).unwrap();
    let err = World::from_populations(encoder, population(5, 1, 1), population(4, 2, 2), 1).unwrap_err();
    assert!(
        matches!(err, nhm_attack::Error::TooFewSubjects { which: "victims", .. }),
        "{err}"
    );
}

#[test]
fn the_suite_tables_every_attack_under_every_defence() {
    use nhm_attack::{run_suite, AttackKind, InversionConfig, MasqueradeConfig, SuiteConfig};
    let w = world(11);
    let cfg = SuiteConfig {
        known_sample: KnownSampleConfig {
            pairs: vec![300],
            targets: 10,
        },
        inversion: InversionConfig::quick(),
        masquerade: MasqueradeConfig::quick(),
        service_victims: 3,
        query_budget: 100,
        picture_rows: 0,
    };
    let kinds = [
        AttackKind::KnownSample,
        AttackKind::HillClimbing,
        AttackKind::Replay,
        AttackKind::Linkage,
    ];
    let table = Defences::table(DIM);
    let report = run_suite(&w, &kinds, &table, &cfg).unwrap();
    assert_eq!(report.runs.len(), table.len());
    let rate = |label: &str, attack: &str, scenario: &str| {
        let run = report.runs.iter().find(|r| r.label == label).unwrap();
        run.results
            .iter()
            .find(|r| r.attack == attack && r.scenario == scenario)
            .unwrap_or_else(|| panic!("{label}: no {attack} / {scenario}"))
            .rate()
    };
    assert_eq!(rate("none", "hill-climbing", "scores returned"), 1.0);
    assert_eq!(rate("attempt limits", "hill-climbing", "scores returned"), 0.0);
    assert_eq!(rate("none", "replay", "stored template"), 1.0);
    assert_eq!(rate("pepper", "replay", "stored template"), 0.0);
    assert_eq!(rate("defaults (all)", "replay", "another application"), 0.0);
    // An offline attack reads neither attempt limits nor score hiding: one run serves those columns.
    let none = &report.runs[0].results[0];
    let limits = report.runs.iter().find(|r| r.label == "attempt limits").unwrap();
    assert_eq!(limits.results[0].success, none.success);
    assert_eq!(limits.results[0].defences, limits.defences.label());
    // Impostors under keys of their own score like strangers: a key per subject can only help.
    for run in &report.runs {
        assert!(
            run.cost.eer_own_keys <= run.cost.eer,
            "{}: {:?}",
            run.label,
            run.cost
        );
    }
    let md = report.markdown_table();
    assert_eq!(md.lines().count(), 2 + report.runs[0].results.len() + 2, "{md}");
    assert!(md.contains("| replay | stored template | 100.0% (3/3) |"), "{md}");
}

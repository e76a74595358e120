//! The attacks on a running nhm-server, over real HTTP, under each defence that should (or
//! should not) stop them.

use image::GrayImage;
use nhm_attack::{
    hill_climb, replay, service_attacks, AttackResult, Defences, Error, Feedback, KeyPolicy, Oracle,
    ServiceHarness, World,
};
use nhm_attack::{normalized, Population};
use nhm_model::{Encoder, EncoderConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Embedding dimension of the test encoder; hashmaps are twice as long.
const DIM: usize = 32;
const BITS: usize = 2 * DIM;
const VICTIMS: usize = 4;
/// A budget far below 1 / FMR: a blind search is expected to find nobody.
const BLIND_BUDGET: usize = 25;

/// Samples of `subjects` subjects (`per_subject` each) as embeddings: a random unit centre per
/// subject, each sample the centre plus Gaussian noise, renormalised. The attacks on the service
/// read only the victims' embeddings (their hashmaps and the operating point measured on them),
/// so the images are blank placeholders; a freshly initialised encoder is no stand-in here, its
/// embeddings of different fingerprints are nearly identical.
fn population(subjects: u32, per_subject: usize, seed: u64) -> Population {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gauss = move || {
        // Box-Muller.
        let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let mut p = Population {
        subjects: Vec::new(),
        images: Vec::new(),
        embeddings: Vec::new(),
    };
    for s in 0..subjects {
        let centre = normalized((0..DIM).map(|_| gauss()).collect());
        for _ in 0..per_subject {
            let e = centre.iter().map(|c| c + 0.1 * gauss()).collect();
            p.subjects.push(s);
            p.images.push(GrayImage::new(32, 32));
            p.embeddings.push(normalized(e));
        }
    }
    p
}

fn world() -> World {
    let enc = EncoderConfig {
        input_size: 32,
        channels: vec![4, 8],
        embedding_dim: DIM,
        ..Default::default()
    };
    World {
        encoder: Encoder::new(&enc, 11).expect("encoder"),
        victims: population(16, 2, 21),
        public: population(4, 1, 22),
        seed: 5,
    }
}

fn find<'a>(results: &'a [AttackResult], attack: &str, scenario: &str) -> &'a AttackResult {
    results
        .iter()
        .find(|r| r.attack == attack && r.scenario == scenario)
        .unwrap_or_else(|| panic!("no {attack} / {scenario} in {results:#?}"))
}

fn none() -> Defences {
    Defences::none(BITS)
}

#[test]
fn without_defences_hill_climbing_and_replay_succeed_for_every_victim() {
    let w = world();
    let r = service_attacks(&w, &none(), VICTIMS, 2000).unwrap();
    assert_eq!(r.len(), 4, "{r:#?}");
    let hc = find(&r, "hill-climbing", "scores returned");
    assert_eq!(hc.success.attempts, VICTIMS);
    assert_eq!(hc.success.successes, VICTIMS, "{hc:#?}");
    // One pass over the bits reaches the template itself.
    assert!(
        hc.details["mean_queries"].as_f64().unwrap() <= (BITS + 1) as f64,
        "{hc:#?}"
    );
    assert_eq!(hc.details["scores_seen"], VICTIMS);
    assert_eq!(hc.details["refusals"], 0);
    assert!(hc.threshold > 0.5 && hc.threshold <= 1.0);
    let stored = find(&r, "replay", "stored template");
    assert_eq!(stored.success.successes, VICTIMS, "{stored:#?}");
    assert_eq!(stored.details["mean_score"], 1.0);
    let other = find(&r, "replay", "another application");
    assert_eq!(other.success.successes, VICTIMS, "{other:#?}");
    for x in &r {
        assert_eq!(x.defences, none().label());
    }
}

#[test]
fn attempt_limits_refuse_hill_climbing() {
    let d = Defences {
        attempt_limits: true,
        ..none()
    };
    let r = service_attacks(&world(), &d, VICTIMS, 2000).unwrap();
    for scenario in ["scores returned", "accept/reject only"] {
        let hc = find(&r, "hill-climbing", scenario);
        assert_eq!(hc.success.successes, 0, "{hc:#?}");
        assert_eq!(hc.details["refusals"], VICTIMS, "{hc:#?}");
        // Five failures, then the sixth query is refused.
        assert_eq!(hc.details["mean_queries"], 6.0, "{hc:#?}");
    }
    // Each replay is the first query of its subject: the limits do not decide it.
    assert_eq!(find(&r, "replay", "stored template").success.successes, VICTIMS);
}

#[test]
fn score_hiding_leaves_a_blind_search_that_finds_nobody() {
    let d = Defences {
        hide_scores: true,
        ..none()
    };
    let r = service_attacks(&world(), &d, VICTIMS, BLIND_BUDGET).unwrap();
    for scenario in ["scores returned", "accept/reject only"] {
        let hc = find(&r, "hill-climbing", scenario);
        assert_eq!(hc.success.successes, 0, "{hc:#?}");
        assert_eq!(hc.details["scores_seen"], 0, "{hc:#?}");
        assert_eq!(hc.details["mean_queries"], BLIND_BUDGET as f64, "{hc:#?}");
    }
    // Without scores returned, the replays are still accepted (scores hide nothing they need).
    let stored = find(&r, "replay", "stored template");
    assert_eq!(stored.success.successes, VICTIMS);
    assert!(stored.details["mean_score"].is_null());
}

#[test]
fn the_pepper_stops_the_replay_of_a_stored_template() {
    let w = world();
    let d = Defences {
        pepper: true,
        ..none()
    };
    let r = service_attacks(&w, &d, VICTIMS, 300).unwrap();
    let stored = find(&r, "replay", "stored template");
    assert_eq!(stored.success.attempts, VICTIMS);
    assert_eq!(stored.success.successes, 0, "{stored:#?}");
    // The pepper preserves distances: hill-climbing with scores still works.
    assert_eq!(
        find(&r, "hill-climbing", "scores returned").success.successes,
        VICTIMS
    );
}

#[test]
fn replay_at_another_application_needs_shared_keys() {
    let w = world();
    let per_app = Defences {
        keys: KeyPolicy::PerApplication,
        ..none()
    };
    let r = service_attacks(&w, &per_app, VICTIMS, 10).unwrap();
    let other = find(&r, "replay", "another application");
    assert_eq!(other.success.attempts, VICTIMS);
    assert_eq!(other.success.successes, 0, "{other:#?}");
    // At its own application the captured hashmap is the template itself.
    assert_eq!(find(&r, "replay", "stored template").success.successes, VICTIMS);
}

#[test]
fn the_harness_serves_enrols_exports_and_identifies() {
    let w = world();
    for pepper in [false, true] {
        let d = Defences { pepper, ..none() };
        let targets = w.targets(3);
        let (enrolled, op) = nhm_attack::enrolment(&w, &d, &targets, "app-a").unwrap();
        let mut h = ServiceHarness::start(&d, op.threshold, 1).unwrap();
        assert!(h.url().starts_with("http://127.0.0.1:"));
        h.enrol(&enrolled).unwrap();
        assert_eq!(h.subjects().len(), 3);
        let stored = h.store_templates().unwrap();
        assert_eq!(stored.len(), 3);
        for ((id, t), (sid, s)) in enrolled.iter().zip(&stored) {
            assert_eq!(id, sid);
            assert_eq!(t == s, !pepper, "stored as enrolled iff there is no pepper");
        }
        let mut o = h.oracle();
        let (id, t) = &enrolled[0];
        let a = o.verify(id, t).unwrap();
        assert!(a.accepted && !a.refused);
        assert_eq!(a.score, Some(1.0));
        assert_eq!(o.identify(t, 1).unwrap(), vec![id.clone()]);
        // An unknown subject is a plain non-match.
        let a = o.verify("nobody", t).unwrap();
        assert!(!a.accepted && !a.refused);
        assert_eq!(o.queries(), 3);
        let r = replay(&mut o, &stored).unwrap();
        assert_eq!(r.success.successes, if pepper { 0 } else { 3 });
        h.shutdown();
    }
}

#[test]
fn a_locked_subject_is_refused() {
    let w = world();
    let d = Defences {
        attempt_limits: true,
        ..none()
    };
    let (enrolled, op) = nhm_attack::enrolment(&w, &d, &w.targets(1), "app-a").unwrap();
    let mut h = ServiceHarness::start(&d, op.threshold, 2).unwrap();
    h.enrol(&enrolled).unwrap();
    let mut o = h.oracle();
    let (id, t) = &enrolled[0];
    let c = hill_climb(&mut o, id, BITS, Feedback::Scores, 50, 3).unwrap();
    assert!(c.refused && !c.accepted, "{c:?}");
    // Locked: even the genuine template is refused now.
    let a = o.verify(id, t).unwrap();
    assert!(a.refused && !a.accepted && a.score.is_none());
    assert_eq!(o.refusals(), 2);
}

#[test]
fn bad_parameters_are_refused() {
    let w = world();
    let bad = |r: nhm_attack::Result<Vec<AttackResult>>, which: &str| match r {
        Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, which),
        other => panic!("expected InvalidParameter({which}), got {other:?}"),
    };
    bad(service_attacks(&w, &none(), VICTIMS, 0), "budget");
    bad(service_attacks(&w, &none(), 0, 100), "victims");
    bad(service_attacks(&w, &none(), 10_000, 100), "victims");
    let d = none();
    let (enrolled, op) = nhm_attack::enrolment(&w, &d, &w.targets(1), "app-a").unwrap();
    let mut h = ServiceHarness::start(&d, op.threshold, 4).unwrap();
    h.enrol(&enrolled).unwrap();
    let r = hill_climb(&mut h.oracle(), &enrolled[0].0, BITS, Feedback::Scores, 0, 1);
    assert!(
        matches!(r, Err(Error::InvalidParameter { name: "budget", .. })),
        "{r:?}"
    );
}

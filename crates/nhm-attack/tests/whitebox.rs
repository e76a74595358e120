//! The white-box attacks (masquerade, inversion) against the shipped fingerprint model, on small
//! synthetic populations drawn under the model's input contract.

use std::path::PathBuf;
use std::sync::OnceLock;

use nhm_attack::{masquerade, Defences, Error, MasqueradeConfig, World};
use nhm_data::synth::SynthConfig;
use nhm_data::Dataset;
use nhm_model::Encoder;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fingerprint")
}

/// Synthetic prints at the model's view (drawn at the region of interest, then prepared by the
/// contract's front end), like `nhm --data synth` does.
fn synth(encoder: &Encoder, seed: u64, subjects: u32, impressions: u32) -> Dataset {
    let input = encoder.input().clone();
    let side = if input.front_end.is_some() {
        input.view_side()
    } else {
        input.size
    };
    let mut ds = SynthConfig {
        seed,
        subjects,
        impressions,
        size: side,
        view: nhm_data::synth::View::Centre,
        ..Default::default()
    }
    .generate()
    .expect("synthetic data");
    if side != input.size {
        for s in &mut ds.samples {
            s.image = input.prepare(&s.image, None);
        }
    }
    ds
}

/// One world for every test of this file: 24 victims × 4 impressions, 60 public fingers × 4
/// (different data seeds: disjoint).
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let encoder = Encoder::load(&model_dir()).expect("the shipped model");
        let victims = synth(&encoder, 9001, 24, 4);
        let public = synth(&encoder, 4242, 60, 4);
        World::new(encoder, &victims, &public, 11).expect("world")
    })
}

#[test]
fn masquerade_with_the_key_is_accepted_and_without_it_is_not() {
    let w = world();
    let cfg = MasqueradeConfig::quick();
    let r = masquerade(w, &Defences::none(256), &cfg).unwrap();
    assert_eq!(r.len(), 2);
    for x in &r {
        eprintln!(
            "{} / {}: type II {:?} type I {:?} {}",
            x.scenario, x.defences, x.success, x.type_i, x.details
        );
    }
    let (with, without) = (&r[0], &r[1]);
    assert_eq!(with.scenario, "with the key");
    assert_eq!(without.scenario, "without the key");
    let reached = with.details["mean_cosine_to_target"].as_f64().unwrap();
    assert!(
        reached > 0.8,
        "with the key the images reach cosine {reached} with the target"
    );
    let ti = with.type_i.unwrap();
    assert!(
        ti.successes * 10 >= ti.attempts * 7,
        "type I with the key: {ti:?}"
    );
    // Other samples of the victim: about as often as the victim's own template is accepted.
    let genuine: nhm_attack::Tally = serde_json::from_value(with.details["genuine_type_ii"].clone()).unwrap();
    assert!(
        genuine.successes > 0,
        "the victims' own templates match none of their mates"
    );
    assert!(
        with.rate() >= 0.6 * genuine.rate(),
        "type II with the key {:?}, the victims' own templates {genuine:?}",
        with.success
    );
    // Without the key the target direction is unrelated to the victim.
    let dir = without.details["mean_target_cosine_to_victim"].as_f64().unwrap();
    assert!(
        dir.abs() < 0.2,
        "a made-up key's direction has cosine {dir} with the victim"
    );
    assert!(
        without.rate() < 0.1,
        "type II without the key: {:?}",
        without.success
    );
    let ti = without.type_i.unwrap();
    assert!(ti.successes * 10 <= ti.attempts, "type I without the key: {ti:?}");
}

#[test]
fn masquerade_refuses_bad_settings() {
    let w = world();
    for cfg in [
        MasqueradeConfig {
            steps: 0,
            ..MasqueradeConfig::quick()
        },
        MasqueradeConfig {
            targets: 0,
            ..MasqueradeConfig::quick()
        },
        MasqueradeConfig {
            learning_rate: f32::NAN,
            ..MasqueradeConfig::quick()
        },
    ] {
        let err = masquerade(w, &Defences::none(256), &cfg).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
    }
}

//! The white-box attacks (masquerade, inversion) against the shipped fingerprint model, on small
//! synthetic populations drawn under the model's input contract.

use std::path::PathBuf;
use std::sync::OnceLock;

use nhm_attack::{
    inversion_pictures, inversion_with, masquerade, train_decoder, Defences, Error, InversionConfig,
    MasqueradeConfig, World, INVERSION_SCENARIOS,
};
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
        let public = synth(&encoder, 4242, 100, 3);
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

/// The attacker's decoder for the tests (trained once: `InversionConfig::quick()` on the
/// public population).
fn decoder() -> &'static nhm_model::Decoder {
    static D: OnceLock<nhm_model::Decoder> = OnceLock::new();
    D.get_or_init(|| {
        let t = std::time::Instant::now();
        let d = train_decoder(
            world(),
            &Defences::none(256),
            &InversionConfig::quick(),
            &mut |e, l| eprintln!("decoder epoch {e}: loss {l}"),
        )
        .expect("decoder");
        eprintln!(
            "decoder trained on {} images in {:.1} s",
            world().public.len(),
            t.elapsed().as_secs_f64()
        );
        d
    })
}

fn detail(r: &nhm_attack::AttackResult, key: &str) -> f64 {
    r.details[key].as_f64().unwrap()
}

#[test]
fn inversion_needs_the_key_and_the_pepper_defeats_it() {
    let (w, d) = (world(), decoder());
    let cfg = InversionConfig::quick();
    let open = inversion_with(w, &Defences::none(256), &cfg, d).unwrap();
    let peppered = inversion_with(
        w,
        &Defences {
            pepper: true,
            ..Defences::none(256)
        },
        &cfg,
        d,
    )
    .unwrap();
    for x in open.iter().chain(&peppered) {
        eprintln!(
            "{} / {}: type II {:?} type I {:?} {}",
            x.scenario, x.defences, x.success, x.type_i, x.details
        );
    }
    let names: Vec<&str> = open.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(names, INVERSION_SCENARIOS);
    let (stolen, with_key, renewed) = (&open[0], &open[1], &open[2]);
    // The key holder's estimate points at the victim; several renewed templates do better.
    let est = detail(with_key, "mean_estimate_cosine");
    assert!(est > 0.6, "estimate with the key: cosine {est}");
    let est3 = detail(renewed, "mean_estimate_cosine");
    assert!(est3 > est + 0.05, "three renewed templates {est3}, one {est}");
    // Without the key (or with it, through the pepper) the estimate is noise.
    for r in [stolen, &peppered[0], &peppered[1], &peppered[2]] {
        let c = detail(r, "mean_estimate_cosine");
        assert!(
            c.abs() < 0.15,
            "{} / {}: estimate cosine {c}",
            r.scenario,
            r.defences
        );
    }
    // The reconstruction keeps the victim's identity only when the estimate did.
    let rec = detail(with_key, "mean_reconstruction_cosine");
    let rec_blind = detail(stolen, "mean_reconstruction_cosine");
    assert!(
        rec > rec_blind + 0.1,
        "reconstruction cosine with the key {rec}, without {rec_blind}"
    );
    assert!(rec > 0.6, "reconstruction cosine with the key {rec}");
    let rec3 = detail(renewed, "mean_reconstruction_cosine");
    assert!(rec3 > 0.6, "reconstruction cosine with renewed keys {rec3}");
    for r in &peppered {
        let c = detail(r, "mean_reconstruction_cosine");
        assert!(
            c < 0.3,
            "{} / {}: reconstruction cosine {c}",
            r.scenario,
            r.defences
        );
    }
    for r in [stolen, &peppered[1], &peppered[2]] {
        let ti = r.type_i.unwrap();
        assert!(
            ti.successes * 10 <= ti.attempts,
            "{} / {}: type I {ti:?}",
            r.scenario,
            r.defences
        );
    }
}

#[test]
fn inversion_pictures_show_each_victim_and_scenario() {
    let (w, d) = (world(), decoder());
    let sheet = inversion_pictures(w, &Defences::none(256), &InversionConfig::quick(), d, 4).unwrap();
    let s = w.encoder.config().input_size as u32;
    assert_eq!(sheet.dimensions(), (4 * (s + 2) + 2, 4 * (s + 2) + 2));
    // The first column is the victim's own image.
    let first = w.targets(InversionConfig::quick().targets)[0];
    assert_eq!(sheet.get_pixel(2, 2), w.victims.images[first].get_pixel(0, 0));
    assert!(matches!(
        inversion_pictures(w, &Defences::none(256), &InversionConfig::quick(), d, 0),
        Err(Error::InvalidParameter { .. })
    ));
}

#[test]
fn decoder_training_is_reproducible_and_refuses_bad_settings() {
    let w = world();
    let cfg = InversionConfig {
        epochs: 1,
        ..InversionConfig::quick()
    };
    // A small subset keeps this quick: the decoder is trained directly on 48 public images.
    let samples: Vec<nhm_model::DecoderSample> = (0..48)
        .map(|i| nhm_model::DecoderSample {
            image: w.public.images[i].clone(),
            embedding: w.public.embeddings[i].clone(),
            inputs: vec![],
        })
        .collect();
    let layout = nhm_model::DecoderConfig::for_encoder(&w.encoder);
    let train = |seed: u64| {
        let t = nhm_model::DecoderTrainConfig {
            epochs: 1,
            batch_size: 16,
            learning_rate: cfg.learning_rate,
            identity_weight: cfg.identity_weight,
            seed,
        };
        nhm_model::Decoder::train(&w.encoder, &samples, &layout, &t, &mut |_, _| {}).unwrap()
    };
    let probe = &w.victims.embeddings[..3];
    let (a, b, c) = (train(5), train(5), train(6));
    assert_eq!(a.decode(probe).unwrap(), b.decode(probe).unwrap());
    assert_ne!(a.decode(probe).unwrap(), c.decode(probe).unwrap());

    for bad in [
        InversionConfig {
            epochs: 0,
            ..cfg.clone()
        },
        InversionConfig {
            targets: 0,
            ..cfg.clone()
        },
        InversionConfig {
            batch_size: 0,
            ..cfg.clone()
        },
        InversionConfig {
            learning_rate: -1.0,
            ..cfg.clone()
        },
    ] {
        let err = train_decoder(w, &Defences::none(256), &bad, &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
    }
    let err = inversion_with(
        w,
        &Defences::none(256),
        &InversionConfig { targets: 0, ..cfg },
        &a,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
}

/// The default settings at their intended size (about 1000 public images, 50 victims): prints
/// the figures and the decoder's training time. Minutes: run with `--ignored`.
#[test]
#[ignore]
fn default_settings_figures() {
    let encoder = Encoder::load(&model_dir()).expect("the shipped model");
    let victims = synth(&encoder, 9001, 50, 4);
    let public = synth(&encoder, 4242, 250, 4);
    let w = World::new(encoder, &victims, &public, 11).expect("world");
    let cfg = InversionConfig::default();
    let t = std::time::Instant::now();
    let d = train_decoder(&w, &Defences::none(256), &cfg, &mut |e, l| {
        eprintln!("epoch {e}: loss {l}")
    })
    .unwrap();
    eprintln!(
        "decoder: {} images, {} epochs, {:.1} s",
        w.public.len(),
        cfg.epochs,
        t.elapsed().as_secs_f64()
    );
    for defences in [
        Defences::none(256),
        Defences {
            pepper: true,
            ..Defences::none(256)
        },
    ] {
        for x in inversion_with(&w, &defences, &cfg, &d).unwrap() {
            eprintln!(
                "{} / {}: type II {:?} type I {:?} {}",
                x.scenario, x.defences, x.success, x.type_i, x.details
            );
        }
        let t = std::time::Instant::now();
        for x in masquerade(&w, &defences, &MasqueradeConfig::default()).unwrap() {
            eprintln!(
                "{} / {}: type II {:?} type I {:?} {}",
                x.scenario, x.defences, x.success, x.type_i, x.details
            );
        }
        eprintln!("masquerade: {:.1} s", t.elapsed().as_secs_f64());
    }
    if let Ok(dir) = std::env::var("NHM_SHEET_DIR") {
        let sheet = inversion_pictures(&w, &Defences::none(256), &cfg, &d, 8).unwrap();
        sheet
            .save(std::path::Path::new(&dir).join("inversion.png"))
            .unwrap();
    }
}

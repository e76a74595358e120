//! End to end through the public API: synthetic fingerprints → train → save → load → embed.

use nhm_data::synth::SynthConfig;
use nhm_model::{train, Encoder, EncoderConfig, Error, LossKind, TrainConfig, TrainEvent};

#[test]
fn trains_on_synthetic_fingerprints_and_reloads() {
    let data = SynthConfig {
        seed: 3,
        subjects: 8,
        impressions: 4,
        size: 32,
        ..Default::default()
    }
    .generate()
    .unwrap();
    let (train_set, val_set) = data.split_subjects(0.75, None);
    let enc = EncoderConfig {
        input_size: 32,
        channels: vec![4, 8],
        embedding_dim: 16,
        ..Default::default()
    };
    let cfg = TrainConfig {
        loss: LossKind::ArcFace {
            scale: 16.0,
            margin: 0.2,
        },
        epochs: 2,
        subjects_per_batch: 6,
        samples_per_subject: 2,
        seed: 5,
        ..Default::default()
    };
    let out = tempfile::tempdir().unwrap();
    let mut epochs = 0;
    let outcome = train(
        &train_set,
        &val_set,
        &enc,
        &cfg,
        Some(out.path()),
        None,
        &mut |e| {
            if let TrainEvent::Epoch(s) = e {
                epochs += 1;
                assert!(s.val_eer.is_finite() && (0.0..=1.0).contains(&s.val_eer));
                assert!(s.images_per_sec > 0.0);
            }
        },
    )
    .unwrap();
    assert_eq!(epochs, 2);
    assert!((1..=2).contains(&outcome.best_epoch));

    let loaded = Encoder::load(out.path()).unwrap();
    let imgs: Vec<_> = val_set.samples.iter().map(|s| s.image.clone()).collect();
    assert_eq!(
        loaded.embed(&imgs).unwrap(),
        outcome.encoder.embed(&imgs).unwrap()
    );
    assert_eq!(loaded.config(), &enc);

    // A 64-pixel image does not fit a 32-pixel encoder.
    let big = SynthConfig {
        seed: 3,
        subjects: 1,
        impressions: 1,
        size: 64,
        ..Default::default()
    }
    .generate()
    .unwrap();
    let err = loaded.embed(&[big.samples[0].image.clone()]).unwrap_err();
    assert!(matches!(
        err,
        Error::InputSize {
            expected: 32,
            found: (64, 64)
        }
    ));
}

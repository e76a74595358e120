//! Integration tests of nhm-template: invariants (proptest), statistics of the protection
//! transform, key files, gallery against brute force, thresholds and classifiers.

use nhm_template::{
    BinaryHashmap, Classifier, DenseHashmap, Error, Fusion, Gallery, Hashmap, HashmapKind, Key, LinearConfig,
    LogisticClassifier, Mlp, MlpConfig, NearestCentroid, Pepper, Protector, Threshold,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random unit vector (Gaussian direction).
fn unit(rng: &mut ChaCha8Rng, d: usize) -> Vec<f32> {
    let v: Vec<f64> = (0..d)
        .map(|_| {
            // Box–Muller.
            let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| (x / n) as f32).collect()
}

/// A unit vector at angle `theta` from unit vector `a`.
fn at_angle(rng: &mut ChaCha8Rng, a: &[f32], theta: f64) -> Vec<f32> {
    let r = unit(rng, a.len());
    let proj: f64 = a.iter().zip(&r).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let orth: Vec<f64> = r
        .iter()
        .zip(a)
        .map(|(y, x)| f64::from(*y) - proj * f64::from(*x))
        .collect();
    let n = orth.iter().map(|x| x * x).sum::<f64>().sqrt();
    a.iter()
        .zip(&orth)
        .map(|(x, o)| (f64::from(*x) * theta.cos() + o / n * theta.sin()) as f32)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

fn arb_binary() -> impl Strategy<Value = BinaryHashmap> {
    (1usize..=600).prop_flat_map(|dim| {
        prop::collection::vec(any::<u64>(), dim.div_ceil(64)).prop_map(move |mut words| {
            if !dim.is_multiple_of(64) {
                *words.last_mut().unwrap() &= (1u64 << (dim % 64)) - 1;
            }
            BinaryHashmap::from_words(dim, words).unwrap()
        })
    })
}

fn arb_hashmap() -> impl Strategy<Value = Hashmap> {
    prop_oneof![
        arb_binary().prop_map(Hashmap::Binary),
        prop::collection::vec(-1e30f32..1e30, 1..300).prop_filter_map("zero vector", |v| DenseHashmap::new(
            v
        )
        .ok()
        .map(Hashmap::Dense)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn codec_round_trips(h in arb_hashmap()) {
        let b = h.to_bytes();
        prop_assert_eq!(&Hashmap::from_bytes(&b).unwrap(), &h);
        prop_assert_eq!(&Hashmap::from_base64(&h.to_base64()).unwrap(), &h);
        let json = serde_json::to_string(&h).unwrap();
        prop_assert_eq!(serde_json::from_str::<Hashmap>(&json).unwrap(), h);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(b in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Hashmap::from_bytes(&b);
        let mut framed = b"NHM\x01".to_vec();
        framed.extend_from_slice(&b);
        let _ = Hashmap::from_bytes(&framed);
        let _ = Hashmap::from_base64(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn decoding_mutated_encodings_never_panics(h in arb_hashmap(), i in any::<prop::sample::Index>(), x in any::<u8>()) {
        let mut b = h.to_bytes();
        let i = i.index(b.len());
        b[i] = x;
        if let Ok(d) = Hashmap::from_bytes(&b) {
            prop_assert_eq!(d.to_bytes(), b);
        }
    }

    #[test]
    fn protector_preserves_norms_and_inner_products(
        log_dim in 1u32..=10, seed in any::<u64>(), key_seed in any::<u64>()
    ) {
        let d = 1usize << log_dim;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (a, b) = (unit(&mut rng, d), unit(&mut rng, d));
        let p = Protector::new(&Key::from_seed(key_seed), d).unwrap();
        let (ra, rb) = (p.transform(&a).unwrap(), p.transform(&b).unwrap());
        prop_assert!((dot(&ra, &ra) - 1.0).abs() < 1e-4);
        prop_assert!((dot(&ra, &rb) - dot(&a, &b)).abs() < 1e-4);
        let (da, db) = (p.dense(&a).unwrap(), p.dense(&b).unwrap());
        prop_assert!((da.cosine(&db).unwrap() - dot(&a, &b)).abs() < 1e-4);
    }

    #[test]
    fn pepper_preserves_hamming_and_defeats_replay(a in arb_binary(), seed in any::<u64>(), flips in 0usize..40) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dim = a.dim();
        let mut words = a.words().to_vec();
        for _ in 0..flips {
            let i = rng.gen_range(0..dim);
            words[i / 64] ^= 1 << (i % 64);
        }
        let b = BinaryHashmap::from_words(dim, words).unwrap();
        let pepper = Pepper::new(&Key::from_seed(seed), dim);
        let (pa, pb) = (pepper.apply(&a).unwrap(), pepper.apply(&b).unwrap());
        prop_assert_eq!(pa.hamming(&pb).unwrap(), a.hamming(&b).unwrap());
        let pa2 = pepper.apply_hashmap(&Hashmap::Binary(a.clone())).unwrap();
        prop_assert_eq!(pa2, Hashmap::Binary(pa.clone()));
        if dim >= 128 {
            // The stolen peppered template, replayed as a probe, is peppered again.
            let replay = pepper.apply(&pa).unwrap();
            prop_assert!(replay.similarity(&pa).unwrap() < 0.75);
        }
    }

    #[test]
    fn threshold_meets_target(
        scores in prop::collection::vec(prop_oneof![0.0f64..1.0, Just(0.5)], 1..300),
        target in 0.0f64..=1.0,
    ) {
        let t = Threshold::for_target_fmr(&scores, target).unwrap();
        let accepted = scores.iter().filter(|&&s| t.accepts(s)).count();
        prop_assert!(t.measured_fmr <= target);
        prop_assert_eq!(t.measured_fmr, accepted as f64 / scores.len() as f64);
        // Lowest such threshold: accepting the best rejected score would break the target.
        if let Some(best_rejected) = scores.iter().copied().filter(|&s| !t.accepts(s)).max_by(f64::total_cmp) {
            let more = scores.iter().filter(|&&s| s >= best_rejected).count();
            prop_assert!(more as f64 / scores.len() as f64 > target);
        }
    }

    #[test]
    fn gallery_identify_agrees_with_brute_force(
        seed in any::<u64>(), subjects in 1usize..12, per in 1usize..4, k in 1usize..6, dim in 1usize..200,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rand_hm = |rng: &mut ChaCha8Rng| {
            let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            BinaryHashmap::from_signs(&v)
        };
        let mut g = Gallery::new(dim);
        let mut enrolled: Vec<(String, BinaryHashmap)> = Vec::new();
        for s in 0..subjects {
            let n = rng.gen_range(1..=per);
            for _ in 0..n {
                let h = rand_hm(&mut rng);
                g.insert(&format!("s{s}"), &h).unwrap();
                enrolled.push((format!("s{s}"), h));
            }
        }
        let probe = rand_hm(&mut rng);
        for fusion in [Fusion::Best, Fusion::Mean] {
            let mut expected: Vec<(String, f64)> = (0..subjects)
                .map(|s| {
                    let name = format!("s{s}");
                    let mine: Vec<&BinaryHashmap> =
                        enrolled.iter().filter(|(n, _)| *n == name).map(|(_, h)| h).collect();
                    let score = match fusion {
                        Fusion::Best => mine.iter().map(|h| h.similarity(&probe).unwrap()).fold(f64::MIN, f64::max),
                        // Exact mean of the distances (a float mean of similarities could
                        // split exact ties by rounding).
                        Fusion::Mean => {
                            let total: u32 = mine.iter().map(|h| h.hamming(&probe).unwrap()).sum();
                            1.0 - f64::from(total) / (mine.len() * dim) as f64
                        }
                    };
                    (name, score)
                })
                .collect();
            expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            expected.truncate(k);
            let got = g.identify(&probe, k, fusion).unwrap();
            prop_assert_eq!(got.len(), expected.len());
            for (c, (name, score)) in got.iter().zip(&expected) {
                prop_assert_eq!(&c.subject, name);
                prop_assert!((c.score - score).abs() < 1e-12);
                let v = g.verify(name, &probe, fusion).unwrap().unwrap();
                prop_assert!((v - score).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn different_keys_give_unrelated_templates() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let d = 256;
    let mut total = 0.0;
    let n = 200;
    for i in 0..n {
        let e = unit(&mut rng, d);
        let a = Protector::new(&Key::from_seed(2 * i), d)
            .unwrap()
            .binary(&e)
            .unwrap();
        let b = Protector::new(&Key::from_seed(2 * i + 1), d)
            .unwrap()
            .binary(&e)
            .unwrap();
        let nh = f64::from(a.hamming(&b).unwrap()) / d as f64;
        // Each pair alone is a binomial(256, 1/2) / 256: sd 0.031, so 0.3..0.7 is > 6 sd.
        assert!((0.3..0.7).contains(&nh), "pair {i}: {nh}");
        total += nh;
    }
    let mean = total / n as f64;
    // Mean of 200 such: sd 0.0022.
    assert!((mean - 0.5).abs() < 0.015, "mean normalised Hamming {mean}");
}

#[test]
fn hamming_estimates_angle_over_pi() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let d = 256;
    for theta in [0.1f64, 0.5, 1.0, 1.5, 2.5] {
        let mut total = 0.0;
        let trials = 60;
        for t in 0..trials {
            let a = unit(&mut rng, d);
            let b = at_angle(&mut rng, &a, theta);
            let p = Protector::new(&Key::from_seed(1000 + t), d).unwrap();
            total += 1.0 - p.binary(&a).unwrap().similarity(&p.binary(&b).unwrap()).unwrap();
        }
        let mean = total / trials as f64;
        let expected = theta / std::f64::consts::PI;
        // 60 × 256 bits: sd ≤ 0.004; the tolerance also allows for the structured transform.
        assert!(
            (mean - expected).abs() < 0.02,
            "θ = {theta}: mean {mean}, θ/π = {expected}"
        );
    }
}

#[test]
fn protector_is_stable_across_builds() {
    // Pinned output of this build: a change here means every enrolled template would stop
    // matching. Only change it together with the context string's version.
    let e: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let h = Protector::new(&Key::from_seed(1), 256)
        .unwrap()
        .protect(&e, HashmapKind::Binary)
        .unwrap();
    let digest = blake3::hash(&h.to_bytes()).to_hex().to_string();
    assert_eq!(&digest[..16], PINNED_PROTECTOR_DIGEST, "protector output changed");
}

/// First 16 hex digits of BLAKE3 of the pinned template, measured on this code.
const PINNED_PROTECTOR_DIGEST: &str = "32f1b38c7055ae95";

mod key_files {
    use super::*;

    #[test]
    fn round_trip_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.key");
        let k = Key::random();
        k.save(&path).unwrap();
        assert_eq!(Key::load(&path).unwrap(), k);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(matches!(
            Key::random().save(&path),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(Key::load(&path).unwrap(), k, "the existing key was kept");
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abcd\n").unwrap();
        assert!(matches!(
            Key::load(&short),
            Err(Error::KeyFileLength { found: 4, .. })
        ));
        let nothex = dir.path().join("nothex");
        std::fs::write(&nothex, format!("{}zz\n", "0".repeat(62))).unwrap();
        assert!(matches!(
            Key::load(&nothex),
            Err(Error::KeyFileNotHex { position: 62, .. })
        ));
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xffu8; 32]).unwrap();
        assert!(matches!(
            Key::load(&binary),
            Err(Error::KeyFileLength { found: 32, .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(Key::load(&missing), Err(Error::Io { .. })));
        let no_dir = dir.path().join("no/such/dir/key");
        assert!(matches!(Key::from_seed(1).save(&no_dir), Err(Error::Io { .. })));
        let err = Key::load(&short).unwrap_err().to_string();
        assert!(err.contains("64 hex characters"), "{err}");
    }
}

mod classifiers {
    use super::*;

    /// Labelled hashmaps: `classes` random centres, samples at a small angle from them.
    fn clustered(seed: u64, classes: usize, per: usize, kind: HashmapKind) -> Vec<(usize, Hashmap)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = 64;
        let p = Protector::new(&Key::from_seed(seed), d).unwrap();
        let centres: Vec<Vec<f32>> = (0..classes).map(|_| unit(&mut rng, d)).collect();
        let mut out = Vec::new();
        for _ in 0..per {
            for (c, centre) in centres.iter().enumerate() {
                let e = at_angle(&mut rng, centre, 0.6);
                out.push((c, p.protect(&e, kind).unwrap()));
            }
        }
        out
    }

    fn accuracy(model: &dyn Classifier, data: &[(usize, Hashmap)]) -> f64 {
        let hits = data
            .iter()
            .filter(|(c, h)| model.predict_top(h).unwrap().map(|t| t.0) == Some(*c))
            .count();
        hits as f64 / data.len() as f64
    }

    #[test]
    fn all_classifiers_learn_separable_classes() {
        for kind in [HashmapKind::Binary, HashmapKind::Dense] {
            let train = clustered(5, 8, 6, kind);
            let test = clustered(5, 8, 12, kind).split_off(8 * 6);
            let nc = NearestCentroid::fit(&train).unwrap();
            let lr = LogisticClassifier::fit(
                &train,
                &LinearConfig {
                    epochs: 30,
                    ..Default::default()
                },
            )
            .unwrap();
            let mlp = Mlp::fit(
                &train,
                &MlpConfig {
                    hidden: 32,
                    ..Default::default()
                },
            )
            .unwrap();
            for (name, m) in [
                ("centroid", &nc as &dyn Classifier),
                ("logistic", &lr),
                ("mlp", &mlp),
            ] {
                let acc = accuracy(m, &test);
                assert!(acc > 0.9, "{name} {kind}: accuracy {acc}");
                let ranked = m.predict(&test[0].1).unwrap();
                assert_eq!(ranked.len(), 8);
                assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1));
            }
        }
    }

    #[test]
    fn training_is_seeded() {
        let train = clustered(6, 4, 4, HashmapKind::Binary);
        let cfg = LinearConfig {
            epochs: 5,
            ..Default::default()
        };
        let a = LogisticClassifier::fit(&train, &cfg)
            .unwrap()
            .predict(&train[0].1)
            .unwrap();
        let b = LogisticClassifier::fit(&train, &cfg)
            .unwrap()
            .predict(&train[0].1)
            .unwrap();
        assert_eq!(a, b);
        let c = LogisticClassifier::fit(&train, &LinearConfig { seed: 9, ..cfg }).unwrap();
        assert_ne!(a, c.predict(&train[0].1).unwrap());
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let train = clustered(7, 3, 2, HashmapKind::Binary);
        assert!(matches!(NearestCentroid::fit(&[]), Err(Error::NoSamples)));
        let mut mixed = train.clone();
        mixed.push((0, Hashmap::Dense(DenseHashmap::new(vec![1.0; 64]).unwrap())));
        assert!(matches!(
            NearestCentroid::fit(&mixed),
            Err(Error::KindMismatch { .. })
        ));
        let mut dims = train.clone();
        dims.push((0, Hashmap::Binary(BinaryHashmap::from_signs(&[1.0; 32]))));
        assert!(matches!(
            LogisticClassifier::fit(&dims, &LinearConfig::default()),
            Err(Error::DimensionMismatch {
                expected: 64,
                found: 32
            })
        ));
        for cfg in [
            LinearConfig {
                epochs: 0,
                ..Default::default()
            },
            LinearConfig {
                learning_rate: f32::NAN,
                ..Default::default()
            },
            LinearConfig {
                l2: -1.0,
                ..Default::default()
            },
            LinearConfig {
                batch_size: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                LogisticClassifier::fit(&train, &cfg),
                Err(Error::InvalidConfig { .. })
            ));
        }
        let cfg = MlpConfig {
            hidden: 0,
            ..Default::default()
        };
        assert!(matches!(
            Mlp::fit(&train, &cfg),
            Err(Error::InvalidConfig { field: "hidden", .. })
        ));
        let nc = NearestCentroid::fit(&train).unwrap();
        let dense = Hashmap::Dense(DenseHashmap::new(vec![1.0; 64]).unwrap());
        assert!(matches!(nc.predict(&dense), Err(Error::KindMismatch { .. })));
        let short = Hashmap::Binary(BinaryHashmap::from_signs(&[1.0; 32]));
        assert!(matches!(nc.predict(&short), Err(Error::DimensionMismatch { .. })));
    }
}

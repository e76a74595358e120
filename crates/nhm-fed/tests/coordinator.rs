//! The coordinator's round logic: aggregation, every kind of bad update, dropped clients,
//! outliers, differential privacy, spreadout, determinism and persistence.

use nhm_fed::{ClientUpdate, Coordinator, DpConfig, FedConfig, Rejection, Weights};

fn model(v: f32) -> Weights {
    Weights::from_parts(vec![
        ("w".into(), vec![2, 2], vec![v; 4]),
        ("b".into(), vec![2], vec![v; 2]),
    ])
    .unwrap()
}

fn config(per_round: usize) -> FedConfig {
    FedConfig {
        clients_per_round: per_round,
        negatives: 2,
        max_norm_ratio: 0.0,
        ..FedConfig::default()
    }
}

fn coordinator(clients: usize, cfg: FedConfig) -> Coordinator {
    let mut c = Coordinator::new(model(0.0), 3, cfg).unwrap();
    for i in 0..clients {
        c.register(&format!("c{i}"), vec![1.0, i as f32, 0.5]).unwrap();
    }
    c
}

fn update(round: u64, v: f32, samples: u32) -> ClientUpdate {
    ClientUpdate {
        round,
        delta: model(v),
        samples,
        hashmap: vec![0.0, 1.0, 0.0],
    }
}

fn values(w: &Weights) -> Vec<f32> {
    w.values().collect()
}

#[test]
fn fedavg_weights_updates_by_sample_count() {
    let mut c = coordinator(2, config(2));
    let sampled = c.open_round().unwrap();
    assert_eq!(sampled.len(), 2);
    let task = c.task("c0").unwrap();
    assert_eq!(task.round, 1);
    assert_eq!(task.negatives.len(), 1, "only the other client is relayed");
    assert!(task.own.is_some());
    c.submit("c0", update(1, 1.0, 1)).unwrap();
    c.submit("c1", update(1, 4.0, 3)).unwrap();
    assert!(c.all_answered());
    let s = c.close_round().unwrap();
    assert!(s.applied);
    assert_eq!((s.accepted, s.dropped), (2, 0));
    // (1·1 + 3·4) / 4 = 3.25 everywhere.
    assert!(values(c.global()).iter().all(|&v| (v - 3.25).abs() < 1e-6));
    assert!(s.bytes_down_per_client > 0 && s.bytes_up_per_client > 0);
}

#[test]
fn bad_updates_are_rejected_counted_and_leave_the_model_alone() {
    let mut c = coordinator(3, config(3));
    c.open_round().unwrap();
    let wrong_shape = ClientUpdate {
        delta: Weights::from_parts(vec![("w".into(), vec![4], vec![1.0; 4])]).unwrap(),
        ..update(1, 0.0, 1)
    };
    assert!(matches!(
        c.submit("c0", wrong_shape),
        Err(Rejection::Malformed(_))
    ));
    let mut nan = update(1, 1.0, 1);
    nan.delta.add_each(|| f32::NAN);
    assert!(matches!(c.submit("c0", nan), Err(Rejection::NonFinite(_))));
    assert!(matches!(
        c.submit("c0", update(7, 1.0, 1)),
        Err(Rejection::WrongRound { got: 7, .. })
    ));
    assert!(matches!(
        c.submit("c0", update(1, 1.0, 0)),
        Err(Rejection::BadSamples(0))
    ));
    let mut short = update(1, 1.0, 1);
    short.hashmap = vec![1.0];
    assert!(matches!(c.submit("c0", short), Err(Rejection::BadHashmap(_))));
    assert!(matches!(
        c.submit("stranger", update(1, 1.0, 1)),
        Err(Rejection::NotSampled(_))
    ));
    c.submit("c0", update(1, 2.0, 1)).unwrap();
    assert!(matches!(
        c.submit("c0", update(1, 9.0, 1)),
        Err(Rejection::Duplicate(_))
    ));
    let counts = c.counts().clone();
    assert_eq!(
        (
            counts.malformed,
            counts.non_finite,
            counts.wrong_round,
            counts.bad_fields,
            counts.not_sampled,
            counts.duplicate
        ),
        (1, 1, 1, 2, 1, 1)
    );
    // c1 and c2 disconnected: the round closes with c0's update alone.
    let s = c.close_round().unwrap();
    assert_eq!((s.accepted, s.dropped), (1, 2));
    assert_eq!(c.counts().dropped, 2);
    assert!(values(c.global()).iter().all(|&v| (v - 2.0).abs() < 1e-6));
}

#[test]
fn too_few_updates_leave_the_model_unchanged() {
    let mut c = coordinator(
        3,
        FedConfig {
            min_updates: 2,
            ..config(3)
        },
    );
    c.open_round().unwrap();
    c.submit("c0", update(1, 5.0, 1)).unwrap();
    let s = c.close_round().unwrap();
    assert!(!s.applied);
    assert_eq!(values(c.global()), values(&model(0.0)));
    assert_eq!(c.counts().empty_rounds, 1);
}

#[test]
fn an_update_far_larger_than_the_others_is_an_outlier() {
    let mut c = coordinator(
        4,
        FedConfig {
            max_norm_ratio: 3.0,
            ..config(4)
        },
    );
    c.open_round().unwrap();
    c.submit("c0", update(1, 1.0, 1)).unwrap();
    c.submit("c1", update(1, 1.2, 1)).unwrap();
    c.submit("c2", update(1, 0.8, 1)).unwrap();
    c.submit("c3", update(1, 1000.0, 1)).unwrap();
    let s = c.close_round().unwrap();
    assert_eq!((s.accepted, s.outliers), (3, 1));
    assert!(values(c.global()).iter().all(|&v| (v - 1.0).abs() < 1e-5));
}

#[test]
fn differential_privacy_clips_noises_and_accounts() {
    let dp = DpConfig {
        clip_norm: 1.0,
        noise_multiplier: 0.0,
    };
    let cfg = FedConfig {
        clients_per_round: 2,
        dp: Some(dp),
        ..config(2)
    };
    // Without noise: every update is clipped to norm 1, then summed over the expected count.
    let mut c = coordinator(2, cfg.clone());
    let sampled = c.open_round().unwrap();
    for id in &sampled {
        c.submit(id, update(1, 100.0, 1)).unwrap();
    }
    c.close_round().unwrap();
    let n = c.global().norm();
    assert!((n - sampled.len() as f64 / 2.0).abs() < 1e-5, "norm {n}");
    // With noise the same seed gives the same model, another seed another; ε grows per round.
    let noisy = |seed: u64| {
        let cfg = FedConfig {
            seed,
            dp: Some(DpConfig {
                clip_norm: 1.0,
                noise_multiplier: 1.0,
            }),
            ..cfg.clone()
        };
        let mut c = coordinator(4, cfg);
        let mut eps = Vec::new();
        for _ in 0..2 {
            let sampled = c.open_round().unwrap();
            let r = c.open_round_number().unwrap();
            for id in &sampled {
                c.submit(id, update(r, 1.0, 1)).unwrap();
            }
            c.close_round().unwrap();
            eps.push(c.epsilon(0.25).unwrap().unwrap().epsilon);
        }
        (values(c.global()), eps)
    };
    let (a, eps) = noisy(1);
    assert_eq!(a, noisy(1).0);
    assert_ne!(a, noisy(2).0);
    assert!(eps[1] > eps[0] && eps[0] > 0.0, "{eps:?}");
}

#[test]
fn sampling_and_negatives_are_seeded() {
    let run = |seed: u64| {
        let mut c = coordinator(20, FedConfig { seed, ..config(5) });
        let s = c.open_round().unwrap();
        let t = c.task(&s[0]).unwrap();
        (s, t.negatives)
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3).0, run(4).0);
}

#[test]
fn spreadout_pushes_stored_hashmaps_apart() {
    let mut c = Coordinator::new(
        model(0.0),
        2,
        FedConfig {
            spreadout: 5.0,
            ..config(2)
        },
    )
    .unwrap();
    c.register("a", vec![1.0, 0.1]).unwrap();
    c.register("b", vec![1.0, -0.1]).unwrap();
    let cos_before = {
        let (a, b) = (c.task("a"), c.task("b"));
        assert!(a.is_none() && b.is_none(), "no round open yet");
        (1.0 - 0.01) / (1.0 + 0.01)
    };
    let s = c.open_round().unwrap();
    for id in &s {
        let h = if id == "a" {
            vec![1.0, 0.1]
        } else {
            vec![1.0, -0.1]
        };
        c.submit(
            id,
            ClientUpdate {
                hashmap: h,
                ..update(1, 0.0, 1)
            },
        )
        .unwrap();
    }
    c.close_round().unwrap();
    c.open_round().unwrap();
    let a = c.task("a").unwrap().own.unwrap();
    let b = c.task("b").unwrap().own.unwrap();
    let cos_after: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    assert!(cos_after < cos_before - 0.05, "{cos_after} vs {cos_before}");
}

#[test]
fn save_and_load_resume_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = coordinator(
        3,
        FedConfig {
            server_adam: true,
            server_lr: 0.1,
            ..config(3)
        },
    );
    let s = c.open_round().unwrap();
    for id in &s {
        c.submit(id, update(1, 1.0, 2)).unwrap();
    }
    c.close_round().unwrap();
    c.save(dir.path()).unwrap();
    let mut back = Coordinator::load(dir.path()).unwrap();
    assert_eq!(back.rounds_closed(), 1);
    assert_eq!(back.global(), c.global());
    assert_eq!(back.clients(), 3);
    assert_eq!(back.history(), c.history());
    // Both continue identically (the optimizer state was saved too).
    for k in [&mut c, &mut back] {
        let s = k.open_round().unwrap();
        for id in &s {
            k.submit(id, update(2, 1.0, 2)).unwrap();
        }
        k.close_round().unwrap();
    }
    assert_eq!(back.global(), c.global());
    // A corrupt state file is an error naming it, not a fresh start.
    std::fs::write(dir.path().join("coordinator.json"), b"{").unwrap();
    let err = Coordinator::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("coordinator.json"), "{err}");
}

#[test]
fn bad_settings_and_registrations_are_refused() {
    for bad in [
        FedConfig {
            clients_per_round: 0,
            ..config(2)
        },
        FedConfig {
            server_lr: f32::NAN,
            ..config(2)
        },
        FedConfig {
            server_momentum: 1.0,
            ..config(2)
        },
        FedConfig {
            spreadout: -1.0,
            ..config(2)
        },
        FedConfig {
            dp: Some(DpConfig {
                clip_norm: 0.0,
                noise_multiplier: 1.0,
            }),
            ..config(2)
        },
    ] {
        assert!(Coordinator::new(model(0.0), 3, bad).is_err());
    }
    let mut c = coordinator(0, config(2));
    assert!(c.open_round().is_err(), "no clients, no round");
    assert!(matches!(
        c.register("x", vec![0.0; 3]),
        Err(Rejection::BadHashmap(_))
    ));
    assert!(matches!(
        c.register("x", vec![f32::NAN, 1.0, 0.0]),
        Err(Rejection::BadHashmap(_))
    ));
    assert!(matches!(
        c.register("x", vec![1.0; 4]),
        Err(Rejection::BadHashmap(_))
    ));
}

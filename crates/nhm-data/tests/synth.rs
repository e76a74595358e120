//! Integration tests of the synthetic fingerprint generator and of augmentation.

use nhm_data::augment::{augment, AugmentConfig};
use nhm_data::synth::{contact_sheet, write_fvc, Manifest, SynthConfig, Variation, View};
use nhm_data::{Error, GrayImage, Layout};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn small(subjects: u32, impressions: u32) -> SynthConfig {
    SynthConfig {
        seed: 7,
        subjects,
        impressions,
        size: 64,
        variation: Variation::default(),
        view: View::Whole,
    }
}

/// Pearson correlation of two equally sized images.
fn correlation(a: &GrayImage, b: &GrayImage) -> f64 {
    let (a, b) = (a.as_raw(), b.as_raw());
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt().max(1e-12)
}

#[test]
fn same_seed_same_bytes_and_fingers_differ() {
    let cfg = small(2, 2);
    assert_eq!(cfg.impression(1, 1), cfg.impression(1, 1));
    assert_ne!(cfg.impression(0, 0), cfg.impression(1, 0));
    assert_ne!(cfg.impression(0, 0), cfg.impression(0, 1));
    let other_seed = SynthConfig {
        seed: 8,
        ..cfg.clone()
    };
    assert_ne!(cfg.impression(0, 0), other_seed.impression(0, 0));
}

#[test]
fn generate_matches_impression_and_ignores_thread_count() {
    let cfg = small(3, 2);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let a = one.install(|| cfg.generate()).unwrap();
    let b = three.install(|| cfg.generate()).unwrap();
    assert_eq!(a.samples.len(), 6);
    assert_eq!(a.layout, Layout::Synthetic);
    assert_eq!(a.subjects, vec!["1", "2", "3"]);
    for (x, y) in a.samples.iter().zip(&b.samples) {
        assert_eq!((x.subject, x.index), (y.subject, y.index));
        assert_eq!(x.image, y.image);
        assert_eq!(x.original_size, (64, 64));
        assert!(x.source.is_none());
    }
    let s = &a.samples[5];
    assert_eq!((s.subject, s.index, s.subject_label.as_str()), (2, 1, "3"));
    assert_eq!(s.image, cfg.impression(2, 1));
}

/// Dominant spatial period of the image's central half, from the radially summed power
/// spectrum (a direct DFT over integer frequencies: small images only).
fn dominant_period(img: &GrayImage) -> f64 {
    let n = img.width() as usize;
    let c = n / 4;
    let m = n / 2;
    let px: Vec<f64> = (0..m * m)
        .map(|i| img.get_pixel((c + i % m) as u32, (c + i / m) as u32).0[0] as f64)
        .collect();
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let mut power = vec![0.0; m];
    let half = m as i64 / 2;
    for ky in -half..half {
        for kx in -half..half {
            let r = ((kx * kx + ky * ky) as f64).sqrt().round() as usize;
            if r == 0 || r >= m / 2 {
                continue;
            }
            let (mut re, mut im) = (0.0, 0.0);
            for y in 0..m {
                for x in 0..m {
                    let ph =
                        -std::f64::consts::TAU * (kx as f64 * x as f64 + ky as f64 * y as f64) / m as f64;
                    let v = px[y * m + x] - mean;
                    re += v * ph.cos();
                    im += v * ph.sin();
                }
            }
            power[r] += re * re + im * im;
        }
    }
    let best = (1..m / 2).max_by(|&a, &b| power[a].total_cmp(&power[b])).unwrap();
    m as f64 / best as f64
}

#[test]
fn images_have_ridges_at_the_expected_period() {
    // Clean prints: about sixteen ridges across the image, so a period near size/16 = 4 px.
    let cfg = SynthConfig {
        variation: Variation::none(),
        ..small(3, 1)
    };
    for f in 0..3 {
        let p = dominant_period(&cfg.master_image(f));
        assert!(
            (3.0..=5.5).contains(&p),
            "finger {f}: dominant period {p} px, expected about 4"
        );
    }
    // With the default variation the image still shows strong ridge contrast.
    let img = small(1, 1).impression(0, 0);
    let v: Vec<f64> = img.as_raw().iter().map(|&p| p as f64).collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
    // Sensor noise alone has variance (14·0.6)² ≈ 70.
    assert!(var > 400.0, "variance {var}");
}

/// How many of the 8×8-pixel blocks of `img` show ridge contrast (grey-level standard deviation
/// above 20), not flat background.
fn ridge_blocks(img: &GrayImage) -> usize {
    let (w, h) = img.dimensions();
    let mut n = 0;
    for by in (0..h).step_by(8) {
        for bx in (0..w).step_by(8) {
            let v: Vec<f64> = (0..64)
                .map(|i| img.get_pixel(bx + i % 8, by + i / 8).0[0] as f64)
                .collect();
            let m = v.iter().sum::<f64>() / 64.0;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 64.0).sqrt();
            n += (sd > 20.0) as usize;
        }
    }
    n
}

#[test]
fn centre_view_shows_ridges_to_the_edges_at_the_same_period() {
    let whole = SynthConfig {
        variation: Variation::none(),
        ..small(4, 1)
    };
    let centre = SynthConfig {
        view: View::Centre,
        ..whole.clone()
    };
    for f in 0..4 {
        let (w, c) = (whole.master_image(f), centre.master_image(f));
        assert_ne!(w, c);
        // The whole view shows the pad's outline and background in the corners; the centre view
        // is ridges everywhere, as a region of interest cut from a scan is.
        let (bw, bc) = (ridge_blocks(&w), ridge_blocks(&c));
        assert!(
            bc >= 62 && bw <= 58,
            "finger {f}: ridge blocks whole {bw}, centre {bc} of 64"
        );
        let p = dominant_period(&c);
        assert!((3.0..=5.5).contains(&p), "finger {f}: dominant period {p} px");
    }
    // The seed contract holds in the centre view too.
    let cfg = SynthConfig {
        view: View::Centre,
        ..small(2, 2)
    };
    assert_eq!(cfg.impression(1, 1), cfg.generate().unwrap().samples[3].image);
    assert_ne!(cfg.impression(0, 0), cfg.impression(1, 0));
}

#[test]
fn texture_takes_ink_away_and_draws_nothing_when_zero() {
    let plain = SynthConfig {
        view: View::Centre,
        ..small(6, 2)
    };
    let textured = SynthConfig {
        variation: Variation {
            texture: 1.0,
            ..Variation::default()
        },
        ..plain.clone()
    };
    // Zero texture is exactly the old generator: same draws, same bytes.
    let zero = SynthConfig {
        variation: Variation {
            texture: 0.0,
            ..Variation::default()
        },
        ..plain.clone()
    };
    let images = |c: &SynthConfig| -> Vec<GrayImage> {
        c.generate()
            .unwrap()
            .samples
            .into_iter()
            .map(|s| s.image)
            .collect()
    };
    assert_eq!(images(&zero), images(&plain));
    // Breaks and creases whiten ridge pixels; the ridge pattern stays (texture is drawn after,
    // and does not move, anything else).
    let dark = |img: &GrayImage| img.as_raw().iter().filter(|&&p| p < 128).count();
    let (mut before, mut after, mut corr) = (0, 0, 0.0);
    for f in 0..6 {
        for i in 0..2 {
            let (a, b) = (plain.impression(f, i), textured.impression(f, i));
            before += dark(&a);
            after += dark(&b);
            corr += correlation(&a, &b) / 12.0;
        }
    }
    assert!(after < before * 95 / 100, "dark pixels {before} -> {after}");
    assert!(
        corr > 0.5,
        "textured impressions lost their ridges: correlation {corr:.2}"
    );
}

#[test]
fn views_parse_by_name_and_old_manifests_mean_whole() {
    for v in View::ALL {
        assert_eq!(v.name().parse::<View>().unwrap(), v);
    }
    assert_eq!("center".parse::<View>().unwrap(), View::Centre);
    match "middle".parse::<View>() {
        Err(Error::InvalidParameter { name, reason }) => {
            assert_eq!(name, "view");
            assert!(reason.contains("middle") && reason.contains("centre"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A configuration written before views and texture existed reads as the whole view without
    // texture.
    let mut json = serde_json::to_value(small(1, 1)).unwrap();
    json.as_object_mut().unwrap().remove("view");
    json["variation"].as_object_mut().unwrap().remove("texture");
    let back: SynthConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, small(1, 1));
}

#[test]
fn mated_impressions_are_more_alike_than_non_mated() {
    for view in View::ALL {
        mated_more_alike(view);
    }
}

fn mated_more_alike(view: View) {
    // Learning-free measure on aligned prints: without geometric variation (rotation, shift,
    // scale, distortion) but with the default contact, thickness and noise variation, impressions
    // of one finger share the ridge pattern; those of two fingers do not.
    let var = Variation {
        max_rotation_deg: 0.0,
        max_translation: 0.0,
        max_scale: 0.0,
        distortion: 0.0,
        ..Variation::default()
    };
    let cfg = SynthConfig {
        variation: var,
        view,
        ..small(4, 2)
    };
    let ds = cfg.generate().unwrap();
    let img = |s: u32, i: u32| &ds.samples[(s * 2 + i) as usize].image;
    let mated: f64 = (0..4).map(|s| correlation(img(s, 0), img(s, 1))).sum::<f64>() / 4.0;
    let non: f64 = (0..4)
        .map(|s| correlation(img(s, 0), img((s + 1) % 4, 1)))
        .sum::<f64>()
        / 4.0;
    assert!(
        mated > non + 0.15,
        "{view:?}: mated {mated:.3} non-mated {non:.3}"
    );
}

#[test]
fn invalid_configs_are_rejected() {
    let bad = [
        SynthConfig {
            size: 0,
            ..small(1, 1)
        },
        SynthConfig {
            size: 2048,
            ..small(1, 1)
        },
        SynthConfig {
            subjects: 0,
            ..small(1, 1)
        },
        SynthConfig {
            impressions: 0,
            ..small(1, 1)
        },
        SynthConfig {
            variation: Variation {
                noise: f32::NAN,
                ..Variation::default()
            },
            ..small(1, 1)
        },
        SynthConfig {
            variation: Variation {
                partial: 2.0,
                ..Variation::default()
            },
            ..small(1, 1)
        },
        SynthConfig {
            variation: Variation {
                texture: -0.5,
                ..Variation::default()
            },
            ..small(1, 1)
        },
    ];
    for cfg in bad {
        assert!(
            matches!(cfg.generate(), Err(Error::InvalidParameter { .. })),
            "{cfg:?}"
        );
    }
}

#[test]
fn write_fvc_writes_files_and_manifest() {
    let ds = small(2, 2).generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");
    let manifest = write_fvc(&ds, &out).unwrap();
    let m: Manifest = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m.files.len(), 4);
    assert_eq!(m.files[3].file, "2_2.png");
    let back = image::open(out.join("2_2.png")).unwrap().to_luma8();
    assert_eq!(back, ds.samples[3].image);
}

#[test]
fn write_fvc_to_unwritable_path_fails() {
    let ds = small(1, 1).generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A file where a folder should be.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = write_fvc(&ds, &file.join("sub")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn contact_sheet_is_a_grid() {
    let ds = small(2, 3).generate().unwrap();
    let sheet = contact_sheet(&ds, 20, 8);
    assert_eq!(sheet.dimensions(), (3 * 66 + 2, 2 * 66 + 2));
    assert_eq!(
        sheet.get_pixel(2 + 66 + 5, 2 + 66 + 5),
        ds.samples[4].image.get_pixel(5, 5)
    );
}

#[test]
fn augment_keeps_size_and_is_deterministic() {
    let img = small(1, 1).impression(0, 0);
    let cfg = AugmentConfig::default();
    let a = augment(&img, &cfg, &mut ChaCha8Rng::seed_from_u64(3));
    let b = augment(&img, &cfg, &mut ChaCha8Rng::seed_from_u64(3));
    assert_eq!(a.dimensions(), img.dimensions());
    assert_eq!(a, b);
    assert_ne!(a, img);
    let rect = GrayImage::new(37, 21);
    assert_eq!(
        augment(&rect, &cfg, &mut ChaCha8Rng::seed_from_u64(3)).dimensions(),
        (37, 21)
    );
    assert_eq!(
        augment(&img, &AugmentConfig::none(), &mut ChaCha8Rng::seed_from_u64(3)),
        img
    );
}

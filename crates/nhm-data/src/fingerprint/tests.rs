//! Tests of the front end on synthetic patterns and on the shipped real scans.

use std::f32::consts::PI;
use std::path::Path;

use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// Straight ridges along `theta` (radians) with the given period: dark ridges (cosine minima)
/// of amplitude `amp` around 128, plus seeded Gaussian-ish noise of deviation `noise`.
fn stripes(w: u32, h: u32, period: f32, theta: f32, amp: f32, noise: f32, seed: u64) -> GrayImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (nx, ny) = (-theta.sin(), theta.cos());
    GrayImage::from_fn(w, h, |x, y| {
        let phase = 2.0 * PI * (x as f32 * nx + y as f32 * ny) / period;
        // Sum of uniforms: roughly Gaussian, unit variance.
        let n: f32 = (0..4).map(|_| rng.gen::<f32>() - 0.5).sum::<f32>() * 3.0f32.sqrt();
        Luma([(128.0 + amp * phase.cos() + noise * n).round().clamp(0.0, 255.0) as u8])
    })
}

/// Smallest difference between two undirected angles, in degrees.
fn angle_diff_deg(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(PI);
    d.min(PI - d).to_degrees()
}

/// Median of the values of interior foreground blocks (two blocks away from the border).
fn interior_median(m: &BlockMap<f32>, mask: &BlockMap<bool>) -> f32 {
    let mut v: Vec<f32> = Vec::new();
    for r in 2..m.rows.saturating_sub(2) {
        for c in 2..m.cols.saturating_sub(2) {
            if mask.get(c, r) == Some(&true) {
                v.push(m.data[r * m.cols + c]);
            }
        }
    }
    assert!(!v.is_empty(), "no interior foreground block");
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn assert_finite(a: &Analysis) {
    for (name, m) in [
        ("orientation", &a.orientation),
        ("coherence", &a.coherence),
        ("period", &a.period),
        ("period_quality", &a.period_quality),
    ] {
        assert!(
            m.data.iter().all(|v| v.is_finite()),
            "{name} has a non-finite value"
        );
    }
    if let Some(p) = a.median_period {
        assert!(p.is_finite());
    }
}

#[test]
fn orientation_of_straight_ridges_within_three_degrees() {
    let p = FrontEndParams::default();
    for deg in [0.0f32, 22.5, 30.0, 45.0, 60.0, 90.0, 120.0, 135.0, 170.0] {
        let img = stripes(160, 160, 9.0, deg.to_radians(), 60.0, 10.0, 1);
        let a = analyse(&img, &p).expect("stripes analyse");
        assert_finite(&a);
        let mut errs: Vec<f32> = Vec::new();
        for r in 1..a.orientation.rows - 1 {
            for c in 1..a.orientation.cols - 1 {
                errs.push(angle_diff_deg(
                    a.orientation.data[r * a.orientation.cols + c],
                    deg.to_radians(),
                ));
            }
        }
        let worst = errs.iter().copied().fold(0.0, f32::max);
        assert!(
            worst < 3.0,
            "ridges at {deg} deg: worst block error {worst:.2} deg"
        );
        let coh = interior_median(&a.coherence, &a.block_mask);
        assert!(coh > 0.8, "coherence of clean stripes {coh}");
    }
}

#[test]
fn period_of_sinusoid_within_five_percent() {
    let p = FrontEndParams::default();
    for period in [5.0f32, 7.0, 9.0, 12.0, 16.0] {
        for deg in [10.0f32, 75.0] {
            let img = stripes(192, 192, period, deg.to_radians(), 60.0, 8.0, 2);
            let a = analyse(&img, &p).expect("stripes analyse");
            let m = a.median_period.expect("median period");
            assert!(
                (m / period - 1.0).abs() < 0.05,
                "period {period} at {deg} deg: measured {m:.3}"
            );
            let local = interior_median(&a.period, &a.block_mask);
            assert!(
                (local / period - 1.0).abs() < 0.05,
                "local period {local:.3} for {period}"
            );
        }
    }
}

#[test]
fn resampling_by_1_14_scales_the_period() {
    let img = stripes(256, 256, 9.0, 0.6, 60.0, 6.0, 3);
    let (w, h) = ((256.0f32 * 1.14).round() as u32, (256.0f32 * 1.14).round() as u32);
    let big = image::imageops::resize(&img, w, h, image::imageops::FilterType::Lanczos3);
    let p0 = ridge_period(&img, &FrontEndParams::default())
        .expect("period")
        .median
        .expect("median");
    let p1 = ridge_period(&big, &FrontEndParams::default())
        .expect("period")
        .median
        .expect("median");
    println!(
        "period at 500 dpi-like scale {p0:.3} px, after x1.14 resampling {p1:.3} px (ratio {:.4})",
        p1 / p0
    );
    assert!((p0 / 9.0 - 1.0).abs() < 0.05, "p0 {p0}");
    assert!((p1 / (9.0 * 1.14) - 1.0).abs() < 0.05, "p1 {p1}");
    let d0 = estimate_dpi(&img).expect("dpi");
    let d1 = estimate_dpi(&big).expect("dpi");
    assert!((d1 / d0 / 1.14 - 1.0).abs() < 0.05, "dpi {d0} -> {d1}");
}

/// Left half stripes, right half `background` (a closure giving the background pixel).
fn half_and_half(background: impl Fn(u32, u32, &mut ChaCha8Rng) -> u8) -> GrayImage {
    let stripes = stripes(192, 160, 9.0, 1.2, 60.0, 6.0, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    GrayImage::from_fn(192, 160, |x, y| {
        if x < 96 {
            *stripes.get_pixel(x, y)
        } else {
            Luma([background(x, y, &mut rng)])
        }
    })
}

/// Share of mask pixels set over columns `x0..x1`, away from the top and bottom borders.
fn mask_share(mask: &GrayImage, x0: u32, x1: u32) -> f32 {
    let (mut on, mut n) = (0usize, 0usize);
    for y in 16..mask.height() - 16 {
        for x in x0..x1 {
            n += 1;
            on += usize::from(mask.get_pixel(x, y)[0] > 0);
        }
    }
    on as f32 / n as f32
}

#[test]
fn mask_covers_stripes_not_white_background() {
    let img = half_and_half(|_, _, rng| 235 + (rng.gen::<f32>() * 6.0) as u8);
    let mask = segment(&img, &FrontEndParams::default()).expect("segment");
    let (fg, bg) = (mask_share(&mask, 8, 80), mask_share(&mask, 112, 184));
    assert!(fg > 0.95, "stripes covered {fg}");
    assert!(bg < 0.05, "white background covered {bg}");
}

#[test]
fn mask_rejects_dark_noisy_background() {
    let img = half_and_half(|_, _, rng| (20.0 + rng.gen::<f32>() * 90.0) as u8);
    let mask = segment(&img, &FrontEndParams::default()).expect("segment");
    let (fg, bg) = (mask_share(&mask, 8, 80), mask_share(&mask, 112, 184));
    assert!(fg > 0.95, "stripes covered {fg}");
    assert!(bg < 0.05, "noise covered {bg}");
}

/// Separation of ridge and valley pixels, `(mean valley − mean ridge) / pooled deviation`,
/// measured where the clean pattern is clearly a ridge or a valley.
fn separation(img: &GrayImage, period: f32, theta: f32) -> f32 {
    let (nx, ny) = (-theta.sin(), theta.cos());
    let (mut ridge, mut valley) = (Vec::new(), Vec::new());
    for y in 24..img.height() - 24 {
        for x in 24..img.width() - 24 {
            let c = (2.0 * PI * (x as f32 * nx + y as f32 * ny) / period).cos();
            let v = img.get_pixel(x, y)[0] as f32;
            if c < -0.7 {
                ridge.push(v);
            } else if c > 0.7 {
                valley.push(v);
            }
        }
    }
    let stats = |v: &[f32]| {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (
            m,
            v.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / v.len() as f32,
        )
    };
    let ((mr, vr), (mv, vv)) = (stats(&ridge), stats(&valley));
    (mv - mr) / ((vr + vv) / 2.0).sqrt().max(1e-3)
}

#[test]
fn enhancement_raises_ridge_valley_separation_on_noisy_sinusoid() {
    let theta = 0.9;
    // Cosine minima are ridges: amplitude 25 under noise of deviation 40.
    let img = stripes(192, 192, 9.0, theta, 25.0, 40.0, 6);
    let a = analyse(&img, &FrontEndParams::default()).expect("analyse");
    assert_finite(&a);
    let before = separation(&img, 9.0, theta);
    let after = separation(&a.enhanced, 9.0, theta);
    println!("ridge/valley separation: input {before:.2}, enhanced {after:.2}");
    assert!(
        after > 2.0 * before && after > 2.0,
        "before {before:.2}, after {after:.2}"
    );
    // Ridges stay dark.
    assert!(after > 0.0);
}

#[test]
fn degenerate_images_give_clean_errors() {
    let p = FrontEndParams::default();
    for (w, h) in [(0u32, 0u32), (3, 3), (31, 200), (200, 1)] {
        let img = GrayImage::new(w, h);
        assert!(
            matches!(analyse(&img, &p), Err(Error::TooSmall { .. })),
            "{w}x{h} should be too small"
        );
        let e = enhance_print(&img);
        assert_eq!(e.dimensions(), (w, h));
        assert!(e.pixels().all(|px| px[0] == BACKGROUND));
        assert_eq!(estimate_dpi(&img), None);
    }
    for value in [0u8, 128, 255] {
        let img = GrayImage::from_pixel(100, 90, Luma([value]));
        assert!(
            matches!(analyse(&img, &p), Err(Error::NoForeground { .. })),
            "constant {value}"
        );
        assert!(enhance_print(&img).pixels().all(|px| px[0] == BACKGROUND));
        assert_eq!(estimate_dpi(&img), None);
    }
}

#[test]
fn flat_and_smooth_images_are_not_prints() {
    let p = FrontEndParams::default();
    let ramp = GrayImage::from_fn(128, 128, |x, y| Luma([(x + y) as u8]));
    let blob = GrayImage::from_fn(128, 128, |x, y| {
        let d = ((x as f32 - 64.0).powi(2) + (y as f32 - 64.0).powi(2)).sqrt();
        Luma([(255.0 - d * 2.0).clamp(0.0, 255.0) as u8])
    });
    for (name, img) in [("ramp", ramp), ("blob", blob)] {
        match analyse(&img, &p) {
            Err(Error::NoForeground { .. }) => {}
            Ok(a) => {
                assert_finite(&a);
                let share =
                    a.block_mask.data.iter().filter(|&&m| m).count() as f32 / a.block_mask.data.len() as f32;
                assert!(share < 0.2, "{name}: {share} of blocks taken for print");
            }
            Err(e) => panic!("{name}: unexpected error {e}"),
        }
        assert_eq!(estimate_dpi(&img), None, "{name}");
    }
}

#[test]
fn params_round_trip_and_validate() {
    let p = FrontEndParams::default();
    let json = serde_json::to_string(&p).expect("serialise");
    let back: FrontEndParams = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(p, back);
    let partial: FrontEndParams = serde_json::from_str(r#"{"block": 12}"#).expect("partial");
    assert_eq!(partial.block, 12);
    assert!(partial.validate().is_ok());
    for bad in [
        FrontEndParams {
            block: 2,
            ..p.clone()
        },
        FrontEndParams {
            max_period: 2.5,
            ..p.clone()
        },
        FrontEndParams {
            gabor_sigma_along: f32::NAN,
            ..p.clone()
        },
        FrontEndParams {
            gabor_period_step: 1.0,
            ..p.clone()
        },
    ] {
        assert!(
            matches!(bad.validate(), Err(Error::InvalidParam { .. })),
            "{bad:?}"
        );
        assert!(FrontEnd::new(bad).is_err());
    }
}

/// Analyses every image of a shipped folder and checks the period and resolution bands: the
/// set's median period within `band` and its dpi within 400..=620, and at least `min_in_band` of
/// the images individually within `band` (fingers differ: a child's or a small finger has finer
/// ridges, a large thumb coarser ones).
fn check_real_set(dir: &str, ext: &str, name: &str, band: std::ops::RangeInclusive<f32>, min_in_band: f32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skipping {name}: {} not found", dir.display());
        return;
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    let p = FrontEndParams::default();
    let mut periods = Vec::new();
    let mut fails = Vec::new();
    let t0 = std::time::Instant::now();
    for path in &paths {
        let img = match image::open(path) {
            Ok(i) => i.to_luma8(),
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        match analyse(&img, &p) {
            Ok(a) => {
                assert_finite(&a);
                match a.median_period {
                    Some(m) => {
                        periods.push(m);
                        if !band.contains(&m) {
                            fails.push(format!("{}: period {m:.2}", path.display()));
                        }
                    }
                    None => fails.push(format!("{}: no median period", path.display())),
                }
            }
            Err(e) => fails.push(format!("{}: {e}", path.display())),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    assert!(!periods.is_empty(), "{name}: nothing measured");
    periods.sort_by(f32::total_cmp);
    let med = periods[periods.len() / 2];
    let mean = periods.iter().sum::<f32>() / periods.len() as f32;
    println!(
        "{name}: {} images, {} measured; period min {:.2} / median {:.2} / mean {:.2} / max {:.2} px; \
         dpi median {:.0} (min {:.0}, max {:.0}); {:.1} ms per image (test profile)",
        paths.len(),
        periods.len(),
        periods[0],
        med,
        mean,
        periods[periods.len() - 1],
        frequency::dpi_from_period(med),
        frequency::dpi_from_period(periods[0]),
        frequency::dpi_from_period(periods[periods.len() - 1]),
        1000.0 * secs / paths.len() as f64,
    );
    for f in fails.iter().take(12) {
        println!("  out of band: {f}");
    }
    if fails.len() > 12 {
        println!("  ... and {} more", fails.len() - 12);
    }
    let in_band = 1.0 - fails.len() as f32 / paths.len() as f32;
    assert!(
        in_band >= min_in_band,
        "{name}: only {:.0}% of {} images in the {band:?} px band",
        100.0 * in_band,
        paths.len()
    );
    assert!(band.contains(&med), "{name}: median period {med}");
    let dpi = frequency::dpi_from_period(med);
    assert!((400.0..=620.0).contains(&dpi), "{name}: median dpi {dpi}");
}

#[test]
fn real_fvc2002_db1_b_periods() {
    check_real_set(
        "shared/data/fvc2002/DB1_B",
        "tif",
        "FVC2002 DB1_B (optical, 500 dpi)",
        7.5..=11.0,
        0.95,
    );
}

#[test]
fn real_fvc2002_db4_b_periods() {
    // SFinGe draws finer ridges than the real scanners: 7.2 px median when written (401 dpi),
    // so the period band starts lower here.
    check_real_set(
        "shared/data/fvc2002/DB4_B",
        "tif",
        "FVC2002 DB4_B (SFinGe, 500 dpi)",
        6.0..=11.0,
        0.95,
    );
}

#[test]
fn real_uareu_periods() {
    // Person 012 has fine ridges on every finger (about 7.2 px), finger 057_5 coarse ones
    // (about 11.5 px): about 9% of the scans fall outside the band.
    check_real_set(
        "shared/data/neurotech/UareU",
        "png",
        "Neurotechnology U.are.U 4000 (500 dpi)",
        7.5..=11.0,
        0.85,
    );
}

#[test]
fn project_synthetic_prints_have_sixteen_periods_across() {
    // The generator draws about sixteen ridge periods across the image whatever its size, so a
    // 144-px print has 9-px ridges: a 500 dpi look.
    let cfg = crate::synth::SynthConfig {
        size: 144,
        ..crate::synth::SynthConfig::default()
    };
    let mut periods = Vec::new();
    for finger in 0..6 {
        let img = cfg.impression(finger, 0);
        let a = analyse(&img, &FrontEndParams::default()).expect("synthetic print analyse");
        assert_finite(&a);
        if std::env::var_os("NHM_FRONTEND_DUMP").is_some() {
            let dir = std::env::temp_dir();
            let _ = img.save(dir.join(format!("synth_{finger}.png")));
            let _ = a.enhanced.save(dir.join(format!("synth_{finger}_enhanced.png")));
        }
        periods.push(a.median_period.expect("median period"));
    }
    periods.sort_by(f32::total_cmp);
    let med = periods[periods.len() / 2];
    println!("project synth at 144 px: periods {periods:.2?}, median {med:.2} px");
    assert!((med / 9.0 - 1.0).abs() < 0.15, "median period {med}");
}

//! Runs the fingerprint front end on images and writes what it sees.
//!
//! `cargo run --release -p nhm-data --example enhance -- OUT_DIR IMAGE...`
//!
//! For each IMAGE writes `OUT_DIR/<stem>_enhanced.png`, `OUT_DIR/<stem>_mask.png` and
//! `OUT_DIR/<stem>_panel.png` (input, enhanced and mask side by side), and prints the median ridge
//! period, the resolution it implies and the time taken.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use image::{GrayImage, Luma};
use nhm_data::fingerprint::{analyse, FrontEndParams};

fn run(out_dir: &Path, input: &Path, params: &FrontEndParams) -> Result<(), String> {
    let img = image::open(input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?
        .to_luma8();
    let t0 = Instant::now();
    let a = analyse(&img, params).map_err(|e| format!("{}: {e}", input.display()))?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    let write = |suffix: &str, im: &GrayImage| -> Result<(), String> {
        let path = out_dir.join(format!("{stem}_{suffix}.png"));
        im.save(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("enhanced", &a.enhanced)?;
    write("mask", &a.mask)?;
    let (w, h) = img.dimensions();
    let panel = GrayImage::from_fn(3 * w + 8, h, |x, y| {
        let (i, x) = (x / (w + 4), x % (w + 4));
        match (i, x < w) {
            (0, true) => *img.get_pixel(x, y),
            (1, true) => *a.enhanced.get_pixel(x, y),
            (2, true) => *a.mask.get_pixel(x, y),
            _ => Luma([0]),
        }
    });
    write("panel", &panel)?;
    let fg = a.block_mask.data.iter().filter(|&&m| m).count();
    println!(
        "{}: {w}x{h}, {fg}/{} blocks of print, median period {}, dpi {}, {ms:.1} ms",
        input.display(),
        a.block_mask.data.len(),
        a.median_period.map_or("-".into(), |p| format!("{p:.2} px")),
        a.dpi().map_or("-".into(), |d| format!("{d:.0}")),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((out_dir, inputs)) = args.split_first().filter(|(_, rest)| !rest.is_empty()) else {
        eprintln!("usage: enhance OUT_DIR IMAGE...");
        return ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        eprintln!("cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    let params = FrontEndParams::default();
    let mut failed = false;
    for input in inputs {
        if let Err(e) = run(out_dir, input, &params) {
            eprintln!("{e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

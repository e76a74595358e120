//! Front-end speed on one core: `cargo bench -p nhm-data --bench fingerprint [-- [IMAGE] [RUNS]]`.
//!
//! Runs the fingerprint front end (segmentation, orientation, period, Gabor enhancement) RUNS
//! times (default 30) on IMAGE (default: a synthetic 388×374 pattern the size of an FVC2002 DB1
//! scan) with rayon limited to one thread, and prints the fastest and the median time of the
//! analysis without enhancement ([`ridge_period`]) and of the whole [`analyse`].

use std::time::Instant;

use image::{GrayImage, Luma};
use nhm_data::fingerprint::{analyse, ridge_period, FrontEndParams};

/// Concentric ridges of period 9 px in an ellipse on a white background, like a 500 dpi scan.
fn synthetic() -> GrayImage {
    GrayImage::from_fn(388, 374, |x, y| {
        let (dx, dy) = ((x as f32 - 194.0) / 0.8, y as f32 - 187.0);
        let r = (dx * dx + dy * dy).sqrt();
        if r > 170.0 {
            Luma([230])
        } else {
            let v = 128.0 + 90.0 * (2.0 * std::f32::consts::PI * r * 0.8 / 9.0).cos();
            Luma([v as u8])
        }
    })
}

/// Fastest and median of `runs` timings of `f`, in milliseconds.
fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[0], ms[ms.len() / 2])
}

fn main() {
    // `cargo bench` passes `--bench`; keep only our own arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // A number is the run count, anything else the image path.
    let runs: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(30).max(1);
    let img = match args.iter().find(|a| a.parse::<usize>().is_err()) {
        Some(path) => match image::open(path) {
            Ok(i) => i.to_luma8(),
            Err(e) => {
                eprintln!("cannot read {path}: {e}");
                std::process::exit(1);
            }
        },
        None => synthetic(),
    };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot build a one-thread pool: {e}");
            std::process::exit(1);
        }
    };
    let params = FrontEndParams::default();
    if let Err(e) = analyse(&img, &params) {
        eprintln!("the front end rejects this image: {e}");
        std::process::exit(1);
    }
    let (w, h) = img.dimensions();
    let (fast_a, med_a) = pool.install(|| {
        time(runs, || {
            std::hint::black_box(ridge_period(&img, &params).ok());
        })
    });
    let (fast_b, med_b) = pool.install(|| {
        time(runs, || {
            std::hint::black_box(analyse(&img, &params).ok());
        })
    });
    println!("fingerprint front end on {w}x{h}, 1 thread, {runs} runs:");
    println!("  mask + orientation + period: fastest {fast_a:.2} ms, median {med_a:.2} ms");
    println!("  full analyse (with Gabor):   fastest {fast_b:.2} ms, median {med_b:.2} ms");
}

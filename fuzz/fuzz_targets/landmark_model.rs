//! Fuzz the face landmark model's decoder: arbitrary bytes as a `landmarks.safetensors` file, and
//! a model that decodes then run on a small image in an arbitrary box. Decoding checks every
//! index up front, so neither step may panic: bad input is an error.
//! Run: `cargo +nightly fuzz run landmark_model` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhm_data::face::{FaceBox, LandmarkModel};

fuzz_target!(|data: &[u8]| {
    let Ok(model) = LandmarkModel::from_bytes(data) else {
        return;
    };
    let img = image::GrayImage::from_fn(24, 20, |x, y| image::Luma([(x * 7 + y * 13) as u8]));
    let b = data.len() as f32;
    for face in [
        FaceBox::new(0.0, 0.0, 23.0, 19.0),
        FaceBox::new(-b, -3.0, b, 40.0),
        FaceBox::new(5.0, 5.0, 5.0, 5.0),
    ] {
        let _ = model.predict(&img, &face);
    }
});

//! Invariants of the input contract: whatever the image and the sample's resolution, the model
//! gets exactly the input size it reads, and the same contract gives the same image twice.

use nhm_data::fingerprint::FrontEnd;
use nhm_data::input::{CropCentre, DpiSource, InputSpec, Resolution};
use nhm_data::GrayImage;
use proptest::prelude::*;

fn contract(size: u32, roi: Option<u32>, dpi: Option<f32>, enhance: bool, core: bool) -> InputSpec {
    InputSpec {
        dpi,
        roi,
        front_end: enhance.then(FrontEnd::default),
        centre: if core { CropCentre::Core } else { CropCentre::Print },
        ..InputSpec::plain(size)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prepare_always_gives_the_input_size(
        w in 0u32..160,
        h in 0u32..160,
        seed in any::<u64>(),
        size in 8u32..48,
        roi in proptest::option::of(1u32..200),
        model_dpi in proptest::option::of(250f32..1000.0),
        sample_dpi in proptest::option::of(100f32..2000.0),
        enhance in any::<bool>(),
        core in any::<bool>(),
    ) {
        let img = GrayImage::from_fn(w, h, |x, y| {
            let v = (x as u64).wrapping_mul(31).wrapping_add((y as u64).wrapping_mul(17)) ^ seed;
            image::Luma([(v % 251) as u8])
        });
        let spec = contract(size, roi, model_dpi, enhance, core);
        let res = sample_dpi.map(|dpi| Resolution { dpi, source: DpiSource::User });
        let out = spec.prepare(&img, res);
        prop_assert_eq!(out.dimensions(), (size, size));
        prop_assert_eq!(spec.prepare(&img, res), out);
    }
}

//! Feeds arbitrary bytes to the image decode path of the dataset loaders (the header's resolution
//! and the pixels), then to every fit policy and the fingerprint front end: none may panic, and a
//! decoded image must come out as exactly the requested square.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhm_data::fingerprint::{estimate_dpi, FrontEnd};
use nhm_data::input::InputSpec;
use nhm_data::loaders::{decode_bytes, image_dpi_from_bytes};
use nhm_data::preprocess::{fit, Fit};

fuzz_target!(|data: &[u8]| {
    if let Some(dpi) = image_dpi_from_bytes(data) {
        assert!(dpi.is_finite() && dpi > 0.0);
    }
    if let Ok(img) = decode_bytes(data) {
        assert!(img.width() > 0 && img.height() > 0);
        for f in Fit::ALL {
            assert_eq!(fit(&img, 32, f).dimensions(), (32, 32));
        }
        if img.width() <= 512 && img.height() <= 512 {
            let _ = estimate_dpi(&img);
            let spec = InputSpec {
                front_end: Some(FrontEnd::default()),
                ..InputSpec::scan(32, 500.0, 48)
            };
            assert_eq!(spec.prepare(&img, None).dimensions(), (32, 32));
        }
    }
});

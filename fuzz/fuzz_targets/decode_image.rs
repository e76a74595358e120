//! Feeds arbitrary bytes to the image decode path of the dataset loaders, then to every fit
//! policy: neither may panic, and a decoded image must fit to exactly the requested square.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhm_data::loaders::decode_bytes;
use nhm_data::preprocess::{fit, Fit};

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = decode_bytes(data) {
        assert!(img.width() > 0 && img.height() > 0);
        for f in Fit::ALL {
            assert_eq!(fit(&img, 32, f).dimensions(), (32, 32));
        }
    }
});

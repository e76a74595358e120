//! Fuzz the hashmap decoders: they must never panic, and what they accept must re-encode
//! to the same bytes. Run: `cargo fuzz run hashmap_from_bytes` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhm_template::Hashmap;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Hashmap::from_bytes(data) {
        assert_eq!(h.to_bytes(), data);
        assert_eq!(Hashmap::from_base64(&h.to_base64()).ok().as_ref(), Some(&h));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Hashmap::from_base64(s);
    }
});

//! Fuzz the federated update decoders: `Weights::from_safetensors` on raw bytes and
//! `UpdateRequest` JSON through to a coordinator's `submit`. Nothing may panic, accepted weights
//! must re-encode to weights equal to themselves, and a rejected update must leave the model
//! as it was. Run: `cargo fuzz run fed_update` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhm_fed::wire::UpdateRequest;
use nhm_fed::{Coordinator, FedConfig, Weights};

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = Weights::from_safetensors(data) {
        assert_eq!(Weights::from_safetensors(&w.to_safetensors()).ok().as_ref(), Some(&w));
    }
    let Ok(req) = serde_json::from_slice::<UpdateRequest>(data) else {
        return;
    };
    let Ok(model) = Weights::from_parts(vec![("w".into(), vec![2], vec![0.5, -0.5])]) else {
        return;
    };
    let cfg = FedConfig {
        clients_per_round: 2,
        ..FedConfig::default()
    };
    let Ok(mut c) = Coordinator::new(model.clone(), 2, cfg) else {
        return;
    };
    let _ = c.register("a", vec![1.0, 0.0]);
    let _ = c.register("b", vec![0.0, 1.0]);
    if c.open_round().is_err() {
        return;
    }
    if let Ok(update) = req.into_update() {
        if c.submit("a", update).is_err() {
            c.close_round();
            assert_eq!(c.global(), &model);
        }
    }
});

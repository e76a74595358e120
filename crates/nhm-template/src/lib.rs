//! Hashmaps: protected biometric templates (DESIGN.md §1–2).
//!
//! A client turns an L2-normalised embedding `e` into a *hashmap* with its secret [`Key`]:
//! `h = sign(R_k · e)` ([`BinaryHashmap`], the default) or `R_k · e` ([`DenseHashmap`]), where
//! `R_k` ([`Protector`]) is a keyed orthogonal transform. An untrusted server stores and matches
//! hashmaps ([`Gallery`], Hamming distance with runtime-selected popcount [`kernel`]s), may add
//! its own secret [`Pepper`], picks decision [`Threshold`]s from a target false-match rate, and
//! may train [`classify`]ers over hashmaps. Nothing here depends on an ML framework.
//!
//! ```
//! use nhm_template::{Key, Protector};
//!
//! let key = Key::from_seed(7); // tests only: use Key::random() for a real key
//! let protector = Protector::new(&key, 256)?;
//! // Two nearby embeddings and an unrelated one.
//! let e1: Vec<f32> = (0..256).map(|i| (i as f32 * 0.1).sin()).collect();
//! let e2: Vec<f32> = e1.iter().enumerate().map(|(i, v)| v + 0.05 * (i as f32).cos()).collect();
//! let e3: Vec<f32> = (0..256).map(|i| (i as f32 * 1.7).cos()).collect();
//! let (h1, h2, h3) = (protector.binary(&e1)?, protector.binary(&e2)?, protector.binary(&e3)?);
//! assert!(h1.similarity(&h2)? > 0.9);
//! assert!(h1.similarity(&h3)? < 0.8);
//! // A template made with another key does not match, even for the same embedding.
//! let other = Protector::new(&Key::from_seed(8), 256)?.binary(&e1)?;
//! assert!(h1.similarity(&other)? < 0.7);
//! # Ok::<(), nhm_template::Error>(())
//! ```
#![deny(missing_docs)]

pub mod classify;
pub mod error;
pub mod gallery;
pub mod hashmap;
pub mod kernel;
pub mod key;
pub mod protect;
pub mod threshold;

pub use classify::{Classifier, LinearConfig, LogisticClassifier, Mlp, MlpConfig, NearestCentroid, Softmax};
pub use error::{Error, Result};
pub use gallery::{Candidate, Fusion, Gallery};
pub use hashmap::{BinaryHashmap, DenseHashmap, Hashmap, HashmapKind, MAX_DIM};
pub use key::Key;
pub use protect::{Pepper, Protector, MAX_BLOCKS};
pub use threshold::Threshold;

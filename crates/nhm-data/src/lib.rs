//! Biometric samples and where they come from.
//!
//! A [`Sample`] is one grayscale image of one subject (a finger or a face), already brought to
//! the model's input size by [`preprocess`]. A [`Dataset`] is a list of samples with the layout it
//! was read from and the problems met while reading it. Samples come from the embedded synthetic
//! fingerprint generator ([`synth`], the default: nothing to download) or from real datasets on
//! disk ([`loaders`]: FVC, Neurotechnology, SOCOFing, AT&T/ORL faces, one folder per identity,
//! or a naming the user describes with a [`NamingRule`]).
#![deny(missing_docs)]

pub mod augment;
pub mod dataset;
pub mod error;
pub mod face;
pub mod fingerprint;
pub mod input;
pub mod loaders;
pub mod preprocess;
pub mod synth;

pub use dataset::{Dataset, Layout, Problem, Sample};
pub use error::{Error, Result};
pub use image::GrayImage;
pub use loaders::{image_dpi, NamingRule};

//! nhm-attack: the attacks on protected templates, run and measured (ISO/IEC 24745,
//! ISO/IEC 30136), and the defences measured against them.
//!
//! A security claim counts when an attack was run against it and failed. Every attack here takes
//! a seed, runs on subjects the encoder never saw ([`World::victims`]) with an attacker who
//! holds the white-box encoder and public data disjoint from the victims ([`World::public`]),
//! and reports its success at the system's operating threshold (FMR 0.1% on the victims'
//! impostor comparisons) with the number of attempts ([`Tally`]). [`Defences`] are the
//! switches a deployment can turn; the suite runs every attack under each of them.
#![deny(missing_docs)]

mod defence;
mod error;
mod known_sample;
mod linkage;
mod outcome;
mod suite;
mod wolf;
mod world;

mod inversion;
mod masquerade;
mod stolen;

pub use defence::{Defences, KeyPolicy};
pub use error::{Error, Result};
pub use known_sample::{known_sample, KnownSampleConfig, PairRegression};
pub use linkage::{linkage, DSYS_BINS};
pub use outcome::{AttackResult, Tally};
pub use suite::{
    recognition_cost, run_suite, AttackKind, DefenceRun, RecognitionCost, SuiteConfig, SuiteReport,
};
pub use wolf::{majority, wolf};
pub use world::{cosine, normalized, OperatingPoint, Population, World, OPERATING_FMR};

pub use inversion::{
    inversion, inversion_pictures, inversion_with, train_decoder, InversionConfig, INVERSION_SCENARIOS,
    KEY_POOL, RENEWALS,
};
pub use masquerade::{masquerade, MasqueradeConfig};

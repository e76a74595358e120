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
mod hill_climb;
mod inversion;
mod known_sample;
mod linkage;
mod masquerade;
mod oracle;
mod outcome;
mod replay;
mod service;
mod stolen;
mod suite;
mod wolf;
mod world;

pub use defence::{Defences, KeyPolicy, WHITENING_SHRINKAGE};
pub use error::{Error, Result};
pub use hill_climb::{hill_climb, Climb, Feedback};
pub use inversion::{
    inversion, inversion_pictures, inversion_with, train_decoder, InversionConfig, INVERSION_SCENARIOS,
    KEY_POOL, RENEWALS,
};
pub use known_sample::{known_sample, KnownSampleConfig, PairRegression};
pub use linkage::{linkage, DSYS_BINS, LINKAGE_SERVICE_PAIRS};
pub use masquerade::{masquerade, MasqueradeConfig};
pub use oracle::{service_config, Answer, HttpOracle, Oracle, ServiceHarness, UNLIMITED_ATTEMPTS};
pub use outcome::{AttackResult, Tally};
pub use replay::{replay, Replay};
pub use service::{enrolment, service_attacks, victim_id};
pub use suite::{
    recognition_cost, run_suite, AttackKind, DefenceRun, RecognitionCost, SuiteConfig, SuiteReport,
};
pub use wolf::{majority, wolf};
pub use world::{cosine, normalized, OperatingPoint, Population, World, OPERATING_FMR};

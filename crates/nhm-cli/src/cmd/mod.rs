//! One module per subcommand.

pub mod attack;
pub mod bench;
pub mod client;
pub mod dataset;
pub mod demo;
pub mod encode;
pub mod eval;
pub mod face;
pub mod fed;
pub mod fed_client;
pub mod harden;
pub mod key;
pub mod serve;
pub mod synth;
pub mod train;
pub mod whiten;

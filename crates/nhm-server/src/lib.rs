//! nhm-server: the hashmap service. It stores and matches hashmaps (protected templates) and
//! never sees a biometric (DESIGN.md §1, §6).
//!
//! - [`api::app`]: the axum application (routes under `/v1`, `/healthz`, `/metrics`), driven
//!   in-process by the tests;
//! - [`store::TemplateStore`] with [`store::EmbeddedStore`] (redb, default) and
//!   [`store::PostgresStore`] (several replicas);
//! - [`auth`]: bearer tokens with roles, stored hashed, compared in constant time;
//! - [`lockout`]: the per-subject limit on failed verifications;
//! - [`server::serve`]: opens the store, checks it against the configuration, serves HTTP(S);
//! - [`cli`]: `nhm serve` / `nhm-server` arguments (serve, `token new`, `seed-gallery`).
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod index;
pub mod lockout;
pub mod metrics;
pub mod server;
pub mod state;
pub mod store;

pub use api::app;
pub use auth::{Role, Tokens};
pub use config::Config;
pub use error::{ApiError, Error, Result};
pub use state::AppState;
pub use store::{EmbeddedStore, PostgresStore, TemplateStore};

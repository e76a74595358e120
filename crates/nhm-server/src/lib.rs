//! nhm-server: the hashmap service. It stores and matches hashmaps (protected templates) and
//! never sees a biometric (DESIGN.md §1, §6).
//!
//! Layers, each depending only on those below it:
//! - [`http`]: the axum application (routes under `/v1`, `/healthz`, `/metrics`), thin handlers
//!   split by resource, driven in-process by the tests; [`server`]: the listener around it;
//! - [`service::Service`]: every rule (durable-then-visible writes, attempt limits, pepper,
//!   threshold, audit), independent of HTTP;
//! - [`attempts`], [`audit`], [`auth`], [`index`] (the in-memory gallery), [`metrics`],
//!   [`fed`] (federated training: the round coordinator, when `[fed]` is configured);
//! - [`store::TemplateStore`] with [`store::EmbeddedStore`] (redb, default) and
//!   [`store::PostgresStore`] (several replicas);
//! - [`protocol`]: the request and response bodies, shared with the client commands.
#![deny(missing_docs)]

pub mod attempts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod fed;
pub mod http;
pub mod index;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod service;
pub mod store;

pub use auth::{Role, Tokens};
pub use config::Config;
pub use error::{ApiError, Error, Result};
pub use http::{app, AppState};
pub use service::Service;
pub use store::{EmbeddedStore, PostgresStore, TemplateStore};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

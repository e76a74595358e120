//! Integration tests of nhm-server: the HTTP API driven in-process, and one store test suite
//! run against both backends.

mod api;
mod common;
mod fed;
mod hardening;
mod limits;
mod store;

#!/usr/bin/env bash
# The project's test command (the README names it; .ci/run calls it).
# Every crate's unit, integration and doc tests. PostgreSQL-backed tests run when NHM_TEST_PG
# points at a server (they say loudly that they skipped otherwise, and fail instead under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"

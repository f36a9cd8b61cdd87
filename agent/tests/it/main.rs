//! End-to-end tests of keyward-agent against real OpenBao (dev server) and PostgreSQL.
//! Each test starts its own servers, so tests run in parallel.

mod fixture;

/// db profile: normal exit, kill -9 of the command, kill -9 of `run`.
mod db;
/// audit chain, planted secrets, status / revoke / metrics.
mod observability;
/// allow-list denial, JWT login and claims, PKI, child token + KV v2.
mod profiles;
/// kill -9 of the agent and restart; OpenBao unavailable during revocation.
mod recovery;

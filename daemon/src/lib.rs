//! keyward: the scanner.
//!
//! [`sources`] (directories, stdin, git history, container images, archives inside them) feed
//! bytes to one [`scan::Scan`], which runs the `keyward-detectors` engine, applies
//! [`suppress`]ion and collects [`finding::Finding`]s (one per place); [`group`] folds them into
//! one [`group::SecretFinding`] per secret, with a confidence level; [`report`] writes them as
//! text, JSON, JSONL or SARIF. [`hooks`] are the git hooks (pre-commit, pre-push, pre-receive). [`cli`]
//! declares the command line and [`cmd`] runs each command; `main.rs` only maps results to exit
//! codes.
//! [`store`] keeps the daemon's findings, job queue and scan state in SQLite or PostgreSQL.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
pub mod error;
pub mod finding;
pub mod group;
pub mod hooks;
pub mod prepare;
pub mod progress;
pub mod report;
pub mod scan;
pub mod serve;
pub mod sources;
pub mod store;
pub mod suppress;
/// Watchers that tell the daemon about new images: Docker engine events, registry polls.
pub mod watch;

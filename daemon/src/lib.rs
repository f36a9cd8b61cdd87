//! keyward: the scanner. Sources (directories, stdin; git and images in their modules) feed bytes
//! to one [`scan::Scan`], which runs the `keyward-detectors` engine, applies suppression and
//! collects [`finding::Finding`]s; [`report`] writes them as text, JSON, JSONL or SARIF.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod finding;
pub mod hooks;
pub mod progress;
pub mod report;
pub mod scan;
pub mod sources;
pub mod suppress;

//! Subcommands.

pub mod config;
pub mod findings;
pub mod git;
pub mod hook;
pub mod image;
pub mod rules;
pub mod scan;
pub mod serve;

pub use crate::error::{EXIT_CLEAN, EXIT_ERROR, EXIT_USAGE, UsageError};

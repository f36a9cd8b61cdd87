//! `keyward config example` and `keyward config check`.

#![allow(clippy::print_stdout)] // these commands answer on stdout

use super::UsageError;
use crate::config::{Config, EXAMPLE};
use anyhow::Result;
use std::path::Path;

/// Prints the documented example config.
pub fn example() -> Result<i32> {
    print!("{EXAMPLE}");
    Ok(super::EXIT_CLEAN)
}

/// Loads a config file and the rule files it names; binds and scans nothing.
pub fn check(file: &Path) -> Result<i32> {
    let mut config = Config::default();
    config
        .merge_file(file)
        .map_err(|e| UsageError(format!("{e:#}")))?;
    let rules = crate::prepare::load_rules(&[], &config, &[], &[])?;
    println!("{}: OK ({} rules enabled).", file.display(), rules.len());
    Ok(super::EXIT_CLEAN)
}

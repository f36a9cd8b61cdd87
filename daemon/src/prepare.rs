//! What every scan is built from, whoever starts it (a CLI command, a hook, the daemon): the
//! rule set (built-in rules plus rule files, minus disabled ones) and the scanner over it.

use crate::config::Config;
use crate::error::UsageError;
use anyhow::Result;
use keyward_detectors::{RuleSet, Scanner};
use std::path::PathBuf;
use std::sync::Arc;

/// Built-in rules plus rule files from flags and config, minus disabled ones.
///
/// # Errors
/// An unreadable or invalid rule file, as a [`UsageError`] naming the file, line and field.
pub fn load_rules(
    files: &[PathBuf],
    config: &Config,
    only: &[String],
    disable: &[String],
) -> Result<RuleSet> {
    let mut builder = RuleSet::builder();
    for f in files.iter().chain(&config.rule_files) {
        let text = fs_err::read_to_string(f).map_err(|e| UsageError(e.to_string()))?;
        builder = builder.add_source(f.display().to_string(), text);
    }
    if !only.is_empty() {
        builder = builder.only(only.iter().cloned());
    }
    builder = builder.disable(disable.iter().chain(&config.disabled_rules).cloned());
    let started = std::time::Instant::now();
    let rules = builder.build().map_err(|e| UsageError(e.to_string()))?;
    for w in rules.warnings() {
        tracing::warn!("Rule file: {w}");
    }
    tracing::debug!(
        rules = rules.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Rules compiled."
    );
    Ok(rules)
}

/// The scanner over `rules` with the config's decoding and validation settings; `no_decode` and
/// `keep_failed_validation` are the command line's overrides.
pub fn scanner(
    rules: Arc<RuleSet>,
    config: &Config,
    no_decode: bool,
    keep_failed_validation: bool,
) -> Scanner {
    Scanner::builder(rules)
        .decode_base64(!no_decode && config.decode_base64.unwrap_or(true))
        .keep_failed_validation(keep_failed_validation || config.keep_failed_validation)
        .build()
}

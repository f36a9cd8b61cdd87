//! `keyward rules list` and `keyward rules check`.

#![allow(clippy::print_stdout)] // these commands answer on stdout

use super::UsageError;
use crate::config::Config;
use anyhow::Result;
use keyward_detectors::{RuleSet, Scanner};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// `keyward rules list`.
pub fn list(files: &[PathBuf], json: bool) -> Result<i32> {
    let rules = crate::prepare::load_rules(files, &Config::default(), &[], &[])?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        let v: Vec<_> = rules
            .rules()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id().as_str(), "name": r.name(), "severity": r.severity().as_str(),
                    "confidence": r.confidence().base.as_str(),
                    "confidence_reasons": r.confidence().reasons.names().collect::<Vec<_>>(),
                    "keywords": r.keywords(), "validator": r.validator(), "source": r.source(),
                    "description": r.description(), "examples": r.examples(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        let w = rules
            .rules()
            .iter()
            .map(|r| r.id().as_str().len())
            .max()
            .unwrap_or(2);
        writeln!(
            out,
            "{:<w$}  {:<8}  {:<10}  NAME",
            "ID", "SEVERITY", "CONFIDENCE"
        )?;
        for r in rules.rules() {
            writeln!(
                out,
                "{:<w$}  {:<8}  {:<10}  {}",
                r.id().as_str(),
                r.severity().as_str(),
                r.confidence().base.as_str(),
                r.name()
            )?;
        }
        writeln!(out, "\n{} rules", rules.len())?;
    }
    Ok(super::EXIT_CLEAN)
}

/// `keyward rules check FILE…`: the files load (every error reported with file, line, rule and
/// field), and every rule's examples match and negatives do not, with the built-in rules beside
/// them (as a scan would run).
pub fn check(files: &[PathBuf]) -> Result<i32> {
    let mut user = RuleSet::builder().builtin(false);
    let mut all = RuleSet::builder();
    for f in files {
        let text = fs_err::read_to_string(f).map_err(|e| UsageError(e.to_string()))?;
        user = user.add_source(f.display().to_string(), text.clone());
        all = all.add_source(f.display().to_string(), text);
    }
    let user = user.build().map_err(|e| UsageError(e.to_string()))?;
    for w in user.warnings() {
        eprintln!("warning: {w}");
    }
    let scanner = Scanner::new(Arc::new(
        all.build().map_err(|e| UsageError(e.to_string()))?,
    ));
    let mut failures = Vec::new();
    for rule in user.rules() {
        let id = rule.id().as_str();
        for (i, ex) in rule.examples().iter().enumerate() {
            if !scanner
                .scan(ex.as_bytes())
                .iter()
                .any(|m| m.rule.as_str() == id)
            {
                failures.push(format!(
                    "{}: rule `{id}`: example #{} does not match",
                    rule.source(),
                    i + 1
                ));
            }
        }
        for (i, neg) in rule.negatives().iter().enumerate() {
            if scanner
                .scan(neg.as_bytes())
                .iter()
                .any(|m| m.rule.as_str() == id)
            {
                failures.push(format!(
                    "{}: rule `{id}`: negative #{} matches",
                    rule.source(),
                    i + 1
                ));
            }
        }
    }
    if failures.is_empty() {
        let n: usize = user
            .rules()
            .iter()
            .map(|r| r.examples().len() + r.negatives().len())
            .sum();
        println!(
            "{} rules OK ({n} examples and negatives checked).",
            user.len()
        );
        Ok(super::EXIT_CLEAN)
    } else {
        Err(UsageError(failures.join("\n")).into())
    }
}

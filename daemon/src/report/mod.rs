//! Report writers: `text` for people, `json`, `jsonl` and `sarif` for machines. Every format
//! writes one record per secret ([`SecretFinding`]); `--per-location` makes json, jsonl and
//! sarif write one per place instead.

mod sarif;
mod text;

use crate::group::{SecretFinding, SecretRecord};
use keyward_detectors::RuleSet;
use serde::Serialize;
use std::io::Write;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One block per secret, for people.
    Text,
    /// A JSON array of secrets.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// SARIF 2.1.0, as GitHub code scanning accepts it.
    Sarif,
}

/// What a report needs besides the findings.
pub struct ReportContext<'a> {
    /// Write secrets in clear (`--show-secrets`).
    pub show_secrets: bool,
    /// Rules, for SARIF's rule metadata.
    pub rules: &'a RuleSet,
    /// Colour the text format.
    pub color: bool,
    /// One record per place, not per secret (json, jsonl, sarif).
    pub per_location: bool,
}

/// Writes `secrets` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    secrets: &[SecretFinding],
    ctx: &ReportContext<'_>,
) -> std::io::Result<()> {
    match format {
        Format::Text => text::write(out, secrets, ctx),
        Format::Json => {
            if ctx.per_location {
                serde_json::to_writer_pretty(&mut *out, &per_location(secrets, ctx))?;
            } else {
                serde_json::to_writer_pretty(&mut *out, &records(secrets, ctx))?;
            }
            writeln!(out)
        }
        Format::Jsonl => {
            if ctx.per_location {
                lines(out, &per_location(secrets, ctx))
            } else {
                lines(out, &records(secrets, ctx))
            }
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif::log(secrets, ctx))?;
            writeln!(out)
        }
    }
}

fn records<'a>(secrets: &'a [SecretFinding], ctx: &ReportContext<'_>) -> Vec<SecretRecord<'a>> {
    secrets
        .iter()
        .map(|s| SecretRecord::new(s, ctx.show_secrets))
        .collect()
}

/// One record per place: each place's finding with the secret's fields.
fn per_location<'a>(
    secrets: &'a [SecretFinding],
    ctx: &ReportContext<'_>,
) -> Vec<SecretRecord<'a>> {
    secrets
        .iter()
        .flat_map(|s| {
            s.locations
                .iter()
                .map(move |l| SecretRecord::at(s, l, ctx.show_secrets))
        })
        .collect()
}

fn lines<T: Serialize>(out: &mut dyn Write, records: &[T]) -> std::io::Result<()> {
    for r in records {
        serde_json::to_writer(&mut *out, r)?;
        writeln!(out)?;
    }
    Ok(())
}

//! Report writers: `text` for people, `json`, `jsonl` and `sarif` for machines.

mod sarif;
mod text;

use crate::finding::{Finding, FindingRecord};
use keyward_detectors::RuleSet;
use std::io::Write;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One block per finding, for people.
    Text,
    /// A JSON array of findings.
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
}

/// Writes `findings` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> std::io::Result<()> {
    match format {
        Format::Text => text::write(out, findings, ctx),
        Format::Json => {
            let records: Vec<_> = findings
                .iter()
                .map(|f| FindingRecord::new(f, ctx.show_secrets))
                .collect();
            serde_json::to_writer_pretty(&mut *out, &records)?;
            writeln!(out)
        }
        Format::Jsonl => {
            for f in findings {
                serde_json::to_writer(&mut *out, &FindingRecord::new(f, ctx.show_secrets))?;
                writeln!(out)?;
            }
            Ok(())
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif::log(findings, ctx))?;
            writeln!(out)
        }
    }
}

//! The `text` report: one block per finding, grouped by nothing, sorted by place.

use super::ReportContext;
use crate::finding::Finding;
use keyward_detectors::Severity;
use std::io::Write;

pub(super) fn write(
    out: &mut dyn Write,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> std::io::Result<()> {
    for f in findings {
        let (on, off) = if ctx.color {
            (color(f.severity), "\x1b[0m")
        } else {
            ("", "")
        };
        let l = &f.location;
        let place = match (&l.path, &l.image) {
            (Some(p), _) => format!("{p}:{}:{}", l.line, l.column),
            (None, Some(img)) => format!("{img}:{}:{}", l.line, l.column),
            (None, None) => format!("{}:{}:{}", l.source, l.line, l.column),
        };
        writeln!(
            out,
            "{on}{:<8}{off} {}  {}",
            f.severity.as_str().to_uppercase(),
            f.rule_name,
            place
        )?;
        let secret = if ctx.show_secrets {
            String::from_utf8_lossy(f.secret.expose()).into_owned()
        } else {
            f.redacted.clone()
        };
        writeln!(out, "         secret       {secret}")?;
        writeln!(
            out,
            "         rule         {} (validation: {})",
            f.rule, f.validation
        )?;
        writeln!(out, "         fingerprint  {}", f.fingerprint)?;
        if let Some(d) = f.decoded {
            writeln!(out, "         decoded      from {d}")?;
        }
        if let Some(c) = &l.commit {
            let author = l.author.as_deref().unwrap_or("?");
            let date = l.date.as_deref().unwrap_or("?");
            writeln!(out, "         commit       {c} ({author}, {date})")?;
            if let Some(s) = &l.summary {
                writeln!(out, "         summary      {s}")?;
            }
            if let Some(h) = l.in_head {
                writeln!(
                    out,
                    "         in HEAD      {}",
                    if h { "yes" } else { "no (still in history)" }
                )?;
            }
        }
        if let Some(layer) = &l.layer {
            let idx = l.layer_index.map_or(String::new(), |i| format!("#{i} "));
            writeln!(
                out,
                "         layer        {idx}{layer}{}",
                if l.deleted { " (deleted later)" } else { "" }
            )?;
            if let Some(c) = &l.created_by {
                writeln!(out, "         created by   {c}")?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

fn color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "\x1b[1;35m",
        Severity::High => "\x1b[1;31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
        Severity::Info => "\x1b[2m",
    }
}

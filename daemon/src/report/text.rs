//! The `text` report: one block per secret, sorted by the place it began, with the first few
//! other places and a count of the rest.

use super::ReportContext;
use crate::finding::Location;
use crate::group::SecretFinding;
use keyward_detectors::Severity;
use std::io::Write;

/// Other places listed under a secret before "and N more".
const PLACES_SHOWN: usize = 3;

pub(super) fn write(
    out: &mut dyn Write,
    secrets: &[SecretFinding],
    ctx: &ReportContext<'_>,
) -> std::io::Result<()> {
    for s in secrets {
        let f = &s.first;
        let (on, off) = if ctx.color {
            (color(f.severity), "\x1b[0m")
        } else {
            ("", "")
        };
        let l = &f.location;
        writeln!(
            out,
            "{on}{:<8}{off} {}  {}",
            f.severity.as_str().to_uppercase(),
            f.rule_name,
            place(l)
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
        let reasons: Vec<_> = s.assessment.reasons.names().collect();
        writeln!(
            out,
            "         confidence   {} ({})",
            s.confidence(),
            reasons.join(", ")
        )?;
        writeln!(out, "         fingerprint  {}", f.fingerprint)?;
        if let Some(d) = f.decoded {
            writeln!(out, "         decoded      from {d}")?;
        }
        if let Some(c) = &l.commit {
            let author = l.author.as_deref().unwrap_or("?");
            let date = l.date.as_deref().unwrap_or("?");
            writeln!(out, "         began        commit {c} ({author}, {date})")?;
            if let Some(summary) = &l.summary {
                writeln!(out, "         summary      {summary}")?;
            }
        }
        if let Some(h) = s.in_head() {
            writeln!(
                out,
                "         in HEAD      {}",
                if h { "yes" } else { "no (still in history)" }
            )?;
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
        let others = &s.locations[1..];
        if !others.is_empty() {
            let n = others.len();
            let plural = if n == 1 { "" } else { "s" };
            writeln!(out, "         also at      {n} more place{plural}:")?;
            for o in others.iter().take(PLACES_SHOWN) {
                writeln!(out, "           {}", place_with_origin(o))?;
            }
            if others.len() > PLACES_SHOWN {
                writeln!(out, "           and {} more", others.len() - PLACES_SHOWN)?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `path:line:column`, or the image or the input kind when there is no path.
fn place(l: &Location) -> String {
    match (&l.path, &l.image) {
        (Some(p), _) => format!("{p}:{}:{}", l.line, l.column),
        (None, Some(img)) => format!("{img}:{}:{}", l.line, l.column),
        (None, None) => format!("{}:{}:{}", l.source, l.line, l.column),
    }
}

/// A place with its commit or layer.
fn place_with_origin(l: &Location) -> String {
    let mut s = place(l);
    if let Some(c) = &l.commit {
        s.push_str(&format!(" (commit {})", c.get(..12).unwrap_or(c)));
    } else if let Some(i) = l.layer_index {
        s.push_str(&format!(" (layer #{i})"));
    }
    s
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

//! Suppression: what the user said not to report.
//!
//! - `keyward:allow` on the line of a finding (optionally with a reason after it);
//! - `.keywardignore`: one fingerprint per line, `#` comments;
//! - `[allowlist]` path and secret regexes in `keyward.toml`;
//! - `--baseline FILE`: an earlier JSON or JSONL report; secrets whose fingerprint is in it are
//!   not reported again, wherever they are now (lines shift, files move and are copied; the
//!   fingerprint names the secret).

use crate::config::Config;
use crate::finding::Finding;
use anyhow::{Context, Result};
use keyward_detectors::Fingerprint;
use std::collections::HashSet;
use std::path::Path;

/// The marker that allows a finding on its line.
pub const ALLOW_MARKER: &[u8] = b"keyward:allow";
/// The ignore file's name.
pub const IGNORE_FILE: &str = ".keywardignore";

/// Why a finding was suppressed (counted in the summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `keyward:allow` on the line.
    Inline,
    /// Fingerprint in `.keywardignore`.
    Ignored,
    /// Path or secret allowlist.
    Allowlist,
    /// In the baseline.
    Baseline,
}

/// Whether the line holding `offset` in `input` carries `keyward:allow`.
pub fn allowed_inline(input: &[u8], offset: usize) -> bool {
    let offset = offset.min(input.len());
    let start = memchr::memrchr(b'\n', &input[..offset]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &input[offset..]).map_or(input.len(), |i| offset + i);
    // Bounded: a 100 MB single-line file must not make each finding cost 100 MB.
    let lo = start.max(offset.saturating_sub(4096));
    let hi = end.min(offset + 4096);
    memchr::memmem::find(&input[lo..hi], ALLOW_MARKER).is_some()
}

/// Fingerprints and baseline entries, plus the config's allowlists.
#[derive(Debug, Default)]
pub struct Suppressor {
    ignored: HashSet<Fingerprint>,
    baseline: HashSet<Fingerprint>,
    allow_paths: Vec<regex::Regex>,
    allow_secrets: Vec<regex::Regex>,
}

impl Suppressor {
    /// Builds from config, ignore files found in `roots`, and an optional baseline.
    pub fn new(
        config: &Config,
        roots: &[std::path::PathBuf],
        baseline: Option<&Path>,
    ) -> Result<Suppressor> {
        let mut s = Suppressor {
            allow_paths: config.allow_paths.clone(),
            allow_secrets: config.allow_secrets.clone(),
            ..Suppressor::default()
        };
        for root in roots {
            let file = if root.is_dir() {
                root.join(IGNORE_FILE)
            } else {
                continue;
            };
            if file.is_file() {
                s.add_ignore_file(&file)?;
            }
        }
        if let Some(b) = baseline {
            s.add_baseline(b)?;
        }
        Ok(s)
    }

    /// Adds the fingerprints of an ignore file.
    pub fn add_ignore_file(&mut self, path: &Path) -> Result<()> {
        let text = fs_err::read_to_string(path)?;
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let fp = Fingerprint::parse(entry).with_context(|| {
                format!(
                    "{}:{}: not a fingerprint (32 hex digits): {entry:?}",
                    path.display(),
                    i + 1
                )
            })?;
            self.ignored.insert(fp);
        }
        Ok(())
    }

    /// Adds the findings of an earlier `json` or `jsonl` report.
    pub fn add_baseline(&mut self, path: &Path) -> Result<()> {
        let text = fs_err::read_to_string(path)?;
        let records: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JSON report", path.display()))?
        } else {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, l)| {
                    serde_json::from_str(l).with_context(|| {
                        format!("{}:{}: not a JSONL report line", path.display(), i + 1)
                    })
                })
                .collect::<Result<_>>()?
        };
        for r in records {
            let fp = r["fingerprint"]
                .as_str()
                .with_context(|| format!("{}: a finding has no \"fingerprint\"", path.display()))?;
            let fp = Fingerprint::parse(fp).with_context(|| {
                format!(
                    "{}: {fp:?} is not a fingerprint (32 hex digits)",
                    path.display()
                )
            })?;
            self.baseline.insert(fp);
        }
        Ok(())
    }

    /// Why `f` is suppressed, if it is (inline allows are checked by the sources, which have
    /// the bytes).
    pub fn check(&self, f: &Finding) -> Option<Reason> {
        if self.ignored.contains(&f.fingerprint) {
            return Some(Reason::Ignored);
        }
        if let Some(p) = &f.location.path
            && self.allow_paths.iter().any(|re| re.is_match(p))
        {
            return Some(Reason::Allowlist);
        }
        if !self.allow_secrets.is_empty() {
            let s = String::from_utf8_lossy(f.secret.expose());
            if self.allow_secrets.iter().any(|re| re.is_match(&s)) {
                return Some(Reason::Allowlist);
            }
        }
        if self.baseline.contains(&f.fingerprint) {
            return Some(Reason::Baseline);
        }
        None
    }

    /// Whether a path is allowlisted (so a source can skip reading it).
    pub fn path_allowed(&self, path: &str) -> bool {
        self.allow_paths.iter().any(|re| re.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::allowed_inline;

    #[test]
    fn inline_marker_applies_to_its_line_only() {
        let input = b"a = 1\ntoken = x # keyward:allow test fixture\nb = 2\n";
        assert!(allowed_inline(input, 10));
        assert!(!allowed_inline(input, 2));
        assert!(!allowed_inline(input, input.len() - 2));
    }
}

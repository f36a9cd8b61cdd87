//! [`Scan`]: one scan run — the scanner, suppression, counters and the findings collected so
//! far. Every source (dir, stdin, git, image) feeds bytes into the same `Scan`.

use crate::finding::{Finding, Location};
use crate::suppress::{Reason, Suppressor, allowed_inline};
use keyward_detectors::{CANARY_RULE_ID, Match, Scanner, StreamScanner};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Counters of a scan, updated from every worker thread. The one place scanned work is counted:
/// the CLI's summary and the daemon's metrics both read these.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files (or blobs, or entries) scanned.
    pub files: AtomicU64,
    /// Bytes scanned.
    pub bytes: AtomicU64,
    /// Image layers read and scanned (a layer met again in the same run is not counted twice).
    pub layers: AtomicU64,
    /// Findings reported.
    pub findings: AtomicU64,
    /// Findings suppressed (allow comment, ignore file, allowlist, baseline).
    pub suppressed: AtomicU64,
    /// Files skipped (binary, too large, allowlisted).
    pub skipped: AtomicU64,
    /// Inputs that could not be read; each was reported and the scan went on.
    pub errors: AtomicU64,
}

/// One scan run.
pub struct Scan {
    scanner: Scanner,
    suppressor: Suppressor,
    rule_names: HashMap<String, String>,
    findings: Mutex<Vec<Finding>>,
    /// Counters.
    pub stats: Stats,
    /// When the scan started.
    pub started: Instant,
}

impl Scan {
    /// A scan with this scanner and suppressor.
    pub fn new(scanner: Scanner, suppressor: Suppressor) -> Scan {
        let mut rule_names: HashMap<String, String> = scanner
            .rules()
            .rules()
            .iter()
            .map(|r| (r.id().to_string(), r.name().to_owned()))
            .collect();
        rule_names.insert(
            CANARY_RULE_ID.to_owned(),
            "keyward canary (a credential issued by keyward-agent)".to_owned(),
        );
        Scan {
            scanner,
            suppressor,
            rule_names,
            findings: Mutex::new(Vec::new()),
            stats: Stats::default(),
            started: Instant::now(),
        }
    }

    /// The scanner.
    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    /// The suppressor.
    pub fn suppressor(&self) -> &Suppressor {
        &self.suppressor
    }

    /// Scans `input` found at `location` (line and column are filled in per finding). Returns
    /// the number of findings recorded.
    pub fn scan_bytes(&self, input: &[u8], location: &Location) -> usize {
        self.stats.files.fetch_add(1, Relaxed);
        self.stats.bytes.fetch_add(input.len() as u64, Relaxed);
        let kept = self.matches(input);
        if kept.is_empty() {
            return 0;
        }
        self.record(kept, location)
    }

    /// The engine's matches in `input`, minus those a `keyward:allow` comment on their line
    /// covers (counted as suppressed). Counts nothing else: callers count files and bytes.
    pub fn matches(&self, input: &[u8]) -> Vec<Match> {
        let mut found = self.scanner.scan(input);
        found.retain(|m| !self.allowed_at(input, m.span.start));
        found
    }

    /// Whether the line holding `at` in `buf` carries `keyward:allow`; if so the match there
    /// is counted as suppressed. Streaming scans pass this as their filter.
    pub fn allowed_at(&self, buf: &[u8], at: usize) -> bool {
        let allowed = allowed_inline(buf, at);
        if allowed {
            self.stats.suppressed.fetch_add(1, Relaxed);
        }
        allowed
    }

    /// Scans a stream in constant memory; `keyward:allow` is honoured as in [`Scan::scan_bytes`].
    ///
    /// # Errors
    /// A read error; findings before it are kept.
    pub fn scan_reader(
        &self,
        mut reader: impl Read,
        location: &Location,
    ) -> std::io::Result<usize> {
        self.stats.files.fetch_add(1, Relaxed);
        let mut stream =
            StreamScanner::new(&self.scanner).with_filter(|buf, at| !self.allowed_at(buf, at));
        let mut buf = vec![0u8; 256 * 1024];
        let mut found = Vec::new();
        let mut recorded = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.stats.bytes.fetch_add(n as u64, Relaxed);
            stream.push(&buf[..n], &mut found);
            if !found.is_empty() {
                recorded += self.record(std::mem::take(&mut found), location);
            }
        }
        stream.finish(&mut found);
        recorded += self.record(found, location);
        Ok(recorded)
    }

    /// Turns matches into findings, applies suppression, stores them.
    pub fn record(&self, matches: Vec<Match>, location: &Location) -> usize {
        let mut kept = Vec::new();
        for m in matches {
            let name = self
                .rule_names
                .get(m.rule.as_str())
                .map_or("", String::as_str);
            let f = Finding::from_match(m, name, location.clone());
            if self.suppressed(&f).is_some() {
                continue;
            }
            kept.push(f);
        }
        let n = kept.len();
        if n > 0 {
            self.stats.findings.fetch_add(n as u64, Relaxed);
            self.findings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(kept);
        }
        n
    }

    /// Records an already-built finding (sources with their own attribution use this).
    pub fn record_finding(&self, f: Finding) -> bool {
        if self.suppressed(&f).is_some() {
            return false;
        }
        self.stats.findings.fetch_add(1, Relaxed);
        self.findings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(f);
        true
    }

    fn suppressed(&self, f: &Finding) -> Option<Reason> {
        let r = self.suppressor.check(f);
        if r.is_some() {
            self.stats.suppressed.fetch_add(1, Relaxed);
        }
        r
    }

    /// Reports an input that could not be read; the scan goes on.
    pub fn error(&self, what: &str, err: &dyn std::fmt::Display) {
        self.stats.errors.fetch_add(1, Relaxed);
        tracing::warn!(input = what, error = %err, "Could not scan input; continuing.");
    }

    /// Counts a skipped input, with the reason at debug level.
    pub fn skipped(&self, what: &str, why: &str) {
        self.stats.skipped.fetch_add(1, Relaxed);
        tracing::debug!(input = what, reason = why, "Skipped.");
    }

    /// Takes the findings collected so far, sorted by place.
    pub fn take_findings(&self) -> Vec<Finding> {
        let mut v = std::mem::take(
            &mut *self
                .findings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        v.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        v
    }
}

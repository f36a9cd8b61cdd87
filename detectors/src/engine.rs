//! [`Scanner`]: the two-stage matcher.
//!
//! Stage one finds every keyword of every rule in a single pass ([`crate::keywords`]).
//! Each hit opens a window of the rule's `window` bytes on both sides; windows of the same rule
//! that touch are merged, so overlapping windows never report a match twice. Stage two runs each
//! rule's regex only inside its windows. See `detectors/DESIGN.md`.

use crate::canary::{CANARY_RULE_ID, Canaries};
use crate::encoded;
use crate::placeholder::is_placeholder;
use crate::{
    Assessment, Confidence, Encoding, Fingerprint, Match, Reasons, RuleId, RuleSet, Secret,
    Severity, Validation,
};
use std::ops::Range;
use std::sync::Arc;

/// How far a window edge may move outward to avoid cutting a token in half.
const EDGE_EXTEND: usize = 256;

/// Scans bytes with a [`RuleSet`] and a set of [`Canaries`]. Cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Scanner {
    rules: Arc<RuleSet>,
    canaries: Arc<Canaries>,
    decode_base64: bool,
    keep_failed_validation: bool,
    canary_rule: RuleId,
}

/// Builds a [`Scanner`].
#[derive(Debug)]
pub struct ScannerBuilder {
    rules: Arc<RuleSet>,
    canaries: Option<Arc<Canaries>>,
    decode_base64: bool,
    keep_failed_validation: bool,
}

impl ScannerBuilder {
    /// Share this canary set (default: a new empty one).
    #[must_use]
    pub fn canaries(mut self, canaries: Arc<Canaries>) -> Self {
        self.canaries = Some(canaries);
        self
    }
    /// Decode base64 runs and scan the decoded bytes too (default: on).
    #[must_use]
    pub fn decode_base64(mut self, yes: bool) -> Self {
        self.decode_base64 = yes;
        self
    }
    /// Report matches whose validator failed, marked as such (default: off, they are dropped).
    #[must_use]
    pub fn keep_failed_validation(mut self, yes: bool) -> Self {
        self.keep_failed_validation = yes;
        self
    }
    /// The scanner.
    pub fn build(self) -> Scanner {
        Scanner {
            rules: self.rules,
            canaries: self.canaries.unwrap_or_default(),
            decode_base64: self.decode_base64,
            keep_failed_validation: self.keep_failed_validation,
            canary_rule: RuleId::new(CANARY_RULE_ID),
        }
    }
}

/// A window of one rule: (rule index, byte range).
type Window = (u32, Range<usize>);

impl Scanner {
    /// A builder over these rules.
    pub fn builder(rules: Arc<RuleSet>) -> ScannerBuilder {
        ScannerBuilder {
            rules,
            canaries: None,
            decode_base64: true,
            keep_failed_validation: false,
        }
    }

    /// A scanner with default options.
    pub fn new(rules: Arc<RuleSet>) -> Scanner {
        Scanner::builder(rules).build()
    }

    /// The rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The canary set; add and remove literals through it while scans run.
    pub fn canaries(&self) -> &Arc<Canaries> {
        &self.canaries
    }

    /// The largest number of bytes of context a match may need on either side of its keyword.
    /// Streaming scans keep at least this much overlap.
    pub fn max_context(&self) -> usize {
        self.rules.rules.iter().map(|r| r.window).max().unwrap_or(0)
            + EDGE_EXTEND
            + encoded::MIN_RUN
    }

    /// Scans `input`, returning matches sorted by position.
    ///
    /// # Example
    /// ```
    /// use keyward_detectors::{RuleSet, Scanner};
    /// use std::sync::Arc;
    /// let scanner = Scanner::new(Arc::new(RuleSet::builtin().unwrap()));
    /// assert!(scanner.scan(b"nothing to see here").is_empty());
    /// ```
    pub fn scan(&self, input: &[u8]) -> Vec<Match> {
        let mut out = Vec::new();
        let mut windows = Vec::new();
        self.scan_plain(input, &mut windows, &mut out);
        if self.decode_base64 {
            encoded::for_each_decoded(input, |d| {
                let mut inner = Vec::new();
                self.scan_plain(&d.bytes, &mut windows, &mut inner);
                for mut m in inner {
                    m.span = d.span.clone();
                    m.encoding = Some(Encoding::Base64);
                    out.push(m);
                }
            });
        }
        finish(input, &mut out);
        out
    }

    /// Rules and canaries over plain bytes; spans are relative to `input`, lines not yet set.
    fn scan_plain(&self, input: &[u8], windows: &mut Vec<Window>, out: &mut Vec<Match>) {
        windows.clear();
        let rs = &*self.rules;
        rs.keywords.for_each_hit(input, |hit| {
            for &r in &rs.keyword_rules[hit.keyword as usize] {
                let w = rs.rules[r as usize].window;
                windows.push((
                    r,
                    hit.start.saturating_sub(w)..(hit.end + w).min(input.len()),
                ));
            }
        });
        if !windows.is_empty() {
            windows.sort_unstable_by_key(|(r, w)| (*r, w.start));
            let mut current: Option<Window> = None;
            for (r, w) in windows.drain(..) {
                match &mut current {
                    Some((cr, cw)) if *cr == r && w.start <= cw.end => cw.end = cw.end.max(w.end),
                    _ => {
                        if let Some((cr, cw)) = current.take() {
                            self.confirm(input, cr, cw, out);
                        }
                        current = Some((r, w));
                    }
                }
            }
            if let Some((cr, cw)) = current {
                self.confirm(input, cr, cw, out);
            }
        }
        self.canaries
            .snapshot()
            .find(input, |span, fp, label, value| {
                out.push(Match {
                    rule: self.canary_rule.clone(),
                    severity: Severity::Critical,
                    span,
                    line: 0,
                    column: 0,
                    entropy: crate::shannon_entropy(value) as f32,
                    validation: Validation::Canary,
                    fingerprint: fp.clone(),
                    encoding: None,
                    assessment: Assessment {
                        base: Confidence::High,
                        reasons: Reasons::NONE,
                    },
                    label: Some(label.clone()),
                    secret: Secret::new(value.to_vec()),
                });
            });
    }

    /// Runs rule `r`'s regex in `window` and keeps what survives the filters.
    fn confirm(&self, input: &[u8], r: u32, window: Range<usize>, out: &mut Vec<Match>) {
        let rule = &self.rules.rules[r as usize];
        let window = widen(input, window);
        let hay = &input[window.clone()];
        for caps in rule.regex.captures_iter(hay) {
            let Some(s) = rule.secret_of(&caps) else {
                continue;
            };
            let secret = s.as_bytes();
            if secret.is_empty() || rule.allow.iter().any(|a| a.is_match(secret)) {
                continue;
            }
            if !rule.skip_placeholder_filter && is_placeholder(secret) {
                continue;
            }
            let entropy = crate::shannon_entropy(secret);
            if rule.min_entropy.is_some_and(|min| entropy < min) {
                continue;
            }
            let validation = rule
                .validator
                .map_or(Validation::NotChecked, |v| v.check(secret));
            if matches!(validation, Validation::Failed(_)) && !self.keep_failed_validation {
                continue;
            }
            let span = window.start + s.start()..window.start + s.end();
            out.push(Match {
                assessment: assess(rule.start, input, &span, validation),
                rule: rule.id.clone(),
                severity: rule.severity,
                span,
                line: 0,
                column: 0,
                entropy: entropy as f32,
                validation,
                fingerprint: Fingerprint::of(rule.id.as_str(), secret),
                encoding: None,
                label: None,
                secret: Secret::new(secret.to_vec()),
            });
        }
    }
}

/// The rule's starting confidence with what the value and the code around it add.
fn assess(start: Assessment, input: &[u8], span: &Range<usize>, v: Validation) -> Assessment {
    let line_start = memchr::memrchr(b'\n', &input[..span.start]).map_or(0, |i| i + 1);
    let before = &input[line_start.max(span.start.saturating_sub(256))..span.start];
    let mut reasons = crate::value_reasons(&input[span.clone()], before);
    if matches!(v, Validation::Failed(_)) {
        reasons |= Reasons::VALIDATION_FAILED;
    }
    if crate::in_test_code(input, span.start) {
        reasons |= Reasons::TEST_CODE;
    }
    start.with(reasons)
}

/// Moves window edges outward (at most [`EDGE_EXTEND`] bytes) until they no longer sit inside a
/// token, so a regex never sees half a credential at a window edge.
fn widen(input: &[u8], w: Range<usize>) -> Range<usize> {
    let tokenish =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.');
    let mut start = w.start;
    let floor = start.saturating_sub(EDGE_EXTEND);
    while start > floor && tokenish(input[start - 1]) {
        start -= 1;
    }
    let mut end = w.end;
    let ceil = (end + EDGE_EXTEND).min(input.len());
    while end < ceil && tokenish(input[end]) {
        end += 1;
    }
    start..end
}

/// Sorts, removes duplicates and generic matches shadowed by a specific one, sets lines.
fn finish(input: &[u8], out: &mut Vec<Match>) {
    out.sort_unstable_by(|a, b| {
        (
            a.span.start,
            a.span.end,
            a.rule.as_str(),
            a.fingerprint.as_str(),
        )
            .cmp(&(
                b.span.start,
                b.span.end,
                b.rule.as_str(),
                b.fingerprint.as_str(),
            ))
    });
    out.dedup_by(|b, a| a.span == b.span && a.rule == b.rule && a.fingerprint == b.fingerprint);
    // A `generic-*` rule match is dropped when a specific rule found a secret overlapping it.
    let specific: Vec<Range<usize>> = out
        .iter()
        .filter(|m| !m.rule.as_str().starts_with("generic-"))
        .map(|m| m.span.clone())
        .collect();
    if specific.len() != out.len() {
        out.retain(|m| {
            !m.rule.as_str().starts_with("generic-")
                || !specific
                    .iter()
                    .any(|s| s.start < m.span.end && m.span.start < s.end)
        });
    }
    let mut line = 1u64;
    let mut line_start = 0usize;
    let mut pos = 0usize;
    for m in out.iter_mut() {
        let at = m.span.start;
        for nl in memchr::memchr_iter(b'\n', &input[pos..at]) {
            line += 1;
            line_start = pos + nl + 1;
        }
        pos = at;
        m.line = line;
        m.column = (at - line_start + 1) as u64;
    }
}

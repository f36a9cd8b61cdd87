//! [`Match`]: what the engine reports for one secret at one place.

use crate::{Assessment, Fingerprint, RuleId, Secret, Severity, Validation};
use std::ops::Range;
use std::sync::Arc;

/// How the secret was encoded where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Inside a base64 run that the engine decoded; the match's span is the run's.
    Base64,
}

impl Encoding {
    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
        }
    }
}

/// One secret found at one place in the input.
///
/// `Debug` never shows the secret: it is a [`Secret`].
#[derive(Debug, Clone)]
pub struct Match {
    /// The rule that matched (`keyward-canary` for exact-match canaries).
    pub rule: RuleId,
    /// The rule's severity.
    pub severity: Severity,
    /// Byte span of the secret in the input. For a secret found inside a decoded blob, the span
    /// of the whole encoded blob.
    pub span: Range<usize>,
    /// 1-based line of `span.start`.
    pub line: u64,
    /// 1-based byte column of `span.start`.
    pub column: u64,
    /// Shannon entropy of the secret, bits per byte.
    pub entropy: f32,
    /// What the rule's validator said.
    pub validation: Validation,
    /// Stable hash of rule id and secret.
    pub fingerprint: Fingerprint,
    /// Set when the secret was found by decoding the input.
    pub encoding: Option<Encoding>,
    /// How sure the engine is that this is a credential, from the rule, the value and the
    /// code around it (the path is the caller's to add: [`crate::path_reasons`]).
    pub assessment: Assessment,
    /// The label given to a canary when it was added (e.g. a lease id); `None` for rules.
    pub label: Option<Arc<str>>,
    /// The secret itself.
    pub secret: Secret<Vec<u8>>,
}

impl Match {
    /// Redacted form of the secret, safe to log and store.
    pub fn redacted(&self) -> String {
        crate::redact(self.secret.expose())
    }
}

//! One rule: its TOML form ([`RawRule`]) and its compiled form ([`Rule`]).

use crate::confidence::{Assessment, Confidence, Reasons};
use crate::validate::Validator;
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// Default number of bytes searched on each side of a keyword hit.
pub const DEFAULT_WINDOW: usize = 256;
/// Largest window a rule may ask for. Streaming scans keep twice this much overlap between
/// chunks, so a match is never lost at a chunk boundary.
pub const MAX_WINDOW: usize = 16 * 1024;
/// Compiled-size limit of one rule's regex. Rules come from users' config files too, and a
/// pattern like `\w{1000}{1000}` must fail to load rather than eat memory (see "Untrusted input"
/// in the regex crate's docs). 4 MiB is 20× what the largest built-in rule needs.
const REGEX_SIZE_LIMIT: usize = 4 << 20;
/// Lazy-DFA cache per regex; bounded for the same reason.
const REGEX_DFA_SIZE_LIMIT: usize = 2 << 20;

/// A rule's identifier, e.g. `github-pat`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(Arc<str>);

impl RuleId {
    /// Wraps an id.
    pub fn new(id: &str) -> RuleId {
        RuleId(Arc::from(id))
    }
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// How bad a leak of this kind of credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; rarely a usable credential alone.
    Info,
    /// A credential with narrow reach.
    Low,
    /// A credential with real reach, or a likely one.
    Medium,
    /// A credential that grants broad access (cloud keys, VCS tokens, private keys).
    High,
    /// A credential keyward knows to be live: a canary issued by the broker.
    Critical,
}

impl Severity {
    /// Lowercase name, as in TOML and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule file: `[[rule]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuleFile {
    #[serde(default)]
    pub(crate) rule: Vec<toml::Spanned<RawRule>>,
}

/// A rule as written in TOML. Field docs are the rule-file reference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRule {
    /// Stable id, `[a-z0-9-]+`. Part of every fingerprint: never rename a shipped rule.
    pub(crate) id: Option<String>,
    /// Short human name.
    pub(crate) name: Option<String>,
    /// What the credential is and what to do about a leak.
    #[serde(default)]
    pub(crate) description: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub(crate) severity: Option<toml::Spanned<String>>,
    /// Literals (matched ASCII-case-insensitively) that must occur near a match.
    #[serde(default)]
    pub(crate) keywords: Option<toml::Spanned<Vec<String>>>,
    /// Regex (`regex` crate syntax, on bytes) with a named group `secret`.
    pub(crate) regex: Option<toml::Spanned<String>>,
    /// Minimum Shannon entropy (bits/byte) of the secret.
    pub(crate) min_entropy: Option<toml::Spanned<f64>>,
    /// Offline validator: `github-checksum`, `npm-checksum`, `pem-private-key`, `jwt`,
    /// `matrix-checksum`, `bech32`, `base58check`.
    pub(crate) validator: Option<toml::Spanned<String>>,
    /// Bytes searched on each side of a keyword hit (default 256, at most 16384).
    pub(crate) window: Option<toml::Spanned<i64>>,
    /// Regexes; a secret matching any of them is not reported.
    #[serde(default)]
    pub(crate) allow: Option<toml::Spanned<Vec<String>>>,
    /// Skip the shared placeholder filter (for rules whose secrets are structured, e.g. PEM).
    #[serde(default)]
    pub(crate) skip_placeholder_filter: bool,
    /// `low`, `medium` or `high`: the confidence a match starts at. Default: `high` when the
    /// rule has a validator or its secret starts with a fixed prefix, else `medium`.
    pub(crate) confidence: Option<toml::Spanned<String>>,
    /// Inputs that must match, each yielding at least one finding of this rule.
    #[serde(default)]
    pub(crate) examples: Vec<String>,
    /// Inputs that must not match.
    #[serde(default)]
    pub(crate) negatives: Vec<String>,
}

/// A compiled rule. Immutable; shared by every scan.
pub struct Rule {
    pub(crate) id: RuleId,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) severity: Severity,
    pub(crate) keywords: Vec<String>,
    pub(crate) regex: Regex,
    pub(crate) secret_group: usize,
    /// gitleaks' `secretGroup = 0` on a regex with groups: the secret is the first non-empty
    /// capture group, or the whole match if all are empty (set by [`crate::gitleaks`]).
    pub(crate) first_nonempty_group: bool,
    pub(crate) min_entropy: Option<f64>,
    pub(crate) validator: Option<Validator>,
    pub(crate) window: usize,
    pub(crate) allow: Vec<Regex>,
    pub(crate) skip_placeholder_filter: bool,
    pub(crate) start: Assessment,
    pub(crate) examples: Vec<String>,
    pub(crate) negatives: Vec<String>,
    pub(crate) source: String,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Rule {
    /// The rule's id.
    pub fn id(&self) -> &RuleId {
        &self.id
    }
    /// Short human name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Longer description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Severity of a finding of this rule.
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// The keywords that trigger the regex.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }
    /// The regex source.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }
    /// The validator's name, if any.
    pub fn validator(&self) -> Option<&'static str> {
        self.validator.map(Validator::name)
    }
    /// The confidence a match of this rule starts at, and why.
    pub fn confidence(&self) -> Assessment {
        self.start
    }
    /// Inputs that must produce a finding of this rule.
    pub fn examples(&self) -> &[String] {
        &self.examples
    }
    /// Inputs that must not produce a finding of this rule.
    pub fn negatives(&self) -> &[String] {
        &self.negatives
    }
    /// Where the rule came from (`builtin:aws.toml`, or a user's file).
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl Rule {
    /// The secret in one regex match.
    pub(crate) fn secret_of<'h>(
        &self,
        caps: &regex::bytes::Captures<'h>,
    ) -> Option<regex::bytes::Match<'h>> {
        if self.first_nonempty_group {
            return caps
                .iter()
                .skip(1)
                .flatten()
                .find(|m| !m.is_empty())
                .or_else(|| caps.get(0));
        }
        caps.get(self.secret_group)
    }
}

/// Line (1-based) of a byte offset in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    memchr::memchr_iter(b'\n', &text.as_bytes()[..offset.min(text.len())]).count() + 1
}

/// Compiles a raw rule, pushing every problem found into `errors`.
pub(crate) fn compile(
    raw: toml::Spanned<RawRule>,
    file: &str,
    text: &str,
    errors: &mut Vec<crate::Error>,
) -> Option<Rule> {
    let rule_line = line_of(text, raw.span().start);
    let raw = raw.into_inner();
    let id = raw.id.clone().unwrap_or_default();
    let before = errors.len();
    let mut fail = |field: &'static str, at: Option<usize>, message: String| {
        errors.push(crate::Error::new(crate::ErrorKind::Rule {
            file: file.to_owned(),
            line: at.map_or(rule_line, |o| line_of(text, o)),
            rule: id.clone(),
            field,
            message,
        }));
    };

    match &raw.id {
        None => fail("id", None, "missing".into()),
        Some(s)
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            fail(
                "id",
                None,
                "must be non-empty and use only a-z, 0-9 and '-'".into(),
            );
        }
        Some(_) => {}
    }
    if raw.name.as_deref().is_none_or(str::is_empty) {
        fail("name", None, "missing".into());
    }
    let severity = match &raw.severity {
        None => {
            fail("severity", None, "missing".into());
            Severity::Medium
        }
        Some(s) => Severity::parse(s.get_ref()).unwrap_or_else(|| {
            fail(
                "severity",
                Some(s.span().start),
                format!(
                    "`{}` is not one of info, low, medium, high, critical",
                    s.get_ref()
                ),
            );
            Severity::Medium
        }),
    };
    let keywords: Vec<String> = match &raw.keywords {
        None => {
            fail(
                "keywords",
                None,
                "missing: every rule needs at least one keyword".into(),
            );
            Vec::new()
        }
        Some(k) if k.get_ref().is_empty() => {
            fail(
                "keywords",
                Some(k.span().start),
                "empty: every rule needs at least one keyword".into(),
            );
            Vec::new()
        }
        Some(k) => {
            if let Some(short) = k.get_ref().iter().find(|w| w.len() < 3) {
                fail(
                    "keywords",
                    Some(k.span().start),
                    format!(
                        "keyword {short:?} is shorter than 3 bytes and would match almost everywhere"
                    ),
                );
            }
            k.get_ref().clone()
        }
    };
    let (regex, secret_group) = match &raw.regex {
        None => {
            fail("regex", None, "missing".into());
            (None, 0)
        }
        Some(r) => match RegexBuilder::new(r.get_ref())
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
            .build()
        {
            Err(e) => {
                fail(
                    "regex",
                    Some(r.span().start),
                    format!("does not compile: {e}"),
                );
                (None, 0)
            }
            Ok(re) => {
                let group = re.capture_names().position(|n| n == Some("secret"));
                if group.is_none() {
                    fail(
                        "regex",
                        Some(r.span().start),
                        "has no named group `secret`".into(),
                    );
                }
                (Some(re), group.unwrap_or(0))
            }
        },
    };
    let min_entropy = raw.min_entropy.as_ref().and_then(|e| {
        let v = *e.get_ref();
        if (0.0..=8.0).contains(&v) {
            Some(v)
        } else {
            fail(
                "min-entropy",
                Some(e.span().start),
                format!("{v} is outside 0.0..=8.0 bits per byte"),
            );
            None
        }
    });
    let validator = raw.validator.as_ref().and_then(|v| {
        let parsed = Validator::parse(v.get_ref());
        if parsed.is_none() {
            fail(
                "validator",
                Some(v.span().start),
                format!(
                    "unknown validator `{}` (known: {})",
                    v.get_ref(),
                    Validator::NAMES.join(", ")
                ),
            );
        }
        parsed
    });
    let window = match &raw.window {
        None => DEFAULT_WINDOW,
        Some(w) => match usize::try_from(*w.get_ref()) {
            Ok(n) if (1..=MAX_WINDOW).contains(&n) => n,
            _ => {
                fail(
                    "window",
                    Some(w.span().start),
                    format!("must be 1..={MAX_WINDOW} bytes"),
                );
                DEFAULT_WINDOW
            }
        },
    };
    let mut allow = Vec::new();
    if let Some(a) = &raw.allow {
        for p in a.get_ref() {
            match RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).build() {
                Ok(re) => allow.push(re),
                Err(e) => fail(
                    "allow",
                    Some(a.span().start),
                    format!("pattern {p:?} does not compile: {e}"),
                ),
            }
        }
    }
    let derived = regex.as_ref().map_or(Reasons::KEYWORD_AND_VALUE, |re| {
        starting_reasons(re.as_str(), validator.is_some())
    });
    let base = match &raw.confidence {
        None if derived == Reasons::KEYWORD_AND_VALUE => Confidence::Medium,
        None => Confidence::High,
        Some(c) => Confidence::parse(c.get_ref()).unwrap_or_else(|| {
            fail(
                "confidence",
                Some(c.span().start),
                format!("`{}` is not one of low, medium, high", c.get_ref()),
            );
            Confidence::Medium
        }),
    };
    if errors.len() > before {
        return None;
    }
    Some(Rule {
        id: RuleId::new(&id),
        name: raw.name.unwrap_or_default(),
        description: raw.description,
        severity,
        keywords,
        regex: regex?,
        secret_group,
        first_nonempty_group: false,
        min_entropy,
        validator,
        window,
        allow,
        skip_placeholder_filter: raw.skip_placeholder_filter,
        start: Assessment {
            base,
            reasons: derived,
        },
        examples: raw.examples,
        negatives: raw.negatives,
        source: file.to_owned(),
    })
}

/// Why a rule starts where it does: a validator checks structure, a fixed prefix at the start
/// of the secret group (`ghp_`, `AKIA`, `xoxb-`: at least 3 bytes on every branch) names the
/// provider; anything else is a keyword and a value.
fn starting_reasons(pattern: &str, validator: bool) -> Reasons {
    if validator {
        return Reasons::CHECKSUM_VERIFIED;
    }
    if secret_prefix(pattern).is_some_and(|min| min >= 3) {
        Reasons::PROVIDER_PREFIX
    } else {
        Reasons::KEYWORD_AND_VALUE
    }
}

/// The length of the shortest fixed prefix of the `secret` group, if every way into it starts
/// with one.
fn secret_prefix(pattern: &str) -> Option<usize> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    use regex_syntax::hir::{Hir, HirKind};
    fn secret(h: &Hir) -> Option<&Hir> {
        match h.kind() {
            HirKind::Capture(c) if c.name.as_deref() == Some("secret") => Some(&c.sub),
            HirKind::Capture(c) => secret(&c.sub),
            HirKind::Repetition(r) => secret(&r.sub),
            HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().find_map(secret),
            _ => None,
        }
    }
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let seq = Extractor::new()
        .kind(ExtractKind::Prefix)
        .extract(secret(&hir)?);
    let lits = seq.literals()?;
    lits.iter().map(|l| l.as_bytes().len()).min()
}

#[cfg(test)]
mod tests {
    use super::secret_prefix;

    #[test]
    fn secret_prefixes() {
        assert_eq!(
            secret_prefix(r"\b(?P<secret>ghp_[A-Za-z0-9]{36})\b"),
            Some(4)
        );
        assert_eq!(
            secret_prefix(r"(?i)token\s*=\s*(?P<secret>xox[bp]-[0-9]+)"),
            Some(5)
        );
        assert_eq!(
            secret_prefix(r"(?P<secret>(?:AKIA|ASIA)[0-9A-Z]{16})"),
            Some(4)
        );
        assert_eq!(secret_prefix(r"password\s*=\s*(?P<secret>[^\s]{8,})"), None);
        assert_eq!(secret_prefix(r"(?P<secret>sk-[a-z]+|[0-9a-f]{32})"), None);
        assert_eq!(secret_prefix(r"no group at all"), None);
    }
}

//! [`SecretFinding`]: one secret, with every place it was found and where it began. What every
//! report writes by default, and what the daemon's store keeps (one row per fingerprint, its
//! places beside it).
//!
//! A source reports a [`Finding`] per place (a blob of each version of a file, a layer, a file);
//! [`group`] folds them by fingerprint. The place a secret **began** is the earliest: in git the
//! commit with the oldest date, in an image the lowest layer, elsewhere the first in path order.

use crate::finding::{Finding, Location};
use keyward_detectors::{Assessment, Confidence, Reasons};
use std::collections::HashMap;

/// One secret and every place it was found.
#[derive(Debug)]
pub struct SecretFinding {
    /// The finding where the secret began; its `location` is the first of `locations`.
    pub first: Finding,
    /// Every place, the one where it began first, the rest in report order.
    pub locations: Vec<Location>,
    /// Confidence over all places: the most confident place's, lowered once more when the
    /// secret also stands in documentation.
    pub assessment: Assessment,
}

impl SecretFinding {
    /// The confidence level.
    pub fn confidence(&self) -> Confidence {
        self.assessment.level()
    }

    /// Git: whether the secret is still at the tip of the default branch at any of its places.
    pub fn in_head(&self) -> Option<bool> {
        self.locations
            .iter()
            .filter_map(|l| l.in_head)
            .reduce(|a, b| a || b)
    }
}

/// The order in which places count as earlier: dated places (git commits, images) by date, then
/// lower layers, then path, line and column.
fn began_key(l: &Location) -> (i64, u32, Option<&str>, Option<&str>, u64, u64) {
    (
        l.time().unwrap_or(i64::MAX),
        l.layer_index.unwrap_or(u32::MAX),
        l.path.as_deref(),
        l.commit.as_deref(),
        l.line,
        l.column,
    )
}

/// Folds per-place findings into one per secret (by fingerprint), in the order of the places
/// where they began (sorted by [`Finding::sort_key`]).
pub fn group(findings: Vec<Finding>) -> Vec<SecretFinding> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Vec<Finding>> = Vec::new();
    for f in findings {
        match index.get(f.fingerprint.as_str()) {
            Some(&i) => groups[i].push(f),
            None => {
                index.insert(f.fingerprint.as_str().to_owned(), groups.len());
                groups.push(vec![f]);
            }
        }
    }
    let mut out: Vec<SecretFinding> = groups.into_iter().map(fold).collect();
    out.sort_by(|a, b| a.first.sort_key().cmp(&b.first.sort_key()));
    out
}

fn fold(mut places: Vec<Finding>) -> SecretFinding {
    // Report order (path, commit, line), which reads better than date order in a long list;
    // then the place it began moves to the front (dates are parsed once per place).
    places.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let began = places
        .iter()
        .enumerate()
        .min_by_key(|(_, f)| began_key(&f.location))
        .map_or(0, |(i, _)| i);
    let first = places.remove(began);
    places.insert(0, first);
    let mut assessment = places
        .iter()
        .map(|f| f.assessment)
        .max_by_key(Assessment::level)
        .expect("a group has a place");
    if places
        .iter()
        .any(|f| f.assessment.reasons.contains(Reasons::DOCUMENTATION_PATH))
        && !assessment.reasons.contains(Reasons::DOCUMENTATION_PATH)
    {
        assessment = assessment.with(Reasons::SEEN_IN_DOCUMENTATION);
    }
    let locations = places.iter().map(|f| f.location.clone()).collect();
    let first = places.swap_remove(0);
    SecretFinding {
        first,
        locations,
        assessment,
    }
}

/// Splits `secrets` into those at or above `min` and the number below it.
pub fn at_least(secrets: Vec<SecretFinding>, min: Confidence) -> (Vec<SecretFinding>, usize) {
    let (shown, hidden): (Vec<_>, Vec<_>) =
        secrets.into_iter().partition(|s| s.confidence() >= min);
    (shown, hidden.len())
}

/// The JSON shape of a secret (see the README): rule, severity, confidence and its reasons,
/// fingerprint, redacted form, `in_head`, the place it began as `location` and every place as
/// `locations`. With `--per-location`, one record per place: `location` is that place and there
/// is no `locations`. `secret` is present only when asked for.
#[derive(serde::Serialize)]
pub struct SecretRecord<'a> {
    rule: &'a str,
    rule_name: &'a str,
    severity: &'static str,
    confidence: &'static str,
    reasons: Vec<&'static str>,
    fingerprint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    redacted: &'a str,
    validation: &'static str,
    entropy: f32,
    decoded: Option<&'static str>,
    in_head: Option<bool>,
    location: &'a Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    locations: Option<&'a [Location]>,
}

impl<'a> SecretRecord<'a> {
    /// The record of `s`; with `show_secret`, the secret too (lossy UTF-8).
    pub fn new(s: &'a SecretFinding, show_secret: bool) -> SecretRecord<'a> {
        SecretRecord {
            locations: Some(&s.locations),
            ..SecretRecord::at(s, &s.first.location, show_secret)
        }
    }

    /// The record of `s` at one of its places, `l`.
    pub fn at(s: &'a SecretFinding, l: &'a Location, show_secret: bool) -> SecretRecord<'a> {
        let f = &s.first;
        SecretRecord {
            rule: &f.rule,
            rule_name: &f.rule_name,
            severity: f.severity.as_str(),
            confidence: s.confidence().as_str(),
            reasons: s.assessment.reasons.names().collect(),
            fingerprint: f.fingerprint.as_str(),
            secret: show_secret.then(|| String::from_utf8_lossy(f.secret.expose()).into_owned()),
            redacted: &f.redacted,
            validation: f.validation,
            entropy: f.entropy,
            decoded: f.decoded,
            in_head: s.in_head(),
            location: l,
            locations: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::SourceKind;
    use keyward_detectors::{Fingerprint, Secret, Severity};

    fn finding(secret: &str, loc: Location, reasons: Reasons) -> Finding {
        Finding {
            rule: "demo".into(),
            rule_name: "Demo".into(),
            severity: Severity::High,
            fingerprint: Fingerprint::of("demo", secret.as_bytes()),
            redacted: "x".into(),
            validation: "none",
            entropy: 4.0,
            decoded: None,
            secret: Secret::new(secret.as_bytes().to_vec()),
            assessment: Assessment {
                base: Confidence::High,
                reasons,
            },
            location: loc,
        }
    }

    fn git(path: &str, commit: &str, date: &str, in_head: bool) -> Location {
        Location {
            source: SourceKind::Git,
            path: Some(path.into()),
            line: 1,
            column: 1,
            commit: Some(commit.into()),
            date: Some(date.into()),
            in_head: Some(in_head),
            ..Location::default()
        }
    }

    #[test]
    fn one_secret_many_versions_began_at_the_oldest_commit() {
        let found = vec![
            finding(
                "a",
                git("b.txt", "c3", "2024-03-01T00:00:00Z", true),
                Reasons::NONE,
            ),
            finding(
                "a",
                git("a.txt", "c1", "2024-01-01T02:00:00+03:00", false),
                Reasons::NONE,
            ),
            finding(
                "z",
                git("z.txt", "c9", "2024-01-01T00:00:00Z", true),
                Reasons::NONE,
            ),
            finding(
                "a",
                git("a.txt", "c2", "2024-02-01T00:00:00Z", false),
                Reasons::NONE,
            ),
        ];
        let groups = group(found);
        assert_eq!(groups.len(), 2);
        let a = &groups[0];
        assert_eq!(a.first.location.commit.as_deref(), Some("c1"));
        let commits: Vec<_> = a.locations.iter().map(|l| l.commit.as_deref()).collect();
        assert_eq!(commits, [Some("c1"), Some("c2"), Some("c3")]);
        assert_eq!(a.in_head(), Some(true));
        assert_eq!(groups[1].locations.len(), 1);
    }

    #[test]
    fn documentation_elsewhere_lowers_the_secret() {
        let src = Location {
            path: Some("src/config.py".into()),
            ..Location::default()
        };
        let doc = Location {
            path: Some("README.md".into()),
            ..Location::default()
        };
        let groups = group(vec![
            finding("a", src, Reasons::PROVIDER_PREFIX),
            finding(
                "a",
                doc,
                Reasons::PROVIDER_PREFIX | Reasons::DOCUMENTATION_PATH,
            ),
        ]);
        assert_eq!(groups[0].confidence(), Confidence::Medium);
        let names: Vec<_> = groups[0].assessment.reasons.names().collect();
        assert_eq!(names, ["provider-prefix", "seen-in-documentation"]);
        let (shown, hidden) = at_least(groups, Confidence::High);
        assert_eq!((shown.len(), hidden), (0, 1));
    }
}

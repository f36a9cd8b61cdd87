//! [`Finding`]: one secret at one place, with where it was found. The unit every source
//! produces and every report writes.

use keyward_detectors::{Assessment, Confidence, Fingerprint, Match, Secret, Severity};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// What kind of input a finding was found in. A closed set: metrics label by it.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A file in a scanned directory (or an archive member inside one).
    #[default]
    File,
    /// Standard input (a build log).
    Stdin,
    /// A git object: a blob of the history, or a commit or tag message.
    Git,
    /// A container image: a layer's file, the config or the history.
    Image,
}

impl SourceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [SourceKind; 4] = [
        SourceKind::File,
        SourceKind::Stdin,
        SourceKind::Git,
        SourceKind::Image,
    ];

    /// The lowercase name (`file`, `stdin`, `git`, `image`), as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Stdin => "stdin",
            SourceKind::Git => "git",
            SourceKind::Image => "image",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding sits. Fields a source does not know stay `None` (`null` in JSON).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Location {
    /// What kind of input.
    pub source: SourceKind,
    /// Path of the file (relative to the scanned root where there is one); for archive members
    /// `outer.jar!inner/file`.
    pub path: Option<String>,
    /// 1-based line.
    pub line: u64,
    /// 1-based byte column.
    pub column: u64,
    /// Git: the commit that introduced the blob at this path.
    pub commit: Option<String>,
    /// Git: the commit's author (`Name <email>`).
    pub author: Option<String>,
    /// Git: the author date; image: when the image was built. RFC 3339.
    pub date: Option<String>,
    /// Git: the commit summary.
    pub summary: Option<String>,
    /// Git: whether the secret is still present at the tip of the default branch.
    pub in_head: Option<bool>,
    /// Image: name or reference.
    pub image: Option<String>,
    /// Image: layer digest.
    pub layer: Option<String>,
    /// Image: 0-based layer index.
    pub layer_index: Option<u32>,
    /// Image: the `created_by` of the layer's history entry.
    pub created_by: Option<String>,
    /// Image: the file was deleted or replaced by a later layer (it is still in the image).
    pub deleted: bool,
}

impl Location {
    /// `date` as unix seconds, if it parses.
    pub fn time(&self) -> Option<i64> {
        self.date.as_deref().and_then(parse_time)
    }
}

/// An RFC 3339 time (git dates, image `created`) as unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(s).ok().or_else(|| {
        // Offsets other than Z: humantime takes only UTC; shift by hand.
        let (base, sign, off) = split_offset(s)?;
        let t = humantime::parse_rfc3339_weak(base).ok()?;
        let d = Duration::from_secs(off);
        if sign > 0 {
            t.checked_sub(d)
        } else {
            t.checked_add(d)
        }
    })?;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

fn split_offset(s: &str) -> Option<(&str, i32, u64)> {
    let i = s.len().checked_sub(6)?;
    let (base, off) = s.split_at(i);
    let sign = match off.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: u64 = off.get(1..3)?.parse().ok()?;
    let m: u64 = off.get(4..6)?.parse().ok()?;
    Some((base, sign, h * 3600 + m * 60))
}

/// One secret found at one place.
///
/// `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Rule id.
    pub rule: String,
    /// Rule name (for people).
    pub rule_name: String,
    /// Severity.
    pub severity: Severity,
    /// Stable hash of rule id and secret.
    pub fingerprint: Fingerprint,
    /// Redacted form of the secret.
    pub redacted: String,
    /// Validator verdict (`none`, `checksum-ok`, …).
    pub validation: &'static str,
    /// Shannon entropy of the secret.
    pub entropy: f32,
    /// `base64` when found inside a decoded blob.
    pub decoded: Option<&'static str>,
    /// The secret; written only with `--show-secrets`.
    pub secret: Secret<Vec<u8>>,
    /// Confidence at this place: the engine's (rule, value, code around it) and the path's.
    pub assessment: Assessment,
    /// Where.
    pub location: Location,
}

impl Finding {
    /// A finding from an engine match and its location (whose line and column are taken from
    /// the match).
    pub fn from_match(m: Match, rule_name: &str, mut location: Location) -> Finding {
        location.line = m.line;
        location.column = m.column;
        let path = location.path.as_deref().map_or(
            keyward_detectors::Reasons::NONE,
            keyward_detectors::path_reasons,
        );
        Finding {
            assessment: m.assessment.with(path),
            redacted: m.redacted(),
            rule: m.rule.as_str().to_owned(),
            rule_name: rule_name.to_owned(),
            severity: m.severity,
            fingerprint: m.fingerprint,
            validation: m.validation.as_str(),
            entropy: (m.entropy * 1000.0).round() / 1000.0,
            decoded: m.encoding.map(keyward_detectors::Encoding::as_str),
            secret: m.secret,
            location,
        }
    }

    /// The confidence level at this place.
    pub fn confidence(&self) -> Confidence {
        self.assessment.level()
    }

    /// Sort key: path, line, column, rule.
    pub fn sort_key(&self) -> (Option<&str>, Option<&str>, u64, u64, &str) {
        (
            self.location.path.as_deref(),
            self.location.commit.as_deref(),
            self.location.line,
            self.location.column,
            &self.rule,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_parse_with_offsets() {
        assert_eq!(parse_time("2024-01-02T03:04:05Z"), Some(1_704_164_645));
        assert_eq!(parse_time("2024-01-02T05:04:05+02:00"), Some(1_704_164_645));
        assert_eq!(parse_time("2024-01-02T01:04:05-02:00"), Some(1_704_164_645));
        assert_eq!(
            parse_time("2024-01-02T03:04:05.123456789Z"),
            Some(1_704_164_645)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}

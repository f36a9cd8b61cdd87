//! Fingerprints: a stable name for "this secret, found by this rule".

use sha2::{Digest, Sha256};
use std::fmt;

/// Hex SHA-256 of `rule id || 0x00 || secret`, truncated to 128 bits (32 hex digits).
///
/// The same secret found in five places is one fingerprint with five locations. The
/// fingerprint is what logs, the findings store and `.keywardignore` files hold instead of the
/// secret. It is stable across versions: changing it would un-suppress every ignored finding.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprint of a secret found by the rule `rule_id`.
    ///
    /// # Example
    /// ```
    /// use keyward_detectors::Fingerprint;
    /// let a = Fingerprint::of("github-pat", b"ghp_x");
    /// assert_eq!(a, Fingerprint::of("github-pat", b"ghp_x"));
    /// assert_ne!(a, Fingerprint::of("npm-token", b"ghp_x"));
    /// assert_eq!(a.as_str().len(), 32);
    /// ```
    pub fn of(rule_id: &str, secret: &[u8]) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(rule_id.as_bytes());
        h.update([0u8]);
        h.update(secret);
        let digest = h.finalize();
        Fingerprint(hex::encode(&digest[..16]))
    }

    /// Parses a fingerprint written earlier (32 lowercase hex digits).
    pub fn parse(s: &str) -> Option<Fingerprint> {
        let s = s.trim();
        (s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Fingerprint(s.to_owned()))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

//! Identifiers and the revocable credential kinds recorded in the ledger.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A session id: 128 random bits, hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the OS random source works");
        Self(hex::encode(b))
    }

    /// Parses an id given by an operator.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(s.to_ascii_lowercase()))
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kernel's view of who connected (`SO_PEERCRED`), never what the client claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Process id (0 if unknown).
    pub pid: i32,
}

/// Something to revoke. No variant holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Credential {
    /// A lease (`sys/leases/revoke`).
    Lease {
        /// Profile that issued it.
        profile: String,
        /// The lease id.
        lease_id: String,
        /// Unix seconds after which it has certainly expired.
        expires: u64,
    },
    /// A token, by accessor (`auth/token/revoke-accessor`).
    Token {
        /// Profile, or `session` for the session token.
        profile: String,
        /// The accessor.
        accessor: String,
        /// Unix seconds.
        expires: u64,
    },
    /// A PKI certificate, by serial (`<mount>/revoke`).
    Cert {
        /// Profile.
        profile: String,
        /// PKI mount.
        mount: String,
        /// Serial number.
        serial: String,
        /// Unix seconds (the certificate's notAfter).
        expires: u64,
    },
}

impl Credential {
    /// The profile that issued it.
    pub fn profile(&self) -> &str {
        match self {
            Self::Lease { profile, .. }
            | Self::Token { profile, .. }
            | Self::Cert { profile, .. } => profile,
        }
    }

    /// When it has certainly expired.
    pub fn expires(&self) -> u64 {
        match self {
            Self::Lease { expires, .. }
            | Self::Token { expires, .. }
            | Self::Cert { expires, .. } => *expires,
        }
    }

    /// A short non-secret description for logs and the audit log.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain data serializes")
    }
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

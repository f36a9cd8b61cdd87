//! The local socket API: newline-delimited JSON over a Unix stream.
//!
//! One connection carries at most one session; the session ends when the client sends
//! `close` or when the connection closes (the client exited or was killed). Requests:
//! `{"op":"open","profiles":[..],"ttl_secs":N,"meta":{..},"jwt":".."}`, `{"op":"close"}`,
//! `{"op":"status"}`, `{"op":"revoke","session":ID}` / `{"op":"revoke","all":true}`.

pub mod client;
pub mod server;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::secret::Secret;

/// Longest request line accepted (a JWT plus metadata fits easily).
pub const MAX_LINE: usize = 64 * 1024;

/// A request from a client.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Open a session.
    Open {
        /// Profiles.
        profiles: Vec<String>,
        /// TTL in seconds.
        ttl_secs: Option<u64>,
        /// Build metadata.
        #[serde(default)]
        meta: BTreeMap<String, String>,
        /// Build JWT.
        jwt: Option<Secret<String>>,
    },
    /// End this connection's session.
    Close,
    /// List sessions (admins only).
    Status,
    /// Revoke a session or all (admins only).
    Revoke {
        /// Session id.
        session: Option<String>,
        /// Every session.
        #[serde(default)]
        all: bool,
    },
}

/// One credential in an `opened` response.
#[derive(Debug, Deserialize)]
pub struct WireCredential {
    /// Profile it came from.
    pub profile: String,
    /// Env var / file name.
    pub name: String,
    /// The value.
    pub value: Secret<String>,
}

/// A response or event from the agent.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Response {
    /// The session is open.
    Opened {
        /// Id.
        session: String,
        /// Unix seconds.
        deadline: u64,
        /// Values.
        credentials: Vec<WireCredential>,
    },
    /// The session ended at the client's request.
    Closed {
        /// Credentials revoked.
        revoked: usize,
        /// Still failing (retried by the agent).
        failed: usize,
    },
    /// The session ended for another reason (TTL, operator).
    Ended {
        /// Why.
        reason: String,
    },
    /// Status listing.
    Status {
        /// Sessions.
        sessions: serde_json::Value,
    },
    /// Operator revocation done.
    Revoked {
        /// Sessions ended.
        sessions: usize,
    },
    /// Failure.
    Error {
        /// Message (no secret).
        message: String,
        /// Denied by an allow-list.
        #[serde(default)]
        denied: bool,
    },
}

//! The audit log: append-only JSON lines, each chained to the previous one by SHA-256.
//!
//! A line is a JSON object with `seq`, `prev` (the previous line's `hash`, or 64 zeros) and
//! `hash` = hex(SHA-256(prev || "\n" || body)), where `body` is the line re-serialized without
//! its `hash` field. Editing, removing or reordering any line breaks the chain at that line.
//! NOTE: cutting lines off the *end* leaves a valid shorter chain; ship the log (or its last
//! hash) off the host to detect truncation.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

struct Inner {
    file: fs_err::File,
    prev: String,
    seq: u64,
}

/// The open audit log.
pub struct AuditLog {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

fn chain_hash(prev: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read audit log: {0}")]
    Io(#[from] std::io::Error),
    /// The chain breaks at `line` (1-based).
    #[error("audit log line {line}: {reason}")]
    Broken { line: usize, reason: String },
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log and continues its chain.
    pub fn open(path: &Path) -> Result<Self, VerifyError> {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let (prev, seq) = if path.exists() {
            let (lines, last) = verify_file(path)?;
            (last, lines as u64)
        } else {
            (GENESIS.to_owned(), 0)
        };
        let file = fs_err::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            inner: Mutex::new(Inner { file, prev, seq }),
        })
    }

    /// Appends one event. `fields` must hold no secret value (callers pass ids and metadata).
    pub fn record(&self, event: &str, fields: Value) {
        let mut obj = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        obj.insert("ts".into(), Value::String(ts));
        obj.insert("event".into(), Value::String(event.to_owned()));
        let mut inner = self.inner.lock().expect("audit lock poisoned");
        inner.seq += 1;
        obj.insert("seq".into(), json!(inner.seq));
        obj.insert("prev".into(), Value::String(inner.prev.clone()));
        let body = Value::Object(obj.clone()).to_string();
        let hash = chain_hash(&inner.prev, &body);
        obj.insert("hash".into(), Value::String(hash.clone()));
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        // One write(2) on an O_APPEND file: lines never interleave.
        if let Err(e) = inner.file.write_all(line.as_bytes()) {
            tracing::error!(error = %e, "Could not write the audit log.");
            return;
        }
        inner.prev = hash;
    }
}

/// Verifies a whole file; returns the line count and the last hash.
pub fn verify_file(path: &Path) -> Result<(usize, String), VerifyError> {
    let f = std::io::BufReader::new(fs_err::File::open(path)?);
    let mut prev = GENESIS.to_owned();
    let mut n = 0;
    for (i, line) in f.lines().enumerate() {
        let line = line?;
        let no = i + 1;
        let broken = |reason: &str| VerifyError::Broken {
            line: no,
            reason: reason.to_owned(),
        };
        let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(&line) else {
            return Err(broken("not a JSON object"));
        };
        let Some(Value::String(hash)) = obj.remove("hash") else {
            return Err(broken("no hash"));
        };
        if obj.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            return Err(broken(
                "does not follow the previous line (removed or reordered line)",
            ));
        }
        if obj.get("seq").and_then(Value::as_u64) != Some(no as u64) {
            return Err(broken("sequence number out of order"));
        }
        let body = Value::Object(obj).to_string();
        if chain_hash(&prev, &body) != hash {
            return Err(broken("hash mismatch (line edited)"));
        }
        prev = hash;
        n = no;
    }
    Ok((n, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("audit.jsonl");
        let log = AuditLog::open(&p).unwrap();
        for i in 0..5 {
            log.record(
                "issue",
                json!({"session": format!("s{i}"), "caller": {"uid": i}}),
            );
        }
        drop(log);
        // Reopening continues the chain.
        AuditLog::open(&p)
            .unwrap()
            .record("revoke", json!({"session": "s0"}));
        p
    }

    #[test]
    fn chain_verifies_and_continues_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        assert_eq!(verify_file(&p).unwrap().0, 6);
    }

    #[test]
    fn any_edit_removal_or_swap_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        let orig = fs_err::read_to_string(&p).unwrap();
        let lines: Vec<&str> = orig.lines().collect();
        let mut variants = Vec::new();
        for i in 0..lines.len() {
            let mut edited = lines.clone();
            let changed = lines[i]
                .replacen("\"uid\":", "\"uid\":1", 1)
                .replacen("s0", "s9", 1);
            let changed = if changed == lines[i] {
                lines[i].replacen("revoke", "issue", 1)
            } else {
                changed
            };
            edited[i] = &changed;
            variants.push(edited.join("\n"));
            let mut removed = lines.clone();
            removed.remove(i);
            if i + 1 < lines.len() {
                variants.push(removed.join("\n"));
                let mut swapped = lines.clone();
                swapped.swap(i, i + 1);
                variants.push(swapped.join("\n"));
            }
        }
        for v in variants {
            fs_err::write(&p, format!("{v}\n")).unwrap();
            assert!(verify_file(&p).is_err(), "tampering not detected:\n{v}");
        }
    }
}

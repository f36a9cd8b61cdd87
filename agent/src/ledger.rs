//! The lease ledger: what must be revoked, written durably before credentials are handed out.
//!
//! An append-only journal (`STATE_DIR/ledger.jsonl`, mode 0600) of `put` lines (a session's
//! whole record) and `del` lines. It holds lease ids, token accessors, PKI serials and expiry
//! times — never a secret value. On start the agent replays it, compacts it, and revokes
//! every session still in it.
//!
//! Durability, per write:
//! - before anything is issued, the session token's accessor is *written* (reaches the kernel:
//!   survives a crash or `kill -9` of the agent), and `fdatasync`ed while the credentials are
//!   being issued; values are handed out only after that sync completed;
//! - the lease ids, accessors and serials are written before values are handed out. They are
//!   synced only when the session holds a PKI certificate: after a power loss, revoking the
//!   (synced) session token by accessor revokes every lease and child token under it, but no
//!   token covers a certificate;
//! - `del` is not synced: if it is lost, the next start revokes again, which is harmless.
//!
//! NOTE: an earlier design kept one file per session (temp file, fsync, rename, directory
//! fsync); that cost four to five fsyncs per session, ~17 ms on the test machine's disk,
//! against one here.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fs_err::os::unix::fs::OpenOptionsExt as _;

use serde::{Deserialize, Serialize};

use crate::lease::{Caller, Credential, SessionId};

/// The ledger file format version; checked on load.
const VERSION: u32 = 1;

/// What the ledger knows about one session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRecord {
    /// Format version.
    pub version: u32,
    /// Session id.
    pub session: SessionId,
    /// Who opened it.
    pub caller: Caller,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds: the session token (and every lease under it) is gone by then.
    pub deadline: u64,
    /// The session token.
    pub session_token: Option<Credential>,
    /// Credentials issued to the build, in issue order.
    pub credentials: Vec<Credential>,
}

impl SessionRecord {
    /// A record for a new session.
    pub fn new(session: SessionId, caller: Caller, created: u64, deadline: u64) -> Self {
        Self {
            version: VERSION,
            session,
            caller,
            created,
            deadline,
            session_token: None,
            credentials: Vec::new(),
        }
    }

    /// Everything still to revoke: credentials first, the session token last.
    pub fn pending(&self) -> impl Iterator<Item = &Credential> {
        self.credentials.iter().chain(self.session_token.iter())
    }
}

/// How durable a write must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Written to the kernel: survives the agent's death, not the machine's.
    Written,
    /// `fdatasync`ed: survives a power loss.
    Synced,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Line {
    Put { rec: SessionRecord },
    Del { session: SessionId },
}

/// Compact the journal after this many appended lines.
const COMPACT_AFTER: usize = 20_000;

struct Inner {
    /// Shared so a sync can run outside the lock while other sessions append.
    file: std::sync::Arc<fs_err::File>,
    live: HashMap<SessionId, SessionRecord>,
    appended: usize,
}

/// The ledger journal.
pub struct Ledger {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn invalid(path: &Path, no: usize, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} line {no}: {e}", path.display()),
    )
}

impl Ledger {
    /// Opens (creating the directory with mode 0700) and replays the journal, then compacts it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("creating {}: {e}", dir.display()))
            })?;
        let path = dir.join("ledger.jsonl");
        let mut live = HashMap::new();
        if path.exists() {
            let text = fs_err::read(&path)?;
            let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            let last = lines.len().saturating_sub(1);
            for (i, line) in lines.iter().enumerate() {
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Line>(line) {
                    Ok(Line::Put { rec }) => {
                        if rec.version != VERSION {
                            return Err(invalid(
                                &path,
                                i + 1,
                                format!("ledger version {} (expected {VERSION})", rec.version),
                            ));
                        }
                        live.insert(rec.session.clone(), rec);
                    }
                    Ok(Line::Del { session }) => {
                        live.remove(&session);
                    }
                    // A torn final line: the write that never completed handed nothing out.
                    Err(_) if i == last => {}
                    Err(e) => return Err(invalid(&path, i + 1, e)),
                }
            }
        }
        let file = std::sync::Arc::new(Self::rewrite(&path, &live)?);
        Ok(Self {
            path,
            inner: Mutex::new(Inner {
                file,
                live,
                appended: 0,
            }),
        })
    }

    /// Writes `live` to a new journal atomically and returns it opened for appending.
    fn rewrite(
        path: &Path,
        live: &HashMap<SessionId, SessionRecord>,
    ) -> std::io::Result<fs_err::File> {
        let tmp = path.with_extension("tmp");
        let mut f = fs_err::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut buf = Vec::new();
        for rec in live.values() {
            serde_json::to_writer(&mut buf, &Line::Put { rec: rec.clone() })
                .map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        f.write_all(&buf)?;
        f.sync_data()?;
        drop(f);
        fs_err::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fs_err::File::open(dir)?.sync_all()?;
        }
        fs_err::OpenOptions::new().append(true).open(path)
    }

    fn append(
        &self,
        line: &Line,
        durability: Durability,
        apply: impl FnOnce(&mut HashMap<SessionId, SessionRecord>),
    ) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let file = {
            let mut inner = self.inner.lock().expect("ledger lock poisoned");
            // One write(2) on an O_APPEND file: lines never interleave.
            (&*inner.file).write_all(&bytes)?;
            apply(&mut inner.live);
            inner.appended += 1;
            if inner.appended >= COMPACT_AFTER {
                // The rewrite is synced itself.
                inner.file = std::sync::Arc::new(Self::rewrite(&self.path, &inner.live)?);
                inner.appended = 0;
                return Ok(());
            }
            inner.file.clone()
        };
        if durability == Durability::Synced {
            // Outside the lock: concurrent sessions append meanwhile (and share this sync).
            file.sync_data()?;
        }
        Ok(())
    }

    /// `fdatasync`s everything appended so far.
    pub fn sync(&self) -> std::io::Result<()> {
        let file = self
            .inner
            .lock()
            .expect("ledger lock poisoned")
            .file
            .clone();
        file.sync_data()
    }

    /// Records the session's current state.
    pub fn write(&self, rec: &SessionRecord, durability: Durability) -> std::io::Result<()> {
        let line = Line::Put { rec: rec.clone() };
        self.append(&line, durability, |live| {
            live.insert(rec.session.clone(), rec.clone());
        })
    }

    /// Marks a session fully revoked (not synced: losing it only means revoking again).
    pub fn remove(&self, id: &SessionId) -> std::io::Result<()> {
        let line = Line::Del {
            session: id.clone(),
        };
        self.append(&line, Durability::Written, |live| {
            live.remove(id);
        })
    }

    /// Every session still to revoke (from an earlier run, or pending retry).
    pub fn load_all(&self) -> Vec<SessionRecord> {
        let mut out: Vec<SessionRecord> = self
            .inner
            .lock()
            .expect("ledger lock poisoned")
            .live
            .values()
            .cloned()
            .collect();
        out.sort_by_key(|r| r.created);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> SessionRecord {
        let mut rec = SessionRecord::new(
            SessionId::random(),
            Caller {
                uid: 1,
                gid: 2,
                pid: 3,
            },
            10,
            20,
        );
        rec.credentials.push(Credential::Lease {
            profile: "db".into(),
            lease_id: "database/creds/x/abc".into(),
            expires: 20,
        });
        rec
    }

    #[test]
    fn replays_puts_and_dels_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (rec(), rec());
        {
            let ledger = Ledger::open(dir.path()).unwrap();
            ledger.write(&a, Durability::Written).unwrap();
            ledger.write(&b, Durability::Synced).unwrap();
            ledger.remove(&a.session).unwrap();
            assert_eq!(ledger.load_all(), vec![b.clone()]);
        }
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.load_all(), vec![b.clone()]);
        // Compacted on open: one line left.
        let text = fs_err::read_to_string(dir.path().join("ledger.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_corruption_elsewhere_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = rec();
        Ledger::open(dir.path())
            .unwrap()
            .write(&a, Durability::Synced)
            .unwrap();
        let path = dir.path().join("ledger.jsonl");
        let good = fs_err::read_to_string(&path).unwrap();
        fs_err::write(&path, format!("{good}{{\"op\":\"put\",\"rec\":{{")).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().load_all(), vec![a]);
        fs_err::write(&path, format!("garbage\n{good}")).unwrap();
        assert!(Ledger::open(dir.path()).is_err());
    }
}

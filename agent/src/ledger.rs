//! The lease ledger: what must be revoked, written durably before credentials are handed out.
//!
//! One JSON file per live session in the state directory, replaced atomically (write a temp
//! file, fsync, rename, fsync the directory). It holds lease ids, token accessors, PKI serials
//! and expiry times — never a secret value. On start the agent revokes everything it finds.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

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

/// The ledger directory.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    /// Opens (creating, mode 0700) the ledger directory.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let dir = dir.join("ledger");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("creating {}: {e}", dir.display()))
            })?;
        Ok(Self { dir })
    }

    fn path(&self, id: &SessionId) -> PathBuf {
        self.dir.join(format!("{}.json", id.as_str()))
    }

    /// Durably replaces the session's record.
    pub fn write(&self, rec: &SessionRecord) -> std::io::Result<()> {
        let path = self.path(&rec.session);
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        let mut f = fs_err::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_data()?;
        drop(f);
        fs_err::rename(&tmp, &path)?;
        self.sync_dir()
    }

    /// Removes a fully revoked session.
    pub fn remove(&self, id: &SessionId) -> std::io::Result<()> {
        match fs_err::remove_file(self.path(id)) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        fs_err::File::open(&self.dir)?.sync_all()
    }

    /// Every record left in the directory (by an earlier run, or pending retry).
    pub fn load_all(&self) -> std::io::Result<Vec<SessionRecord>> {
        let mut out = Vec::new();
        for entry in fs_err::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                // A write that never completed: its session handed nothing out under it.
                // NOTE: the previous complete version (if any) is still in place.
                fs_err::remove_file(&path)?;
                continue;
            }
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = fs_err::read(&path)?;
            let rec: SessionRecord = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            if rec.version != VERSION {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: ledger version {} (expected {VERSION})",
                        path.display(),
                        rec.version
                    ),
                ));
            }
            out.push(rec);
        }
        out.sort_by_key(|r| r.created);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let id = SessionId::random();
        let mut rec = SessionRecord::new(
            id.clone(),
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
        ledger.write(&rec).unwrap();
        assert_eq!(ledger.load_all().unwrap(), vec![rec]);
        ledger.remove(&id).unwrap();
        assert!(ledger.load_all().unwrap().is_empty());
    }
}

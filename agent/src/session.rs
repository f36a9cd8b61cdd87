//! Build sessions: open (authorize, session token, ledger, issue), keep renewed, end (revoke,
//! verify), and retry revocations that failed — also those left by an earlier run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::audit::AuditLog;
use crate::auth::{Auth, refresh_in};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::lease::{Caller, Credential, SessionId, now_unix};
use crate::ledger::{Durability, Ledger, SessionRecord};
use crate::metrics::Metrics;
use crate::profile::{self, Field};
use crate::secret::Secret;
use crate::vault::{VaultClient, VaultError};

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The caller is not allowed (audited).
    #[error("denied: profile {profile}: {reason}")]
    Denied { profile: String, reason: String },
    /// No such profile.
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    /// Bad request.
    #[error("{0}")]
    BadRequest(String),
    /// Vault failed; nothing was handed out and what was issued is being revoked.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The ledger could not be written; nothing was handed out.
    #[error("ledger write failed: {0}")]
    Ledger(#[from] std::io::Error),
}

/// A request to open a session (parsed from the socket).
#[derive(Debug)]
pub struct OpenRequest {
    /// Profiles to issue.
    pub profiles: Vec<String>,
    /// Requested TTL.
    pub ttl: Option<Duration>,
    /// Build metadata (job id, project...), audited; not trusted for authorization.
    pub meta: BTreeMap<String, String>,
    /// A CI id token, verified through Vault when a profile needs claims.
    pub jwt: Option<Secret<String>>,
}

/// An open session as returned to the socket handler.
#[derive(Debug)]
pub struct Opened {
    /// Id.
    pub id: SessionId,
    /// Unix seconds.
    pub deadline: u64,
    /// (profile, env name, value).
    pub fields: Vec<(String, Field)>,
    /// Fires when the session ends for any reason.
    pub ended: watch::Receiver<Option<String>>,
}

struct Live {
    record: Mutex<SessionRecord>,
    profiles: Vec<String>,
    meta: BTreeMap<String, String>,
    ended: watch::Sender<Option<String>>,
}

/// The broker.
pub struct Agent {
    cfg: Config,
    vault: VaultClient,
    auth: Arc<Auth>,
    ledger: Arc<Ledger>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
    live: Mutex<HashMap<SessionId, Arc<Live>>>,
    pending: Mutex<HashMap<SessionId, SessionRecord>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

fn caller_json(c: &Caller) -> Value {
    json!({"uid": c.uid, "gid": c.gid, "pid": c.pid})
}

/// Supplementary groups of a process, from `/proc/PID/status` (empty if it already exited).
pub fn supplementary_groups(pid: i32) -> Vec<u32> {
    let Ok(status) = fs_err::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Agent {
    /// Assembles the broker.
    pub fn new(
        cfg: Config,
        vault: VaultClient,
        auth: Arc<Auth>,
        ledger: Ledger,
        audit: AuditLog,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cfg,
            vault,
            auth,
            ledger: Arc::new(ledger),
            audit,
            metrics,
            live: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    fn metric_profile<'a>(&self, name: &'a str) -> &'a str {
        if self.cfg.profiles.contains_key(name) {
            name
        } else {
            "unknown"
        }
    }

    /// Revokes everything an earlier run left in the ledger (in the background).
    pub fn recover(self: &Arc<Self>) -> usize {
        let records = self.ledger.load_all();
        let n = records.len();
        for rec in records {
            for cred in rec.pending() {
                if cred.profile() != "session" {
                    self.metrics.adopted();
                }
            }
            info!(session = %rec.session, credentials = rec.credentials.len(), "Revoking a session left by an earlier run.");
            self.audit.record(
                "orphan",
                json!({"session": rec.session, "caller": caller_json(&rec.caller), "credentials": rec.credentials.iter().map(Credential::describe).collect::<Vec<_>>()}),
            );
            self.spawn_retry(rec, Duration::ZERO);
        }
        n
    }

    /// Opens a session for `caller`.
    pub async fn open(
        self: &Arc<Self>,
        caller: Caller,
        req: OpenRequest,
    ) -> Result<Opened, OpenError> {
        if req.profiles.is_empty() {
            return Err(OpenError::BadRequest("no profile requested".into()));
        }
        let mut profiles = Vec::with_capacity(req.profiles.len());
        for name in &req.profiles {
            let p = self
                .cfg
                .profiles
                .get(name)
                .ok_or_else(|| OpenError::UnknownProfile(name.clone()))?;
            profiles.push(p);
        }
        // Authorization: kernel credentials, then Vault-verified claims when a profile needs them.
        let groups = supplementary_groups(caller.pid);
        let needs_claims = profiles.iter().any(|p| !p.allow.claims.is_empty());
        let claims = match (&req.jwt, &self.cfg.caller_jwt, needs_claims) {
            (Some(jwt), Some(cj), true) => {
                let token = self.auth.verify_caller_jwt(&cj.mount, &cj.role, jwt).await;
                match token {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.metrics.vault_error(&e);
                        let reason = format!("build JWT not accepted by Vault: {e}");
                        return Err(self.deny(&caller, &req, &profiles[0].name, reason));
                    }
                }
            }
            _ => None,
        };
        for p in &profiles {
            if let Err(reason) = profile::check_allowed(&p.allow, &caller, &groups, claims.as_ref())
            {
                return Err(self.deny(&caller, &req, &p.name, reason));
            }
        }

        let max = profiles
            .iter()
            .map(|p| p.max_ttl)
            .min()
            .expect("at least one profile");
        let default = profiles
            .iter()
            .map(|p| p.default_ttl)
            .max()
            .expect("at least one profile");
        let ttl = req
            .ttl
            .unwrap_or(default)
            .min(max)
            .max(Duration::from_secs(1));
        let id = SessionId::random();
        let created = now_unix();
        let deadline = created + ttl.as_secs();
        let span = info_span!("session", id = %id);
        self.open_inner(id, caller, req, ttl, deadline, created, claims)
            .instrument(span)
            .await
    }

    fn deny(&self, caller: &Caller, req: &OpenRequest, profile: &str, reason: String) -> OpenError {
        self.metrics.denied(self.metric_profile(profile));
        warn!(uid = caller.uid, pid = caller.pid, profile, reason = %reason, "Denied a credential request.");
        self.audit.record(
            "deny",
            json!({"caller": caller_json(caller), "build": req.meta, "profile": profile, "profiles": req.profiles, "reason": reason}),
        );
        OpenError::Denied {
            profile: profile.to_owned(),
            reason,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn open_inner(
        self: &Arc<Self>,
        id: SessionId,
        caller: Caller,
        req: OpenRequest,
        ttl: Duration,
        deadline: u64,
        created: u64,
        claims: Option<BTreeMap<String, String>>,
    ) -> Result<Opened, OpenError> {
        let agent_token = self.auth.token()?;
        // 1. The session token: every credential is obtained under it, so revoking it (also by
        //    accessor after a crash) takes down anything the ledger might have missed.
        let secs = format!("{}s", ttl.as_secs());
        let body = json!({
            "ttl": secs, "explicit_max_ttl": secs, "renewable": false,
            "display_name": "keyward-session",
            "meta": {"keyward_session": id.as_str(), "uid": caller.uid.to_string(), "pid": caller.pid.to_string()},
        });
        let session_token = match self
            .vault
            .auth_call("auth/token/create", Some(&agent_token), &body)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                self.metrics.vault_error(&e);
                self.audit.record("error", json!({"session": id, "caller": caller_json(&caller), "build": req.meta, "profiles": req.profiles, "error": e.to_string()}));
                return Err(e.into());
            }
        };
        let mut record = SessionRecord::new(id.clone(), caller, created, deadline);
        record.session_token = Some(Credential::Token {
            profile: "session".into(),
            accessor: session_token.accessor.clone(),
            expires: deadline,
        });
        // 2. Ledger before anything is issued; its fsync overlaps the issuing round trips.
        if let Err(e) = self.ledger.write(&record, Durability::Written) {
            self.fail_open(record, &caller, &req, &e.to_string()).await;
            return Err(e.into());
        }
        let ledger = self.ledger.clone();
        let token_synced = tokio::task::spawn_blocking(move || ledger.sync());
        let (ended_tx, ended_rx) = watch::channel(None);
        let live = Arc::new(Live {
            record: Mutex::new(record.clone()),
            profiles: req.profiles.clone(),
            meta: req.meta.clone(),
            ended: ended_tx,
        });
        self.live
            .lock()
            .expect("lock")
            .insert(id.clone(), live.clone());
        self.metrics.session_delta(1);

        // 3. Issue.
        let mut fields = Vec::new();
        let mut renewables = Vec::new();
        for name in &req.profiles {
            let p = &self.cfg.profiles[name];
            let issued = profile::issue(
                &self.vault,
                p,
                &session_token.client_token,
                ttl,
                deadline,
                id.as_str(),
            )
            .await;
            match issued {
                Ok(issued) => {
                    self.metrics.issued(name);
                    let cred = issued.credential.as_ref().map(Credential::describe);
                    self.audit.record(
                        "issue",
                        json!({"session": id, "caller": caller_json(&caller), "build": req.meta, "claims": claims, "profile": name, "kind": p.kind.label(), "credential": cred, "deadline": deadline}),
                    );
                    if let Some(c) = issued.credential {
                        record.credentials.push(c);
                    }
                    if let Some(r) = issued.renewable {
                        renewables.push(r);
                    }
                    fields.extend(issued.fields.into_iter().map(|f| (name.clone(), f)));
                }
                Err(e) => {
                    self.metrics.vault_error(&e);
                    warn!(profile = %name, error = %e, "Could not issue a credential; ending the session.");
                    self.audit.record("error", json!({"session": id, "caller": caller_json(&caller), "build": req.meta, "profile": name, "error": e.to_string()}));
                    *live.record.lock().expect("lock") = record;
                    self.end(&id, "issue-failed").await;
                    return Err(e.into());
                }
            }
        }
        // 4. Ledger again, before the values leave the agent (see `ledger` for durability).
        *live.record.lock().expect("lock") = record.clone();
        let has_cert = record
            .credentials
            .iter()
            .any(|c| matches!(c, Credential::Cert { .. }));
        let written = match self.ledger.write(&record, Durability::Written) {
            Ok(()) => token_synced
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(e) => Err(e),
        };
        let synced = match written {
            Ok(()) if has_cert => {
                let ledger = self.ledger.clone();
                tokio::task::spawn_blocking(move || ledger.sync())
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
            other => other,
        };
        if let Err(e) = synced {
            tracing::error!(error = %e, "Could not write the ledger; revoking the session.");
            self.end(&id, "ledger-failed").await;
            return Err(e.into());
        }
        info!(uid = caller.uid, pid = caller.pid, profiles = ?req.profiles, ttl_secs = ttl.as_secs(), "Session opened.");
        self.spawn_keeper(id.clone(), ttl, renewables);
        Ok(Opened {
            id,
            deadline,
            fields,
            ended: ended_rx,
        })
    }

    async fn fail_open(
        self: &Arc<Self>,
        record: SessionRecord,
        caller: &Caller,
        req: &OpenRequest,
        error: &str,
    ) {
        self.audit.record("error", json!({"session": record.session, "caller": caller_json(caller), "build": req.meta, "error": error}));
        self.revoke_record(record, Instant::now()).await;
    }

    /// Ends the session at its TTL and renews its leases at 2/3 of their duration meanwhile.
    fn spawn_keeper(
        self: &Arc<Self>,
        id: SessionId,
        ttl: Duration,
        mut renewables: Vec<(String, Duration)>,
    ) {
        let this = self.clone();
        let Some(live) = self.live.lock().expect("lock").get(&id).cloned() else {
            return;
        };
        let mut ended = live.ended.subscribe();
        tokio::spawn(async move {
            let end_at = tokio::time::Instant::now() + ttl;
            let mut next: Vec<(String, tokio::time::Instant)> = renewables
                .drain(..)
                .filter(|(_, d)| *d < ttl)
                .map(|(l, d)| (l, tokio::time::Instant::now() + refresh_in(d)))
                .collect();
            loop {
                let wake = next
                    .iter()
                    .map(|(_, t)| *t)
                    .min()
                    .unwrap_or(end_at)
                    .min(end_at);
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    _ = ended.changed() => return,
                }
                if tokio::time::Instant::now() >= end_at {
                    this.end(&id, "ttl").await;
                    return;
                }
                let now = tokio::time::Instant::now();
                for (lease, at) in &mut next {
                    if *at > now {
                        continue;
                    }
                    let left = end_at.saturating_duration_since(now);
                    let renewed = match this.auth.token() {
                        Ok(t) => profile::renew(&this.vault, &t, lease, left).await,
                        Err(e) => Err(e),
                    };
                    match renewed {
                        Ok(d) => {
                            debug!(lease = %lease, secs = d.as_secs(), "Renewed a lease.");
                            this.audit.record(
                                "renew",
                                json!({"session": id, "lease_id": lease, "duration": d.as_secs()}),
                            );
                            *at = if d >= left {
                                end_at
                            } else {
                                now + refresh_in(d)
                            };
                        }
                        Err(e) => {
                            this.metrics.vault_error(&e);
                            warn!(lease = %lease, error = %e, "Could not renew a lease.");
                            *at = now + Duration::from_secs(5);
                        }
                    }
                }
            }
        });
    }

    /// Ends a session: revoke and verify every credential, then the session token.
    /// Returns `(revoked, failed)`, or `None` if the session was not live.
    pub async fn end(self: &Arc<Self>, id: &SessionId, reason: &str) -> Option<(usize, usize)> {
        let started = Instant::now();
        let live = self.live.lock().expect("lock").remove(id)?;
        self.metrics.session_delta(-1);
        let _ = live.ended.send(Some(reason.to_owned()));
        let record = live.record.lock().expect("lock").clone();
        info!(session = %id, reason, "Session ending.");
        self.audit.record("end", json!({"session": id, "reason": reason, "caller": caller_json(&record.caller), "build": live.meta, "profiles": live.profiles}));
        Some(self.revoke_record(record, started).await)
    }

    /// Revokes what `record` lists; whatever fails stays in the ledger and is retried.
    async fn revoke_record(
        self: &Arc<Self>,
        mut record: SessionRecord,
        started: Instant,
    ) -> (usize, usize) {
        let (done, failed) = self.attempt(&mut record).await;
        if failed == 0 {
            self.metrics.revocation_latency(started.elapsed());
            if let Err(e) = self.ledger.remove(&record.session) {
                warn!(error = %e, "Could not remove a ledger entry.");
            }
        } else {
            if let Err(e) = self.ledger.write(&record, Durability::Synced) {
                tracing::error!(error = %e, session = %record.session, "Could not update the ledger; revocation state may be lost on restart.");
            }
            self.spawn_retry(record, Duration::from_millis(250));
        }
        (done, failed)
    }

    /// One pass: credentials concurrently, then the session token. Removes what succeeded or
    /// has certainly expired.
    async fn attempt(self: &Arc<Self>, record: &mut SessionRecord) -> (usize, usize) {
        let token = match self.auth.token() {
            Ok(t) => Some(t),
            Err(e) => {
                debug!(error = %e, "No agent token for revocation yet.");
                None
            }
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, cred) in record.credentials.iter().enumerate() {
            let (vault, token, cred) = (self.vault.clone(), token.clone(), cred.clone());
            set.spawn(async move {
                let r = match &token {
                    Some(t) => profile::revoke(&vault, t, &cred).await,
                    None => Err(VaultError::Unavailable {
                        path: "auth".into(),
                        reason: "not logged in".into(),
                    }),
                };
                (i, r)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.expect("revocation task does not panic"));
        }
        results.sort_by_key(|(i, _)| *i);
        let creds = std::mem::take(&mut record.credentials);
        let mut done = 0;
        for ((_, result), cred) in results.into_iter().zip(creds) {
            if self.settle(&record.session, &cred, result) {
                done += 1;
            } else {
                record.credentials.push(cred);
            }
        }
        // The session token goes last, after its leases are verified gone.
        if let Some(cred) = record.session_token.take() {
            let result = match &token {
                Some(t) => profile::revoke(&self.vault, t, &cred).await,
                None => Err(VaultError::Unavailable {
                    path: "auth".into(),
                    reason: "not logged in".into(),
                }),
            };
            if !self.settle(&record.session, &cred, result) {
                record.session_token = Some(cred);
            }
        }
        let failed = record.credentials.len() + usize::from(record.session_token.is_some());
        (done, failed)
    }

    /// Logs, counts and audits one revocation result; true when the credential is gone.
    fn settle(
        &self,
        session: &SessionId,
        cred: &Credential,
        result: Result<(), VaultError>,
    ) -> bool {
        let is_session = cred.profile() == "session";
        let label = self.metric_profile(cred.profile());
        match result {
            Ok(()) => {
                if !is_session {
                    self.metrics.revoked(label);
                }
                debug!(session = %session, credential = %cred.describe(), "Revoked.");
                self.audit.record(
                    "revoke",
                    json!({"session": session, "credential": cred.describe()}),
                );
                true
            }
            Err(e) if now_unix() > cred.expires() => {
                if !is_session {
                    self.metrics.revoked(label);
                }
                info!(session = %session, error = %e, "Credential expired before it could be revoked.");
                self.audit.record("expired", json!({"session": session, "credential": cred.describe(), "error": e.to_string()}));
                true
            }
            Err(e) => {
                self.metrics.vault_error(&e);
                if !is_session {
                    self.metrics.revoke_failed(label);
                }
                warn!(session = %session, error = %e, "Revocation failed; will retry.");
                self.audit.record("revoke-failed", json!({"session": session, "credential": cred.describe(), "error": e.to_string()}));
                false
            }
        }
    }

    /// Retries a record with back-off until everything is revoked or certainly expired.
    fn spawn_retry(self: &Arc<Self>, record: SessionRecord, first: Duration) {
        let this = self.clone();
        self.pending
            .lock()
            .expect("lock")
            .insert(record.session.clone(), record.clone());
        tokio::spawn(async move {
            let mut record = record;
            let mut backoff = Backoff::new();
            tokio::time::sleep(first).await;
            loop {
                let (_, failed) = this.attempt(&mut record).await;
                if failed == 0 {
                    info!(session = %record.session, "All credentials of the session are revoked.");
                    this.pending.lock().expect("lock").remove(&record.session);
                    if let Err(e) = this.ledger.remove(&record.session) {
                        warn!(error = %e, "Could not remove a ledger entry.");
                    }
                    return;
                }
                if let Err(e) = this.ledger.write(&record, Durability::Synced) {
                    warn!(error = %e, "Could not update the ledger.");
                }
                this.pending
                    .lock()
                    .expect("lock")
                    .insert(record.session.clone(), record.clone());
                tokio::time::sleep(backoff.next_delay()).await;
            }
        });
    }

    /// Ends every live session (operator `revoke --all`, shutdown).
    pub async fn end_all(self: &Arc<Self>, reason: &str) -> usize {
        let ids: Vec<SessionId> = self.live.lock().expect("lock").keys().cloned().collect();
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let this = self.clone();
            let reason = reason.to_owned();
            set.spawn(async move { this.end(&id, &reason).await.is_some() });
        }
        let mut n = 0;
        while let Some(r) = set.join_next().await {
            n += usize::from(r.unwrap_or(false));
        }
        n
    }

    /// Sessions, leases and expiries — no values.
    pub fn status(&self) -> Value {
        let live: Vec<Value> = self
            .live
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, l)| {
                let r = l.record.lock().expect("lock");
                json!({"session": id, "state": "live", "caller": caller_json(&r.caller), "profiles": l.profiles,
                       "build": l.meta, "created": r.created, "deadline": r.deadline,
                       "credentials": r.credentials.iter().map(Credential::describe).collect::<Vec<_>>()})
            })
            .collect();
        let pending: Vec<Value> = self
            .pending
            .lock()
            .expect("lock")
            .values()
            .map(|r| {
                json!({"session": r.session, "state": "revoking", "caller": caller_json(&r.caller),
                       "created": r.created, "deadline": r.deadline,
                       "credentials": r.pending().map(Credential::describe).collect::<Vec<_>>()})
            })
            .collect();
        json!({"sessions": live.into_iter().chain(pending).collect::<Vec<_>>()})
    }

    /// Whether `uid` may run status / revoke.
    pub fn is_admin(&self, uid: u32) -> bool {
        uid == 0 || uid == rustix::process::getuid().as_raw() || self.cfg.admin_uids.contains(&uid)
    }
}

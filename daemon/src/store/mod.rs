//! The daemon's findings store: findings (one row per secret), where each was seen, their
//! status history, the scan job queue and per-source scan state.
//!
//! One interface, [`Store`], with two backends chosen by [`open`]:
//!
//! - SQLite (one file, WAL mode, `busy_timeout` set), for a single daemon;
//! - PostgreSQL (`postgres://…` or `postgresql://…`), for several daemons sharing one database:
//!   findings are unique by fingerprint, so two daemons finding the same secret make one
//!   finding, and jobs are claimed with `FOR UPDATE SKIP LOCKED`, so no job runs twice.
//!
//! The store is synchronous: the async daemon calls it from `spawn_blocking`. It is
//! `Send + Sync`. With PostgreSQL, [`open`] and every method block on the network, and must not
//! be called from inside an async task (the client runs its own small runtime).
//!
//! Secret values are never stored: [`StoredFinding`] has a fingerprint and the redacted form,
//! and no field for the value.
//!
//! Schemas are numbered SQL files under `migrations/<backend>/`, applied at open inside one
//! transaction and recorded in `schema_version`; a store whose version is newer than
//! [`SCHEMA_VERSION`] is refused with [`StoreError::SchemaTooNew`].
//!
//! ```no_run
//! use keyward::store::{self, FindingFilter, Status};
//!
//! let store = store::open("/var/lib/keyward/store.db")?;
//! let filter = FindingFilter { status: Some(Status::Open), ..FindingFilter::default() };
//! let open = store.list_findings(&filter)?;
//! println!("{} open findings", open.len());
//! # Ok::<(), anyhow::Error>(())
//! ```

mod postgres;
mod sqlite;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context as _;
use keyward_detectors::{Confidence, Reasons};
use sha2::{Digest as _, Sha256};

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

/// Seconds since the epoch.
pub type Unix = i64;

/// The newest schema version this binary knows; a store at a newer version is refused.
pub const SCHEMA_VERSION: u32 = 3;

/// A finding as stored: one secret (one fingerprint). Never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredFinding {
    /// Stable hash of rule id and secret; the finding's identity.
    pub fingerprint: String,
    /// Rule id.
    pub rule: String,
    /// Rule name (for people).
    pub rule_name: String,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: String,
    /// Redacted form of the secret (e.g. `ghp_R7…mv`).
    pub redacted: String,
    /// Validator verdict (`none`, `checksum-ok`, …).
    pub validation: String,
    /// Where it was first found: `git`, `image`, `file` or `stdin` (a closed set).
    pub source_kind: String,
    /// `low`, `medium` or `high`: the secret's confidence over all its places (see the README,
    /// "Confidence"). Raised when a later scan is more confident, never lowered.
    pub confidence: String,
    /// The reasons for `confidence`, by their stable names (`checksum-verified`, `test-path`).
    pub reasons: Vec<String>,
}

impl StoredFinding {
    /// `reasons` as stored: names joined by commas (`''` for none).
    fn reasons_column(&self) -> String {
        self.reasons.join(",")
    }
}

/// A `reasons` column read back.
fn reasons_from_column(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The rank of a stored confidence (`low` < `medium` < `high`); validated values only.
fn confidence_rank(c: &str) -> Confidence {
    Confidence::parse(c).unwrap_or(Confidence::Low)
}

/// One place a finding was seen.
///
/// Its identity (what makes two locations the same, see [`location_key`]) is every field but
/// `author`, `deleted` and `content_created`, which describe the place rather than name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredLocation {
    /// The configured source's name, e.g. `app-repo`.
    pub source: String,
    /// `git`, `image`, `file` or `stdin`.
    pub source_kind: String,
    /// Git: the repository (URL or path).
    pub repository: Option<String>,
    /// Git: the commit that introduced it.
    pub commit: Option<String>,
    /// Git: the commit's author.
    pub author: Option<String>,
    /// File path (inside the repository, image or directory).
    pub path: Option<String>,
    /// 1-based line.
    pub line: u64,
    /// 1-based byte column.
    pub column: u64,
    /// Image: name or reference.
    pub image: Option<String>,
    /// Image: layer digest.
    pub layer: Option<String>,
    /// Image: 0-based layer index.
    pub layer_index: Option<u32>,
    /// Image: the file was deleted or replaced by a later layer.
    pub deleted: bool,
    /// When the content was made: commit date, image creation date.
    pub content_created: Option<Unix>,
}

/// One finding at one place, as a scan reports it to [`Store::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The secret (never its value).
    pub finding: StoredFinding,
    /// Where it was seen.
    pub location: StoredLocation,
}

/// A finding this call created (the first time its fingerprint was seen).
#[derive(Debug, Clone, PartialEq)]
pub struct NewFinding {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its severity.
    pub severity: String,
    /// Its rule id.
    pub rule: String,
    /// Its source kind.
    pub source_kind: String,
    /// Its confidence when created (`low`, `medium`, `high`).
    pub confidence: String,
    /// detected_at - earliest content_created of its locations, if known (never below 0: a
    /// content date in the future, from clock skew, counts as detected at once).
    pub time_to_detect: Option<f64>,
}

/// What [`Store::record`] changed.
#[derive(Debug, Default)]
pub struct RecordOutcome {
    /// Findings created by this call, in fingerprint order.
    pub new_findings: Vec<NewFinding>,
    /// Locations added by this call (to new or known findings).
    pub new_locations: u64,
}

/// A finding's triage status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Needs action (every new finding).
    Open,
    /// Accepted as not a problem (a test key, a false positive).
    Ignored,
    /// Removed from where it was found.
    Resolved,
    /// Revoked at its issuer: it no longer works.
    Revoked,
}

impl Status {
    /// Every status, in declaration order.
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Ignored,
        Status::Resolved,
        Status::Revoked,
    ];

    /// The lowercase name, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Ignored => "ignored",
            Status::Resolved => "resolved",
            Status::Revoked => "revoked",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::InvalidValue {
                what: "status",
                value: s.to_owned(),
                expected: "open, ignored, resolved, revoked",
            })
    }
}

/// What [`Store::list_findings`] returns.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    /// Only findings with this status.
    pub status: Option<Status>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Only this rule id.
    pub rule: Option<String>,
    /// A location's source name, or the finding's source kind.
    pub source: Option<String>,
    /// first_seen >= since.
    pub since: Option<Unix>,
    /// This confidence and up (`None` or low: all).
    pub confidence: Option<Confidence>,
    /// Page size: 0 means [`FindingFilter::DEFAULT_LIMIT`]; at most [`FindingFilter::MAX_LIMIT`].
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

impl FindingFilter {
    /// Page size when `limit` is 0.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Largest page.
    pub const MAX_LIMIT: u32 = 1000;

    /// The page size to use.
    pub fn effective_limit(&self) -> u32 {
        page_size(self.limit)
    }
}

/// A 0 limit means the default page; larger than the maximum means the maximum.
fn page_size(limit: u32) -> u32 {
    match limit {
        0 => FindingFilter::DEFAULT_LIMIT,
        n => n.min(FindingFilter::MAX_LIMIT),
    }
}

/// A finding with its status, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FindingView {
    /// The finding.
    #[serde(flatten)]
    pub finding: StoredFinding,
    /// Current status.
    pub status: Status,
    /// When this store first recorded it (= detected_at of the first detection).
    pub first_seen: Unix,
    /// Earliest content_created over its locations.
    pub content_created: Option<Unix>,
    /// How many locations.
    pub locations: u64,
    /// When the status last changed.
    pub status_changed_at: Option<Unix>,
    /// Who changed it.
    pub status_changed_by: Option<String>,
    /// Why.
    pub status_reason: Option<String>,
}

/// One entry of a finding's status history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusChange {
    /// The new status.
    pub status: Status,
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Unix,
}

/// A finding with all its locations and its status history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FindingDetail {
    /// The finding as listed.
    #[serde(flatten)]
    pub view: FindingView,
    /// Every location, in the order they were recorded.
    pub location_list: Vec<StoredLocation>,
    /// Every status change, oldest first.
    pub history: Vec<StatusChange>,
}

/// One bucket of the open-findings gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCount {
    /// Severity.
    pub severity: String,
    /// Rule id.
    pub rule: String,
    /// Source kind.
    pub source_kind: String,
    /// Confidence.
    pub confidence: String,
    /// Open findings in the bucket.
    pub count: u64,
}

/// A job's id (ordered as created).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A claimed job, to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The configured source's name.
    pub source: String,
    /// What to do (e.g. `git`, `image`).
    pub kind: String,
    /// JSON parameters.
    pub payload: String,
    /// Claims so far, this one included.
    pub attempts: u32,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for `run_after`, or for a daemon to claim it.
    Queued,
    /// Claimed by an owner under a lease.
    Running,
    /// Finished successfully.
    Done,
    /// Finished with an error and not retried.
    Failed,
}

impl JobState {
    /// Every state, in declaration order.
    pub const ALL: [JobState; 4] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
    ];

    /// The lowercase name, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::InvalidValue {
                what: "job state",
                value: s.to_owned(),
                expected: "queued, running, done, failed",
            })
    }
}

/// How a job ended, for [`Store::finish`].
#[derive(Debug, Clone, Default)]
pub struct JobOutcome {
    /// `None` = success.
    pub error: Option<String>,
    /// Failed: queue it again to run at this time.
    pub retry_at: Option<Unix>,
    /// Bytes scanned.
    pub bytes: u64,
    /// Objects (files, blobs, layers) scanned.
    pub objects: u64,
    /// Findings reported.
    pub findings: u64,
}

/// A job as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobView {
    /// Its id.
    pub id: JobId,
    /// The configured source's name.
    pub source: String,
    /// What to do.
    pub kind: String,
    /// Where it is.
    pub state: JobState,
    /// Claims so far.
    pub attempts: u32,
    /// The daemon that claimed it last.
    pub owner: Option<String>,
    /// When it was queued.
    pub created_at: Unix,
    /// When it was last claimed.
    pub started_at: Option<Unix>,
    /// When it ended (done or failed).
    pub finished_at: Option<Unix>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// Bytes scanned by the last attempt.
    pub bytes: u64,
    /// Objects scanned by the last attempt.
    pub objects: u64,
    /// Findings reported by the last attempt.
    pub findings: u64,
}

/// Errors a caller may branch on; everything else is an [`anyhow::Error`] with context.
/// Find these with `err.downcast_ref::<StoreError>()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was written by a newer keyward.
    #[error(
        "the store's schema version is {found}, newer than the {known} this keyward knows: \
         upgrade keyward (the store was not changed)"
    )]
    SchemaTooNew {
        /// The store's version.
        found: u32,
        /// [`SCHEMA_VERSION`].
        known: u32,
    },
    /// A value outside its closed set.
    #[error("invalid {what} {value:?} (expected one of: {expected})")]
    InvalidValue {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: String,
        /// The valid values.
        expected: &'static str,
    },
}

/// The findings store. See the module docs.
///
/// Times are passed in (`now`, `detected_at`) rather than read from the clock, so callers and
/// tests decide them.
pub trait Store: Send + Sync {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Cheap liveness check (SELECT 1).
    fn ping(&self) -> anyhow::Result<()>;
    /// Upserts findings by fingerprint (one row per secret, unique constraint on fingerprint, so
    /// two daemons finding the same secret make one finding) and adds each location not yet
    /// recorded (unique on fingerprint + a key over the location's identifying fields). A known
    /// finding's content_created becomes the earliest seen, and its confidence the highest seen:
    /// a detection more confident than the stored finding replaces its confidence and reasons,
    /// a less confident one leaves them. Status is not touched. One transaction.
    fn record(&self, detections: &[Detection], detected_at: Unix) -> anyhow::Result<RecordOutcome>;
    /// Newest first (first_seen desc, fingerprint).
    fn list_findings(&self, filter: &FindingFilter) -> anyhow::Result<Vec<FindingView>>;
    /// One finding with its locations and history; `None` if unknown.
    fn finding(&self, fingerprint: &str) -> anyhow::Result<Option<FindingDetail>>;
    /// false if no such finding. Records the change in the history.
    fn set_status(
        &self,
        fingerprint: &str,
        status: Status,
        by: &str,
        reason: &str,
        at: Unix,
    ) -> anyhow::Result<bool>;
    /// Open findings grouped by (severity, rule, source_kind, confidence), sorted by those.
    fn open_counts(&self) -> anyhow::Result<Vec<OpenCount>>;
    /// All findings, whatever their status.
    fn count_findings(&self) -> anyhow::Result<u64>;

    /// Queues a job unless one for this source is already queued (not running): then None.
    fn enqueue(
        &self,
        source: &str,
        kind: &str,
        payload: &str,
        now: Unix,
    ) -> anyhow::Result<Option<JobId>>;
    /// Claims the oldest runnable job: state queued with run_after <= now, or running with
    /// lease_until < now (its owner died). Never a job whose source has another job running under
    /// a live lease. Sets running, owner, lease_until = now + lease_secs, attempts += 1,
    /// started_at. PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED in one transaction, so concurrent
    /// daemons never claim the same job.
    fn claim(&self, owner: &str, now: Unix, lease_secs: i64) -> anyhow::Result<Option<Job>>;
    /// Extends the lease; false if this owner no longer holds the job (it expired and was taken).
    fn renew(&self, id: JobId, owner: &str, now: Unix, lease_secs: i64) -> anyhow::Result<bool>;
    /// Success -> done; error with retry_at -> queued again with run_after = retry_at and
    /// last_error; error without retry_at -> failed. Only if `owner` still holds it (returns false
    /// otherwise).
    ///
    /// A retry when another job for the same source is already queued is folded into that job:
    /// this one becomes failed (with its error), since the queued one scans the same source.
    fn finish(
        &self,
        id: JobId,
        owner: &str,
        now: Unix,
        outcome: &JobOutcome,
    ) -> anyhow::Result<bool>;
    /// Newest first; `limit` as in [`FindingFilter::limit`] (0 = 100, at most 1000).
    fn list_jobs(&self, limit: u32) -> anyhow::Result<Vec<JobView>>;
    /// Jobs queued or running.
    fn queue_depth(&self) -> anyhow::Result<u64>;

    /// Opaque per-source scan state (e.g. a git scan's state file bytes), last writer wins.
    fn get_state(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Sets the scan state for `key`.
    fn put_state(&self, key: &str, bytes: &[u8], now: Unix) -> anyhow::Result<()>;
    /// Objects (image layers, manifests, archives by digest) already scanned.
    fn is_scanned(&self, kind: &str, id: &str) -> anyhow::Result<bool>;
    /// Marks an object scanned (again is fine).
    fn mark_scanned(&self, kind: &str, id: &str, now: Unix) -> anyhow::Result<()>;
}

/// Opens (creating and migrating) the store: "postgres://…"/"postgresql://…" → PostgreSQL,
/// anything else is a SQLite file path (parent directories created, file mode 0600).
///
/// Errors name the store with any password replaced by `***`.
pub fn open(spec: &str) -> anyhow::Result<Arc<dyn Store>> {
    let shown = redact_spec(spec);
    if is_postgres(spec) {
        let store = PostgresStore::open(spec).map_err(|e| scrub_password(e, spec))?;
        Ok(Arc::new(store))
    } else {
        let store = SqliteStore::open(std::path::Path::new(spec))
            .with_context(|| format!("opening store {shown}"))?;
        Ok(Arc::new(store))
    }
}

fn is_postgres(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

/// The store spec as it may be shown: a PostgreSQL URL's password (in the user info or a
/// `password=` parameter) becomes `***`. Anything else is returned as is.
///
/// ```
/// assert_eq!(
///     keyward::store::redact_spec("postgres://app:s3cret@db:5432/keyward"), // keyward:allow test fixture, not a credential
///     "postgres://app:***@db:5432/keyward"
/// );
/// ```
pub fn redact_spec(spec: &str) -> String {
    if !is_postgres(spec) {
        return spec.to_owned();
    }
    let (scheme, rest) = spec.split_once("://").unwrap_or(("", spec));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The user info ends at the last '@' before the path (a password may itself hold '@').
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Wraps an error from opening `spec` so that neither the context nor (defensively) any
/// message in its chain shows the password.
fn scrub_password(err: anyhow::Error, spec: &str) -> anyhow::Error {
    let shown = redact_spec(spec);
    let passwords = spec_passwords(spec);
    let text = format!("{err:#}");
    if passwords.iter().any(|p| text.contains(p.as_str())) {
        let mut text = text;
        for p in &passwords {
            text = text.replace(p.as_str(), "***");
        }
        anyhow::anyhow!("opening store {shown}: {text}")
    } else {
        err.context(format!("opening store {shown}"))
    }
}

/// The password(s) in a PostgreSQL URL, raw and percent-decoded; empty ones are left out.
fn spec_passwords(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = spec.split_once("://").map_or(spec, |(_, r)| r);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = &before_query[..before_query.find('/').unwrap_or(before_query.len())];
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, pw)) = userinfo.split_once(':')
    {
        out.push(pw.to_owned());
    }
    for kv in query.split('&') {
        if let Some((k, v)) = kv.split_once('=')
            && k.eq_ignore_ascii_case("password")
        {
            out.push(v.to_owned());
        }
    }
    let decoded: Vec<String> = out.iter().map(|p| percent_decode(p)).collect();
    out.extend(decoded);
    out.retain(|p| !p.is_empty());
    out.sort();
    out.dedup();
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key that makes a location unique within its finding: a SHA-256 over the identifying
/// fields (all but `author`, `deleted` and `content_created`), encoded as JSON so that `None`,
/// `""` and field boundaries cannot collide.
pub fn location_key(loc: &StoredLocation) -> String {
    let ident = serde_json::json!([
        loc.source,
        loc.source_kind,
        loc.repository,
        loc.commit,
        loc.path,
        loc.line,
        loc.column,
        loc.image,
        loc.layer,
        loc.layer_index,
    ]);
    hex::encode(Sha256::digest(ident.to_string().as_bytes()))
}

/// Source kinds a finding or location may have.
pub const SOURCE_KINDS: [&str; 4] = ["git", "image", "file", "stdin"];
/// Severities a finding may have.
pub const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// Checks the closed sets before anything is written.
fn validate(detections: &[Detection]) -> Result<(), StoreError> {
    for d in detections {
        for kind in [&d.finding.source_kind, &d.location.source_kind] {
            if !SOURCE_KINDS.contains(&kind.as_str()) {
                return Err(StoreError::InvalidValue {
                    what: "source kind",
                    value: kind.clone(),
                    expected: "git, image, file, stdin",
                });
            }
        }
        if !SEVERITIES.contains(&d.finding.severity.as_str()) {
            return Err(StoreError::InvalidValue {
                what: "severity",
                value: d.finding.severity.clone(),
                expected: "critical, high, medium, low",
            });
        }
        if Confidence::parse(&d.finding.confidence).is_none() {
            return Err(StoreError::InvalidValue {
                what: "confidence",
                value: d.finding.confidence.clone(),
                expected: "low, medium, high",
            });
        }
        if let Some(r) = d
            .finding
            .reasons
            .iter()
            .find(|r| Reasons::parse(r).is_none())
        {
            return Err(StoreError::InvalidValue {
                what: "reason",
                value: r.clone(),
                expected: "the reason names of the README's \"Confidence\" section",
            });
        }
    }
    Ok(())
}

/// Detections in (fingerprint, location key) order, with their keys. Both backends write in
/// this order, so two PostgreSQL transactions recording overlapping findings lock rows in the
/// same order and cannot deadlock.
fn sorted_with_keys(detections: &[Detection]) -> Vec<(&Detection, String)> {
    let mut v: Vec<(&Detection, String)> = detections
        .iter()
        .map(|d| (d, location_key(&d.location)))
        .collect();
    v.sort_by(|a, b| {
        (a.0.finding.fingerprint.as_str(), a.1.as_str())
            .cmp(&(b.0.finding.fingerprint.as_str(), b.1.as_str()))
    });
    v
}

/// Tracks the findings one `record` call created, and the earliest content date of each.
#[derive(Default)]
struct NewFindings(std::collections::BTreeMap<String, (NewFinding, Option<Unix>)>);

impl NewFindings {
    fn created(&mut self, d: &Detection) {
        self.0.insert(
            d.finding.fingerprint.clone(),
            (
                NewFinding {
                    fingerprint: d.finding.fingerprint.clone(),
                    severity: d.finding.severity.clone(),
                    rule: d.finding.rule.clone(),
                    source_kind: d.finding.source_kind.clone(),
                    confidence: d.finding.confidence.clone(),
                    time_to_detect: None,
                },
                None,
            ),
        );
    }

    /// A detection of a finding this call may have created: its content date may be the
    /// earliest, its confidence the highest (what the store keeps).
    fn seen(&mut self, d: &Detection) {
        let Some((nf, earliest)) = self.0.get_mut(&d.finding.fingerprint) else {
            return;
        };
        if let Some(cc) = d.location.content_created {
            *earliest = Some(earliest.map_or(cc, |e| e.min(cc)));
        }
        if confidence_rank(&d.finding.confidence) > confidence_rank(&nf.confidence) {
            nf.confidence.clone_from(&d.finding.confidence);
        }
    }

    fn finish(self, detected_at: Unix) -> Vec<NewFinding> {
        self.0
            .into_values()
            .map(|(mut nf, earliest)| {
                nf.time_to_detect = earliest.map(|cc| (detected_at - cc).max(0) as f64);
                nf
            })
            .collect()
    }
}

/// A query parameter of the dynamic finding filter, bound by each backend.
#[derive(Debug, Clone)]
enum SqlValue {
    Text(String),
    Int(i64),
}

/// The `WHERE` clause (starting with ` WHERE`, or empty) and its parameters for `filter`.
/// `ph(n)` renders the n-th (1-based) placeholder in the backend's syntax.
fn finding_filter_sql(
    filter: &FindingFilter,
    ph: impl Fn(usize) -> String,
) -> (String, Vec<SqlValue>) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    let push = |value: SqlValue, params: &mut Vec<SqlValue>| {
        params.push(value);
        ph(params.len())
    };
    if let Some(st) = filter.status {
        let p = push(SqlValue::Text(st.as_str().to_owned()), &mut params);
        conds.push(format!("f.status = {p}"));
    }
    if let Some(sev) = &filter.severity {
        let p = push(SqlValue::Text(sev.clone()), &mut params);
        conds.push(format!("f.severity = {p}"));
    }
    if let Some(rule) = &filter.rule {
        let p = push(SqlValue::Text(rule.clone()), &mut params);
        conds.push(format!("f.rule = {p}"));
    }
    if let Some(source) = &filter.source {
        let p = push(SqlValue::Text(source.clone()), &mut params);
        conds.push(format!(
            "(f.source_kind = {p} OR EXISTS (SELECT 1 FROM locations l \
             WHERE l.source = {p} AND l.fingerprint = f.fingerprint))"
        ));
    }
    if let Some(since) = filter.since {
        let p = push(SqlValue::Int(since), &mut params);
        conds.push(format!("f.first_seen >= {p}"));
    }
    // Low is everything: no condition. Otherwise the levels from `min` up, each a range of
    // the confidence index.
    if let Some(min) = filter.confidence.filter(|&c| c > Confidence::Low) {
        let levels: Vec<String> = Confidence::ALL
            .into_iter()
            .filter(|&c| c >= min)
            .map(|c| push(SqlValue::Text(c.as_str().to_owned()), &mut params))
            .collect();
        conds.push(format!("f.confidence IN ({})", levels.join(", ")));
    }
    let limit = push(
        SqlValue::Int(i64::from(filter.effective_limit())),
        &mut params,
    );
    let offset = push(SqlValue::Int(i64::from(filter.offset)), &mut params);
    let mut sql = String::new();
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(&format!(
        " ORDER BY f.first_seen DESC, f.fingerprint LIMIT {limit} OFFSET {offset}"
    ));
    (sql, params)
}

/// The columns of a [`FindingView`], in the order `*_view_from_row` reads them.
const FINDING_VIEW_COLUMNS: &str = "f.fingerprint, f.rule, f.rule_name, f.severity, f.redacted, \
     f.validation, f.source_kind, f.status, f.first_seen, f.content_created, f.location_count, \
     f.status_changed_at, f.status_changed_by, f.status_reason, f.confidence, f.reasons";

/// The columns of a [`StoredLocation`], in the order `*_location_from_row` reads them.
const LOCATION_COLUMNS: &str = "source, source_kind, repository, commit_id, author, path, line, \
     col, image, layer, layer_index, deleted, content_created";

/// The columns of a [`JobView`], in the order `*_job_view_from_row` reads them.
const JOB_VIEW_COLUMNS: &str = "id, source, kind, state, attempts, owner, created_at, started_at, \
     finished_at, last_error, bytes, objects, findings";

/// A stored count or size: never negative; an overflowing value saturates.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored count or size read back (the schema never stores a negative one).
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A stored small count read back.
fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Wall-clock seconds, for `schema_version.applied_at` only (the API takes times as arguments).
fn wall_clock() -> Unix {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One step of a backend's schema: `migrations/<backend>/<version>_<name>.sql`.
struct Migration {
    version: u32,
    sql: &'static str,
}

/// The migrations a store at `current` still needs; refuses a store newer than this binary.
fn pending(
    migrations: &'static [Migration],
    current: u32,
) -> Result<impl Iterator<Item = &'static Migration>, StoreError> {
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    Ok(migrations.iter().filter(move |m| m.version > current))
}

/// How [`Store::finish`] leaves a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FinishAs {
    Done,
    Failed,
    /// Queued again, to run at this time.
    Retry(Unix),
}

impl FinishAs {
    fn of(outcome: &JobOutcome) -> Self {
        match (&outcome.error, outcome.retry_at) {
            (None, _) => FinishAs::Done,
            (Some(_), Some(at)) => FinishAs::Retry(at),
            (Some(_), None) => FinishAs::Failed,
        }
    }

    /// The row's new `state`, `finished_at` and `run_after` (None: unchanged).
    fn columns(self, now: Unix) -> (&'static str, Option<Unix>, Option<Unix>) {
        match self {
            FinishAs::Done => (JobState::Done.as_str(), Some(now), None),
            FinishAs::Failed => (JobState::Failed.as_str(), Some(now), None),
            FinishAs::Retry(at) => (JobState::Queued.as_str(), None, Some(at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        for (spec, want) in [
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"), // keyward:allow test fixture, not a credential
            ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"), // keyward:allow test fixture, not a credential
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgres://h/db?password=x&sslmode=disable",
                "postgres://h/db?password=***&sslmode=disable",
            ),
            ("/var/lib/keyward/store.db", "/var/lib/keyward/store.db"),
        ] {
            assert_eq!(redact_spec(spec), want, "{spec}");
        }
    }

    #[test]
    fn passwords_are_found_raw_and_decoded() {
        assert_eq!(
            spec_passwords("postgres://u:a%40b@h/db?password=c"), // keyward:allow test fixture, not a credential
            vec!["a%40b", "a@b", "c"]
        );
    }

    #[test]
    fn status_round_trips() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!("closed".parse::<Status>().is_err());
    }

    #[test]
    fn location_key_ignores_descriptive_fields() {
        let a = StoredLocation {
            source: "app".into(),
            source_kind: "git".into(),
            path: Some("a".into()),
            line: 1,
            ..Default::default()
        };
        let b = StoredLocation {
            author: Some("x".into()),
            deleted: true,
            content_created: Some(5),
            ..a.clone()
        };
        let c = StoredLocation {
            path: None,
            ..a.clone()
        };
        let d = StoredLocation {
            path: Some(String::new()),
            ..a.clone()
        };
        assert_eq!(location_key(&a), location_key(&b));
        assert_ne!(location_key(&a), location_key(&c));
        assert_ne!(location_key(&c), location_key(&d));
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0), 100);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(5000), 1000);
    }

    #[test]
    fn stores_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SqliteStore>();
        check::<PostgresStore>();
    }
}

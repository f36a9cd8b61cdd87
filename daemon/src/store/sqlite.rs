//! The SQLite backend: one file in WAL mode, one connection behind a mutex.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions, so another process on the same file (a second
//! daemon, `sqlite3`) waits for the write lock up to [`BUSY_TIMEOUT`] instead of failing midway.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::types::{Type, Value};
use rusqlite::{
    Connection, OptionalExtension as _, Row, Transaction, TransactionBehavior, params,
    params_from_iter,
};
use tracing::info;

use super::{
    Detection, FINDING_VIEW_COLUMNS, FindingDetail, FindingFilter, FindingView, FinishAs,
    JOB_VIEW_COLUMNS, Job, JobId, JobOutcome, JobView, LOCATION_COLUMNS, Migration, NewFindings,
    OpenCount, RecordOutcome, SCHEMA_VERSION, SqlValue, Status, StatusChange, Store, StoreError,
    StoredFinding, StoredLocation, Unix, finding_filter_sql, page_size, pending,
    reasons_from_column, sorted_with_keys, to_i64, to_u32, to_u64, validate, wall_clock,
};

/// The schema, one file per version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/sqlite/0002_open_counts_index.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/sqlite/0003_confidence.sql"),
    },
];

/// How long a statement waits for another connection's lock before failing with `SQLITE_BUSY`.
/// Generous: a daemon recording a large scan holds the write lock for a while, and failing a
/// write is worse than waiting.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`Store`] in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the file at `path`, creating it (mode 0600, parent directories too) and migrating
    /// it to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs_err::create_dir_all(parent)?;
        }
        create_private(path)?;
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // NOTE: WAL lets readers (the API) run while a scan records; the -wal and -shm files get
        // the database file's permissions.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "could not switch {} to WAL mode (it stays in {mode} mode)",
            path.display()
        );
        // NORMAL is durable across application crashes in WAL mode; only a power loss can drop
        // the last transactions, which the next scan records again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let from = migrate(&mut conn)?;
        if from < SCHEMA_VERSION {
            info!(
                path = %path.display(),
                from,
                to = SCHEMA_VERSION,
                "Store schema migrated."
            );
        }
        info!(backend = "sqlite", path = %path.display(), "Store opened.");
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock rolled its transaction back (Transaction's Drop), so
        // the connection is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in a write transaction and commits it.
    fn write<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(what)?;
        let v = f(&tx).context(what)?;
        tx.commit().context(what)?;
        Ok(v)
    }

    /// Runs `f` in a read transaction (one consistent snapshot).
    fn read<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction().context(what)?;
        let v = f(&tx).context(what)?;
        tx.finish().context(what)?;
        Ok(v)
    }
}

/// Creates `path` with mode 0600 unless it exists (an existing file keeps its mode).
fn create_private(path: &Path) -> anyhow::Result<()> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    match fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; returns the version it found.
fn migrate(conn: &mut Connection) -> anyhow::Result<u32> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER NOT NULL PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )?;
    let current: u32 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    for m in pending(MIGRATIONS, current)? {
        tx.execute_batch(m.sql)
            .with_context(|| format!("applying SQLite schema migration {}", m.version))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![m.version, wall_clock()],
        )?;
    }
    tx.commit()?;
    Ok(current)
}

fn sql_value(v: &SqlValue) -> Value {
    match v {
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Int(i) => Value::Integer(*i),
    }
}

/// A text column parsed into one of the closed-set enums.
fn parsed<T: FromStr<Err = StoreError>>(r: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = r.get(idx)?;
    s.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn view_from_row(r: &Row<'_>) -> rusqlite::Result<FindingView> {
    Ok(FindingView {
        finding: StoredFinding {
            fingerprint: r.get(0)?,
            rule: r.get(1)?,
            rule_name: r.get(2)?,
            severity: r.get(3)?,
            redacted: r.get(4)?,
            validation: r.get(5)?,
            source_kind: r.get(6)?,
            confidence: r.get(14)?,
            reasons: reasons_from_column(&r.get::<_, String>(15)?),
        },
        status: parsed(r, 7)?,
        first_seen: r.get(8)?,
        content_created: r.get(9)?,
        locations: to_u64(r.get(10)?),
        status_changed_at: r.get(11)?,
        status_changed_by: r.get(12)?,
        status_reason: r.get(13)?,
    })
}

fn location_from_row(r: &Row<'_>) -> rusqlite::Result<StoredLocation> {
    Ok(StoredLocation {
        source: r.get(0)?,
        source_kind: r.get(1)?,
        repository: r.get(2)?,
        commit: r.get(3)?,
        author: r.get(4)?,
        path: r.get(5)?,
        line: to_u64(r.get(6)?),
        column: to_u64(r.get(7)?),
        image: r.get(8)?,
        layer: r.get(9)?,
        layer_index: r.get::<_, Option<i64>>(10)?.map(to_u32),
        deleted: r.get(11)?,
        content_created: r.get(12)?,
    })
}

fn job_view_from_row(r: &Row<'_>) -> rusqlite::Result<JobView> {
    Ok(JobView {
        id: JobId(r.get(0)?),
        source: r.get(1)?,
        kind: r.get(2)?,
        state: parsed(r, 3)?,
        attempts: to_u32(r.get(4)?),
        owner: r.get(5)?,
        created_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        last_error: r.get(9)?,
        bytes: to_u64(r.get(10)?),
        objects: to_u64(r.get(11)?),
        findings: to_u64(r.get(12)?),
    })
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> anyhow::Result<()> {
        self.conn()
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .context("pinging the SQLite store")?;
        Ok(())
    }

    fn record(&self, detections: &[Detection], detected_at: Unix) -> anyhow::Result<RecordOutcome> {
        validate(detections)?;
        let sorted = sorted_with_keys(detections);
        self.write("recording findings", |tx| {
            let mut new = NewFindings::default();
            let mut new_locations = 0u64;
            let mut insert_finding = tx.prepare_cached(
                "INSERT INTO findings (fingerprint, rule, rule_name, severity, redacted, validation,
                     source_kind, first_seen, content_created, confidence, reasons)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (fingerprint) DO NOTHING",
            )?;
            // A known finding's confidence is raised by a more confident detection, never
            // lowered; its reasons go with it.
            let mut raise_confidence = tx.prepare_cached(
                "UPDATE findings SET confidence = ?2, reasons = ?3
                 WHERE fingerprint = ?1
                   AND (CASE ?2 WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END)
                     > (CASE confidence WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END)",
            )?;
            let mut insert_location = tx.prepare_cached(
                "INSERT INTO locations (fingerprint, key, source, source_kind, repository,
                     commit_id, author, path, line, col, image, layer, layer_index, deleted,
                     content_created, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (fingerprint, key) DO NOTHING",
            )?;
            // Writes only when something changes: a rescan of known locations touches no row.
            let mut update_finding = tx.prepare_cached(
                "UPDATE findings SET
                     location_count = location_count + ?2,
                     content_created = CASE
                         WHEN ?3 IS NOT NULL AND (content_created IS NULL OR ?3 < content_created)
                         THEN ?3 ELSE content_created END
                 WHERE fingerprint = ?1
                   AND (?2 > 0 OR (?3 IS NOT NULL
                                   AND (content_created IS NULL OR ?3 < content_created)))",
            )?;
            for (d, key) in &sorted {
                let (f, l) = (&d.finding, &d.location);
                let reasons = f.reasons_column();
                let created = insert_finding.execute(params![
                    f.fingerprint,
                    f.rule,
                    f.rule_name,
                    f.severity,
                    f.redacted,
                    f.validation,
                    f.source_kind,
                    detected_at,
                    l.content_created,
                    f.confidence,
                    reasons,
                ])?;
                if created == 1 {
                    new.created(d);
                } else {
                    raise_confidence.execute(params![f.fingerprint, f.confidence, reasons])?;
                }
                new.seen(d);
                let inserted = insert_location.execute(params![
                    f.fingerprint,
                    key,
                    l.source,
                    l.source_kind,
                    l.repository,
                    l.commit,
                    l.author,
                    l.path,
                    to_i64(l.line),
                    to_i64(l.column),
                    l.image,
                    l.layer,
                    l.layer_index,
                    l.deleted,
                    l.content_created,
                    detected_at,
                ])?;
                let added = i64::from(inserted == 1);
                new_locations += to_u64(added);
                update_finding.execute(params![f.fingerprint, added, l.content_created])?;
            }
            Ok(RecordOutcome {
                new_findings: new.finish(detected_at),
                new_locations,
            })
        })
    }

    fn list_findings(&self, filter: &FindingFilter) -> anyhow::Result<Vec<FindingView>> {
        let (where_sql, values) = finding_filter_sql(filter, |n| format!("?{n}"));
        let sql = format!("SELECT {FINDING_VIEW_COLUMNS} FROM findings f{where_sql}");
        self.read("listing findings", |tx| {
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(values.iter().map(sql_value)), |r| {
                view_from_row(r)
            })?;
            rows.collect()
        })
    }

    fn finding(&self, fingerprint: &str) -> anyhow::Result<Option<FindingDetail>> {
        self.read("reading a finding", |tx| {
            let view = tx
                .query_row(
                    &format!(
                        "SELECT {FINDING_VIEW_COLUMNS} FROM findings f WHERE f.fingerprint = ?1"
                    ),
                    [fingerprint],
                    view_from_row,
                )
                .optional()?;
            let Some(view) = view else {
                return Ok(None);
            };
            let location_list = tx
                .prepare_cached(&format!(
                    "SELECT {LOCATION_COLUMNS} FROM locations WHERE fingerprint = ?1 ORDER BY id"
                ))?
                .query_map([fingerprint], location_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let history = tx
                .prepare_cached(
                    "SELECT status, changed_by, reason, at FROM status_history
                     WHERE fingerprint = ?1 ORDER BY id",
                )?
                .query_map([fingerprint], |r| {
                    Ok(StatusChange {
                        status: parsed(r, 0)?,
                        by: r.get(1)?,
                        reason: r.get(2)?,
                        at: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(FindingDetail {
                view,
                location_list,
                history,
            }))
        })
    }

    fn set_status(
        &self,
        fingerprint: &str,
        status: Status,
        by: &str,
        reason: &str,
        at: Unix,
    ) -> anyhow::Result<bool> {
        self.write("setting a finding's status", |tx| {
            let changed = tx.execute(
                "UPDATE findings SET status = ?2, status_changed_at = ?3, status_changed_by = ?4,
                     status_reason = ?5
                 WHERE fingerprint = ?1",
                params![fingerprint, status.as_str(), at, by, reason],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO status_history (fingerprint, status, changed_by, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![fingerprint, status.as_str(), by, reason, at],
            )?;
            Ok(true)
        })
    }

    fn open_counts(&self) -> anyhow::Result<Vec<OpenCount>> {
        self.read("counting open findings", |tx| {
            tx.prepare_cached(
                "SELECT severity, rule, source_kind, confidence, count(*) FROM findings
                 WHERE status = 'open'
                 GROUP BY severity, rule, source_kind, confidence
                 ORDER BY severity, rule, source_kind, confidence",
            )?
            .query_map([], |r| {
                Ok(OpenCount {
                    severity: r.get(0)?,
                    rule: r.get(1)?,
                    source_kind: r.get(2)?,
                    confidence: r.get(3)?,
                    count: to_u64(r.get(4)?),
                })
            })?
            .collect()
        })
    }

    fn count_findings(&self) -> anyhow::Result<u64> {
        self.read("counting findings", |tx| {
            tx.query_row("SELECT count(*) FROM findings", [], |r| r.get(0))
                .map(to_u64)
        })
    }

    fn enqueue(
        &self,
        source: &str,
        kind: &str,
        payload: &str,
        now: Unix,
    ) -> anyhow::Result<Option<JobId>> {
        self.write("queueing a job", |tx| {
            // The partial unique index on queued jobs makes a second queued job for the source a
            // conflict: nothing is inserted and nothing returned.
            Ok(tx
                .query_row(
                    "INSERT INTO jobs (source, kind, payload, state, run_after, created_at)
                     VALUES (?1, ?2, ?3, 'queued', ?4, ?4)
                     ON CONFLICT DO NOTHING
                     RETURNING id",
                    params![source, kind, payload, now],
                    |r| r.get(0).map(JobId),
                )
                .optional()?)
        })
    }

    fn claim(&self, owner: &str, now: Unix, lease_secs: i64) -> anyhow::Result<Option<Job>> {
        let lease_until = now.saturating_add(lease_secs);
        self.write("claiming a job", |tx| {
            Ok(tx
                .query_row(
                    "UPDATE jobs SET state = 'running', owner = ?1, lease_until = ?3,
                         attempts = attempts + 1, started_at = ?2, finished_at = NULL
                     WHERE id = (
                         SELECT j.id FROM jobs j
                         WHERE ((j.state = 'queued' AND j.run_after <= ?2)
                                OR (j.state = 'running' AND j.lease_until < ?2))
                           AND NOT EXISTS (
                               SELECT 1 FROM jobs r
                               WHERE r.source = j.source AND r.id <> j.id
                                 AND r.state = 'running' AND r.lease_until >= ?2)
                         ORDER BY j.id
                         LIMIT 1)
                     RETURNING id, source, kind, payload, attempts",
                    params![owner, now, lease_until],
                    |r| {
                        Ok(Job {
                            id: JobId(r.get(0)?),
                            source: r.get(1)?,
                            kind: r.get(2)?,
                            payload: r.get(3)?,
                            attempts: to_u32(r.get(4)?),
                        })
                    },
                )
                .optional()?)
        })
    }

    fn renew(&self, id: JobId, owner: &str, now: Unix, lease_secs: i64) -> anyhow::Result<bool> {
        self.write("renewing a job lease", |tx| {
            let n = tx.execute(
                "UPDATE jobs SET lease_until = ?3
                 WHERE id = ?1 AND owner = ?2 AND state = 'running'",
                params![id.0, owner, now.saturating_add(lease_secs)],
            )?;
            Ok(n == 1)
        })
    }

    fn finish(
        &self,
        id: JobId,
        owner: &str,
        now: Unix,
        outcome: &JobOutcome,
    ) -> anyhow::Result<bool> {
        self.write("finishing a job", |tx| {
            let source: Option<String> = tx
                .query_row(
                    "SELECT source FROM jobs WHERE id = ?1 AND owner = ?2 AND state = 'running'",
                    params![id.0, owner],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(source) = source else {
                return Ok(false);
            };
            let mut plan = FinishAs::of(outcome);
            if let FinishAs::Retry(_) = plan {
                let queued: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM jobs WHERE source = ?1 AND state = 'queued')",
                    [&source],
                    |r| r.get(0),
                )?;
                if queued {
                    plan = FinishAs::Failed;
                }
            }
            let (state, finished_at, run_after) = plan.columns(now);
            tx.execute(
                "UPDATE jobs SET state = ?2, lease_until = NULL, finished_at = ?3,
                     run_after = coalesce(?4, run_after), last_error = ?5,
                     bytes = ?6, objects = ?7, findings = ?8
                 WHERE id = ?1",
                params![
                    id.0,
                    state,
                    finished_at,
                    run_after,
                    outcome.error,
                    to_i64(outcome.bytes),
                    to_i64(outcome.objects),
                    to_i64(outcome.findings),
                ],
            )?;
            Ok(true)
        })
    }

    fn list_jobs(&self, limit: u32) -> anyhow::Result<Vec<JobView>> {
        self.read("listing jobs", |tx| {
            tx.prepare_cached(&format!(
                "SELECT {JOB_VIEW_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?1"
            ))?
            .query_map([page_size(limit)], job_view_from_row)?
            .collect()
        })
    }

    fn queue_depth(&self) -> anyhow::Result<u64> {
        self.read("counting queued jobs", |tx| {
            tx.query_row(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
                [],
                |r| r.get(0),
            )
            .map(to_u64)
        })
    }

    fn get_state(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.read("reading scan state", |tx| {
            tx.query_row("SELECT bytes FROM scan_state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    fn put_state(&self, key: &str, bytes: &[u8], now: Unix) -> anyhow::Result<()> {
        self.write("writing scan state", |tx| {
            tx.execute(
                "INSERT INTO scan_state (key, bytes, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE
                 SET bytes = excluded.bytes, updated_at = excluded.updated_at",
                params![key, bytes, now],
            )?;
            Ok(())
        })
    }

    fn is_scanned(&self, kind: &str, id: &str) -> anyhow::Result<bool> {
        self.read("reading scanned objects", |tx| {
            tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM scanned WHERE kind = ?1 AND id = ?2)",
                [kind, id],
                |r| r.get(0),
            )
        })
    }

    fn mark_scanned(&self, kind: &str, id: &str, now: Unix) -> anyhow::Result<()> {
        self.write("marking an object scanned", |tx| {
            tx.execute(
                "INSERT INTO scanned (kind, id, scanned_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, id) DO NOTHING",
                params![kind, id, now],
            )?;
            Ok(())
        })
    }
}

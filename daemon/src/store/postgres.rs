//! The PostgreSQL backend: a small pool of synchronous `postgres` clients, for several daemons
//! sharing one database.
//!
//! Concurrency between daemons rests on the database: findings and locations are unique
//! constraints written with `ON CONFLICT DO NOTHING`, at most one queued job per source is a
//! partial unique index, and [`Store::claim`] locks its candidate with `FOR UPDATE SKIP LOCKED`.
//! Migrations run under an advisory lock, so daemons starting together migrate once.
//!
//! A broken connection (server restart, `pg_terminate_backend`, network) is dropped from the
//! pool, and the call is retried once on a new connection.
//!
//! TLS is not supported yet (`sslmode=require` fails to connect).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};
use tracing::{info, warn};

use super::{
    Detection, FINDING_VIEW_COLUMNS, FindingDetail, FindingFilter, FindingView, FinishAs,
    JOB_VIEW_COLUMNS, Job, JobId, JobOutcome, JobView, LOCATION_COLUMNS, Migration, NewFindings,
    OpenCount, RecordOutcome, SCHEMA_VERSION, SqlValue, Status, StatusChange, Store, StoreError,
    StoredFinding, StoredLocation, Unix, confidence_rank, finding_filter_sql, page_size, pending,
    reasons_from_column, redact_spec, sorted_with_keys, to_i64, to_u32, to_u64, validate,
    wall_clock,
};

/// The schema, one file per version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/postgres/0002_open_counts_index.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/postgres/0003_confidence.sql"),
    },
];

/// Advisory lock (one bigint key: "keyward" + 0x01) held by the migration transaction.
const MIGRATION_LOCK: i64 = 0x6b65_7977_6172_6401;
/// Advisory lock class (two int keys: class, `hashtext(source)`) held by a claim while it checks
/// that no other job of the source runs. The two-key space never collides with the one-key one.
const SOURCE_LOCK_CLASS: i32 = 0x6b77_0001;
/// How many candidates one claim tries before giving up (each failure means another daemon
/// just started a job of the same source).
const CLAIM_TRIES: usize = 8;
/// Connections per store. The daemon's store calls are short; a few connections keep the API
/// answering while a scan records, without taking many of the server's `max_connections`.
const POOL_SIZE: usize = 4;
/// Used unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] in a PostgreSQL database.
pub struct PostgresStore {
    /// The URL with its password redacted.
    shown: String,
    pool: Pool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and migrates the database to
    /// [`SCHEMA_VERSION`]. Blocks: call it outside async tasks.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let mut config: postgres::Config = url.parse().context("parsing the PostgreSQL URL")?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("keyward");
        }
        let shown = redact_spec(url);
        let store = Self {
            pool: Pool::new(config, POOL_SIZE, shown.clone()),
            shown,
        };
        let from = {
            let mut client = store.pool.get()?;
            migrate(&mut client)?
        };
        if from < SCHEMA_VERSION {
            info!(store = %store.shown, from, to = SCHEMA_VERSION, "Store schema migrated.");
        }
        info!(backend = "postgres", store = %store.shown, "Store opened.");
        Ok(store)
    }

    /// Runs `f` on a pooled connection; if it fails because the connection broke, runs it once
    /// more on a new one.
    fn with_client<T>(
        &self,
        what: &'static str,
        mut f: impl FnMut(&mut Client) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut retried = false;
        loop {
            let mut client = self.pool.get().context(what)?;
            match f(&mut client) {
                Ok(v) => return Ok(v),
                Err(e) if connection_lost(&e, &client) => {
                    client.discard();
                    if retried {
                        return Err(e.context(what));
                    }
                    warn!(
                        store = %self.shown,
                        error = %format!("{e:#}"),
                        "Store connection lost; reconnecting."
                    );
                    retried = true;
                }
                Err(e) => return Err(e.context(what)),
            }
        }
    }
}

/// Whether `err` means the connection is gone (rather than the statement failing): the client
/// saw it close, or the server said it is shutting the session down (SQLSTATE class 57P, e.g.
/// `pg_terminate_backend`, or class 08, connection exceptions). The client may not have noticed
/// the closed socket yet when the server's last message arrives, so both are checked.
fn connection_lost(err: &anyhow::Error, client: &Client) -> bool {
    client.is_closed()
        || err.chain().any(|cause| {
            cause.downcast_ref::<postgres::Error>().is_some_and(|e| {
                e.is_closed()
                    || e.code()
                        .is_some_and(|c| c.code().starts_with("57P") || c.code().starts_with("08"))
            })
        })
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; returns the version it found.
fn migrate(client: &mut Client) -> anyhow::Result<u32> {
    let mut tx = client.transaction()?;
    // NOTE: several daemons may start at once against one database. The lock serializes their
    // migrations (and the CREATE TABLE IF NOT EXISTS, which races otherwise); it is released at
    // commit or rollback.
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER NOT NULL PRIMARY KEY,
             applied_at BIGINT  NOT NULL
         )",
    )?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
        .get(0);
    let current = u32::try_from(current).unwrap_or(0);
    for m in pending(MIGRATIONS, current)? {
        tx.batch_execute(m.sql)
            .with_context(|| format!("applying PostgreSQL schema migration {}", m.version))?;
        let version = i32::try_from(m.version).context("migration version")?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
            &[&version, &wall_clock()],
        )?;
    }
    tx.commit()?;
    Ok(current)
}

/// A text column parsed into one of the closed-set enums.
fn parsed<T: FromStr<Err = StoreError>>(r: &Row, idx: usize) -> anyhow::Result<T> {
    Ok(r.try_get::<_, String>(idx)?.parse()?)
}

fn view_from_row(r: &Row) -> anyhow::Result<FindingView> {
    Ok(FindingView {
        finding: StoredFinding {
            fingerprint: r.try_get(0)?,
            rule: r.try_get(1)?,
            rule_name: r.try_get(2)?,
            severity: r.try_get(3)?,
            redacted: r.try_get(4)?,
            validation: r.try_get(5)?,
            source_kind: r.try_get(6)?,
            confidence: r.try_get(14)?,
            reasons: reasons_from_column(r.try_get(15)?),
        },
        status: parsed(r, 7)?,
        first_seen: r.try_get(8)?,
        content_created: r.try_get(9)?,
        locations: to_u64(r.try_get(10)?),
        status_changed_at: r.try_get(11)?,
        status_changed_by: r.try_get(12)?,
        status_reason: r.try_get(13)?,
    })
}

fn location_from_row(r: &Row) -> anyhow::Result<StoredLocation> {
    Ok(StoredLocation {
        source: r.try_get(0)?,
        source_kind: r.try_get(1)?,
        repository: r.try_get(2)?,
        commit: r.try_get(3)?,
        author: r.try_get(4)?,
        path: r.try_get(5)?,
        line: to_u64(r.try_get(6)?),
        column: to_u64(r.try_get(7)?),
        image: r.try_get(8)?,
        layer: r.try_get(9)?,
        layer_index: r.try_get::<_, Option<i64>>(10)?.map(to_u32),
        deleted: r.try_get(11)?,
        content_created: r.try_get(12)?,
    })
}

fn job_view_from_row(r: &Row) -> anyhow::Result<JobView> {
    Ok(JobView {
        id: JobId(r.try_get(0)?),
        source: r.try_get(1)?,
        kind: r.try_get(2)?,
        state: parsed(r, 3)?,
        attempts: to_u32(r.try_get(4)?),
        owner: r.try_get(5)?,
        created_at: r.try_get(6)?,
        started_at: r.try_get(7)?,
        finished_at: r.try_get(8)?,
        last_error: r.try_get(9)?,
        bytes: to_u64(r.try_get(10)?),
        objects: to_u64(r.try_get(11)?),
        findings: to_u64(r.try_get(12)?),
    })
}

fn job_from_row(r: &Row) -> anyhow::Result<Job> {
    Ok(Job {
        id: JobId(r.try_get(0)?),
        source: r.try_get(1)?,
        kind: r.try_get(2)?,
        payload: r.try_get(3)?,
        attempts: to_u32(r.try_get(4)?),
    })
}

/// Detections per round of [`record_chunk`]'s statements: bounds the size of one statement's
/// arrays, while a scan's batch still costs a few round trips rather than three per detection.
const RECORD_CHUNK: usize = 2000;

/// Inserts the findings of the chunk that are new (returning their fingerprints).
const INSERT_FINDINGS: &str = "INSERT INTO findings (fingerprint, rule, rule_name, severity,
         redacted, validation, source_kind, first_seen, content_created, confidence, reasons)
     SELECT u.fp, u.rule, u.rule_name, u.severity, u.redacted, u.validation, u.source_kind, $8,
         u.cc, u.confidence, u.reasons
     FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                 $7::TEXT[], $9::BIGINT[], $10::TEXT[], $11::TEXT[])
         AS u (fp, rule, rule_name, severity, redacted, validation, source_kind, cc, confidence,
               reasons)
     ON CONFLICT (fingerprint) DO NOTHING
     RETURNING fingerprint";

/// Inserts the locations of the chunk that are new (returning their findings' fingerprints).
const INSERT_LOCATIONS: &str = "INSERT INTO locations (fingerprint, key, source, source_kind,
         repository, commit_id, author, path, line, col, image, layer, layer_index, deleted,
         content_created, first_seen)
     SELECT u.fp, u.key, u.source, u.source_kind, u.repository, u.commit_id, u.author, u.path,
         u.line, u.col, u.image, u.layer, u.layer_index, u.deleted, u.cc, $16
     FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                 $7::TEXT[], $8::TEXT[], $9::BIGINT[], $10::BIGINT[], $11::TEXT[], $12::TEXT[],
                 $13::BIGINT[], $14::BOOLEAN[], $15::BIGINT[])
         AS u (fp, key, source, source_kind, repository, commit_id, author, path, line, col,
               image, layer, layer_index, deleted, cc)
     ON CONFLICT (fingerprint, key) DO NOTHING
     RETURNING fingerprint";

/// Adds new locations to the count, lowers content_created and raises the confidence (with its
/// reasons; never lowered), touching only rows that change. The rows are locked in fingerprint
/// order first, so two daemons recording overlapping findings cannot deadlock. `NO KEY UPDATE`
/// (what the UPDATE itself takes) does not conflict with the `KEY SHARE` lock that another
/// transaction's location insert takes on the finding through the foreign key.
const UPDATE_FINDINGS: &str = "WITH v AS (
         SELECT *,
             CASE v.confidence WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END AS rank
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[])
             AS v (fp, added, cc, confidence, reasons)
     ), locked AS (
         SELECT f.fingerprint FROM findings f JOIN v ON v.fp = f.fingerprint
         WHERE v.added > 0
            OR (v.cc IS NOT NULL AND (f.content_created IS NULL OR v.cc < f.content_created))
            OR v.rank > CASE f.confidence WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END
         ORDER BY f.fingerprint
         FOR NO KEY UPDATE OF f
     )
     UPDATE findings f
     SET location_count = f.location_count + v.added,
         content_created = LEAST(f.content_created, v.cc),
         confidence = CASE WHEN v.rank
                 > CASE f.confidence WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END
             THEN v.confidence ELSE f.confidence END,
         reasons = CASE WHEN v.rank
                 > CASE f.confidence WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END
             THEN v.reasons ELSE f.reasons END
     FROM v JOIN locked ON locked.fingerprint = v.fp
     WHERE f.fingerprint = v.fp";

/// The most confident detection of a group of one finding's detections (the first of equals):
/// its confidence and reasons are what the finding gets, or is raised to.
fn most_confident<'a>(group: &[(&'a Detection, String)]) -> &'a StoredFinding {
    let mut best = &group[0].0.finding;
    for (d, _) in group {
        if confidence_rank(&d.finding.confidence) > confidence_rank(&best.confidence) {
            best = &d.finding;
        }
    }
    best
}

/// Records one chunk of detections, sorted by (fingerprint, location key), in three statements;
/// returns the number of locations added. A fingerprint may continue from the previous chunk.
fn record_chunk(
    tx: &mut postgres::Transaction<'_>,
    chunk: &[(&Detection, String)],
    detected_at: Unix,
    new: &mut NewFindings,
) -> anyhow::Result<u64> {
    let same_finding = |a: &(&Detection, String), b: &(&Detection, String)| {
        a.0.finding.fingerprint == b.0.finding.fingerprint
    };
    let earliest = |group: &[(&Detection, String)]| {
        group
            .iter()
            .filter_map(|(d, _)| d.location.content_created)
            .min()
    };

    // Findings: one row per fingerprint, with the chunk's earliest content date and highest
    // confidence.
    let groups: Vec<&[(&Detection, String)]> = chunk.chunk_by(same_finding).collect();
    let mut f_cols: [Vec<&str>; 7] = Default::default();
    let mut f_cc: Vec<Option<Unix>> = Vec::with_capacity(groups.len());
    let mut f_confidence: Vec<&str> = Vec::with_capacity(groups.len());
    let mut f_reasons: Vec<String> = Vec::with_capacity(groups.len());
    for group in &groups {
        let best = most_confident(group);
        f_confidence.push(&best.confidence);
        f_reasons.push(best.reasons_column());
        let f = &group[0].0.finding;
        for (col, v) in f_cols.iter_mut().zip([
            &f.fingerprint,
            &f.rule,
            &f.rule_name,
            &f.severity,
            &f.redacted,
            &f.validation,
            &f.source_kind,
        ]) {
            col.push(v.as_str());
        }
        f_cc.push(earliest(group));
    }
    let [
        fp,
        rule,
        rule_name,
        severity,
        redacted,
        validation,
        source_kind,
    ] = &f_cols;
    let created: HashSet<String> = tx
        .query(
            INSERT_FINDINGS,
            &[
                fp,
                rule,
                rule_name,
                severity,
                redacted,
                validation,
                source_kind,
                &detected_at,
                &f_cc,
                &f_confidence,
                &f_reasons,
            ],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for group in &groups {
        if created.contains(&group[0].0.finding.fingerprint) {
            new.created(group[0].0);
        }
        for (d, _) in *group {
            new.seen(d);
        }
    }

    // Locations: one row per (fingerprint, key).
    let places: Vec<&(&Detection, String)> = chunk
        .chunk_by(|a, b| same_finding(a, b) && a.1 == b.1)
        .map(|g| &g[0])
        .collect();
    let text = |get: fn(&Detection) -> Option<&str>| -> Vec<Option<&str>> {
        places.iter().map(|(d, _)| get(d)).collect()
    };
    let l_fp = text(|d| Some(&d.finding.fingerprint));
    let l_key: Vec<&str> = places.iter().map(|(_, k)| k.as_str()).collect();
    let l_source = text(|d| Some(&d.location.source));
    let l_kind = text(|d| Some(&d.location.source_kind));
    let l_repository = text(|d| d.location.repository.as_deref());
    let l_commit = text(|d| d.location.commit.as_deref());
    let l_author = text(|d| d.location.author.as_deref());
    let l_path = text(|d| d.location.path.as_deref());
    let l_image = text(|d| d.location.image.as_deref());
    let l_layer = text(|d| d.location.layer.as_deref());
    let l_line: Vec<i64> = places
        .iter()
        .map(|(d, _)| to_i64(d.location.line))
        .collect();
    let l_col: Vec<i64> = places
        .iter()
        .map(|(d, _)| to_i64(d.location.column))
        .collect();
    let l_layer_index: Vec<Option<i64>> = places
        .iter()
        .map(|(d, _)| d.location.layer_index.map(i64::from))
        .collect();
    let l_deleted: Vec<bool> = places.iter().map(|(d, _)| d.location.deleted).collect();
    let l_cc: Vec<Option<Unix>> = places
        .iter()
        .map(|(d, _)| d.location.content_created)
        .collect();
    let mut added: HashMap<String, i64> = HashMap::new();
    let rows = tx.query(
        INSERT_LOCATIONS,
        &[
            &l_fp,
            &l_key,
            &l_source,
            &l_kind,
            &l_repository,
            &l_commit,
            &l_author,
            &l_path,
            &l_line,
            &l_col,
            &l_image,
            &l_layer,
            &l_layer_index,
            &l_deleted,
            &l_cc,
            &detected_at,
        ],
    )?;
    for r in &rows {
        *added.entry(r.try_get(0)?).or_default() += 1;
    }

    // Counts, content dates and confidence, only for findings where something may change (a
    // finding created by this chunk already has its highest confidence).
    let mut u_fp: Vec<&str> = Vec::new();
    let mut u_added: Vec<i64> = Vec::new();
    let mut u_cc: Vec<Option<Unix>> = Vec::new();
    let mut u_confidence: Vec<&str> = Vec::new();
    let mut u_reasons: Vec<&str> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let fp = group[0].0.finding.fingerprint.as_str();
        let n = added.get(fp).copied().unwrap_or(0);
        let cc = earliest(group);
        if n > 0 || cc.is_some() || !created.contains(fp) {
            u_fp.push(fp);
            u_added.push(n);
            u_cc.push(cc);
            u_confidence.push(f_confidence[i]);
            u_reasons.push(&f_reasons[i]);
        }
    }
    if !u_fp.is_empty() {
        tx.execute(
            UPDATE_FINDINGS,
            &[&u_fp, &u_added, &u_cc, &u_confidence, &u_reasons],
        )?;
    }
    Ok(rows.len() as u64)
}

/// Finds the oldest runnable job and locks it, skipping jobs another transaction has locked.
const CLAIM_CANDIDATE: &str = "SELECT j.id, j.source FROM jobs j
     WHERE ((j.state = 'queued' AND j.run_after <= $1)
            OR (j.state = 'running' AND j.lease_until < $1))
       AND NOT EXISTS (
           SELECT 1 FROM jobs r
           WHERE r.source = j.source AND r.id <> j.id
             AND r.state = 'running' AND r.lease_until >= $1)
     ORDER BY j.id
     LIMIT 1
     FOR UPDATE SKIP LOCKED";

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> anyhow::Result<()> {
        self.with_client("pinging the PostgreSQL store", |c| {
            c.batch_execute("SELECT 1")?;
            Ok(())
        })
    }

    fn record(&self, detections: &[Detection], detected_at: Unix) -> anyhow::Result<RecordOutcome> {
        validate(detections)?;
        let sorted = sorted_with_keys(detections);
        self.with_client("recording findings", |c| {
            let mut tx = c.transaction()?;
            let mut new = NewFindings::default();
            let mut new_locations = 0u64;
            for chunk in sorted.chunks(RECORD_CHUNK) {
                new_locations += record_chunk(&mut tx, chunk, detected_at, &mut new)?;
            }
            tx.commit()?;
            Ok(RecordOutcome {
                new_findings: new.finish(detected_at),
                new_locations,
            })
        })
    }

    fn list_findings(&self, filter: &FindingFilter) -> anyhow::Result<Vec<FindingView>> {
        let (where_sql, values) = finding_filter_sql(filter, |n| format!("${n}"));
        let sql = format!("SELECT {FINDING_VIEW_COLUMNS} FROM findings f{where_sql}");
        let params: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|v| match v {
                SqlValue::Text(s) => s as &(dyn ToSql + Sync),
                SqlValue::Int(i) => i as &(dyn ToSql + Sync),
            })
            .collect();
        self.with_client("listing findings", |c| {
            c.query(&sql, &params)?.iter().map(view_from_row).collect()
        })
    }

    fn finding(&self, fingerprint: &str) -> anyhow::Result<Option<FindingDetail>> {
        self.with_client("reading a finding", |c| {
            // REPEATABLE READ: the finding, its locations and its history from one snapshot.
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let Some(row) = tx.query_opt(
                &format!("SELECT {FINDING_VIEW_COLUMNS} FROM findings f WHERE f.fingerprint = $1"),
                &[&fingerprint],
            )?
            else {
                return Ok(None);
            };
            let view = view_from_row(&row)?;
            let location_list = tx
                .query(
                    &format!(
                        "SELECT {LOCATION_COLUMNS} FROM locations WHERE fingerprint = $1 \
                         ORDER BY id"
                    ),
                    &[&fingerprint],
                )?
                .iter()
                .map(location_from_row)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let history = tx
                .query(
                    "SELECT status, changed_by, reason, at FROM status_history
                     WHERE fingerprint = $1 ORDER BY id",
                    &[&fingerprint],
                )?
                .iter()
                .map(|r| {
                    Ok(StatusChange {
                        status: parsed(r, 0)?,
                        by: r.try_get(1)?,
                        reason: r.try_get(2)?,
                        at: r.try_get(3)?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            tx.commit()?;
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
        self.with_client("setting a finding's status", |c| {
            let mut tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE findings SET status = $2, status_changed_at = $3, status_changed_by = $4,
                     status_reason = $5
                 WHERE fingerprint = $1",
                &[&fingerprint, &status.as_str(), &at, &by, &reason],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO status_history (fingerprint, status, changed_by, reason, at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&fingerprint, &status.as_str(), &by, &reason, &at],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn open_counts(&self) -> anyhow::Result<Vec<OpenCount>> {
        self.with_client("counting open findings", |c| {
            c.query(
                "SELECT severity, rule, source_kind, confidence, count(*) FROM findings
                 WHERE status = 'open'
                 GROUP BY severity, rule, source_kind, confidence
                 ORDER BY severity, rule, source_kind, confidence",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(OpenCount {
                    severity: r.try_get(0)?,
                    rule: r.try_get(1)?,
                    source_kind: r.try_get(2)?,
                    confidence: r.try_get(3)?,
                    count: to_u64(r.try_get(4)?),
                })
            })
            .collect()
        })
    }

    fn count_findings(&self) -> anyhow::Result<u64> {
        self.with_client("counting findings", |c| {
            Ok(to_u64(
                c.query_one("SELECT count(*) FROM findings", &[])?
                    .try_get(0)?,
            ))
        })
    }

    fn enqueue(
        &self,
        source: &str,
        kind: &str,
        payload: &str,
        now: Unix,
    ) -> anyhow::Result<Option<JobId>> {
        self.with_client("queueing a job", |c| {
            // The partial unique index on queued jobs makes a second queued job for the source a
            // conflict: nothing is inserted and nothing returned.
            let row = c.query_opt(
                "INSERT INTO jobs (source, kind, payload, state, run_after, created_at)
                 VALUES ($1, $2, $3, 'queued', $4, $4)
                 ON CONFLICT (source) WHERE state = 'queued' DO NOTHING
                 RETURNING id",
                &[&source, &kind, &payload, &now],
            )?;
            Ok(row.map(|r| r.try_get(0).map(JobId)).transpose()?)
        })
    }

    fn claim(&self, owner: &str, now: Unix, lease_secs: i64) -> anyhow::Result<Option<Job>> {
        let lease_until = now.saturating_add(lease_secs);
        self.with_client("claiming a job", |c| {
            for _ in 0..CLAIM_TRIES {
                let mut tx = c.transaction()?;
                let Some(candidate) = tx.query_opt(CLAIM_CANDIDATE, &[&now])? else {
                    return Ok(None);
                };
                let id: i64 = candidate.try_get(0)?;
                let source: String = candidate.try_get(1)?;
                // NOTE: the candidate query's NOT EXISTS saw a snapshot taken before it locked
                // the row: another daemon may have just committed a claim of another job of the
                // same source. Claims of one source serialize on this lock, and the check below
                // (a new statement, so a new snapshot) sees any claim committed before it.
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))::text",
                    &[&SOURCE_LOCK_CLASS, &source],
                )?;
                let busy: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM jobs
                             WHERE source = $1 AND id <> $2
                               AND state = 'running' AND lease_until >= $3)",
                        &[&source, &id, &now],
                    )?
                    .try_get(0)?;
                if busy {
                    tx.rollback()?;
                    continue;
                }
                let row = tx.query_one(
                    "UPDATE jobs SET state = 'running', owner = $2, lease_until = $4,
                         attempts = attempts + 1, started_at = $3, finished_at = NULL
                     WHERE id = $1
                     RETURNING id, source, kind, payload, attempts",
                    &[&id, &owner, &now, &lease_until],
                )?;
                let job = job_from_row(&row)?;
                tx.commit()?;
                return Ok(Some(job));
            }
            Ok(None)
        })
    }

    fn renew(&self, id: JobId, owner: &str, now: Unix, lease_secs: i64) -> anyhow::Result<bool> {
        let lease_until = now.saturating_add(lease_secs);
        self.with_client("renewing a job lease", |c| {
            let n = c.execute(
                "UPDATE jobs SET lease_until = $3
                 WHERE id = $1 AND owner = $2 AND state = 'running'",
                &[&id.0, &owner, &lease_until],
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
        const UPDATE: &str = "UPDATE jobs SET state = $2, lease_until = NULL, finished_at = $3,
                 run_after = coalesce($4, run_after), last_error = $5,
                 bytes = $6, objects = $7, findings = $8
             WHERE id = $1";
        let (bytes, objects, findings) = (
            to_i64(outcome.bytes),
            to_i64(outcome.objects),
            to_i64(outcome.findings),
        );
        self.with_client("finishing a job", |c| {
            let mut tx = c.transaction()?;
            let held = tx.query_opt(
                "SELECT 1 FROM jobs WHERE id = $1 AND owner = $2 AND state = 'running' FOR UPDATE",
                &[&id.0, &owner],
            )?;
            if held.is_none() {
                return Ok(false);
            }
            let mut plan = FinishAs::of(outcome);
            if let FinishAs::Retry(_) = plan {
                // Queued again unless another job of the source is already queued (the partial
                // unique index says so, also for one queued concurrently): then it is failed.
                let (state, finished_at, run_after) = plan.columns(now);
                let mut savepoint = tx.transaction()?;
                match savepoint.execute(
                    UPDATE,
                    &[
                        &id.0,
                        &state,
                        &finished_at,
                        &run_after,
                        &outcome.error,
                        &bytes,
                        &objects,
                        &findings,
                    ],
                ) {
                    Ok(_) => {
                        savepoint.commit()?;
                        tx.commit()?;
                        return Ok(true);
                    }
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        savepoint.rollback()?;
                        plan = FinishAs::Failed;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let (state, finished_at, run_after) = plan.columns(now);
            tx.execute(
                UPDATE,
                &[
                    &id.0,
                    &state,
                    &finished_at,
                    &run_after,
                    &outcome.error,
                    &bytes,
                    &objects,
                    &findings,
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn list_jobs(&self, limit: u32) -> anyhow::Result<Vec<JobView>> {
        let limit = i64::from(page_size(limit));
        self.with_client("listing jobs", |c| {
            c.query(
                &format!("SELECT {JOB_VIEW_COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1"),
                &[&limit],
            )?
            .iter()
            .map(job_view_from_row)
            .collect()
        })
    }

    fn queue_depth(&self) -> anyhow::Result<u64> {
        self.with_client("counting queued jobs", |c| {
            Ok(to_u64(
                c.query_one(
                    "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
                    &[],
                )?
                .try_get(0)?,
            ))
        })
    }

    fn get_state(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.with_client("reading scan state", |c| {
            let row = c.query_opt("SELECT bytes FROM scan_state WHERE key = $1", &[&key])?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
    }

    fn put_state(&self, key: &str, bytes: &[u8], now: Unix) -> anyhow::Result<()> {
        self.with_client("writing scan state", |c| {
            c.execute(
                "INSERT INTO scan_state (key, bytes, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE
                 SET bytes = EXCLUDED.bytes, updated_at = EXCLUDED.updated_at",
                &[&key, &bytes, &now],
            )?;
            Ok(())
        })
    }

    fn is_scanned(&self, kind: &str, id: &str) -> anyhow::Result<bool> {
        self.with_client("reading scanned objects", |c| {
            Ok(c.query_one(
                "SELECT EXISTS (SELECT 1 FROM scanned WHERE kind = $1 AND id = $2)",
                &[&kind, &id],
            )?
            .try_get(0)?)
        })
    }

    fn mark_scanned(&self, kind: &str, id: &str, now: Unix) -> anyhow::Result<()> {
        self.with_client("marking an object scanned", |c| {
            c.execute(
                "INSERT INTO scanned (kind, id, scanned_at) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, id) DO NOTHING",
                &[&kind, &id, &now],
            )?;
            Ok(())
        })
    }
}

/// Up to `max` connections, made on demand; a caller waits when all are in use.
///
/// Invariant: `open` counts the idle clients plus those checked out.
struct Pool {
    config: postgres::Config,
    max: usize,
    /// The URL with its password redacted, for errors.
    shown: String,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Client>,
    open: usize,
}

impl Pool {
    fn new(config: postgres::Config, max: usize, shown: String) -> Self {
        Self {
            config,
            max,
            shown,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is two plain fields, consistent at every unlock: a panic elsewhere while
        // holding the lock cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection that is not known broken, or a new one if fewer than `max` are open.
    fn get(&self) -> anyhow::Result<Pooled<'_>> {
        let mut state = self.lock();
        loop {
            while let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Pooled {
                    pool: self,
                    client: Some(client),
                });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(Pooled {
                        pool: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(anyhow::Error::new(e)
                            .context(format!("connecting to PostgreSQL at {}", self.shown)))
                    }
                };
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn put(&self, client: Client) {
        let mut state = self.lock();
        if client.is_closed() {
            state.open -= 1;
            drop(state);
            drop(client);
        } else {
            state.idle.push(client);
            drop(state);
        }
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(
            &mut self
                .state
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .idle,
        );
        if idle.is_empty() {
            return;
        }
        // NOTE: closing a client blocks on its own runtime, which panics inside an async task;
        // the daemon may drop its last handle to the store there, so close on a plain thread.
        let closer = std::thread::spawn(move || drop(idle));
        if closer.join().is_err() {
            warn!("Closing store connections panicked.");
        }
    }
}

/// A checked-out connection, returned to the pool on drop (or dropped if broken).
struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl Deref for Pooled<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a Pooled holds its client until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a Pooled holds its client until dropped")
    }
}

impl Pooled<'_> {
    /// Drops the connection instead of returning it to the pool.
    fn discard(mut self) {
        if let Some(client) = self.client.take() {
            self.pool.lock().open -= 1;
            self.pool.freed.notify_one();
            drop(client);
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.put(client);
        }
    }
}

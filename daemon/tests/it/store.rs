//! The findings store. Each body in the `both!` list runs twice: `store::sqlite::NAME` on a temp
//! SQLite file and `store::pg::NAME` on a fresh database of one real PostgreSQL server per test
//! binary. A few tests are backend-specific (file contents and mode; concurrent claimers, lost
//! connections, password redaction).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, LazyLock};

use keyward::store::{
    self, Detection, FindingFilter, FindingView, JobId, JobOutcome, JobState, NewFinding,
    OpenCount, SCHEMA_VERSION, Status, StatusChange, Store, StoreError, StoredFinding,
    StoredLocation,
};
use keyward_detectors::Confidence;
use keyward_tests::{Postgres, random_name};

/// One server for the whole binary. Statics are never dropped, so a watchdog stops it once this
/// process has exited.
static PG: LazyLock<Postgres> = LazyLock::new(|| {
    let pg = Postgres::start();
    stop_after_exit(&pg);
    pg
});

/// Starts `sh` in its own process group (so a Ctrl-C of the tests does not stop it) that waits
/// for this process to exit, then stops the server (SIGQUIT: immediate shutdown) and removes its
/// temp dir.
fn stop_after_exit(pg: &Postgres) {
    use std::os::unix::process::CommandExt as _;
    let data = PathBuf::from(pg.sql("SHOW data_directory"));
    let dir = data.parent().expect("data dir has a parent").to_path_buf();
    assert!(
        dir.starts_with(std::env::temp_dir()),
        "PostgreSQL data dir {} is not in the temp dir",
        data.display()
    );
    let script = r#"
        while kill -0 "$0" 2>/dev/null; do sleep 1; done
        pid=$(head -n 1 "$1/postmaster.pid") || exit 0
        kill -QUIT "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        rm -rf "$2"
    "#;
    // NOTE: never waited for: it outlives this process by design, and is then reaped by init.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", script])
        .arg(std::process::id().to_string())
        .arg(&data)
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the PostgreSQL watchdog");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty place for a store: a temp dir's `store.db`, or a new database.
struct Fx {
    backend: Backend,
    spec: String,
    dir: tempfile::TempDir,
}

impl Fx {
    fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = match backend {
            Backend::Sqlite => dir.path().join("store.db").display().to_string(),
            Backend::Postgres => {
                let db = random_name("keyward_store_");
                PG.sql(&format!("CREATE DATABASE {db}"));
                format!(
                    "postgres://postgres:{}@127.0.0.1:{}/{db}",
                    PG.password(),
                    PG.port()
                )
            }
        };
        Self { backend, spec, dir }
    }

    fn open(&self) -> Arc<dyn Store> {
        store::open(&self.spec).unwrap_or_else(|e| panic!("opening {}: {e:#}", self.spec))
    }

    fn db_path(&self) -> PathBuf {
        assert_eq!(self.backend, Backend::Sqlite);
        PathBuf::from(&self.spec)
    }

    /// Runs SQL on the store's database, outside the store.
    fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.db_path())
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Backend::Postgres => ::postgres::Client::connect(&self.spec, ::postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// Runs SQL on the store's database, outside the store; whether it succeeded.
    fn try_exec(&self, sql: &str) -> bool {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.db_path())
                .unwrap()
                .execute_batch(sql)
                .is_ok(),
            Backend::Postgres => ::postgres::Client::connect(&self.spec, ::postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .is_ok(),
        }
    }

    /// One bigint value, outside the store.
    fn query_i64(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.db_path())
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Backend::Postgres => ::postgres::Client::connect(&self.spec, ::postgres::NoTls)
                .unwrap()
                .query_one(sql, &[])
                .unwrap()
                .get(0),
        }
    }
}

/// Declares each body as a test on both backends.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Fx::new(super::Backend::Sqlite)); } )*
        }
        mod pg {
            $( #[test] fn $name() { super::$name(&super::Fx::new(super::Backend::Postgres)); } )*
        }
    };
}

both!(
    opens_and_pings,
    record_makes_one_finding_per_fingerprint,
    new_findings_and_time_to_detect,
    content_created_becomes_the_earliest,
    list_filters,
    list_page_sizes,
    set_status_keeps_history,
    open_counts_group_open_findings,
    finding_detail_round_trips,
    enqueue_coalesces_per_source,
    claim_order_and_one_running_job_per_source,
    lease_expiry_hands_the_job_over,
    retry_and_failure,
    scan_state,
    scanned_objects,
    reopen_keeps_everything_and_does_not_migrate_again,
    newer_schema_is_refused,
    invalid_values_are_refused,
    large_batches_and_duplicates,
    confidence_is_raised_never_lowered,
    list_filters_by_confidence,
    schema_2_store_migrates_to_confidence,
);

fn finding(fp: &str, rule: &str, severity: &str, kind: &str) -> StoredFinding {
    StoredFinding {
        fingerprint: fp.to_owned(),
        rule: rule.to_owned(),
        rule_name: format!("{rule} (name)"),
        severity: severity.to_owned(),
        redacted: format!("{}…zz", &fp[..3]),
        validation: "none".to_owned(),
        source_kind: kind.to_owned(),
        confidence: "medium".to_owned(),
        reasons: vec!["keyword-and-value".to_owned()],
    }
}

/// `f` at another confidence, with these reasons.
fn at(f: &StoredFinding, confidence: &str, reasons: &[&str]) -> StoredFinding {
    StoredFinding {
        confidence: confidence.to_owned(),
        reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        ..f.clone()
    }
}

fn git_loc(
    source: &str,
    commit: &str,
    path: &str,
    line: u64,
    created: Option<i64>,
) -> StoredLocation {
    StoredLocation {
        source: source.to_owned(),
        source_kind: "git".to_owned(),
        repository: Some(format!("https://git.example.test/{source}.git")),
        commit: Some(commit.to_owned()),
        author: Some("Dev <dev@example.test>".to_owned()),
        path: Some(path.to_owned()),
        line,
        column: 5,
        content_created: created,
        ..StoredLocation::default()
    }
}

fn loc(source: &str, kind: &str, path: &str) -> StoredLocation {
    StoredLocation {
        source: source.to_owned(),
        source_kind: kind.to_owned(),
        path: Some(path.to_owned()),
        line: 1,
        column: 1,
        ..StoredLocation::default()
    }
}

fn det(finding: &StoredFinding, location: &StoredLocation) -> Detection {
    Detection {
        finding: finding.clone(),
        location: location.clone(),
    }
}

fn fingerprints(s: &dyn Store, filter: &FindingFilter) -> Vec<String> {
    s.list_findings(filter)
        .unwrap()
        .into_iter()
        .map(|v| v.finding.fingerprint)
        .collect()
}

fn ok() -> JobOutcome {
    JobOutcome::default()
}

fn failed(error: &str, retry_at: Option<i64>) -> JobOutcome {
    JobOutcome {
        error: Some(error.to_owned()),
        retry_at,
        ..JobOutcome::default()
    }
}

fn job_view(s: &dyn Store, id: JobId) -> keyward::store::JobView {
    s.list_jobs(1000)
        .unwrap()
        .into_iter()
        .find(|j| j.id == id)
        .unwrap_or_else(|| panic!("job {id} not listed"))
}

fn opens_and_pings(fx: &Fx) {
    let s = fx.open();
    let want = match fx.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(s.backend(), want);
    s.ping().unwrap();
    assert_eq!(s.count_findings().unwrap(), 0);
    assert_eq!(s.queue_depth().unwrap(), 0);
    assert!(
        s.list_findings(&FindingFilter::default())
            .unwrap()
            .is_empty()
    );
    assert!(s.list_jobs(0).unwrap().is_empty());
    assert!(s.open_counts().unwrap().is_empty());
    assert_eq!(s.finding("nope").unwrap(), None);
}

fn record_makes_one_finding_per_fingerprint(fx: &Fx) {
    let s = fx.open();
    let f = finding("fp-a", "github-pat", "high", "git");
    let l1 = git_loc("app-repo", "c0ffee1", "config.yml", 3, Some(1_000));
    let l2 = git_loc("app-repo", "c0ffee2", "old/config.yml", 7, Some(2_000));
    let out = s.record(&[det(&f, &l1), det(&f, &l2)], 10_000).unwrap();
    assert_eq!(
        out.new_findings,
        vec![NewFinding {
            fingerprint: "fp-a".into(),
            severity: "high".into(),
            rule: "github-pat".into(),
            source_kind: "git".into(),
            confidence: "medium".into(),
            time_to_detect: Some(9_000.0),
        }]
    );
    assert_eq!(out.new_locations, 2);
    assert_eq!(s.count_findings().unwrap(), 1);

    let check = |s: &dyn Store| {
        let d = s.finding("fp-a").unwrap().expect("recorded");
        assert_eq!(
            d.view,
            FindingView {
                finding: f.clone(),
                status: Status::Open,
                first_seen: 10_000,
                content_created: Some(1_000),
                locations: 2,
                status_changed_at: None,
                status_changed_by: None,
                status_reason: None,
            }
        );
        let mut locations = d.location_list;
        locations.sort_by_key(|l| l.line);
        assert_eq!(locations, vec![l1.clone(), l2.clone()]);
        assert!(d.history.is_empty());
    };
    check(&*s);

    // The same detections again, later: nothing new, nothing changed.
    let again = s.record(&[det(&f, &l2), det(&f, &l1)], 20_000).unwrap();
    assert!(again.new_findings.is_empty());
    assert_eq!(again.new_locations, 0);
    check(&*s);

    // Author, deleted and content_created describe a place but do not identify it.
    let l1_described = StoredLocation {
        author: Some("Someone Else <x@example.test>".into()),
        deleted: true,
        content_created: Some(1_500),
        ..l1.clone()
    };
    let out = s.record(&[det(&f, &l1_described)], 30_000).unwrap();
    assert_eq!((out.new_findings.len(), out.new_locations), (0, 0));
    check(&*s);

    // A third place is one more location of the same finding.
    let l3 = loc("base-image", "image", "/app/.env");
    let out = s.record(&[det(&f, &l3)], 40_000).unwrap();
    assert_eq!((out.new_findings.len(), out.new_locations), (0, 1));
    let d = s.finding("fp-a").unwrap().unwrap();
    assert_eq!(d.view.locations, 3);
    assert_eq!(d.view.first_seen, 10_000);
    assert_eq!(s.count_findings().unwrap(), 1);

    // An empty batch is fine.
    let out = s.record(&[], 50_000).unwrap();
    assert_eq!((out.new_findings.len(), out.new_locations), (0, 0));
}

fn new_findings_and_time_to_detect(fx: &Fx) {
    let s = fx.open();
    let known = finding("fp-k", "slack-token", "medium", "file");
    s.record(&[det(&known, &loc("dir", "file", "a.txt"))], 1_000)
        .unwrap();

    let no_date = finding("fp-n", "aws-key", "critical", "file");
    let dated = finding("fp-d", "github-pat", "high", "git");
    let future = finding("fp-f", "github-pat", "high", "git");
    let out = s
        .record(
            &[
                det(&dated, &git_loc("repo", "c1", "x", 1, Some(3_500))),
                det(&no_date, &loc("dir", "file", "b.txt")),
                det(&known, &loc("dir", "file", "c.txt")),
                det(&dated, &git_loc("repo", "c2", "x", 1, None)),
                det(&dated, &git_loc("repo", "c3", "x", 1, Some(4_000))),
                det(&future, &git_loc("repo", "c4", "y", 1, Some(9_999))),
            ],
            5_000,
        )
        .unwrap();
    let nf = |f: &StoredFinding, ttd: Option<f64>| NewFinding {
        fingerprint: f.fingerprint.clone(),
        severity: f.severity.clone(),
        rule: f.rule.clone(),
        source_kind: f.source_kind.clone(),
        confidence: f.confidence.clone(),
        time_to_detect: ttd,
    };
    // In fingerprint order; the known finding is not new; a content date after the detection
    // (clock skew) counts as detected at once.
    assert_eq!(
        out.new_findings,
        vec![
            nf(&dated, Some(1_500.0)),
            nf(&future, Some(0.0)),
            nf(&no_date, None),
        ]
    );
    assert_eq!(out.new_locations, 6);
    assert_eq!(s.count_findings().unwrap(), 4);
    let d = s.finding("fp-d").unwrap().unwrap();
    assert_eq!(d.view.content_created, Some(3_500));
    assert_eq!(d.view.first_seen, 5_000);
    assert_eq!(d.view.locations, 3);
    assert_eq!(
        s.finding("fp-n").unwrap().unwrap().view.content_created,
        None
    );
}

fn content_created_becomes_the_earliest(fx: &Fx) {
    let s = fx.open();
    let f = finding("fp-e", "github-pat", "high", "git");
    let cc = |s: &dyn Store| s.finding("fp-e").unwrap().unwrap().view.content_created;

    let l1 = git_loc("repo", "c1", "a", 1, None);
    s.record(&[det(&f, &l1)], 10_000).unwrap();
    assert_eq!(cc(&*s), None);

    s.record(
        &[det(&f, &git_loc("repo", "c2", "a", 1, Some(3_000)))],
        10_001,
    )
    .unwrap();
    assert_eq!(cc(&*s), Some(3_000));

    s.record(
        &[det(&f, &git_loc("repo", "c3", "a", 1, Some(2_000)))],
        10_002,
    )
    .unwrap();
    assert_eq!(cc(&*s), Some(2_000));

    // Later dates and unknown dates leave it.
    s.record(
        &[
            det(&f, &git_loc("repo", "c4", "a", 1, Some(5_000))),
            det(&f, &git_loc("repo", "c5", "a", 1, None)),
        ],
        10_003,
    )
    .unwrap();
    assert_eq!(cc(&*s), Some(2_000));

    // A known location seen with an earlier date (say, a rewritten commit date) still lowers it,
    // without adding a location.
    let out = s
        .record(
            &[det(
                &f,
                &StoredLocation {
                    content_created: Some(1_000),
                    ..l1
                },
            )],
            10_004,
        )
        .unwrap();
    assert_eq!(out.new_locations, 0);
    assert_eq!(cc(&*s), Some(1_000));
    let d = s.finding("fp-e").unwrap().unwrap();
    assert_eq!(d.view.locations, 5);
    assert_eq!(d.view.first_seen, 10_000);
}

/// fp-01 … fp-04, seen at 100, 200, 200 and 300; fp-03 ignored.
fn filter_fixture(s: &dyn Store) -> Vec<StoredFinding> {
    let f1 = finding("fp-01", "r1", "critical", "git");
    let f2 = finding("fp-02", "r2", "high", "image");
    let f3 = finding("fp-03", "r1", "low", "file");
    let f4 = finding("fp-04", "r3", "medium", "git");
    s.record(
        &[det(&f1, &git_loc("app-repo", "c1", "a", 1, Some(50)))],
        100,
    )
    .unwrap();
    s.record(
        &[
            det(&f3, &loc("shared-dir", "file", "notes.txt")),
            det(&f2, &loc("base-image", "image", "/etc/app.conf")),
        ],
        200,
    )
    .unwrap();
    s.record(
        &[
            det(&f4, &git_loc("infra-repo", "c9", "main.tf", 4, None)),
            det(&f4, &loc("base-image", "image", "/srv/main.tf")),
        ],
        300,
    )
    .unwrap();
    assert!(
        s.set_status("fp-03", Status::Ignored, "alice", "test data", 400)
            .unwrap()
    );
    vec![f1, f2, f3, f4]
}

fn list_filters(fx: &Fx) {
    let s = fx.open();
    let fs = filter_fixture(&*s);
    let s = &*s;
    let f = FindingFilter::default;

    assert_eq!(fingerprints(s, &f()), ["fp-04", "fp-02", "fp-03", "fp-01"]);
    let by_status = |st| {
        fingerprints(
            s,
            &FindingFilter {
                status: Some(st),
                ..f()
            },
        )
    };
    assert_eq!(by_status(Status::Open), ["fp-04", "fp-02", "fp-01"]);
    assert_eq!(by_status(Status::Ignored), ["fp-03"]);
    assert!(by_status(Status::Resolved).is_empty());
    assert!(by_status(Status::Revoked).is_empty());

    let by_severity = |sev: &str| {
        fingerprints(
            s,
            &FindingFilter {
                severity: Some(sev.into()),
                ..f()
            },
        )
    };
    assert_eq!(by_severity("critical"), ["fp-01"]);
    assert_eq!(by_severity("medium"), ["fp-04"]);
    assert!(by_severity("unknown").is_empty());

    let by_rule = |rule: &str| {
        fingerprints(
            s,
            &FindingFilter {
                rule: Some(rule.into()),
                ..f()
            },
        )
    };
    assert_eq!(by_rule("r1"), ["fp-03", "fp-01"]);
    assert_eq!(by_rule("r3"), ["fp-04"]);

    // By a location's source name, or by the finding's source kind.
    let by_source = |src: &str| {
        fingerprints(
            s,
            &FindingFilter {
                source: Some(src.into()),
                ..f()
            },
        )
    };
    assert_eq!(by_source("app-repo"), ["fp-01"]);
    assert_eq!(by_source("base-image"), ["fp-04", "fp-02"]);
    assert_eq!(by_source("shared-dir"), ["fp-03"]);
    assert_eq!(by_source("git"), ["fp-04", "fp-01"]);
    assert_eq!(by_source("image"), ["fp-02"]);
    assert!(by_source("elsewhere").is_empty());

    let since = |t| {
        fingerprints(
            s,
            &FindingFilter {
                since: Some(t),
                ..f()
            },
        )
    };
    assert_eq!(since(200), ["fp-04", "fp-02", "fp-03"]);
    assert_eq!(since(201), ["fp-04"]);
    assert!(since(301).is_empty());

    // Filters combine.
    assert_eq!(
        fingerprints(
            s,
            &FindingFilter {
                status: Some(Status::Open),
                rule: Some("r1".into()),
                ..f()
            }
        ),
        ["fp-01"]
    );
    assert_eq!(
        fingerprints(
            s,
            &FindingFilter {
                source: Some("base-image".into()),
                since: Some(250),
                ..f()
            }
        ),
        ["fp-04"]
    );

    // Pages.
    let page = |limit, offset| {
        fingerprints(
            s,
            &FindingFilter {
                limit,
                offset,
                ..f()
            },
        )
    };
    assert_eq!(page(2, 0), ["fp-04", "fp-02"]);
    assert_eq!(page(2, 2), ["fp-03", "fp-01"]);
    assert_eq!(page(3, 3), ["fp-01"]);
    assert!(page(2, 4).is_empty());

    // A whole view.
    let views = s
        .list_findings(&FindingFilter {
            status: Some(Status::Ignored),
            ..f()
        })
        .unwrap();
    assert_eq!(
        views,
        vec![FindingView {
            finding: fs[2].clone(),
            status: Status::Ignored,
            first_seen: 200,
            content_created: None,
            locations: 1,
            status_changed_at: Some(400),
            status_changed_by: Some("alice".into()),
            status_reason: Some("test data".into()),
        }]
    );
    let v4 = &s.list_findings(&f()).unwrap()[0];
    assert_eq!(
        (v4.finding.fingerprint.as_str(), v4.locations),
        ("fp-04", 2)
    );
    let v1 = &s.list_findings(&f()).unwrap()[3];
    assert_eq!((v1.first_seen, v1.content_created), (100, Some(50)));
}

fn list_page_sizes(fx: &Fx) {
    let s = fx.open();
    let detections: Vec<Detection> = (0..1005)
        .map(|i| {
            det(
                &finding(&format!("fp-{i:04}"), "r", "low", "file"),
                &loc("dir", "file", &format!("f{i}")),
            )
        })
        .collect();
    let out = s.record(&detections, 1_000).unwrap();
    assert_eq!((out.new_findings.len(), out.new_locations), (1005, 1005));
    assert_eq!(s.count_findings().unwrap(), 1005);
    let n = |limit| {
        s.list_findings(&FindingFilter {
            limit,
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    assert_eq!(n(0), 100);
    assert_eq!(n(7), 7);
    assert_eq!(n(1000), 1000);
    assert_eq!(n(5000), 1000);
    // Same first_seen: fingerprint order.
    assert_eq!(
        fingerprints(
            &*s,
            &FindingFilter {
                limit: 2,
                offset: 1003,
                ..Default::default()
            }
        ),
        ["fp-1003", "fp-1004"]
    );
}

fn set_status_keeps_history(fx: &Fx) {
    let s = fx.open();
    assert!(
        !s.set_status("fp-none", Status::Ignored, "alice", "x", 1)
            .unwrap()
    );

    let f = finding("fp-s", "github-pat", "high", "git");
    s.record(&[det(&f, &git_loc("repo", "c1", "a", 1, None))], 100)
        .unwrap();
    assert!(
        s.set_status("fp-s", Status::Ignored, "alice", "test key", 200)
            .unwrap()
    );
    assert!(
        s.set_status("fp-s", Status::Open, "bob", "it is real", 300)
            .unwrap()
    );
    assert!(
        s.set_status("fp-s", Status::Revoked, "carol", "revoked at GitHub", 400)
            .unwrap()
    );

    // Recording again does not touch the status.
    s.record(&[det(&f, &git_loc("repo", "c2", "a", 1, None))], 500)
        .unwrap();

    let d = s.finding("fp-s").unwrap().unwrap();
    assert_eq!(d.view.status, Status::Revoked);
    assert_eq!(d.view.status_changed_at, Some(400));
    assert_eq!(d.view.status_changed_by.as_deref(), Some("carol"));
    assert_eq!(d.view.status_reason.as_deref(), Some("revoked at GitHub"));
    assert_eq!(d.view.locations, 2);
    let change = |status, by: &str, reason: &str, at| StatusChange {
        status,
        by: by.into(),
        reason: reason.into(),
        at,
    };
    assert_eq!(
        d.history,
        vec![
            change(Status::Ignored, "alice", "test key", 200),
            change(Status::Open, "bob", "it is real", 300),
            change(Status::Revoked, "carol", "revoked at GitHub", 400),
        ]
    );
    assert_eq!(
        fingerprints(
            &*s,
            &FindingFilter {
                status: Some(Status::Revoked),
                ..Default::default()
            }
        ),
        ["fp-s"]
    );
    assert!(s.open_counts().unwrap().is_empty());
}

fn open_counts_group_open_findings(fx: &Fx) {
    let s = fx.open();
    let f1 = finding("fp-1", "r1", "high", "git");
    let f2 = finding("fp-2", "r1", "high", "git");
    let f3 = finding("fp-3", "r1", "high", "image");
    let f4 = finding("fp-4", "r2", "low", "file");
    let f5 = finding("fp-5", "r3", "critical", "git");
    let l = loc("src", "file", "x");
    s.record(
        &[
            det(&f1, &l),
            det(&f2, &l),
            det(&f3, &l),
            det(&f4, &l),
            det(&f5, &l),
        ],
        100,
    )
    .unwrap();
    s.set_status("fp-5", Status::Ignored, "a", "b", 200)
        .unwrap();
    let count = |sev: &str, rule: &str, kind: &str, count| OpenCount {
        severity: sev.into(),
        rule: rule.into(),
        source_kind: kind.into(),
        confidence: "medium".into(),
        count,
    };
    assert_eq!(
        s.open_counts().unwrap(),
        vec![
            count("high", "r1", "git", 2),
            count("high", "r1", "image", 1),
            count("low", "r2", "file", 1),
        ]
    );
    s.set_status("fp-1", Status::Resolved, "a", "b", 300)
        .unwrap();
    s.set_status("fp-5", Status::Open, "a", "b", 300).unwrap();
    assert_eq!(
        s.open_counts().unwrap(),
        vec![
            count("critical", "r3", "git", 1),
            count("high", "r1", "git", 1),
            count("high", "r1", "image", 1),
            count("low", "r2", "file", 1),
        ]
    );
    assert_eq!(s.count_findings().unwrap(), 5);

    // Confidence is one more bucket: a low r1 finding in git beside the medium one.
    let f6 = at(&finding("fp-6", "r1", "high", "git"), "low", &["test-path"]);
    s.record(&[det(&f6, &l)], 400).unwrap();
    let counts = s.open_counts().unwrap();
    assert_eq!(
        counts[1..3],
        [
            OpenCount {
                confidence: "low".into(),
                ..count("high", "r1", "git", 1)
            },
            count("high", "r1", "git", 1),
        ],
        "{counts:?}"
    );
}

fn finding_detail_round_trips(fx: &Fx) {
    let s = fx.open();
    let f = finding("fp-img", "aws-key", "critical", "image");
    let full = StoredLocation {
        source: "base-image".into(),
        source_kind: "image".into(),
        repository: Some("registry.example.test/team/app".into()),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        author: Some("Ünïcödé <u@example.test>".into()),
        path: Some("/opt/app/ünï cödé/.env".into()),
        line: 4_000_000_000,
        column: 17,
        image: Some("registry.example.test/team/app:1.2".into()),
        layer: Some("sha256:aaaa".into()),
        layer_index: Some(u32::MAX),
        deleted: true,
        content_created: Some(-5),
    };
    let bare = StoredLocation {
        source: "stdin".into(),
        source_kind: "stdin".into(),
        ..StoredLocation::default()
    };
    s.record(&[det(&f, &full)], 100).unwrap();
    s.record(&[det(&f, &bare)], 200).unwrap();
    let d = s.finding("fp-img").unwrap().unwrap();
    // In the order they were recorded.
    assert_eq!(d.location_list, vec![full, bare]);
    assert_eq!(d.view.content_created, Some(-5));

    // The API's JSON: the view is flattened, and nothing but the redacted form of the secret.
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["fingerprint"], "fp-img");
    assert_eq!(json["redacted"], "fp-…zz");
    assert_eq!(json["status"], "open");
    assert_eq!(json["locations"], 2);
    assert_eq!(json["location_list"][0]["layer_index"], u32::MAX);
    assert_eq!(json["history"], serde_json::json!([]));

    assert_eq!(s.finding("fp-other").unwrap(), None);
}

fn enqueue_coalesces_per_source(fx: &Fx) {
    let s = fx.open();
    let a1 = s
        .enqueue("app", "git", r#"{"n":1}"#, 100)
        .unwrap()
        .expect("queued");
    assert_eq!(s.enqueue("app", "git", r#"{"n":2}"#, 101).unwrap(), None);
    let b1 = s
        .enqueue("base", "image", "{}", 102)
        .unwrap()
        .expect("queued");
    assert_ne!(a1, b1);
    assert_eq!(s.queue_depth().unwrap(), 2);

    let job = s.claim("d1", 110, 60).unwrap().expect("a job");
    assert_eq!(
        (
            job.id,
            job.source.as_str(),
            job.kind.as_str(),
            job.payload.as_str(),
            job.attempts
        ),
        (a1, "app", "git", r#"{"n":1}"#, 1)
    );
    // The queued one is now running: a new one may queue, once.
    let a2 = s
        .enqueue("app", "git", r#"{"n":3}"#, 120)
        .unwrap()
        .expect("queued");
    assert_eq!(s.enqueue("app", "git", "{}", 121).unwrap(), None);
    assert_eq!(s.queue_depth().unwrap(), 3);

    let jobs = s.list_jobs(0).unwrap();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [a2, b1, a1], "newest first");
    assert_eq!(
        jobs.iter().map(|j| j.state).collect::<Vec<_>>(),
        [JobState::Queued, JobState::Queued, JobState::Running]
    );
    let a1v = &jobs[2];
    assert_eq!(a1v.owner.as_deref(), Some("d1"));
    assert_eq!(
        (a1v.created_at, a1v.started_at, a1v.finished_at),
        (100, Some(110), None)
    );
    assert_eq!(s.list_jobs(2).unwrap().len(), 2);
}

fn claim_order_and_one_running_job_per_source(fx: &Fx) {
    let s = fx.open();
    let a1 = s.enqueue("a", "git", "{}", 100).unwrap().unwrap();
    let b1 = s.enqueue("b", "git", "{}", 101).unwrap().unwrap();
    let c1 = s.enqueue("c", "git", "{}", 102).unwrap().unwrap();
    let claim = |owner, now| s.claim(owner, now, 60).unwrap().map(|j| j.id);

    assert_eq!(claim("d1", 200), Some(a1), "oldest first");
    let a2 = s.enqueue("a", "git", "{}", 201).unwrap().unwrap();
    assert_eq!(claim("d2", 202), Some(b1));
    assert_eq!(claim("d2", 203), Some(c1));
    // a2 waits while a1 runs under a live lease.
    assert_eq!(claim("d2", 204), None);
    assert_eq!(s.queue_depth().unwrap(), 4);

    assert!(s.finish(a1, "d1", 210, &ok()).unwrap());
    assert_eq!(claim("d2", 211), Some(a2));
    assert_eq!(claim("d2", 212), None);
    assert_eq!(s.queue_depth().unwrap(), 3);
    let v = job_view(&*s, a1);
    assert_eq!((v.state, v.finished_at), (JobState::Done, Some(210)));
}

fn lease_expiry_hands_the_job_over(fx: &Fx) {
    let s = fx.open();
    let j = s.enqueue("a", "image", "{}", 100).unwrap().unwrap();
    let first = s.claim("d1", 100, 30).unwrap().unwrap();
    assert_eq!((first.id, first.attempts), (j, 1));
    assert!(s.renew(j, "d1", 120, 30).unwrap(), "lease now ends at 150");
    assert!(!s.renew(j, "d2", 120, 30).unwrap(), "d2 does not hold it");
    assert_eq!(s.claim("d2", 150, 30).unwrap().map(|j| j.id), None);

    // d1 died: at 151 its lease has ended and d2 takes the job over.
    let second = s.claim("d2", 151, 30).unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (j, 2));
    assert!(!s.renew(j, "d1", 152, 30).unwrap());
    assert!(!s.finish(j, "d1", 152, &ok()).unwrap());
    assert!(s.renew(j, "d2", 152, 30).unwrap());

    let outcome = JobOutcome {
        bytes: 10_000_000_000,
        objects: 12,
        findings: 3,
        ..ok()
    };
    assert!(s.finish(j, "d2", 160, &outcome).unwrap());
    let v = job_view(&*s, j);
    assert_eq!(v.state, JobState::Done);
    assert_eq!(v.owner.as_deref(), Some("d2"));
    assert_eq!(v.attempts, 2);
    assert_eq!((v.started_at, v.finished_at), (Some(151), Some(160)));
    assert_eq!(v.last_error, None);
    assert_eq!((v.bytes, v.objects, v.findings), (10_000_000_000, 12, 3));
    assert!(!s.finish(j, "d2", 161, &ok()).unwrap(), "already finished");
    assert!(!s.renew(j, "d2", 161, 30).unwrap());
    assert_eq!(s.queue_depth().unwrap(), 0);
    assert_eq!(s.claim("d3", 10_000, 30).unwrap().map(|j| j.id), None);
}

fn retry_and_failure(fx: &Fx) {
    let s = fx.open();
    let j = s.enqueue("a", "image", "{}", 100).unwrap().unwrap();
    s.claim("d1", 100, 60).unwrap().unwrap();
    let retry = JobOutcome {
        bytes: 5,
        ..failed("registry said 503", Some(200))
    };
    assert!(s.finish(j, "d1", 110, &retry).unwrap());
    let v = job_view(&*s, j);
    assert_eq!(v.state, JobState::Queued);
    assert_eq!(v.last_error.as_deref(), Some("registry said 503"));
    assert_eq!((v.finished_at, v.attempts, v.bytes), (None, 1, 5));
    assert_eq!(s.queue_depth().unwrap(), 1);
    // The retry is the source's queued job: a new request coalesces into it.
    assert_eq!(s.enqueue("a", "image", "{}", 120).unwrap(), None);
    assert!(!s.finish(j, "d1", 120, &ok()).unwrap(), "queued, not held");

    assert_eq!(
        s.claim("d1", 199, 60).unwrap().map(|j| j.id),
        None,
        "run_after is 200"
    );
    let again = s.claim("d2", 200, 60).unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (j, 2));
    assert!(
        s.finish(j, "d2", 210, &failed("manifest unknown", None))
            .unwrap()
    );
    let v = job_view(&*s, j);
    assert_eq!(v.state, JobState::Failed);
    assert_eq!(v.last_error.as_deref(), Some("manifest unknown"));
    assert_eq!((v.finished_at, v.attempts), (Some(210), 2));
    assert_eq!(s.queue_depth().unwrap(), 0);
    assert_eq!(s.claim("d1", 10_000, 60).unwrap().map(|j| j.id), None);

    // A retry while another job of the source is already queued folds into that job.
    let k1 = s.enqueue("b", "git", "{}", 300).unwrap().unwrap();
    assert_eq!(s.claim("d1", 300, 60).unwrap().map(|j| j.id), Some(k1));
    let k2 = s.enqueue("b", "git", "{}", 301).unwrap().unwrap();
    assert!(
        s.finish(k1, "d1", 302, &failed("timeout", Some(400)))
            .unwrap()
    );
    let v1 = job_view(&*s, k1);
    assert_eq!(
        (v1.state, v1.last_error.as_deref()),
        (JobState::Failed, Some("timeout"))
    );
    assert_eq!(job_view(&*s, k2).state, JobState::Queued);
    assert_eq!(s.claim("d1", 303, 60).unwrap().map(|j| j.id), Some(k2));
    assert!(s.finish(k2, "d1", 304, &ok()).unwrap());

    // Success clears the previous attempt's error.
    let m = s.enqueue("c", "git", "{}", 500).unwrap().unwrap();
    s.claim("d1", 500, 60).unwrap().unwrap();
    assert!(s.finish(m, "d1", 501, &failed("flaky", Some(502))).unwrap());
    s.claim("d1", 502, 60).unwrap().unwrap();
    assert!(s.finish(m, "d1", 503, &ok()).unwrap());
    let v = job_view(&*s, m);
    assert_eq!(
        (v.state, v.last_error, v.attempts),
        (JobState::Done, None, 2)
    );
}

fn scan_state(fx: &Fx) {
    let s = fx.open();
    assert_eq!(s.get_state("git:app").unwrap(), None);
    s.put_state("git:app", b"\x00\x01first\xff", 100).unwrap();
    assert_eq!(
        s.get_state("git:app").unwrap().as_deref(),
        Some(&b"\x00\x01first\xff"[..])
    );
    s.put_state("git:app", b"second", 200).unwrap();
    assert_eq!(
        s.get_state("git:app").unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(s.get_state("git:other").unwrap(), None);
    s.put_state("git:empty", b"", 200).unwrap();
    assert_eq!(s.get_state("git:empty").unwrap(), Some(Vec::new()));
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    s.put_state("git:big", &big, 300).unwrap();
    assert_eq!(s.get_state("git:big").unwrap(), Some(big));
}

fn scanned_objects(fx: &Fx) {
    let s = fx.open();
    assert!(!s.is_scanned("layer", "sha256:aa").unwrap());
    s.mark_scanned("layer", "sha256:aa", 100).unwrap();
    assert!(s.is_scanned("layer", "sha256:aa").unwrap());
    s.mark_scanned("layer", "sha256:aa", 200).unwrap();
    assert!(s.is_scanned("layer", "sha256:aa").unwrap());
    assert!(!s.is_scanned("manifest", "sha256:aa").unwrap());
    assert!(!s.is_scanned("layer", "sha256:bb").unwrap());
}

fn reopen_keeps_everything_and_does_not_migrate_again(fx: &Fx) {
    let stored = finding("fp-r", "github-pat", "high", "git");
    let place = git_loc("repo", "c1", "a", 1, Some(10));
    let job;
    {
        let s = fx.open();
        s.record(&[det(&stored, &place)], 100).unwrap();
        s.set_status("fp-r", Status::Resolved, "alice", "removed", 200)
            .unwrap();
        job = s.enqueue("repo", "git", "{}", 300).unwrap().unwrap();
        s.put_state("git:repo", b"state", 300).unwrap();
        s.mark_scanned("layer", "sha256:aa", 300).unwrap();
    }
    let versions = fx.query_i64("SELECT count(*) FROM schema_version");
    let applied = fx.query_i64("SELECT max(applied_at) FROM schema_version");
    assert_eq!(versions, i64::from(SCHEMA_VERSION), "one row per migration");
    assert_eq!(
        fx.query_i64("SELECT CAST(max(version) AS BIGINT) FROM schema_version"),
        i64::from(SCHEMA_VERSION)
    );

    let s = fx.open();
    assert_eq!(
        fx.query_i64("SELECT count(*) FROM schema_version"),
        versions
    );
    assert_eq!(
        fx.query_i64("SELECT max(applied_at) FROM schema_version"),
        applied
    );
    let detail = s.finding("fp-r").unwrap().unwrap();
    assert_eq!(detail.view.finding, stored);
    assert_eq!(detail.view.status, Status::Resolved);
    assert_eq!(detail.location_list, vec![place]);
    assert_eq!(detail.history.len(), 1);
    assert_eq!(
        s.list_jobs(0)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect::<Vec<_>>(),
        [job]
    );
    assert_eq!(
        s.get_state("git:repo").unwrap().as_deref(),
        Some(&b"state"[..])
    );
    assert!(s.is_scanned("layer", "sha256:aa").unwrap());
    assert_eq!(s.count_findings().unwrap(), 1);
}

fn newer_schema_is_refused(fx: &Fx) {
    drop(fx.open());
    let newer = SCHEMA_VERSION + 1;
    fx.exec(&format!(
        "INSERT INTO schema_version (version, applied_at) VALUES ({newer}, 0)"
    ));
    let Err(err) = store::open(&fx.spec) else {
        panic!("a store at schema {newer} was opened");
    };
    match err.downcast_ref::<StoreError>() {
        Some(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!((*found, *known), (newer, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}: {err:#}"),
    }
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!(
            "newer than the {SCHEMA_VERSION} this keyward knows"
        )),
        "{text}"
    );
    assert!(text.contains("opening store"), "{text}");
    if fx.backend == Backend::Postgres {
        assert!(
            text.contains("postgres://postgres:***@127.0.0.1:"),
            "{text}"
        );
        assert!(!text.contains(PG.password()), "{text}");
    }
    // Refused without changes: every migration this binary knows, plus the newer one.
    assert_eq!(
        fx.query_i64("SELECT count(*) FROM schema_version"),
        i64::from(SCHEMA_VERSION) + 1
    );
}

fn invalid_values_are_refused(fx: &Fx) {
    let s = fx.open();
    let good = finding("fp-v", "r", "high", "git");
    let bad_kind = StoredFinding {
        source_kind: "ftp".into(),
        ..good.clone()
    };
    let bad_severity = StoredFinding {
        fingerprint: "fp-w".into(),
        severity: "urgent".into(),
        ..good.clone()
    };
    let bad_confidence = StoredFinding {
        fingerprint: "fp-x".into(),
        confidence: "certain".into(),
        ..good.clone()
    };
    let bad_reason = StoredFinding {
        fingerprint: "fp-y".into(),
        reasons: vec!["test-path,provider-prefix".into()],
        ..good.clone()
    };
    let l = loc("src", "file", "x");
    for bad in [bad_kind, bad_severity, bad_confidence, bad_reason] {
        // Nothing of a refused batch is written, even its valid detections.
        let err = s.record(&[det(&good, &l), det(&bad, &l)], 100).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<StoreError>(),
                Some(StoreError::InvalidValue { .. })
            ),
            "{err:#}"
        );
    }
    let err = s
        .record(&[det(&good, &loc("src", "nfs", "x"))], 100)
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("invalid source kind \"nfs\""),
        "{err:#}"
    );
    assert_eq!(s.count_findings().unwrap(), 0);
}

fn large_batches_and_duplicates(fx: &Fx) {
    let s = fx.open();
    // 2001 places of one secret (more than PostgreSQL records per round of statements, so it
    // spans two), each listed twice, and one place of another; content dates 5000 down to 3000.
    let big = finding("fp-big", "r", "high", "git");
    let small = finding("fp-small", "r", "low", "file");
    let mut detections: Vec<Detection> = (0..2001u64)
        .flat_map(|i| {
            let l = git_loc(
                "repo",
                "c",
                &format!("p{i}"),
                i,
                Some(5000 - i64::try_from(i).unwrap()),
            );
            [det(&big, &l), det(&big, &l)]
        })
        .collect();
    detections.push(det(&small, &loc("dir", "file", "x")));
    let out = s.record(&detections, 10_000).unwrap();
    assert_eq!(out.new_locations, 2002);
    let nf = |f: &StoredFinding, ttd| NewFinding {
        fingerprint: f.fingerprint.clone(),
        severity: f.severity.clone(),
        rule: f.rule.clone(),
        source_kind: f.source_kind.clone(),
        confidence: f.confidence.clone(),
        time_to_detect: ttd,
    };
    assert_eq!(
        out.new_findings,
        vec![nf(&big, Some(7_000.0)), nf(&small, None)]
    );
    let v = s.finding("fp-big").unwrap().unwrap().view;
    assert_eq!((v.locations, v.content_created), (2001, Some(3_000)));
    assert_eq!(s.finding("fp-small").unwrap().unwrap().view.locations, 1);

    // Again, with one more place and an earlier date for a known one.
    detections.push(det(&big, &git_loc("repo", "c", "p-new", 1, None)));
    detections.push(det(&big, &git_loc("repo", "c", "p7", 7, Some(100))));
    let out = s.record(&detections, 20_000).unwrap();
    assert_eq!((out.new_findings.len(), out.new_locations), (0, 1));
    let v = s.finding("fp-big").unwrap().unwrap().view;
    assert_eq!((v.locations, v.content_created), (2002, Some(100)));
    assert_eq!(s.count_findings().unwrap(), 2);
}

fn confidence_is_raised_never_lowered(fx: &Fx) {
    let s = fx.open();
    let base = finding("fp-c", "github-pat-classic", "high", "git");
    let low = at(
        &base,
        "low",
        &["checksum-verified", "provider-prefix", "test-path"],
    );
    let medium = at(
        &base,
        "medium",
        &["checksum-verified", "provider-prefix", "test-code"],
    );
    let high = at(&base, "high", &["checksum-verified", "provider-prefix"]);
    let stored = |s: &dyn Store| s.finding("fp-c").unwrap().unwrap().view;

    // First seen in a test fixture: low.
    let out = s
        .record(
            &[det(&low, &loc("repo", "git", "tests/fixtures/x.json"))],
            100,
        )
        .unwrap();
    assert_eq!(out.new_findings.len(), 1);
    assert_eq!(out.new_findings[0].confidence, "low");
    assert_eq!(stored(&*s).finding, low);

    // Then in a deployed config: raised to high, with the high sighting's reasons.
    let out = s
        .record(&[det(&high, &loc("repo", "git", "deploy/app.env"))], 200)
        .unwrap();
    assert_eq!((out.new_findings.len(), out.new_locations), (0, 1));
    let v = stored(&*s);
    assert_eq!(v.finding, high);
    assert_eq!(v.finding.confidence, "high");
    assert_eq!(v.finding.reasons, ["checksum-verified", "provider-prefix"]);
    assert_eq!((v.first_seen, v.locations), (100, 2));

    // Low again, and medium: never lowered; the places are still recorded.
    let out = s
        .record(
            &[
                det(&low, &loc("repo", "git", "tests/other.json")),
                det(&medium, &loc("repo", "git", "src/lib_test.py")),
            ],
            300,
        )
        .unwrap();
    assert_eq!((out.new_findings.len(), out.new_locations), (0, 2));
    let v = stored(&*s);
    assert_eq!(v.finding, high);
    assert_eq!(v.locations, 4);

    // The status is the operator's: a raise does not touch it.
    let other = at(&finding("fp-d", "r", "high", "git"), "low", &["test-path"]);
    s.record(&[det(&other, &loc("repo", "git", "a"))], 400)
        .unwrap();
    s.set_status("fp-d", Status::Ignored, "alice", "a test key", 410)
        .unwrap();
    s.record(
        &[det(&at(&other, "medium", &[]), &loc("repo", "git", "b"))],
        420,
    )
    .unwrap();
    let v = s.finding("fp-d").unwrap().unwrap().view;
    assert_eq!(
        (v.finding.confidence.as_str(), v.status),
        ("medium", Status::Ignored)
    );
    assert!(v.finding.reasons.is_empty());

    // One batch of a new secret at several confidences: created at the highest, whichever
    // order the places come in and (PostgreSQL) whichever round of statements holds it.
    let many = finding("fp-m", "r", "high", "git");
    let mut detections: Vec<Detection> = (0..2001u64)
        .map(|i| {
            det(
                &at(&many, "low", &["test-path"]),
                &loc("repo", "git", &format!("t{i}")),
            )
        })
        .collect();
    detections.insert(
        1000,
        det(
            &at(&many, "high", &["provider-prefix"]),
            &loc("repo", "git", "prod.env"),
        ),
    );
    let out = s.record(&detections, 500).unwrap();
    assert_eq!(out.new_findings.len(), 1);
    assert_eq!(out.new_findings[0].confidence, "high");
    let v = s.finding("fp-m").unwrap().unwrap().view;
    assert_eq!(
        (
            v.finding.confidence.as_str(),
            v.finding.reasons.as_slice(),
            v.locations
        ),
        ("high", &["provider-prefix".to_owned()][..], 2002)
    );

    // The API's JSON.
    let json = serde_json::to_value(s.finding("fp-c").unwrap().unwrap()).unwrap();
    assert_eq!(json["confidence"], "high");
    assert_eq!(
        json["reasons"],
        serde_json::json!(["checksum-verified", "provider-prefix"])
    );
}

fn list_filters_by_confidence(fx: &Fx) {
    let s = fx.open();
    let l = loc("src", "file", "x");
    let low = at(
        &finding("fp-low", "r", "high", "file"),
        "low",
        &["test-path"],
    );
    let medium = finding("fp-med", "r", "high", "file");
    let high = at(
        &finding("fp-high", "r", "high", "file"),
        "high",
        &["provider-prefix"],
    );
    s.record(&[det(&high, &l)], 100).unwrap();
    s.record(&[det(&low, &l)], 200).unwrap();
    s.record(&[det(&medium, &l)], 300).unwrap();
    let list = |confidence, status| {
        fingerprints(
            &*s,
            &FindingFilter {
                confidence,
                status,
                ..FindingFilter::default()
            },
        )
    };
    // Newest first, as every listing.
    assert_eq!(list(None, None), ["fp-med", "fp-low", "fp-high"]);
    assert_eq!(
        list(Some(Confidence::Low), None),
        ["fp-med", "fp-low", "fp-high"]
    );
    assert_eq!(list(Some(Confidence::Medium), None), ["fp-med", "fp-high"]);
    assert_eq!(list(Some(Confidence::High), None), ["fp-high"]);
    s.set_status("fp-high", Status::Resolved, "a", "rotated", 400)
        .unwrap();
    assert_eq!(
        list(Some(Confidence::Medium), Some(Status::Open)),
        ["fp-med"]
    );
    // Raised: now listed at medium and up.
    s.record(&[det(&at(&low, "medium", &[]), &l)], 500).unwrap();
    assert_eq!(
        list(Some(Confidence::Medium), Some(Status::Open)),
        ["fp-med", "fp-low"]
    );
}

/// A store made by the schema 2 migration files, with a finding in it, then opened by this
/// binary.
fn schema_2_store_migrates_to_confidence(fx: &Fx) {
    let (v1, v2, int) = match fx.backend {
        Backend::Sqlite => (
            include_str!("../../src/store/migrations/sqlite/0001_init.sql"),
            include_str!("../../src/store/migrations/sqlite/0002_open_counts_index.sql"),
            "INTEGER",
        ),
        Backend::Postgres => (
            include_str!("../../src/store/migrations/postgres/0001_init.sql"),
            include_str!("../../src/store/migrations/postgres/0002_open_counts_index.sql"),
            "BIGINT",
        ),
    };
    fx.exec(&format!(
        "CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, \
             applied_at {int} NOT NULL);
         {v1}
         {v2}
         INSERT INTO schema_version (version, applied_at) VALUES (1, 10), (2, 20);
         INSERT INTO findings (fingerprint, rule, rule_name, severity, redacted, validation,
             source_kind, status, first_seen, content_created, location_count,
             status_changed_at, status_changed_by, status_reason)
         VALUES ('fp-old', 'github-pat-classic', 'GitHub token', 'high', 'ghp_…zz',
             'checksum-ok', 'git', 'resolved', 100, 50, 1, 150, 'alice', 'rotated'),
             ('fp-old2', 'generic-password', 'Password', 'medium', 'hu…r2', 'none', 'file',
             'open', 200, NULL, 0, NULL, NULL, NULL);
         INSERT INTO locations (fingerprint, key, source, source_kind, path, line, col, deleted,
             first_seen)
         VALUES ('fp-old', 'k1', 'repo', 'git', 'a.env', 1, 1, (1 = 0), 100);"
    ));

    let s = fx.open();
    assert_eq!(
        fx.query_i64("SELECT CAST(max(version) AS BIGINT) FROM schema_version"),
        3
    );
    assert_eq!(SCHEMA_VERSION, 3);
    // The rows are kept, at medium with no reasons.
    let d = s.finding("fp-old").unwrap().unwrap();
    assert_eq!(
        d.view.finding,
        StoredFinding {
            fingerprint: "fp-old".into(),
            rule: "github-pat-classic".into(),
            rule_name: "GitHub token".into(),
            severity: "high".into(),
            redacted: "ghp_…zz".into(),
            validation: "checksum-ok".into(),
            source_kind: "git".into(),
            confidence: "medium".into(),
            reasons: vec![],
        }
    );
    assert_eq!(d.view.status, Status::Resolved);
    assert_eq!(d.view.status_changed_by.as_deref(), Some("alice"));
    assert_eq!((d.view.first_seen, d.view.content_created), (100, Some(50)));
    assert_eq!(d.location_list.len(), 1);
    assert_eq!(d.location_list[0].path.as_deref(), Some("a.env"));
    assert_eq!(s.count_findings().unwrap(), 2);
    assert_eq!(
        fx.query_i64("SELECT count(*) FROM findings WHERE confidence = 'medium' AND reasons = ''"),
        2
    );
    // Listed at medium and up, not at high; the confidence index is there.
    let medium_up = FindingFilter {
        confidence: Some(Confidence::Medium),
        ..FindingFilter::default()
    };
    assert_eq!(fingerprints(&*s, &medium_up), ["fp-old2", "fp-old"]);
    let index = match fx.backend {
        Backend::Sqlite => {
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
             AND name IN ('findings_confidence', 'findings_open_counts')"
        }
        Backend::Postgres => {
            "SELECT count(*) FROM pg_indexes \
             WHERE indexname IN ('findings_confidence', 'findings_open_counts')"
        }
    };
    assert_eq!(fx.query_i64(index), 2);
    // The column is a closed set.
    assert!(
        !fx.try_exec("UPDATE findings SET confidence = 'certain' WHERE fingerprint = 'fp-old'"),
        "the CHECK constraint let 'certain' in"
    );
    // A migrated finding is raised like any other.
    let raised = StoredFinding {
        confidence: "high".into(),
        reasons: vec!["checksum-verified".into(), "provider-prefix".into()],
        ..d.view.finding.clone()
    };
    s.record(&[det(&raised, &loc("repo", "git", "b.env"))], 300)
        .unwrap();
    let v = s.finding("fp-old").unwrap().unwrap().view;
    assert_eq!((v.finding, v.locations), (raised, 2));
    assert_eq!(
        s.open_counts().unwrap(),
        vec![OpenCount {
            severity: "medium".into(),
            rule: "generic-password".into(),
            source_kind: "file".into(),
            confidence: "medium".into(),
            count: 1,
        }]
    );
}

// SQLite only.

/// Every byte of the store's files (database, WAL, shared memory) under `dir`.
fn files_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sqlite_files_never_hold_a_secret_value() {
    let fx = Fx::new(Backend::Sqlite);
    // A planted token: the store only ever gets its redacted form and fingerprint.
    let secret = "ghp_R7x9Kq2LmZ4vTn8WcY3bHs6JdF1pQe5uAgmv"; // keyward:allow test fixture, not a credential
    let middle = &secret[6..secret.len() - 2];
    let f = StoredFinding {
        fingerprint: "7d1e0c4b9a8f2e6d".into(),
        rule: "github-pat".into(),
        rule_name: "GitHub personal access token".into(),
        severity: "high".into(),
        redacted: "ghp_R7…mv".into(),
        validation: "checksum-ok".into(),
        source_kind: "git".into(),
        confidence: "high".into(),
        reasons: vec!["checksum-verified".into(), "provider-prefix".into()],
    };
    let s = fx.open();
    s.record(
        &[det(&f, &git_loc("app-repo", "c1", ".env", 2, Some(1)))],
        100,
    )
    .unwrap();
    s.set_status(&f.fingerprint, Status::Ignored, "alice", "rotated", 200)
        .unwrap();
    let check = |when: &str| {
        let files = files_bytes(fx.dir.path());
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{when}: {} holds the secret",
                path.display()
            );
            assert!(
                !contains(bytes, middle.as_bytes()),
                "{when}: {} holds part of it",
                path.display()
            );
        }
        files
    };
    check("open");
    drop(s);
    let files = check("closed");
    // The check looked at the right bytes: the redacted form is there.
    assert!(
        files
            .iter()
            .any(|(_, b)| contains(b, "ghp_R7…mv".as_bytes())),
        "the redacted form is in no file"
    );
}

#[test]
fn sqlite_file_is_created_private_in_new_directories() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/store.db");
    let s = store::open(path.to_str().unwrap()).unwrap();
    s.ping().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn sqlite_open_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let spec = file.join("store.db");
    let err = store::open(spec.to_str().unwrap())
        .err()
        .expect("cannot open under a file");
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!("opening store {}", spec.display())),
        "{text}"
    );
}

// PostgreSQL only.

#[test]
fn pg_concurrent_claimers_never_share_a_job() {
    let fx = Fx::new(Backend::Postgres);
    let setup = fx.open();
    let mut want = BTreeSet::new();
    for i in 0..50 {
        want.insert(
            setup
                .enqueue(&format!("source-{i:02}"), "git", "{}", 100)
                .unwrap()
                .unwrap(),
        );
    }
    let claimers = 2;
    let start = Arc::new(Barrier::new(claimers));
    let threads: Vec<_> = (0..claimers)
        .map(|n| {
            // Separate handles: separate connections, as two daemons would have.
            let s = fx.open();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let owner = format!("daemon-{n}");
                let mut got = Vec::new();
                start.wait();
                while let Some(job) = s.claim(&owner, 200, 600).unwrap() {
                    assert_eq!(job.attempts, 1);
                    // Finish every other one, so claims race with finishes too.
                    if got.len() % 2 == 0 {
                        assert!(s.finish(job.id, &owner, 201, &ok()).unwrap());
                    }
                    got.push(job.id);
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let unique: BTreeSet<JobId> = all.iter().copied().collect();
    assert_eq!(all.len(), 50, "claimed: {all:?}");
    assert_eq!(unique, want);
    let jobs = setup.list_jobs(1000).unwrap();
    assert!(jobs.iter().all(|j| j.attempts == 1), "{jobs:?}");
}

#[test]
fn pg_concurrent_records_make_one_finding_per_secret() {
    // Two daemons find the same 200 secrets in overlapping batches, in opposite orders.
    let fx = Fx::new(Backend::Postgres);
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|source| {
            let s = fx.open();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut new = Vec::new();
                let mut locations = 0;
                for round in 0..10 {
                    let round = if source == "a" { round } else { 9 - round };
                    let mut batch: Vec<Detection> = (round * 20..round * 20 + 40)
                        .map(|i| {
                            det(
                                &finding(&format!("fp-{:03}", i % 200), "r", "high", "git"),
                                &loc(source, "file", "secrets.env"),
                            )
                        })
                        .collect();
                    if source == "b" {
                        batch.reverse();
                    }
                    let out = s.record(&batch, 1_000 + i64::from(round)).unwrap();
                    new.extend(out.new_findings.into_iter().map(|f| f.fingerprint));
                    locations += out.new_locations;
                }
                (new, locations)
            })
        })
        .collect();
    let mut new = Vec::new();
    for t in threads {
        let (n, locations) = t.join().unwrap();
        assert_eq!(
            locations, 200,
            "each daemon adds its one place of each secret once"
        );
        new.extend(n);
    }
    new.sort();
    let want: Vec<String> = (0..200).map(|i| format!("fp-{i:03}")).collect();
    assert_eq!(new, want, "each secret is new exactly once");
    let s = fx.open();
    assert_eq!(s.count_findings().unwrap(), 200);
    let all = s
        .list_findings(&FindingFilter {
            limit: 1000,
            ..FindingFilter::default()
        })
        .unwrap();
    assert!(all.iter().all(|v| v.locations == 2), "{all:?}");
}

#[test]
fn pg_claims_of_one_source_never_overlap() {
    // Ten sources with two runnable jobs each: one running under an expired lease, one queued.
    // Whatever the interleaving, each source ends with exactly one job running.
    let fx = Fx::new(Backend::Postgres);
    let setup = fx.open();
    for i in 0..10 {
        let src = format!("s{i}");
        setup.enqueue(&src, "git", "{}", 100).unwrap().unwrap();
        setup.claim("dead", 100, 10).unwrap().unwrap();
        setup.enqueue(&src, "git", "{}", 101).unwrap().unwrap();
    }
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|n| {
            let s = fx.open();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut got = Vec::new();
                while let Some(job) = s.claim(&format!("d{n}"), 1_000, 600).unwrap() {
                    got.push(job.source);
                }
                got
            })
        })
        .collect();
    let mut sources: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    sources.sort();
    let want: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    assert_eq!(sources, want);
}

#[test]
fn pg_reconnects_after_the_connection_is_lost() {
    let fx = Fx::new(Backend::Postgres);
    let s = fx.open();
    s.ping().unwrap();
    let db = fx.spec.rsplit('/').next().unwrap().to_owned();
    // More times than the pool has connections: a lost connection must not stay counted as
    // open (the pool would then wait forever).
    for round in 0..10 {
        let killed = PG.sql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}'"
        ));
        assert_ne!(
            killed, "0",
            "round {round}: the store's connection was not found"
        );
        // Right away: the server's goodbye may arrive before the client sees the socket close.
        s.ping().unwrap_or_else(|e| panic!("round {round}: {e:#}"));
    }
    assert_eq!(s.count_findings().unwrap(), 0);
    assert!(s.enqueue("a", "git", "{}", 1).unwrap().is_some());
}

#[test]
fn pg_open_errors_hide_the_password() {
    let wrong = random_name("wrongpw");
    let spec = format!(
        "postgres://postgres:{wrong}@127.0.0.1:{}/postgres",
        PG.port()
    );
    let err = store::open(&spec).err().expect("wrong password");
    let text = format!("{err:#} {err:?}");
    assert!(!text.contains(&wrong), "{text}");
    assert!(
        text.contains(&format!(
            "opening store postgres://postgres:***@127.0.0.1:{}/postgres",
            PG.port()
        )),
        "{text}"
    );

    let spec = format!(
        "postgresql://127.0.0.1:{}/no_such_db?user=postgres&password={}",
        PG.port(),
        PG.password()
    );
    let err = store::open(&spec).err().expect("no such database");
    let text = format!("{err:#} {err:?}");
    assert!(!text.contains(PG.password()), "{text}");
    assert!(text.contains("password=***"), "{text}");
    assert!(text.contains("no_such_db"), "{text}");
}

/// A new, empty database on this binary's PostgreSQL server, as a `postgres://` URL (the daemon
/// end-to-end tests use it).
pub(crate) fn postgres_database() -> String {
    let db = random_name("keyward_serve_");
    PG.sql(&format!("CREATE DATABASE {db}"));
    format!(
        "postgres://postgres:{}@127.0.0.1:{}/{db}",
        PG.password(),
        PG.port()
    )
}

/// The server (for dumps in the daemon tests).
pub(crate) fn postgres() -> &'static Postgres {
    &PG
}

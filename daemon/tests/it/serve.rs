//! `keyward serve`: the real daemon, real git repositories, SQLite and PostgreSQL stores.

#[path = "serve/harness.rs"]
pub(crate) mod harness;

use crate::support::gh_token;
use harness::{Daemon, FAST, bare_with_hook, commit_secret, git, metric_in, push, push_initial};
use serde_json::json;
use std::time::Duration;

/// Everything a finding must be, on any store.
#[allow(clippy::many_single_char_names)]
fn git_push_and_clone_without_hook(store: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let (bare, work) = bare_with_hook(dir.path(), "app");
    // A clone the daemon watches by file notification only (polling once a minute).
    let clone = dir.path().join("clone");
    git(dir.path(), &["init", "-q", clone.to_str().unwrap()]);
    std::fs::write(clone.join("a.txt"), "nothing\n").unwrap();
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-qm", "init"]);
    push_initial(&work);

    let body = format!(
        "{FAST}\n[[repository]]\nname = \"app\"\npath = {:?}\npoll-interval = \"1h\"\n\n\
         [[repository]]\nname = \"clone\"\npath = {:?}\npoll-interval = \"1h\"\n",
        bare.display().to_string(),
        clone.display().to_string()
    );
    let d = Daemon::start_with(dir.path(), &body, store);
    d.wait_idle(Duration::from_secs(30));
    assert!(d.findings("").is_empty());

    let pushed = gh_token(901);
    commit_secret(&work, "deploy.sh", &pushed);
    push(&d, &work);
    let (f, took) = d.wait_finding(&pushed, Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(3),
        "push → finding took {took:?}"
    );
    assert_eq!(f["rule"], "github-pat-classic");
    assert_eq!(f["severity"], "high");
    assert_eq!(f["status"], "open");
    assert_eq!(f["source_kind"], "git");
    assert_eq!(f["locations"], 1);

    let committed = gh_token(902);
    commit_secret(&clone, "env.sh", &committed);
    let (g, took2) = d.wait_finding(&committed, Duration::from_secs(10));
    assert!(
        took2 < Duration::from_secs(5),
        "commit → finding took {took2:?}"
    );

    // One finding with its location, commit and the commit's time.
    let fp = f["fingerprint"].as_str().unwrap();
    let (s, detail) = d.get(&format!("/v1/findings/{fp}"));
    assert_eq!(s, 200);
    let loc = &detail["location_list"][0];
    assert_eq!(loc["source"], "app");
    assert_eq!(loc["path"], "deploy.sh");
    assert_eq!(loc["line"], 1);
    let head = git(&work, &["rev-parse", "HEAD"]);
    assert_eq!(loc["commit"], head.trim());
    let commit_time: i64 = git(&work, &["log", "-1", "--format=%at"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(detail["content_created"], commit_time);
    let first_seen = detail["first_seen"].as_i64().unwrap();
    assert!((0..60).contains(&(first_seen - commit_time)), "{detail}");

    // Filters.
    assert_eq!(d.findings("source=clone").len(), 1);
    assert_eq!(d.findings("source=git").len(), 2);
    assert_eq!(d.findings("severity=critical").len(), 0);
    assert_eq!(d.findings("rule=github-pat-classic").len(), 2);
    let (s, _) = d.get("/v1/findings?severity=urgent");
    assert_eq!(s, 400);

    // Triage: resolve with a reason; the history says who and why.
    let (s, after) = d.post(
        &format!("/v1/findings/{fp}/status"),
        &json!({"status": "resolved", "reason": "rotated", "by": "alice"}),
    );
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["status"], "resolved");
    assert_eq!(after["history"][0]["by"], "alice");
    assert_eq!(after["history"][0]["reason"], "rotated");
    assert_eq!(d.findings("status=open").len(), 1);
    assert_eq!(d.findings("status=resolved").len(), 1);

    // Metrics: both new findings counted; the open gauge follows the store.
    let text = harness_wait_metric(
        &d,
        r#"keyward_findings_new_total{confidence="high",severity="high",source_kind="git"}"#,
        2.0,
    );
    assert_eq!(
        metric_in(
            &text,
            r#"keyward_findings_open{confidence="high",rule="github-pat-classic",severity="high",source_kind="git"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric_in(
            &text,
            r#"keyward_scans_total{outcome="ok",source_kind="git"}"#
        )
        .unwrap()
            >= 4.0
    );
    assert!(
        metric_in(
            &text,
            r#"keyward_source_last_success_timestamp_seconds{source="app"}"#
        )
        .unwrap()
            > 1.7e9
    );
    assert_eq!(metric_in(&text, "keyward_store_up"), Some(1.0));

    // The same push again (nothing new) scans nothing twice: objects only grow with new blobs.
    let objects = metric_in(&text, r#"keyward_scanned_objects_total{source_kind="git"}"#).unwrap();
    let (s, _) = d.post("/v1/sources/app/scan", &json!({}));
    assert_eq!(s, 202);
    d.wait_idle(Duration::from_secs(10));
    let again = metric_in(
        &d.metrics(),
        r#"keyward_scanned_objects_total{source_kind="git"}"#,
    )
    .unwrap();
    assert_eq!(
        again as u64, objects as u64,
        "a rescan with nothing new read objects again"
    );

    // No secret value anywhere: API, metrics, log, store.
    let api = format!(
        "{}{}",
        d.get("/v1/findings?status=resolved").1,
        d.get(&format!("/v1/findings/{fp}")).1
    );
    for secret in [&pushed, &committed] {
        assert!(!api.contains(secret.as_str()), "secret in the API");
        assert!(!d.metrics().contains(secret.as_str()), "secret in /metrics");
        assert!(!d.log().contains(secret.as_str()), "secret in the log");
    }
    if let Some(url) = store {
        // The whole PostgreSQL database, dumped as SQL.
        let pg = crate::store::postgres();
        let db = url.rsplit('/').next().unwrap();
        let out = std::process::Command::new(pg.psql_bin().with_file_name("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &pg.port().to_string(),
                db,
            ])
            .env("PGPASSWORD", pg.password())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump = String::from_utf8_lossy(&out.stdout);
        assert!(
            dump.contains(f["redacted"].as_str().unwrap()),
            "the dump holds the findings"
        );
        for secret in [&pushed, &committed] {
            assert!(
                !dump.contains(secret.as_str()),
                "secret in the PostgreSQL dump"
            );
        }
    } else {
        for entry in std::fs::read_dir(&d.state).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                for secret in [&pushed, &committed] {
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                        "secret in {}",
                        p.display()
                    );
                }
            }
        }
    }
    let _ = g;
}

/// Waits until a counter reaches `want`; returns the metrics text.
fn harness_wait_metric(d: &Daemon, series: &str, want: f64) -> String {
    keyward_tests::wait_for(Duration::from_secs(10), || {
        let t = d.metrics();
        (metric_in(&t, series) == Some(want)).then_some(t)
    })
    .unwrap_or_else(|| panic!("{series} never reached {want}:\n{}", d.metrics()))
}

#[test]
fn serve_git_push_hook_and_notify_on_sqlite() {
    git_push_and_clone_without_hook(None);
}

#[test]
fn serve_git_push_hook_and_notify_on_postgres() {
    let url = crate::store::postgres_database();
    git_push_and_clone_without_hook(Some(&url));
}

#[test]
fn serve_kill9_before_recording_loses_nothing_and_rescans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, work) = bare_with_hook(dir.path(), "app");
    push_initial(&work);
    let body = format!(
        "{FAST}\n[[repository]]\nname = \"app\"\npath = {:?}\npoll-interval = \"1h\"\n",
        bare.display().to_string()
    );
    let mut d = Daemon::start(dir.path(), &body);
    d.wait_idle(Duration::from_secs(30));
    let before = metric_in(
        &d.metrics(),
        r#"keyward_scanned_objects_total{source_kind="git"}"#,
    )
    .unwrap();
    assert!(before >= 1.0);

    // The next scan holds after scanning, before recording: kill it there.
    d.kill9();
    d.restart_env(&[("KEYWARD_TEST_HOLD_BEFORE_RECORD_MS", "60000")]);
    d.wait_idle(Duration::from_secs(30));
    let token = gh_token(903);
    commit_secret(&work, "ci.env", &token);
    push(&d, &work);
    let held = keyward_tests::wait_for(Duration::from_secs(10), || {
        d.log().contains("Holding before recording").then_some(())
    });
    assert!(held.is_some(), "{}", d.log());
    d.kill9();

    // Restarted: the job is taken over once its lease (3 s) runs out; the finding is recorded
    // once, and only the pushed commit's blob is read (the first scan's objects are not).
    d.restart();
    let (f, _) = d.wait_finding(&token, Duration::from_secs(20));
    assert_eq!(f["locations"], 1);
    d.wait_idle(Duration::from_secs(20));
    let objects = metric_in(
        &d.metrics(),
        r#"keyward_scanned_objects_total{source_kind="git"}"#,
    )
    .unwrap();
    assert_eq!(
        objects as u64, 1,
        "after the restart only the pushed blob is scanned"
    );
    assert_eq!(d.findings("").len(), 1);
}

#[test]
fn serve_config_errors_reload_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A bad file: --check names file, line and key, and exits 64.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[queue]\nlease = \"soon\"\n[[repository]]\nname = \"x\"\npth = \"/\"\n",
    )
    .unwrap();
    let out = crate::support::keyward()
        .args(["serve", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5: unknown field `pth`"), "{err}");

    let repo = dir.path().join("r");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    commit_secret(&repo, "a.sh", &gh_token(904));
    let mut d = Daemon::start(dir.path(), FAST);
    assert_eq!(
        d.get("/v1/sources").1["sources"].as_array().unwrap().len(),
        0
    );

    // A bad reload keeps the old config.
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!("{good}\n[[repository]]\nname = \"bad name\"\npath = \"/x\"\n"),
    )
    .unwrap();
    d.hup();
    let failed = keyward_tests::wait_for(Duration::from_secs(10), || {
        (metric_in(
            &d.metrics(),
            r#"keyward_config_reloads_total{outcome="failed"}"#,
        ) == Some(1.0))
        .then_some(())
    });
    assert!(failed.is_some(), "{}", d.log());
    assert!(d.log().contains("keeping the configuration in force"));
    // A good one adds the source and scans it.
    std::fs::write(
        &d.config,
        format!(
            "{good}\n[[repository]]\nname = \"r\"\npath = {:?}\n",
            repo.display().to_string()
        ),
    )
    .unwrap();
    d.hup();
    d.wait_finding(&gh_token(904), Duration::from_secs(15));
    assert_eq!(d.get("/v1/sources").1["sources"][0]["name"], "r");

    // SIGTERM: exits 0 within the bound, and removes its socket.
    let status = d
        .stop(Duration::from_secs(10))
        .expect("stopped within 10 s");
    assert!(status.success(), "{status}");
    assert!(!d.socket.exists());
}

#[test]
fn serve_remote_listener_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let local = keyward_tests::free_port();
    let remote = keyward_tests::free_port();
    let token = "s3cr3t-api-token-0123456789"; // keyward:allow test fixture, not a credential
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    let api = format!(
        "[api]\nlisten = [\"127.0.0.1:{local}\", \"0.0.0.0:{remote}\"]\ntoken-file = \"token\"\n"
    );
    let d = Daemon::start_custom(dir.path(), local, &api, FAST, None);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let at = |port: u16, path: &str, auth: Option<&str>| -> u16 {
        let mut r = agent.get(&format!("http://127.0.0.1:{port}{path}"));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.call().unwrap().status().as_u16()
    };
    assert_eq!(at(remote, "/v1/findings", None), 401);
    assert_eq!(at(remote, "/metrics", None), 401);
    assert_eq!(
        at(
            remote,
            "/v1/findings",
            Some("Bearer wrong-token-wrong-token")
        ),
        401
    );
    assert_eq!(
        at(remote, "/v1/findings", Some(&format!("Bearer {token}"))),
        200
    );
    assert_eq!(at(remote, "/healthz", None), 200);
    assert_eq!(at(local, "/v1/findings", None), 200);
    assert_eq!(
        metric_in(&d.metrics(), "keyward_api_unauthorized_total"),
        Some(3.0)
    );
    assert!(!d.log().contains(token), "the token reached the log");
    assert!(d.log().contains("API request refused"));
}

fn owner_pid(job: &serde_json::Value) -> u32 {
    let owner = job["owner"].as_str().unwrap_or_default();
    owner
        .split(':')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

#[test]
fn serve_fleet_two_daemons_share_one_postgres() {
    let url = crate::store::postgres_database();
    let dir = tempfile::tempdir().unwrap();
    let mut body = FAST.to_owned();
    let mut works = Vec::new();
    for i in 0..8 {
        let (bare, work) = bare_with_hook(dir.path(), &format!("r{i}"));
        commit_secret(&work, "a.env", &gh_token(1000 + i));
        push_initial(&work);
        body.push_str(&format!(
            "\n[[repository]]\nname = \"r{i}\"\npath = {:?}\npoll-interval = \"1h\"\nnotify = false\n",
            bare.display().to_string()
        ));
        works.push(work);
    }
    // Each scan holds 1.5 s before recording, so the two daemons must share the eight jobs.
    let hold = [("KEYWARD_TEST_HOLD_BEFORE_RECORD_MS", "1500")];
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let mut a = Daemon::configure(&da, &body, Some(&url));
    a.restart_env(&hold);
    let mut b = Daemon::configure(&db, &body, Some(&url));
    b.restart_env(&hold);
    for i in 0..8 {
        b.wait_finding(&gh_token(1000 + i), Duration::from_secs(60));
    }
    b.wait_idle(Duration::from_secs(30));
    let scans = b.get("/v1/scans?limit=1000").1["scans"]
        .as_array()
        .unwrap()
        .clone();
    for i in 0..8 {
        let done: Vec<_> = scans
            .iter()
            .filter(|s| {
                s["source"] == format!("r{i}") && s["state"] == "done" && s["findings"] == 1
            })
            .collect();
        assert_eq!(
            done.len(),
            1,
            "r{i} scanned with findings {} times: {scans:#?}",
            done.len()
        );
    }
    let owners: std::collections::HashSet<u32> = scans
        .iter()
        .filter(|s| s["findings"] == 1)
        .map(owner_pid)
        .collect();
    assert_eq!(
        owners.len(),
        2,
        "both daemons did some of the work: {scans:#?}"
    );
    assert_eq!(b.findings("").len(), 8);
    assert!(b.findings("").iter().all(|f| f["locations"] == 1));

    // A holds two new scans forever and is killed; B takes them over when the leases run out.
    let last_id = scans.iter().filter_map(|s| s["id"].as_i64()).max().unwrap();
    // B is down while A picks the new work up, so A is the one holding it.
    b.kill9();
    a.kill9();
    a.restart_env(&[("KEYWARD_TEST_HOLD_BEFORE_RECORD_MS", "600000")]);
    a.wait_idle(Duration::from_secs(30));
    let mark = a.log().len();
    for (i, work) in works.iter().enumerate().take(2) {
        commit_secret(work, "b.env", &gh_token(2000 + i as u64));
        git(work, &["push", "-q", "origin", "HEAD:main"]);
        let (s, _) = a.post(&format!("/v1/sources/r{i}/scan"), &json!({}));
        assert_eq!(s, 202);
    }
    let holding = keyward_tests::wait_for(Duration::from_secs(20), || {
        (a.log()[mark..]
            .matches("Holding before recording findings (test fault injection).")
            .count()
            >= 2)
            .then_some(())
    });
    assert!(holding.is_some(), "{}", a.log());
    let a_pid = a.pid();
    a.kill9();
    b.restart();
    for i in 0..2u64 {
        b.wait_finding(&gh_token(2000 + i), Duration::from_secs(30));
    }
    b.wait_idle(Duration::from_secs(30));
    let scans = b.get("/v1/scans?limit=1000").1["scans"]
        .as_array()
        .unwrap()
        .clone();
    let taken_over: Vec<_> = scans
        .iter()
        .filter(|s| {
            s["id"].as_i64() > Some(last_id)
                && s["findings"] == 1
                && s["attempts"] == 2
                && s["state"] == "done"
        })
        .collect();
    assert_eq!(taken_over.len(), 2, "{scans:#?}");
    assert!(
        taken_over
            .iter()
            .all(|s| owner_pid(s) == b.pid() && owner_pid(s) != a_pid)
    );
    assert_eq!(b.findings("").len(), 10);
}

#[test]
fn serve_remote_listener_speaks_tls_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.crt",
            "-days",
            "2",
            "-subj",
            "/CN=keyward-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = "tls-api-token-0123456789abcdef"; // keyward:allow test fixture, not a credential
    std::fs::write(dir.path().join("token"), token).unwrap();
    let (local, remote) = (keyward_tests::free_port(), keyward_tests::free_port());
    let api = format!(
        "[api]\nlisten = [\"127.0.0.1:{local}\", \"0.0.0.0:{remote}\"]\ntoken-file = \"token\"\n\
         tls-cert = \"tls.crt\"\ntls-key = \"tls.key\"\n"
    );
    let _d = Daemon::start_custom(dir.path(), local, &api, FAST, None);
    let curl = |url: &str, auth: bool| -> String {
        let mut c = std::process::Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(dir.path().join("tls.crt"))
            .arg(url);
        if auth {
            c.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = c.output().expect("curl (apt-get install curl)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let https = format!("https://127.0.0.1:{remote}/v1/findings");
    assert_eq!(curl(&https, true), "200");
    assert_eq!(curl(&https, false), "401");
    // Plain HTTP on the TLS listener gets no HTTP answer.
    assert_eq!(
        curl(&format!("http://127.0.0.1:{remote}/v1/findings"), true),
        "000"
    );
    // The loopback listener stays plain HTTP without a token.
    assert_eq!(
        curl(&format!("http://127.0.0.1:{local}/v1/findings"), false),
        "200"
    );
}

#[test]
fn serve_sigterm_puts_a_running_scan_back_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, work) = bare_with_hook(dir.path(), "app");
    commit_secret(&work, "x.env", &gh_token(905));
    push_initial(&work);
    let body = format!(
        "{FAST}\n[[repository]]\nname = \"app\"\npath = {:?}\npoll-interval = \"1h\"\n",
        bare.display().to_string()
    );
    let mut d = Daemon::configure(dir.path(), &body, None);
    d.restart_env(&[("KEYWARD_TEST_HOLD_BEFORE_RECORD_MS", "600000")]);
    let held = keyward_tests::wait_for(Duration::from_secs(20), || {
        d.log().contains("Holding before recording").then_some(())
    });
    assert!(held.is_some(), "{}", d.log());
    // shutdown-timeout is 5 s (FAST): the daemon gives up waiting and requeues the scan.
    let started = std::time::Instant::now();
    let status = d
        .stop(Duration::from_secs(15))
        .expect("stopped within 15 s");
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert!(d.log().contains("put back in the queue"), "{}", d.log());
    // Restarted without the hold: the requeued job runs at once (no lease to wait out).
    d.restart();
    let (_, took) = d.wait_finding(&gh_token(905), Duration::from_secs(10));
    assert!(took < Duration::from_secs(3), "{took:?}");
    let scans = d.get("/v1/scans?limit=100").1["scans"]
        .as_array()
        .unwrap()
        .clone();
    let failed_then_done = scans.iter().any(|s| {
        s["source"] == "app" && s["state"] == "done" && s["findings"] == 1 && s["attempts"] == 2
    });
    assert!(failed_then_done, "{scans:#?}");
}

/// Finds `fingerprint` in a listing.
fn listed<'a>(list: &'a [serde_json::Value], fingerprint: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|f| f["fingerprint"] == fingerprint)
}

/// The sum of every series of the integer `metric` whose labels include `label`.
fn metric_sum(text: &str, metric: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(label))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("not an integer sample: {l}"))
        })
        .sum()
}

#[test]
fn serve_stores_each_secrets_confidence_and_lists_medium_and_up() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("r");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    let (real, fixture, documented) = (gh_token(3401), gh_token(3402), gh_token(3403));
    let w = |rel: &str, text: &str| crate::support::write(&repo, rel, text);
    // A deployed token: high.
    w("deploy/app.env", &format!("GITHUB_TOKEN={real}\n"));
    // A checksummed token in a fixture: high, less one step for the path.
    w(
        "tests/fixtures/x.json",
        &format!("{{\"token\": \"{fixture}\"}}\n"),
    );
    // A generic password in a test function: low.
    w(
        "tests/login_test.py",
        "def test_login():\n    password = \"Vq8#kTz2pLw9xR\"\n    assert login(password)\n",
    );
    // A token in a config and in the docs: the secret (not its config place alone) is lowered
    // for being documented. Grouped before recording, both places carry that.
    w("config/app.env", &format!("GITHUB_TOKEN={documented}\n"));
    w(
        "docs/setup.md",
        &format!("Set `GITHUB_TOKEN={documented}` in config/app.env.\n"),
    );
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "tokens"]);

    let body = format!(
        "{FAST}\n[[repository]]\nname = \"r\"\npath = {:?}\npoll-interval = \"1h\"\n",
        repo.display().to_string()
    );
    let d = Daemon::start(dir.path(), &body);
    d.wait_idle(Duration::from_secs(30));
    let fp = |token: &str| {
        keyward_detectors::Fingerprint::of("github-pat-classic", token.as_bytes())
            .as_str()
            .to_owned()
    };
    let (real_fp, fixture_fp, documented_fp) = (fp(&real), fp(&fixture), fp(&documented));

    // The API without the parameter lists every confidence, as `low` does.
    let all = d.findings("");
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_eq!(d.findings("confidence=low").len(), 4);
    let password = all
        .iter()
        .find(|f| f["rule"] != "github-pat-classic")
        .expect("the password is stored");
    assert_eq!(password["confidence"], "low", "{password}");
    assert_eq!(
        password["reasons"],
        json!(["keyword-and-value", "test-code", "test-path"])
    );
    let password_fp = password["fingerprint"].as_str().unwrap().to_owned();

    // Medium and up: exactly the three tokens, each at the secret's confidence.
    let medium = d.findings("confidence=medium");
    assert_eq!(medium.len(), 3, "{medium:#?}");
    for (fingerprint, confidence, reasons, locations) in [
        (&real_fp, "high", json!(["checksum-verified"]), 1),
        (
            &fixture_fp,
            "medium",
            json!(["checksum-verified", "test-path"]),
            1,
        ),
        (
            &documented_fp,
            "medium",
            json!(["checksum-verified", "seen-in-documentation"]),
            2,
        ),
    ] {
        let f = listed(&medium, fingerprint)
            .unwrap_or_else(|| panic!("{fingerprint} not listed: {medium:#?}"));
        assert_eq!(f["confidence"], confidence, "{f}");
        assert_eq!(f["reasons"], reasons, "{f}");
        assert_eq!(f["locations"], locations, "{f}");
    }
    let high = d.findings("confidence=high");
    assert_eq!(high.len(), 1);
    assert_eq!(high[0]["fingerprint"], real_fp.as_str());
    assert_eq!(d.findings("confidence=medium&status=resolved").len(), 0);
    let (s, err) = d.get("/v1/findings?confidence=certain");
    assert_eq!(s, 400);
    assert!(
        err["error"].as_str().unwrap().contains("confidence"),
        "{err}"
    );
    let (_, detail) = d.get(&format!("/v1/findings/{documented_fp}"));
    assert_eq!(detail["confidence"], "medium");
    assert_eq!(detail["location_list"].as_array().unwrap().len(), 2);

    // Metrics: new findings and open findings by confidence.
    let text = d.metrics();
    let new = "keyward_findings_new_total";
    assert_eq!(
        metric_in(
            &text,
            r#"keyward_findings_new_total{confidence="high",severity="high",source_kind="git"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_in(
            &text,
            r#"keyward_findings_new_total{confidence="medium",severity="high",source_kind="git"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(metric_sum(&text, new, r#"confidence="low""#), 1, "{text}");
    assert_eq!(
        metric_sum(&text, "keyward_findings_open", r#"confidence="medium""#),
        2,
        "{text}"
    );

    // `keyward findings list`: medium and up by default, as the scan reports.
    let cli = |args: &[&str]| {
        let out = crate::support::keyward()
            .args(["findings"])
            .args(args)
            .arg("--socket")
            .arg(&d.socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", crate::support::stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let list = cli(&["list"]);
    for f in [&real_fp, &fixture_fp, &documented_fp] {
        assert!(list.contains(f.as_str()), "{f} not listed:\n{list}");
    }
    assert!(
        !list.contains(&password_fp),
        "the low one is listed:\n{list}"
    );
    assert!(
        list.contains(&format!("HIGH     high   {real_fp} github-pat-classic")),
        "{list}"
    );
    assert!(
        list.ends_with("3 findings of medium confidence and up (--confidence low lists all)\n"),
        "{list}"
    );
    let list = cli(&["list", "--confidence", "low"]);
    assert!(list.contains(&password_fp), "{list}");
    assert!(list.ends_with("\n4 findings\n"), "{list}");
    let list = cli(&["list", "--confidence", "high"]);
    assert!(list.ends_with("\n1 finding of high confidence\n"), "{list}");
    let show = cli(&["show", &documented_fp]);
    assert!(
        show.contains("  confidence   medium (checksum-verified, seen-in-documentation)\n"),
        "{show}"
    );
}

//! The agent benchmark: `cargo bench -p keyward-agent --bench sessions` (what
//! `scripts/bench-agent` runs), against real OpenBao and PostgreSQL, with a release-profile binary.
//!
//! - overhead: N sequential sessions (child-token profile: only Vault work, no database)
//!   opened and closed over the socket, against the same Vault calls made directly by this
//!   client over one keep-alive connection; the difference of the p99s is the agent's own cost
//!   (socket, JSON, ledger fsyncs, audit lines, bookkeeping).
//! - revocation: N `run --profile db -- sh -c 'date …'` builds; time from the command's last
//!   instant to `run`'s exit, which returns only after every credential is verified revoked.
//! - concurrency: 200 sessions with database credentials held open at once; agent RSS.

#![allow(clippy::print_stdout)] // a benchmark prints its results

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// The end-to-end tests' fixture (OpenBao, PostgreSQL, agent config), shared as a file: a bench
// target cannot import from a test target. Not every helper is used here.
#[allow(dead_code)]
#[path = "../tests/it/fixture.rs"]
mod fixture;

use fixture::{Fixture, my_uid};

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Conn {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Conn {
    fn open(fx: &Fixture, profiles: &[&str]) -> Self {
        let s = UnixStream::connect(fx.socket()).unwrap();
        let mut c = Self {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let v = c.call(&json!({"op": "open", "profiles": profiles, "meta": {"bench": "1"}}));
        assert_eq!(v["type"], "opened", "{v}");
        c
    }

    fn call(&mut self, req: &Value) -> Value {
        writeln!(self.w, "{req}").unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    fn close(mut self) {
        let v = self.call(&json!({"op": "close"}));
        assert_eq!(v["type"], "closed", "{v}");
        assert_eq!(v["failed"], 0, "{v}");
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn main() {
    let n: usize = std::env::var("KEYWARD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let conc: usize = std::env::var("KEYWARD_BENCH_CONCURRENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut fx = Fixture::new(true);
    fx.write_config(&format!(
        "{}\n[profiles.tok]\nkind = \"token\"\npolicies = [\"default\"]\nallow = {{ uids = [{uid}] }}\n",
        Fixture::db_profile(&[my_uid()]),
        uid = my_uid()
    ));
    // 200 database credentials at once on 2 cores: give OpenBao time.
    let cfg = fx.path("agent.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("request-timeout = \"2s\"", "request-timeout = \"30s\"");
    std::fs::write(&cfg, text).unwrap();
    fx.start_agent();
    let agent_pid = fx.agent.as_ref().unwrap().pid();
    let rss_idle = rss_kib(agent_pid);

    // --- 1. overhead -------------------------------------------------------------------
    let warm = 20;
    let mut via_agent = Vec::with_capacity(n);
    for i in 0..n + warm {
        let t = Instant::now();
        Conn::open(&fx, &["tok"]).close();
        if i >= warm {
            via_agent.push(t.elapsed());
        }
    }
    // The same Vault calls, made directly with a token of the agent's policy (as the agent's
    // AppRole login has), over one keep-alive connection.
    let bao = &fx.bao;
    let agent_token = bao.must(
        "POST",
        "auth/token/create",
        Some(&json!({"policies": ["keyward-agent"], "ttl": "1h"})),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let call = |token: &str, path: &str, body: &Value| bao.api_as(token, "POST", path, Some(body));
    let mut direct = Vec::with_capacity(n);
    for i in 0..n + warm {
        let t = Instant::now();
        let session = call(
            &agent_token,
            "auth/token/create",
            &json!({"ttl": "600s", "explicit_max_ttl": "600s", "renewable": false, "display_name": "keyward-session", "meta": {"keyward_session": "x"}}),
        );
        let session = session.unwrap();
        let st = session["auth"]["client_token"].as_str().unwrap().to_owned();
        let sa = session["auth"]["accessor"].as_str().unwrap().to_owned();
        let child = bao
            .api_as(&st, "POST", "auth/token/create", Some(&json!({"policies": ["default"], "ttl": "600s", "explicit_max_ttl": "600s", "num_uses": 0, "renewable": false, "meta": {"profile": "tok"}})))
            .unwrap();
        let ca = child["auth"]["accessor"].as_str().unwrap().to_owned();
        for acc in [&ca, &sa] {
            bao.must(
                "POST",
                "auth/token/revoke-accessor",
                Some(&json!({"accessor": acc})),
            );
            assert!(
                bao.api(
                    "POST",
                    "auth/token/lookup-accessor",
                    Some(&json!({"accessor": acc}))
                )
                .is_err()
            );
        }
        if i >= warm {
            direct.push(t.elapsed());
        }
    }
    let (a50, a99) = (pct(&mut via_agent, 0.5), pct(&mut via_agent, 0.99));
    let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
    println!(
        "BENCH overhead: n={n} session(token profile) open+close via agent p50={} p99={}; same Vault calls direct p50={} p99={}",
        ms(a50),
        ms(a99),
        ms(d50),
        ms(d99)
    );
    println!(
        "BENCH overhead: agent's own cost p50={} p99={}",
        ms(a50.saturating_sub(d50)),
        ms(a99.saturating_sub(d99))
    );

    // For scale: one fdatasync of a small append in the agent's state directory on this disk
    // (the agent does one per session, overlapped with the Vault round trips).
    let mut syncs = Vec::with_capacity(200);
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(fx.path("state/fsync-probe"))
            .unwrap();
        for _ in 0..200 {
            let t = Instant::now();
            f.write_all(&[b'x'; 400]).unwrap();
            f.sync_data().unwrap();
            syncs.push(t.elapsed());
        }
    }
    println!(
        "BENCH disk: fdatasync of a 400-byte append p50={} p99={}",
        ms(pct(&mut syncs, 0.5)),
        ms(pct(&mut syncs, 0.99))
    );

    // --- 2. revocation latency after the build exits --------------------------------------
    let runs = n.min(100);
    let mut revocation = Vec::with_capacity(runs);
    let stamp = fx.path("exit-stamp");
    for _ in 0..runs {
        let script = format!("date +%s%N > {}", stamp.display());
        let st = fx
            .run_cmd(&["db"], &["sh", "-c", &script])
            .env("KEYWARD_LOG", "warn")
            .status()
            .unwrap();
        let done = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!(st.success());
        let ended: u128 = fx.read("exit-stamp").parse().unwrap();
        revocation.push(Duration::from_nanos((done.as_nanos() - ended) as u64));
    }
    assert!(
        fx.pg.as_ref().unwrap().dynamic_roles().is_empty(),
        "every role revoked"
    );
    println!(
        "BENCH revocation: n={runs} build exit -> all credentials verified revoked p50={} p99={} max={}",
        ms(pct(&mut revocation, 0.5)),
        ms(pct(&mut revocation, 0.99)),
        ms(pct(&mut revocation, 1.0))
    );

    // --- 3. concurrent sessions -------------------------------------------------------------
    let t = Instant::now();
    let conns: Vec<Conn> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conc)
            .map(|_| s.spawn(|| Conn::open(&fx, &["db"])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let opened = t.elapsed();
    assert_eq!(fx.pg.as_ref().unwrap().dynamic_roles().len(), conc);
    let rss_busy = rss_kib(agent_pid);
    let metrics = fx.metrics();
    assert!(
        metrics.contains(&format!("keyward_agent_sessions_active {conc}")),
        "{metrics}"
    );
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in conns {
            s.spawn(move || c.close());
        }
    });
    let closed = t.elapsed();
    assert!(fx.pg.as_ref().unwrap().dynamic_roles().is_empty());
    println!(
        "BENCH concurrency: {conc} sessions with database credentials open at once: opened in {}, all revoked in {}; agent RSS idle {:.1} MiB, with {conc} sessions {:.1} MiB",
        ms(opened),
        ms(closed),
        rss_idle as f64 / 1024.0,
        rss_busy as f64 / 1024.0
    );
}

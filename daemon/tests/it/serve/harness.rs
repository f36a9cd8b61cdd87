//! A real `keyward serve` process for the daemon's end-to-end tests: a config written to a temp
//! dir, a free loopback port, a local socket, and helpers to call the API and read /metrics.

use crate::support::keyward;
use keyward_tests::{KillOnDrop, free_port, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running daemon (killed on drop).
pub(crate) struct Daemon {
    child: Option<KillOnDrop>,
    /// Its state directory.
    pub(crate) state: PathBuf,
    /// Its config file.
    pub(crate) config: PathBuf,
    /// Its local socket.
    pub(crate) socket: PathBuf,
    /// Its loopback port.
    pub(crate) port: u16,
    log: PathBuf,
    agent: ureq::Agent,
}

/// The `[queue]` and `[scan]` settings tests use: short leases and intervals.
pub(crate) const FAST: &str = r#"
[queue]
lease = "3s"
claim-interval = "200ms"
retry-min = "1s"
retry-max = "2s"
max-attempts = 3

[scan]
workers = 2
threads = 2
shutdown-timeout = "5s"
"#;

impl Daemon {
    /// Writes `dir/keyward.toml` (state dir, listener, socket, then `body`) and starts the
    /// daemon; returns once `/readyz` says ready.
    pub(crate) fn start(dir: &Path, body: &str) -> Daemon {
        Daemon::start_with(dir, body, None)
    }

    /// As [`Daemon::start`], with a store (`postgres://…`); SQLite under the state dir if `None`.
    pub(crate) fn start_with(dir: &Path, body: &str, store: Option<&str>) -> Daemon {
        let mut d = Daemon::configure(dir, body, store);
        d.restart();
        d
    }

    /// Writes the config as [`Daemon::start_with`] does without starting the process (start it
    /// with [`Daemon::restart_env`]).
    pub(crate) fn configure(dir: &Path, body: &str, store: Option<&str>) -> Daemon {
        let port = free_port();
        let api = format!(
            "[api]\nlisten = [\"127.0.0.1:{port}\"]\nsocket = {:?}\n",
            dir.join("keyward.sock").display().to_string()
        );
        Daemon::write_config(dir, port, &api, body, store)
    }

    /// As [`Daemon::start_with`] with the `[api]` section given (`port` is the loopback port the
    /// harness talks to; the socket is `dir/keyward.sock` when the section names it).
    pub(crate) fn start_custom(
        dir: &Path,
        port: u16,
        api: &str,
        body: &str,
        store: Option<&str>,
    ) -> Daemon {
        let mut d = Daemon::write_config(dir, port, api, body, store);
        d.restart();
        d
    }

    fn write_config(dir: &Path, port: u16, api: &str, body: &str, store: Option<&str>) -> Daemon {
        let state = dir.join("state");
        let socket = dir.join("keyward.sock");
        let config = dir.join("keyward.toml");
        let store_line = store.map_or_else(String::new, |s| format!("store = {s:?}\n"));
        std::fs::write(
            &config,
            format!(
                "state-dir = {:?}\n{store_line}\n{api}\n{body}",
                state.display().to_string(),
            ),
        )
        .unwrap();
        Daemon {
            child: None,
            state,
            config,
            socket,
            port,
            log: dir.join("daemon.log"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        }
    }

    /// Starts the process again (after [`Daemon::kill9`] or [`Daemon::stop`]); waits for ready.
    pub(crate) fn restart(&mut self) {
        self.restart_env(&[]);
    }

    /// As [`Daemon::restart`], with extra environment variables.
    pub(crate) fn restart_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = keyward()
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("KEYWARD_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start keyward serve");
        self.child = Some(KillOnDrop(child));
        let ready = wait_for(Duration::from_secs(60), || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.0.try_wait()
            {
                panic!("keyward serve exited with {status}:\n{}", self.log());
            }
            self.get_text("/readyz").filter(|(s, _)| *s == 200)
        });
        assert!(ready.is_some(), "daemon not ready in 60 s:\n{}", self.log());
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").pid()
    }

    /// SIGKILL, and wait for the process to go.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.0.kill();
            let _ = c.0.wait();
        }
    }

    /// SIGTERM, and wait (at most `timeout`) for the exit status.
    pub(crate) fn stop(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        keyward_tests::signal(c.pid(), "TERM");
        let status = wait_for(timeout, || c.0.try_wait().ok().flatten());
        if status.is_none() {
            let _ = c.0.kill();
        }
        status
    }

    /// SIGHUP.
    pub(crate) fn hup(&self) {
        keyward_tests::signal(self.pid(), "HUP");
    }

    /// The daemon's stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn get_text(&self, path: &str) -> Option<(u16, String)> {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.url()))
            .call()
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_to_string().unwrap_or_default()))
    }

    /// GET, JSON answer.
    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        let (s, t) = self
            .get_text(path)
            .unwrap_or_else(|| panic!("GET {path} failed:\n{}", self.log()));
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }

    /// POST a JSON body.
    pub(crate) fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut r = self
            .agent
            .post(&format!("{}{path}", self.url()))
            .send_json(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        let t = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }

    /// `/metrics` text.
    pub(crate) fn metrics(&self) -> String {
        self.get_text("/metrics").expect("metrics").1
    }

    /// Open findings, as the API lists them.
    pub(crate) fn findings(&self, query: &str) -> Vec<Value> {
        let (s, v) = self.get(&format!("/v1/findings?{query}"));
        assert_eq!(s, 200, "{v}");
        v["findings"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until a finding whose `redacted` form starts like `secret` is listed; returns it
    /// and how long it took.
    pub(crate) fn wait_finding(&self, secret: &str, timeout: Duration) -> (Value, Duration) {
        let started = Instant::now();
        let prefix: String = secret.chars().take(4).collect();
        let suffix: String = secret
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let found = wait_for(timeout, || {
            self.findings("status=open&limit=1000")
                .into_iter()
                .find(|f| {
                    let r = f["redacted"].as_str().unwrap_or("");
                    r.starts_with(&prefix) && r.ends_with(&suffix)
                })
        });
        let f = found.unwrap_or_else(|| {
            panic!(
                "no finding for {prefix}… within {timeout:?}; scans: {}\nlog:\n{}",
                self.get("/v1/scans").1,
                self.log()
            )
        });
        (f, started.elapsed())
    }

    /// Waits until no job is queued or running and at least one finished.
    pub(crate) fn wait_idle(&self, timeout: Duration) {
        let ok = wait_for(timeout, || {
            let (_, v) = self.get("/v1/scans?limit=1000");
            let scans = v["scans"].as_array()?.clone();
            let busy = scans
                .iter()
                .any(|s| s["state"] == "queued" || s["state"] == "running");
            (!busy && !scans.is_empty()).then_some(())
        });
        assert!(
            ok.is_some(),
            "scans still busy: {}\n{}",
            self.get("/v1/scans").1,
            self.log()
        );
    }
}

/// The value of `series` in a metrics text.
pub(crate) fn metric_in(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Runs git in `dir`, failing loudly.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository with the post-receive hook installed, and a clone of it (one commit, not
/// pushed yet) to push from.
pub(crate) fn bare_with_hook(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let bare = dir.join(format!("{name}.git"));
    git(dir, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    let out = keyward()
        .args(["hook", "install", "--post-receive", "--repo"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let work = dir.join(format!("{name}-work"));
    git(
        dir,
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    std::fs::write(work.join("README"), "hello\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "first"]);
    (bare, work)
}

/// Commits `export GITHUB_TOKEN=<token>` in `file`.
pub(crate) fn commit_secret(work: &Path, file: &str, token: &str) {
    std::fs::write(work.join(file), format!("export GITHUB_TOKEN={token}\n")).unwrap();
    git(work, &["add", "."]);
    git(work, &["commit", "-qm", &format!("add {file}")]);
}

/// `git push` without a daemon to tell (the hook's complaint is expected and ignored).
pub(crate) fn push_initial(work: &Path) {
    git(work, &["push", "-q", "origin", "HEAD:main"]);
}

/// `git push`, whose post-receive hook tells `daemon` over its socket.
pub(crate) fn push(daemon: &Daemon, work: &Path) {
    let out = std::process::Command::new("git")
        .current_dir(work)
        .args(["push", "-q", "origin", "HEAD:main"])
        .env("KEYWARD_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("keyward:"),
        "the post-receive hook complained: {stderr}"
    );
}

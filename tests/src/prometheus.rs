//! Prometheus, Alertmanager and an HTTP webhook receiver, to test keyward's alert rules
//! (`packaging/prometheus/keyward-alerts.yml`) end to end.
//!
//! - [`Prometheus::start`] runs Debian's `prometheus` with a generated config (job `keyward`,
//!   scrape and evaluation every second) against one scrape target, with the given rule files
//!   and optionally an Alertmanager;
//! - [`Alertmanager::start`] runs Debian's `prometheus-alertmanager`, routing every alert to one
//!   webhook at once (no group wait, 1 s group interval);
//! - [`WebhookReceiver::start`] is that webhook: it collects the JSON bodies POSTed to it;
//! - [`MetricsEndpoint::start`] serves a fixed `/metrics` text that a test can change, standing
//!   in for `keyward serve`.
//!
//! The two HTTP servers are a few lines of std (`TcpListener` on a thread, `Connection: close`
//! after each answer), not a framework: they answer Prometheus' scrapes and Alertmanager's
//! webhook calls and nothing else.
//!
//! ```no_run
//! use std::path::PathBuf;
//! use std::time::Duration;
//! use keyward_tests::prometheus::{Alertmanager, MetricsEndpoint, Prometheus, WebhookReceiver};
//!
//! let metrics = MetricsEndpoint::start("keyward_store_up 0\n");
//! let webhook = WebhookReceiver::start();
//! let am = Alertmanager::start(&webhook.url());
//! let rules = [PathBuf::from("packaging/prometheus/keyward-alerts.yml")];
//! let _prom = Prometheus::start(&metrics.addr(), &rules, Some(&am.addr()));
//! assert!(webhook.wait_for_alert("KeywardStoreUnreachable", Duration::from_secs(180)).is_some());
//! ```

use std::io::{BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::{KillOnDrop, find_bin, free_port, wait_for};

/// How to install the binaries this module runs (`prometheus`, `promtool`,
/// `prometheus-alertmanager`, `amtool`).
pub const INSTALL_HINT: &str = "apt-get install prometheus prometheus-alertmanager \
     (or run scripts/install-test-deps)";

/// How long a server gets to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The first of `names` on PATH; panics naming the install command.
///
/// NOTE: checks PATH itself before calling [`find_bin`], whose panic names the agent's
/// installer instead of this one.
pub fn find_tool(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = names
        .iter()
        .find(|n| std::env::split_paths(&path).any(|d| d.join(n).is_file()));
    match found {
        Some(name) => find_bin(name, &[]),
        None => panic!("none of {names:?} found on PATH: {INSTALL_HINT}"),
    }
}

/// Runs a tool to completion, returning (success, stdout + stderr).
pub fn run_tool(bin_names: &[&str], args: &[&str]) -> (bool, String) {
    let out = Command::new(find_tool(bin_names))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {bin_names:?}: {e}: {INSTALL_HINT}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// Spawns `bin` with `args`, stdout and stderr to `dir/log_name`.
fn spawn_logged(bin: &Path, args: &[String], dir: &Path, log_name: &str) -> KillOnDrop {
    let log = std::fs::File::create(dir.join(log_name)).expect("log file");
    let child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}: {INSTALL_HINT}", bin.display()));
    KillOnDrop(child)
}

/// Waits until `GET {base}/-/ready` answers 200; fails if the process exits first or time runs
/// out.
fn wait_ready(child: &mut Child, base: &str) -> Result<(), String> {
    let http = http_client();
    let ready = wait_for(READY_TIMEOUT, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(format!("exited ({status}) before it was ready")));
        }
        http.get(format!("{base}/-/ready"))
            .send()
            .ok()
            .filter(|r| r.status().as_u16() == 200)
            .map(|_| Ok(()))
    });
    ready.unwrap_or_else(|| Err(format!("not ready at {base} within {READY_TIMEOUT:?}")))
}

/// A Prometheus server on a free loopback port, killed on drop.
///
/// It scrapes one target as job `keyward` every second and evaluates its rules every second,
/// so an alert with `for: 0m` fires about two seconds after the metric changes.
#[derive(Debug)]
pub struct Prometheus {
    // NOTE: field order is drop order: the process dies before its directory is removed.
    child: KillOnDrop,
    port: u16,
    http: reqwest::blocking::Client,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` scraping `scrape_target` (`"127.0.0.1:PORT"`, path `/metrics`),
    /// loading `rule_files` and sending alerts to `alertmanager` (`"127.0.0.1:PORT"`), if any.
    /// Returns once `/-/ready` answers.
    ///
    /// # Panics
    ///
    /// If `prometheus` is missing (naming the install command), rejects the config or rules, or
    /// is not ready within a minute. The log is in the panic message.
    pub fn start(scrape_target: &str, rule_files: &[PathBuf], alertmanager: Option<&str>) -> Self {
        let bin = find_tool(&["prometheus"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rules = String::new();
        for p in rule_files {
            let abs = std::fs::canonicalize(p)
                .unwrap_or_else(|e| panic!("rule file {}: {e}", p.display()));
            rules += &format!("  - {}\n", json_str(&abs.to_string_lossy()));
        }
        let alerting = alertmanager.map_or(String::new(), |am| {
            format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{}]\n",
                json_str(am)
            )
        });
        // JSON strings are valid YAML scalars, which quotes paths and addresses safely.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{rules}{alerting}\
             scrape_configs:\n  - job_name: keyward\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [{}]\n",
            json_str(scrape_target)
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let mut prom = Self {
            child: spawn_logged(&bin, &args, dir.path(), "prometheus.log"),
            port,
            http: http_client(),
            dir,
        };
        let base = prom.url();
        if let Err(e) = wait_ready(&mut prom.child.0, &base) {
            panic!("prometheus {e}; log:\n{}", prom.log());
        }
        prom
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query at the current time: the `data.result` array of
    /// `GET /api/v1/query` (`[{"metric": {..}, "value": [ts, "v"]}, ..]` for a vector).
    ///
    /// # Panics
    ///
    /// If the request fails or Prometheus answers with an error (a bad query).
    pub fn query(&self, promql: &str) -> Value {
        let body = self.get("/api/v1/query", &[("query", promql)]);
        body["data"]["result"].clone()
    }

    /// The alerts of every rule, pending or firing: the `data.alerts` array of
    /// `GET /api/v1/alerts` (`[{"labels": {..}, "annotations": {..}, "state": "firing", ..}]`).
    pub fn alerts(&self) -> Value {
        let body = self.get("/api/v1/alerts", &[]);
        body["data"]["alerts"].clone()
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.url()))
            .query(query)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body: Value = resp.json().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(body["status"], "success", "GET {path} {query:?}: {body}");
        body
    }
}

/// An Alertmanager on a free loopback port that sends every alert to one webhook, killed on
/// drop.
#[derive(Debug)]
pub struct Alertmanager {
    child: KillOnDrop,
    port: u16,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts `prometheus-alertmanager` (or `alertmanager`) routing every alert to
    /// `webhook_url`, ungrouped, with no group wait, a 1 s group interval and resolved
    /// notifications; clustering off. Returns once `/-/ready` answers.
    ///
    /// # Panics
    ///
    /// If the binary is missing (naming the install command), rejects its config, or is not
    /// ready within a minute. The log is in the panic message.
    pub fn start(webhook_url: &str) -> Self {
        let bin = find_tool(&["prometheus-alertmanager", "alertmanager"]);
        let dir = tempfile::tempdir().expect("tempdir");
        // group_by '...': every alert is its own group, so each is notified on its own and
        // at once.
        let config = format!(
            "route:\n  receiver: webhook\n  group_by: ['...']\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: webhook\n    webhook_configs:\n      - url: {}\n        \
             send_resolved: true\n",
            json_str(webhook_url)
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let port = free_port();
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // Empty: no cluster listener, so no gossip port and no peer wait.
            "--cluster.listen-address=".to_owned(),
        ];
        let mut am = Self {
            child: spawn_logged(&bin, &args, dir.path(), "alertmanager.log"),
            port,
            dir,
        };
        let base = am.url();
        if let Err(e) = wait_ready(&mut am.child.0, &base) {
            panic!("alertmanager {e}; log:\n{}", am.log());
        }
        am
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as [`Prometheus::start`] takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

/// An HTTP webhook on a free loopback port that collects the JSON bodies POSTed to it (any
/// path) and answers 200. Stops on drop.
#[derive(Debug)]
pub struct WebhookReceiver {
    bodies: Arc<Mutex<Vec<Value>>>,
    server: HttpServer,
}

impl WebhookReceiver {
    /// Starts it on a background thread.
    pub fn start() -> Self {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bodies);
        let server = HttpServer::start(move |req| {
            if req.method != "POST" {
                return Response::text(405, "POST only\n");
            }
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(v) => {
                    sink.lock().expect("webhook bodies").push(v);
                    Response::text(200, "")
                }
                Err(e) => Response::text(400, &format!("not JSON: {e}\n")),
            }
        });
        Self { bodies, server }
    }

    /// `http://127.0.0.1:PORT/webhook`
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.server.addr)
    }

    /// Every body received so far, oldest first.
    pub fn received(&self) -> Vec<Value> {
        self.bodies.lock().expect("webhook bodies").clone()
    }

    /// Waits up to `timeout` for a notification holding a firing alert named `name`, and
    /// returns that alert (one element of the payload's `alerts`: `status`, `labels`,
    /// `annotations`, `startsAt`, ..).
    pub fn wait_for_alert(&self, name: &str, timeout: Duration) -> Option<Value> {
        wait_for(timeout, || {
            self.received()
                .iter()
                .filter_map(|body| body["alerts"].as_array())
                .flatten()
                .find(|a| a["labels"]["alertname"] == name && a["status"] == "firing")
                .cloned()
        })
    }
}

/// A stand-in for `keyward serve`'s `/metrics`: serves a text that the test can replace, in
/// the Prometheus text format. Stops on drop.
#[derive(Debug)]
pub struct MetricsEndpoint {
    text: Arc<Mutex<String>>,
    scrapes: Arc<AtomicUsize>,
    server: HttpServer,
}

impl MetricsEndpoint {
    /// Starts serving `text` at `/metrics` on a background thread.
    pub fn start(text: &str) -> Self {
        let text = Arc::new(Mutex::new(text.to_owned()));
        let scrapes = Arc::new(AtomicUsize::new(0));
        let (t, n) = (Arc::clone(&text), Arc::clone(&scrapes));
        let server = HttpServer::start(move |req| {
            if req.method != "GET" || req.path.split('?').next() != Some("/metrics") {
                return Response::text(404, "not found\n");
            }
            n.fetch_add(1, Ordering::SeqCst);
            let body = t.lock().expect("metrics text").clone();
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: body.into_bytes(),
            }
        });
        Self {
            text,
            scrapes,
            server,
        }
    }

    /// Replaces the text served from the next scrape on.
    pub fn set(&self, text: &str) {
        text.clone_into(&mut self.text.lock().expect("metrics text"));
    }

    /// How many times `/metrics` was fetched.
    pub fn scrapes(&self) -> usize {
        self.scrapes.load(Ordering::SeqCst)
    }

    /// `127.0.0.1:PORT`, as [`Prometheus::start`] takes it.
    pub fn addr(&self) -> String {
        self.server.addr.to_string()
    }
}

/// A JSON string literal, which is also a double-quoted YAML scalar.
fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// What the tiny server hands its handler.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// What the handler answers.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A minimal HTTP/1.1 server: one thread accepts and answers connections one at a time, one
/// request each (`Connection: close`). Enough for Prometheus' scrapes and Alertmanager's
/// webhook calls; not for concurrent or slow clients.
///
/// Invariant: the thread runs until `stop` is set and a connection wakes `accept`, which
/// `Drop` does.
struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let handler: Box<Handler> = Box::new(handler);
        let thread = std::thread::Builder::new()
            .name(format!("http-{}", addr.port()))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    // A client that errors or stalls costs its own request only.
                    if let Ok(stream) = conn {
                        let _ = serve_one(stream, &*handler);
                    }
                }
            })
            .expect("spawn http thread");
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request, answers it, closes.
fn serve_one(stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let req = read_request(&mut reader)?;
    let resp = handler(&req);
    let reason = match resp.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        resp.content_type,
        resp.body.len()
    );
    let mut stream = stream;
    stream.write_all(head.as_bytes())?;
    stream.write_all(&resp.body)?;
    stream.flush()
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_owned())
}

/// Request line, headers up to the blank line, then a `Content-Length` or chunked body.
fn read_request(r: &mut impl std::io::BufRead) -> std::io::Result<Request> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or_else(|| bad("empty request"))?.to_owned();
    let path = parts.next().ok_or_else(|| bad("no path"))?.to_owned();
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("eof in headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad("bad header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| bad("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = if chunked {
        read_chunked(r)?
    } else {
        let mut body = vec![0; content_length];
        r.read_exact(&mut body)?;
        body
    };
    Ok(Request { method, path, body })
}

fn read_chunked(r: &mut impl std::io::BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_line(&mut line)?; // the CRLF after the chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_bodies() {
        let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let req = read_request(&mut &raw[..]).unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/x"));
        assert_eq!(req.body, b"{\"a\":1}");

        let raw = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        let req = read_request(&mut &raw[..]).unwrap();
        assert_eq!(req.body, b"{\"a\":1}");

        let raw = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
        let req = read_request(&mut &raw[..]).unwrap();
        assert!(req.body.is_empty());
        assert!(read_request(&mut &b"GET / HTTP/1.1\r\nHost"[..]).is_err());
    }

    #[test]
    fn webhook_collects_json_and_metrics_endpoint_serves_text() {
        let hook = WebhookReceiver::start();
        let http = http_client();
        let alert = serde_json::json!({"alerts": [
            {"status": "firing", "labels": {"alertname": "A"}},
        ]});
        let r = http.post(hook.url()).json(&alert).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = http.post(hook.url()).body("nope").send().unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(hook.received(), vec![alert]);
        let a = hook.wait_for_alert("A", Duration::from_secs(1)).unwrap();
        assert_eq!(a["status"], "firing");
        assert!(hook.wait_for_alert("B", Duration::ZERO).is_none());

        let m = MetricsEndpoint::start("a 1\n");
        let url = format!("http://{}/metrics", m.addr());
        assert_eq!(http.get(&url).send().unwrap().text().unwrap(), "a 1\n");
        m.set("a 2\n");
        assert_eq!(http.get(&url).send().unwrap().text().unwrap(), "a 2\n");
        assert_eq!(m.scrapes(), 2);
        let r = http
            .get(format!("http://{}/other", m.addr()))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
}

//! The local Docker engine's image events, followed over its Unix socket.
//!
//! [`follow`] holds `GET /events?filters={"type":["image"]}` open and sends an [`ImageEvent`]
//! for each image the engine built, pulled, tagged, loaded or imported; [`list_images`] is
//! `GET /images/json`, for the first scan at start.
//!
//! The stream is newline-delimited JSON, one event a line, cut into HTTP chunks wherever the
//! engine flushed: lines are reassembled across chunks before parsing.
//!
//! Reconnecting: when the engine is away or the stream ends, [`follow`] retries with
//! exponential back-off (1 s, 2 s, … 30 s) and asks for the events `since` the last one it saw,
//! so an engine that dropped the connection but kept running replays what was missed. The
//! engine compares `since` inclusively, so the events at that very nanosecond that were already
//! sent are recognised and dropped.
//!
//! NOTE: the engine keeps only its last 256 events, in memory. Across an engine restart (or
//! more than 256 events while disconnected) events are lost; the daemon compares
//! [`list_images`] with what it has scanned after a reconnect to cover that.
//!
//! NOTE: hyper (client, HTTP/1) over a tokio `UnixStream` rather than the blocking client in
//! [`crate::sources::image::daemon`]: the stream stays open for the daemon's lifetime and must
//! stop promptly on shutdown, which a thread blocked in `read` cannot. bollard was rejected as
//! a large dependency for two GETs.

use crate::sources::image::daemon::DEFAULT_SOCKET;
use crate::sources::image::percent_encode;
use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

/// An image the engine now has under a name or id: built, pulled, tagged, loaded or imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEvent {
    /// What happened, as the engine says: `pull`, `tag`, `load`, `import` (`create` on engines
    /// that emit it). Builds show up as `tag` (the engine tags what it built).
    pub action: String,
    /// The image the event names: a reference (`name:tag`) for `pull` and `tag`, the id for
    /// `load` and `import`.
    pub image: String,
    /// The image id (`sha256:…`) when the event carries it (not for `pull`, which names the
    /// reference); empty otherwise.
    pub id: String,
    /// When, in Unix seconds (the engine's clock).
    pub time: i64,
}

/// An image the engine has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// `sha256:…`.
    pub id: String,
    /// Its `name:tag` references; empty for a dangling image (the engine's `<none>:<none>` is
    /// dropped).
    pub repo_tags: Vec<String>,
    /// When it was created, in Unix seconds.
    pub created: i64,
}

/// Actions that mean the engine has an image under a new name or id. The others (`untag`,
/// `delete`, `push`, `save`, `prune`) name nothing new to scan.
const WANTED: [&str; 5] = ["pull", "tag", "load", "import", "create"];

/// The longest event line accepted. An image event is a few hundred bytes plus the image's
/// labels; a line this long means the stream is not what we think it is.
const MAX_LINE: usize = 1 << 20;

/// The largest `/images/json` answer read (about 1 KiB an image).
const MAX_LIST: usize = 64 << 20;

/// How long the engine has to answer a request's headers. The event stream's body may then be
/// idle for any length of time.
const HEADERS_TIMEOUT: Duration = Duration::from_secs(30);

/// The engine's socket: `DOCKER_HOST` when it is `unix://PATH`, else `/var/run/docker.sock`.
///
/// # Errors
/// `DOCKER_HOST` names something other than a Unix socket (`tcp://`, `ssh://`).
pub fn default_socket() -> Result<PathBuf> {
    socket_for(std::env::var("DOCKER_HOST").ok().as_deref())
}

/// The socket for a `DOCKER_HOST` value (unset or empty: the default socket).
///
/// # Errors
/// `docker_host` is not `unix://PATH`.
pub fn socket_for(docker_host: Option<&str>) -> Result<PathBuf> {
    match docker_host.map(str::trim).filter(|h| !h.is_empty()) {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(h) => match h.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => bail!(
                "DOCKER_HOST={h}: the image watcher follows the engine over a Unix socket \
                 (unix:///path)"
            ),
        },
    }
}

/// Lists the images the engine has now (`GET /images/json`), for a first scan at start.
///
/// # Errors
/// The engine cannot be reached at `socket`, answers with an error, or the answer is not the
/// image list.
pub async fn list_images(socket: &Path) -> Result<Vec<ImageSummary>> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "Id")]
        id: String,
        #[serde(rename = "RepoTags", default)]
        repo_tags: Option<Vec<String>>,
        #[serde(rename = "Created", default)]
        created: i64,
    }
    let (resp, _conn) = get(socket, "/images/json").await?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_LIST)
        .collect()
        .await
        .map_err(|e| {
            anyhow!(
                "Docker engine at {}: reading /images/json: {e}",
                socket.display()
            )
        })?
        .to_bytes();
    if status != StatusCode::OK {
        bail!(
            "Docker engine at {}: GET /images/json: {}",
            socket.display(),
            error_message(status, &body)
        );
    }
    let raw: Vec<Raw> = serde_json::from_slice(&body).with_context(|| {
        format!(
            "Docker engine at {}: parsing /images/json",
            socket.display()
        )
    })?;
    Ok(raw
        .into_iter()
        .map(|r| ImageSummary {
            id: r.id,
            repo_tags: r
                .repo_tags
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            created: r.created,
        })
        .collect())
}

/// Follows the engine's event stream (`GET /events?filters={"type":["image"]}`) over the Unix
/// socket at `socket` and sends each image event to `tx`.
///
/// Events from the moment of the call on are sent, even those the engine emits before the
/// first connection is up. Reconnects with exponential back-off (1 s .. 30 s) when the engine
/// is away or the stream ends, logging each disconnect once at warn; after reconnecting, asks
/// for events `since` the last one seen so none is missed (see the module docs for the limit).
///
/// Returns when `tx` is closed or `shutdown` turns `true` (or its sender is dropped).
pub async fn follow(
    socket: PathBuf,
    tx: mpsc::Sender<ImageEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut cursor = Cursor::starting_now();
    let mut backoff = Backoff::default();
    // Whether the current outage was logged at warn (so each is logged once).
    let mut warned = false;
    loop {
        let mut up = |first: bool| {
            backoff.reset();
            if warned {
                tracing::info!(socket = %socket.display(), "Reconnected to the Docker engine's event stream.");
                warned = false;
            } else if first {
                tracing::info!(socket = %socket.display(), "Following the Docker engine's image events.");
            }
        };
        let ended = tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tx.closed() => return,
            r = session(&socket, &mut cursor, &tx, &mut up) => r,
        };
        let delay = backoff.next_delay();
        match ended {
            Ok(Ended::ReceiverGone) => return,
            Ok(Ended::Stream) if !warned => tracing::warn!(
                socket = %socket.display(),
                retry_in_s = delay.as_secs(),
                "The Docker engine ended its event stream; reconnecting."
            ),
            Err(e) if !warned => tracing::warn!(
                socket = %socket.display(),
                retry_in_s = delay.as_secs(),
                error = format!("{e:#}"),
                "Cannot follow the Docker engine's events; reconnecting."
            ),
            Ok(Ended::Stream) => tracing::debug!(
                socket = %socket.display(),
                retry_in_s = delay.as_secs(),
                "The Docker engine ended its event stream again."
            ),
            Err(e) => tracing::debug!(
                socket = %socket.display(),
                retry_in_s = delay.as_secs(),
                error = format!("{e:#}"),
                "Still cannot follow the Docker engine's events."
            ),
        }
        warned = true;
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tx.closed() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Resolves once `shutdown` is `true` or its sender is gone (nobody can stop us then: stop).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// How a connection to the event stream ended without an error.
enum Ended {
    /// The engine ended the stream (it is stopping, or restarting).
    Stream,
    /// Nobody listens to the events any more.
    ReceiverGone,
}

/// One connection: request the events since `cursor`, send each wanted one, until the stream
/// ends. `up(first)` is called once the engine answered 200.
async fn session(
    socket: &Path,
    cursor: &mut Cursor,
    tx: &mpsc::Sender<ImageEvent>,
    up: &mut impl FnMut(bool),
) -> Result<Ended> {
    let first = !cursor.connected;
    let path = format!(
        "/events?filters={}&since={}",
        percent_encode(r#"{"type":["image"]}"#),
        cursor.since()
    );
    let (resp, _conn) = get(socket, &path).await?;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = Limited::new(resp.into_body(), 64 << 10)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        bail!(
            "Docker engine at {}: GET /events: {}",
            socket.display(),
            error_message(status, &body)
        );
    }
    cursor.connected = true;
    up(first);
    let mut body = resp.into_body();
    let mut lines = Lines::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| {
            format!(
                "Docker engine at {}: reading the event stream",
                socket.display()
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        for line in lines.push(&data).with_context(|| {
            format!(
                "Docker engine at {}: reading the event stream",
                socket.display()
            )
        })? {
            let Some(event) = cursor.admit(&line) else {
                continue;
            };
            if tx.send(event).await.is_err() {
                return Ok(Ended::ReceiverGone);
            }
        }
    }
    Ok(Ended::Stream)
}

/// Where the stream is: the newest event's time, and the events at that nanosecond already
/// handled (the engine's `since` is inclusive, so a reconnect replays them).
#[derive(Debug)]
struct Cursor {
    /// Unix nanoseconds of the newest event seen (or of the start).
    nano: i64,
    /// The lines of the events at `nano` already handled.
    at_nano: Vec<String>,
    /// Whether a connection was ever up (the first one is logged at info).
    connected: bool,
}

impl Cursor {
    fn starting_now() -> Cursor {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Cursor::at(now)
    }

    fn at(nano: i64) -> Cursor {
        Cursor {
            nano,
            at_nano: Vec::new(),
            connected: false,
        }
    }

    /// The `since` query value: `SECONDS.NANOSECONDS`.
    fn since(&self) -> String {
        const NS: i64 = 1_000_000_000;
        format!(
            "{}.{:09}",
            self.nano.div_euclid(NS),
            self.nano.rem_euclid(NS)
        )
    }

    /// Parses one line of the stream and moves the cursor past it; the event to send, if it is
    /// a wanted image event not sent before.
    fn admit(&mut self, line: &str) -> Option<ImageEvent> {
        let raw: RawEvent = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                // NOTE: skipped, not a reconnect: reconnecting `since` this event would read
                // the same line again, forever.
                tracing::warn!(error = %e, "Skipping an event the Docker engine sent that is not JSON.");
                return None;
            }
        };
        let nano = if raw.time_nano != 0 {
            raw.time_nano
        } else {
            raw.time.saturating_mul(1_000_000_000)
        };
        if nano < self.nano || (nano == self.nano && self.at_nano.iter().any(|l| l == line)) {
            return None;
        }
        if nano > self.nano {
            self.nano = nano;
            self.at_nano.clear();
        }
        self.at_nano.push(line.to_owned());
        if raw.kind != "image" || !WANTED.contains(&raw.action.as_str()) {
            return None;
        }
        let id = if raw.actor.id.starts_with("sha256:") {
            raw.actor.id.clone()
        } else {
            String::new()
        };
        let image = match raw.actor.attributes.get("name") {
            Some(name) if !name.is_empty() => name.clone(),
            _ => raw.actor.id,
        };
        Some(ImageEvent {
            action: raw.action,
            image,
            id,
            time: raw.time,
        })
    }
}

/// One event as the engine writes it (API 1.22 and later).
#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: RawActor,
    #[serde(default)]
    time: i64,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
}

#[derive(Debug, Default, Deserialize)]
struct RawActor {
    /// The image id, or for `pull` the reference pulled.
    #[serde(rename = "ID", default)]
    id: String,
    /// `name` (the reference the event is about) and the image's labels.
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, String>,
}

/// Reassembles lines from chunks cut anywhere.
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The lines `chunk` completes (without their newline; blank ones dropped).
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.partial.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            let line = String::from_utf8_lossy(&self.partial).trim().to_owned();
            self.partial.clear();
            if !line.is_empty() {
                out.push(line);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            bail!("an event line longer than {MAX_LINE} bytes");
        }
        Ok(out)
    }
}

/// Exponential back-off from 1 s, doubling, to at most 30 s.
///
/// NOTE: no jitter: there is one follower per engine, on the engine's own machine, so no herd
/// of clients retries in step.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    /// The delay before the next attempt; doubles the one after.
    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(Self::MAX);
        d
    }

    /// Back to the shortest delay (after a connection succeeded).
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::MIN }
    }
}

/// Aborts the task driving a connection when the response (and its body) is done with.
struct ConnTask(tokio::task::JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One GET on a new connection to the engine; the response, and the connection's task, which
/// must outlive the body.
async fn get(socket: &Path, path: &str) -> Result<(Response<Incoming>, ConnTask)> {
    let at = || format!("Docker engine at {}", socket.display());
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("{}: connecting", at()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("{}: HTTP handshake", at()))?;
    let task = ConnTask(tokio::spawn(async move {
        // An error here also fails the request or the body read, where it is reported.
        let _ = conn.await;
    }));
    let req = Request::get(path)
        // The engine's HTTP server requires a Host on HTTP/1.1; any name does.
        .header(hyper::header::HOST, "docker")
        .header(hyper::header::USER_AGENT, "keyward")
        .body(Empty::<Bytes>::new())
        .expect("a GET with a path and two fixed headers is a valid request");
    let resp = tokio::time::timeout(HEADERS_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| {
            anyhow!(
                "{}: GET {}: no answer in {} s",
                at(),
                path_only(path),
                HEADERS_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("{}: GET {}", at(), path_only(path)))?;
    Ok((resp, task))
}

/// The path without its query, for messages.
fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// `HTTP 404: no such image` from an engine error answer (`{"message": "…"}`).
fn error_message(status: StatusCode, body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    format!(
        "HTTP {}: {}",
        status.as_u16(),
        v["message"].as_str().unwrap_or("(no message)")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_to_socket() {
        assert_eq!(
            socket_for(None).unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
        assert_eq!(
            socket_for(Some("")).unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
        assert_eq!(
            socket_for(Some("unix:///run/user/1000/docker.sock")).unwrap(),
            PathBuf::from("/run/user/1000/docker.sock")
        );
        let e = socket_for(Some("tcp://10.0.0.1:2375")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DOCKER_HOST=tcp://10.0.0.1:2375: the image watcher follows the engine over a Unix \
             socket (unix:///path)"
        );
    }

    #[test]
    fn backoff_doubles_to_30s_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn lines_across_chunks() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"{\"a\":").unwrap(), Vec::<String>::new());
        assert_eq!(l.push(b"1}\n{\"b\"").unwrap(), ["{\"a\":1}"]);
        assert_eq!(
            l.push(b":2}\n\n{\"c\":3}\n").unwrap(),
            ["{\"b\":2}", "{\"c\":3}"]
        );
        assert!(l.push(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    fn line(action: &str, id: &str, name: &str, nano: i64) -> String {
        serde_json::json!({
            "status": action, "id": id, "Type": "image", "Action": action,
            "Actor": {"ID": id, "Attributes": {"name": name, "maintainer": "x"}},
            "scope": "local", "time": nano / 1_000_000_000, "timeNano": nano,
        })
        .to_string()
    }

    #[test]
    fn events_parsed_filtered_and_deduplicated() {
        let t0 = 1_700_000_000_000_000_000;
        let mut c = Cursor::at(t0);
        assert_eq!(c.since(), "1700000000.000000000");
        // Older than the cursor: dropped.
        assert_eq!(c.admit(&line("tag", "sha256:aa", "old:1", t0 - 1)), None);
        let tag = line("tag", "sha256:aa", "app:1", t0 + 5);
        assert_eq!(
            c.admit(&tag),
            Some(ImageEvent {
                action: "tag".into(),
                image: "app:1".into(),
                id: "sha256:aa".into(),
                time: 1_700_000_000,
            })
        );
        assert_eq!(c.since(), "1700000000.000000005");
        // Replayed after a reconnect: dropped; another event at the same nanosecond is not.
        assert_eq!(c.admit(&tag), None);
        assert_eq!(
            c.admit(&line("pull", "busybox:latest", "busybox", t0 + 5)),
            Some(ImageEvent {
                action: "pull".into(),
                image: "busybox".into(),
                id: String::new(),
                time: 1_700_000_000,
            })
        );
        // Ignored actions still move the cursor.
        assert_eq!(c.admit(&line("untag", "sha256:aa", "app:1", t0 + 9)), None);
        assert_eq!(c.since(), "1700000000.000000009");
        let load = line("load", "sha256:bb", "sha256:bb", t0 + 10);
        assert_eq!(c.admit(&load).unwrap().image, "sha256:bb");
        assert_eq!(c.admit("not json"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn follow_retries_with_backoff_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("absent.sock");
        let (tx, _rx) = mpsc::channel(1);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(follow(socket, tx, shutdown));
        // Attempts at 0, 1, 3, 7, 15, 31, 61 s: still retrying after a minute.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!task.is_finished());
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("follow stops on shutdown while backing off")
            .unwrap();
    }
}

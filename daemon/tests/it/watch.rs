//! The daemon's image watchers against real services: the Docker engine's event stream (images
//! built `FROM scratch`, tagged, saved and loaded), a scripted engine on a Unix socket for
//! reconnects, and Debian's `docker-registry` for tag polling.
//!
//! A missing engine or tool fails the test with how to get it; nothing is skipped.

use crate::image::harness::{
    Images, auth_registry, open_registry, require, sh, skopeo_copy, unique,
};
use keyward::sources::image::registry::{Credentials, Repository};
use keyward::watch::docker_events::{self, ImageEvent};
use keyward::watch::registry_poll::{changed, poll};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// How long an event may take to arrive.
const WITHIN: Duration = Duration::from_secs(10);

/// Fails unless the Docker engine answers.
fn require_engine() {
    require("docker", "docker.io");
    let out = Command::new("docker")
        .arg("info")
        .output()
        .expect("run docker info");
    assert!(
        out.status.success(),
        "the Docker engine must run for the watch_ tests (`docker info` failed; start dockerd): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `docker ARGS`, failing the test when it fails.
fn docker(args: &[&str]) -> String {
    let out = sh(Command::new("docker").args(args));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Image names made by a test outside [`Images`] (extra tags, loaded images); removed on drop.
#[derive(Default)]
struct Rmi(Vec<String>);

impl Drop for Rmi {
    fn drop(&mut self) {
        for t in self.0.iter().rev() {
            let _ = Command::new("docker").args(["rmi", "-f", t]).output();
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// [`docker_events::follow`] on the engine's socket, its events stamped on arrival by a task
/// of their own (so the stamp is not delayed by a blocking `docker` command in the test).
struct Follower {
    rx: mpsc::Receiver<(ImageEvent, Instant)>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    seen: Vec<ImageEvent>,
}

impl Follower {
    fn start(socket: std::path::PathBuf) -> Follower {
        let (tx, mut events) = mpsc::channel(256);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(docker_events::follow(socket, tx, shutdown));
        let (stamped_tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if stamped_tx.send((e, Instant::now())).await.is_err() {
                    break;
                }
            }
        });
        Follower {
            rx,
            stop,
            task,
            seen: Vec::new(),
        }
    }

    /// The first event (from now on) that `want` accepts, and when it arrived; fails after
    /// [`WITHIN`] with the events seen.
    async fn expect(
        &mut self,
        what: &str,
        want: impl Fn(&ImageEvent) -> bool,
    ) -> (ImageEvent, Instant) {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((e, at))) if want(&e) => return (e, at),
                Ok(Some((e, _))) => self.seen.push(e),
                Ok(None) => panic!("follow ended before {what}; seen: {:#?}", self.seen),
                Err(elapsed) => panic!("no {what} ({elapsed}); seen: {:#?}", self.seen),
            }
        }
    }

    /// Stops it; it must return promptly.
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("follow returns on shutdown")
            .unwrap();
    }
}

/// A `FROM scratch` image holding one file of unique content (so its id is this test's own).
fn scratch_image(images: &mut Images) -> (String, String) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("hello.txt"),
        format!("hello {}\n", unique()),
    )
    .unwrap();
    let tag = images.build(ctx.path(), "FROM scratch\nCOPY hello.txt /hello.txt\n", &[]);
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    (tag, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_docker_build_and_tag_send_tag_events() {
    require_engine();
    let socket = docker_events::default_socket().unwrap();
    let mut f = Follower::start(socket);
    let t_start = unix_now();
    let mut images = Images::default();

    let build_started = Instant::now();
    let (tag, id) = scratch_image(&mut images);
    let build_done = Instant::now();
    let (e, at) = f
        .expect(&format!("tag event for {tag}"), |e| e.image == tag)
        .await;
    assert_eq!(
        (e.action.as_str(), e.image.as_str(), e.id.as_str()),
        ("tag", tag.as_str(), id.as_str())
    );
    assert!((t_start..=unix_now()).contains(&e.time), "{e:?}");

    let second = format!("keyward-it-watch-{}:2", unique());
    let _second = Rmi(vec![second.clone()]);
    let tag_started = Instant::now();
    docker(&["tag", &tag, &second]);
    let tag_done = Instant::now();
    let (e2, at2) = f
        .expect(&format!("tag event for {second}"), |e| e.image == second)
        .await;
    assert_eq!(
        e2,
        ImageEvent {
            action: "tag".into(),
            image: second.clone(),
            id: id.clone(),
            time: e2.time,
        }
    );
    assert!((t_start..=unix_now()).contains(&e2.time), "{e2:?}");
    eprintln!(
        "docker build: {:?}, its tag event {:?} after it started; docker tag: {:?}, event {:?} \
         after it started",
        build_done - build_started,
        at - build_started,
        tag_done - tag_started,
        at2 - tag_started,
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_docker_load_sends_load_event() {
    require_engine();
    let mut images = Images::default();
    let (tag, id) = scratch_image(&mut images);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.tar");
    docker(&["save", "-o", saved.to_str().unwrap(), &tag]);
    docker(&["rmi", &tag]);

    let mut f = Follower::start(docker_events::default_socket().unwrap());
    let load_started = Instant::now();
    docker(&["load", "-i", saved.to_str().unwrap()]);
    let load_done = Instant::now();
    let (e, at) = f
        .expect(&format!("load event for {id}"), |e| e.action == "load")
        .await;
    assert_eq!(
        e,
        ImageEvent {
            action: "load".into(),
            image: id.clone(),
            id: id.clone(),
            time: e.time,
        }
    );
    eprintln!(
        "docker load: {:?}, event {:?} after the command started",
        load_done - load_started,
        at - load_started
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_docker_list_images_has_built_image() {
    require_engine();
    let mut images = Images::default();
    let (tag, id) = scratch_image(&mut images);
    let socket = docker_events::default_socket().unwrap();
    let list = docker_events::list_images(&socket).await.unwrap();
    let mine: Vec<_> = list.iter().filter(|i| i.id == id).collect();
    assert_eq!(mine.len(), 1, "{list:#?}");
    assert_eq!(mine[0].repo_tags, [tag]);
    let created = docker(&["image", "inspect", "--format", "{{.Created}}", &id]);
    let out = sh(Command::new("date").args(["-d", &created, "+%s"]));
    assert_eq!(
        mine[0].created.to_string(),
        String::from_utf8_lossy(&out.stdout).trim()
    );

    let e = docker_events::list_images(std::path::Path::new("/nonexistent/docker.sock"))
        .await
        .unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "Docker engine at /nonexistent/docker.sock: connecting: No such file or directory (os \
         error 2)"
    );
}

/// Reads a request head from a connection of the scripted engine; its request target.
async fn read_request(c: &mut tokio::net::UnixStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut b).await.unwrap(), 1, "request cut short");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let line = head.lines().next().unwrap();
    assert!(head.contains("\r\nhost: docker\r\n"), "{head}");
    line.strip_prefix("GET ")
        .and_then(|l| l.strip_suffix(" HTTP/1.1"))
        .unwrap_or_else(|| panic!("not a GET: {line}"))
        .to_owned()
}

fn event_line(action: &str, id: &str, name: &str, nano: i64) -> String {
    format!(
        "{}\n",
        serde_json::json!({
            "status": action, "id": id, "from": "", "Type": "image", "Action": action,
            "Actor": {"ID": id, "Attributes": {"name": name}},
            "scope": "local", "time": nano / 1_000_000_000, "timeNano": nano,
        })
    )
}

/// The next event, within [`WITHIN`].
async fn recv(rx: &mut mpsc::Receiver<ImageEvent>) -> ImageEvent {
    tokio::time::timeout(WITHIN, rx.recv())
        .await
        .expect("an event in time")
        .expect("follow running")
}

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

fn since_nanos(target: &str) -> i64 {
    let since = target.rsplit_once("&since=").unwrap().1;
    let (s, n) = since.split_once('.').unwrap();
    assert_eq!(n.len(), 9, "{since}");
    s.parse::<i64>().unwrap() * 1_000_000_000 + n.parse::<i64>().unwrap()
}

/// A scripted engine: the stream is cut mid-event; the follower reconnects after 1 s asking
/// `since` the last event, and the replayed events it already sent are not sent again.
#[tokio::test]
async fn watch_events_reconnect_asks_since_last_event() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("engine.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let (tx, mut rx) = mpsc::channel(16);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(docker_events::follow(socket.clone(), tx, shutdown));

    let (mut c1, _) = listener.accept().await.unwrap();
    let target = read_request(&mut c1).await;
    let prefix = "/events?filters=%7B%22type%22%3A%5B%22image%22%5D%7D&since=";
    assert!(target.starts_with(prefix), "{target}");
    let start = since_nanos(&target);
    assert!(
        start >= before,
        "{target}: since is before follow was called"
    );

    let t = start + 1_000;
    let id_a = format!("sha256:{}", "a".repeat(64));
    let id_b = format!("sha256:{}", "b".repeat(64));
    let tag = event_line("tag", &id_a, "team/app:1", t);
    let load = event_line("load", &id_b, &id_b, t + 500);
    let untag = event_line("untag", &id_a, &id_a, t + 600);
    let (load1, load2) = load.split_at(load.len() / 2);
    c1.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    // The load event is split across two chunks, written apart.
    c1.write_all(chunk(&format!("{tag}{load1}")).as_bytes())
        .await
        .unwrap();
    c1.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c1.write_all(chunk(&format!("{load2}{untag}")).as_bytes())
        .await
        .unwrap();
    c1.flush().await.unwrap();

    assert_eq!(
        recv(&mut rx).await,
        ImageEvent {
            action: "tag".into(),
            image: "team/app:1".into(),
            id: id_a.clone(),
            time: t / 1_000_000_000,
        }
    );
    assert_eq!(
        recv(&mut rx).await,
        ImageEvent {
            action: "load".into(),
            image: id_b.clone(),
            id: id_b.clone(),
            time: (t + 500) / 1_000_000_000,
        }
    );
    // The engine goes away mid-stream (no final chunk).
    drop(c1);
    let dropped = Instant::now();

    let (mut c2, _) = tokio::time::timeout(WITHIN, listener.accept())
        .await
        .expect("a reconnect")
        .unwrap();
    let waited = dropped.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&waited),
        "reconnected after {waited:?}, not after the 1 s back-off"
    );
    let target = read_request(&mut c2).await;
    assert!(target.starts_with(prefix), "{target}");
    assert_eq!(since_nanos(&target), t + 600, "{target}");
    // The engine replays from `since` inclusive: the untag again, then a tag at the same
    // nanosecond (new), then a pull.
    let tag2 = event_line("tag", &id_a, "team/app:2", t + 600);
    let pull = event_line("pull", "busybox:latest", "busybox", t + 700);
    c2.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    c2.write_all(chunk(&format!("{untag}{tag2}{pull}")).as_bytes())
        .await
        .unwrap();
    c2.flush().await.unwrap();
    assert_eq!(
        recv(&mut rx).await,
        ImageEvent {
            action: "tag".into(),
            image: "team/app:2".into(),
            id: id_a.clone(),
            time: (t + 600) / 1_000_000_000,
        }
    );
    assert_eq!(
        recv(&mut rx).await,
        ImageEvent {
            action: "pull".into(),
            image: "busybox".into(),
            id: String::new(),
            time: (t + 700) / 1_000_000_000,
        }
    );
    assert!(rx.try_recv().is_err(), "nothing else was sent");
    eprintln!("reconnected {waited:?} after the engine went away");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("follow returns on shutdown")
        .unwrap();
    drop(c2);
}

/// The digest a registry has for `repo:tag`, as skopeo computes it.
fn remote_digest(addr: &str, repo: &str, tag: &str, creds: Option<&str>) -> String {
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"]);
    if let Some(cr) = creds {
        c.args(["--creds", cr]);
    }
    let out = sh(c.arg(format!("docker://{addr}/{repo}:{tag}")));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn map(v: &[(&str, &str)]) -> BTreeMap<String, String> {
    v.iter()
        .map(|(t, d)| ((*t).to_owned(), (*d).to_owned()))
        .collect()
}

#[test]
fn watch_registry_poll_reports_new_and_moved_tags() {
    require_engine();
    let reg = open_registry();
    let mut images = Images::default();
    let [first, second, third, fourth] = std::array::from_fn(|_| scratch_image(&mut images).0);
    let repo = format!("watch/{}", unique());
    let push = |image: &str, tag: &str| {
        skopeo_copy(
            &format!("docker-daemon:{image}"),
            &format!("docker://{}/{repo}:{tag}", reg.addr),
            None,
        );
        remote_digest(&reg.addr, &repo, tag, None)
    };
    let a_before = push(&first, "a");
    let b_digest = push(&second, "b");
    let before = poll(&reg.addr, &repo, true, None).unwrap();
    assert_eq!(before, map(&[("a", &a_before), ("b", &b_digest)]));

    let c_digest = push(&third, "c");
    let a_now = push(&fourth, "a");
    assert_ne!(a_before, a_now);
    let now = poll(&reg.addr, &repo, true, None).unwrap();
    assert_eq!(
        now,
        map(&[("a", &a_now), ("b", &b_digest), ("c", &c_digest)])
    );
    assert_eq!(
        changed(&before, &now),
        [
            ("a".to_owned(), a_now.clone()),
            ("c".to_owned(), c_digest.clone())
        ]
    );
    assert_eq!(changed(&now, &now), []);

    // NOTE: this registry (distribution 2.8) sends every tag at once, unsorted, whatever `n`
    // asks: pages are tested on a scripted registry below.
    let mut tags = Repository::new(&reg.addr, &repo, true, None)
        .page_size(1)
        .tags()
        .unwrap();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c"]);

    let e = poll(&reg.addr, "watch/absent", true, None).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        format!(
            "polling {0}/watch/absent: GET http://{0}/v2/watch/absent/tags/list: HTTP 404: \
             {{\"errors\":[{{\"code\":\"NAME_UNKNOWN\",\"message\":\"repository name not known \
             to registry\",\"detail\":{{\"name\":\"watch/absent\"}}}}]}}",
            reg.addr
        )
    );
}

#[test]
fn watch_registry_poll_with_basic_auth() {
    require_engine();
    let reg = auth_registry();
    let creds = reg.creds.as_deref().unwrap();
    let mut images = Images::default();
    let (x, _) = scratch_image(&mut images);
    let repo = format!("watch/{}", unique());
    skopeo_copy(
        &format!("docker-daemon:{x}"),
        &format!("docker://{}/{repo}:v1", reg.addr),
        Some(creds),
    );
    let digest = remote_digest(&reg.addr, &repo, "v1", Some(creds));

    let e = poll(&reg.addr, &repo, true, None).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        format!(
            "polling {0}/{repo}: authenticating to http://{0}: the registry wants credentials \
             (--username/--password or docker login)",
            reg.addr
        )
    );
    let (user, password) = creds.split_once(':').unwrap();
    let auth = Credentials {
        username: user.to_owned(),
        password: keyward_detectors::Secret::new(password.to_owned()),
    };
    let tags = poll(&reg.addr, &repo, true, Some(&auth)).unwrap();
    assert_eq!(tags, map(&[("v1", &digest)]));
}

/// A scripted registry on 127.0.0.1 answering one request per connection with each
/// `(link, body)` in turn; returns its address and, when done, the request targets.
fn scripted_registry(
    pages: Vec<(&'static str, &'static str)>,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let mut targets = Vec::new();
        for (link, body) in pages {
            let (c, _) = listener.accept().unwrap();
            let mut r = std::io::BufReader::new(c);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            targets.push(line.split(' ').nth(1).unwrap().to_owned());
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
            }
            let link = if link.is_empty() {
                String::new()
            } else {
                format!("Link: {link}\r\n")
            };
            let mut c = r.into_inner();
            write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        targets
    });
    (addr, handle)
}

#[test]
fn watch_registry_tags_follow_link_pages() {
    let (addr, served) = scripted_registry(vec![
        (
            r#"</v2/team/app/tags/list?last=b&n=2>; rel="next""#,
            r#"{"name":"team/app","tags":["a","b"]}"#,
        ),
        ("", r#"{"name":"team/app","tags":["c"]}"#),
    ]);
    let tags = Repository::new(&addr, "team/app", true, None)
        .page_size(2)
        .tags()
        .unwrap();
    assert_eq!(tags, ["a", "b", "c"]);
    assert_eq!(
        served.join().unwrap(),
        [
            "/v2/team/app/tags/list?n=2",
            "/v2/team/app/tags/list?last=b&n=2"
        ]
    );

    // A next page that leads back to one already read is refused, not followed forever.
    let (addr, served) = scripted_registry(vec![
        (
            r#"</v2/team/app/tags/list?last=a>; rel="next""#,
            r#"{"name":"team/app","tags":["a"]}"#,
        ),
        (
            r#"</v2/team/app/tags/list?last=a>; rel="next""#,
            r#"{"name":"team/app","tags":["b"]}"#,
        ),
    ]);
    let e = Repository::new(&addr, "team/app", true, None)
        .tags()
        .unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        format!("http://{addr}: the tag list's pages loop at /v2/team/app/tags/list?last=a")
    );
    served.join().unwrap();
}

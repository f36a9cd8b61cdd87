//! `keyward serve` with image sources, end to end: the real daemon following the host's Docker
//! engine (images built `FROM scratch`), a drop directory (`docker save` archives, OCI layouts,
//! a file still being written, a corrupt file) and a registry (Debian's `docker-registry`),
//! each finding checked in the API and in /metrics, and each planted secret looked for
//! everywhere the daemon writes.
//!
//! A missing engine or tool fails the test with how to get it; nothing is skipped.

use crate::image::harness::{
    EngineLock, Images, docker_save, open_registry, require, sh, skopeo_copy, unique,
};
use crate::serve::harness::{Daemon, FAST};
use crate::support::gh_token;
use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// New high-severity findings: the planted tokens stand in `key.txt`, and a `.txt` file counts
/// as documentation, so they are of medium confidence.
const NEW_HIGH: &str =
    r#"keyward_findings_new_total{confidence="medium",severity="high",source_kind="image"}"#;
const LAYERS: &str = "keyward_scanned_layers_total";
const OBJECTS: &str = r#"keyward_scanned_objects_total{source_kind="image"}"#;
const SCANS_OK: &str = r#"keyward_scans_total{outcome="ok",source_kind="image"}"#;
const SCANS_FAILED: &str = r#"keyward_scans_total{outcome="failed",source_kind="image"}"#;

/// What `keyward_scanned_layers_total` adds for a layer read from a tarball (`docker-daemon:`,
/// `docker-archive:`): one, as for any layer (`layer::scan_layer` counts every layer it reads).
const TARBALL_LAYER: u64 = 1;

/// Where each planted token is in its image.
const KEY_PATH: &str = "etc/app/key.txt";
const DOCKERFILE: &str = "FROM scratch\nCOPY key.txt /etc/app/key.txt\n";

/// A counter's value; a labelled series the daemon has not touched yet is not rendered: 0.
fn m(d: &Daemon, series: &str) -> u64 {
    let text = d.metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series} {v}: not a count ({e})"))
        })
}

/// Waits until `f` holds (polling every 100 ms); fails after `timeout` saying `what`.
fn wait_until(d: &Daemon, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}; scans: {}\nmetrics:\n{}\nlog:\n{}",
            d.get("/v1/scans?limit=20").1,
            d.metrics(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `docker ARGS`, its stdout trimmed.
fn docker(args: &[&str]) -> String {
    require("docker", "docker.io");
    let out = sh(Command::new("docker").args(args));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fails unless the Docker engine answers.
fn require_engine() {
    require("docker", "docker.io");
    let out = Command::new("docker").arg("info").output().unwrap();
    assert!(
        out.status.success(),
        "the Docker engine must run for the serve_image_ tests (`docker info` failed; start \
         dockerd): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An image's id (`sha256:…`) and its layers' diff_ids, as the engine says.
fn inspect(tag: &str) -> (String, Vec<String>) {
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", tag]);
    let layers = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        tag,
    ]);
    (id, serde_json::from_str(&layers).unwrap())
}

/// A build context holding `key.txt` with `token` in it.
fn context_with(token: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("key.txt"), format!("token = {token}\n")).unwrap();
    ctx
}

/// Image names a test made outside [`Images`] (it holds the engine exclusively, which
/// [`Images`] would wait for); removed on drop.
#[derive(Default)]
struct Rmi(Vec<String>);

impl Rmi {
    /// `docker build` (the legacy builder, no registry) of [`DOCKERFILE`] with `token`, as
    /// `tag`, or untagged; returns the image id.
    fn build(&mut self, tag: Option<&str>, token: &str) -> String {
        let ctx = context_with(token);
        std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
        let mut c = Command::new("docker");
        c.env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "--no-cache"]);
        if let Some(t) = tag {
            self.0.push(t.to_owned());
            c.args(["-t", t]);
        }
        let out = sh(c.arg(ctx.path()));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(id.starts_with("sha256:"), "docker build -q printed {id:?}");
        if tag.is_none() {
            self.0.push(id.clone());
        }
        id
    }

    /// `docker tag FROM TO`.
    fn tag(&mut self, from: &str, to: &str) {
        self.0.push(to.to_owned());
        docker(&["tag", from, to]);
    }
}

impl Drop for Rmi {
    fn drop(&mut self) {
        for t in self.0.iter().rev() {
            let _ = Command::new("docker").args(["rmi", "-f", t]).output();
        }
    }
}

/// The finding for `token` (by its redacted form) and its detail; there must be exactly one.
fn finding_of(d: &Daemon, token: &str) -> (Value, Value) {
    let redacted: Vec<Value> = d
        .findings("limit=1000")
        .into_iter()
        .filter(|f| same_secret(f, token))
        .collect();
    assert_eq!(redacted.len(), 1, "findings for one token: {redacted:#?}");
    let f = redacted.into_iter().next().unwrap();
    let (s, detail) = d.get(&format!(
        "/v1/findings/{}",
        f["fingerprint"].as_str().unwrap()
    ));
    assert_eq!(s, 200, "{detail}");
    (f, detail)
}

/// Whether a listed finding's redacted form fits `token` (what [`Daemon::wait_finding`]
/// matches on: the first four and last two characters).
fn same_secret(f: &Value, token: &str) -> bool {
    let r = f["redacted"].as_str().unwrap_or("");
    r.starts_with(&token[..4]) && r.ends_with(&token[token.len() - 2..])
}

/// Tokens told apart by [`same_secret`].
fn tokens(seeds: &[u64]) -> Vec<String> {
    let t: Vec<String> = seeds.iter().map(|s| gh_token(*s)).collect();
    for (i, a) in t.iter().enumerate() {
        for b in &t[i + 1..] {
            assert_ne!(a[a.len() - 2..], b[b.len() - 2..], "pick other seeds");
        }
    }
    t
}

/// Asserts the finding's one location, exactly.
fn assert_location(detail: &Value, source: &str, image: &str, layer: &str) {
    assert_eq!(detail["rule"], "github-pat-classic", "{detail:#}");
    assert_eq!(detail["severity"], "high");
    assert_eq!(detail["status"], "open");
    assert_eq!(detail["source_kind"], "image");
    assert_eq!(detail["locations"], 1, "{detail:#}");
    let locs = detail["location_list"].as_array().unwrap();
    assert_eq!(locs.len(), 1, "{detail:#}");
    let l = &locs[0];
    assert_eq!(l["source"], source, "{l:#}");
    assert_eq!(l["source_kind"], "image", "{l:#}");
    assert_eq!(l["image"], image, "{l:#}");
    assert_eq!(l["layer"], layer, "{l:#}");
    assert_eq!(l["layer_index"], 0, "{l:#}");
    assert_eq!(l["path"], KEY_PATH, "{l:#}");
    assert_eq!(l["line"], 1, "{l:#}");
    assert_eq!(l["column"], 9, "{l:#}");
    assert_eq!(l["deleted"], false, "{l:#}");
    assert_eq!(l["commit"], Value::Null, "{l:#}");
}

/// No planted secret in the daemon's log, its API answers, /metrics, or any file under its
/// state directory (the SQLite store with its WAL).
fn assert_no_secret(d: &Daemon, secrets: &[&str]) {
    let mut seen: Vec<(String, Vec<u8>)> = vec![
        ("log".into(), d.log().into_bytes()),
        ("/metrics".into(), d.metrics().into_bytes()),
    ];
    for path in [
        "/v1/findings?limit=1000",
        "/v1/scans?limit=1000",
        "/v1/sources",
    ] {
        seen.push((path.into(), d.get(path).1.to_string().into_bytes()));
    }
    for f in d.findings("limit=1000") {
        let path = format!("/v1/findings/{}", f["fingerprint"].as_str().unwrap());
        seen.push((path.clone(), d.get(&path).1.to_string().into_bytes()));
    }
    let mut files = vec![d.state.clone()];
    let mut read = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&p) {
            read += 1;
            seen.push((p.display().to_string(), bytes));
        }
    }
    assert!(read > 0, "nothing under {}", d.state.display());
    for secret in secrets {
        for (place, bytes) in &seen {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a planted secret is in {place}"
            );
        }
    }
}

#[test]
fn serve_image_docker_engine_build_retag_restart() {
    require_engine();
    // The daemon scans every image the engine has: no other test may make one meanwhile.
    let _engine = EngineLock::exclusive();
    let planted = tokens(&[1201, 1202, 1203]);
    let (token, t_late, t_dangling) = (&planted[0], &planted[1], &planted[2]);
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{FAST}\n[docker]\nenabled = true\nname = \"engine\"\nsocket = \"/var/run/docker.sock\"\n"
    );
    let mut d = Daemon::start(dir.path(), &body);
    wait_until(&d, Duration::from_secs(60), "the first scan", || {
        m(&d, SCANS_OK) >= 1
    });
    d.wait_idle(Duration::from_secs(60));
    // What images the engine had before (left over by a run that was killed) are counted here.
    let (new0, layers0, objects0) = (m(&d, NEW_HIGH), m(&d, LAYERS), m(&d, OBJECTS));
    let scans0 = m(&d, SCANS_OK);

    let u = unique();
    let tag = format!("keyward-serve-{u}:1");
    let mut rmi = Rmi::default();
    rmi.build(Some(&tag), token);
    let (found, took) = d.wait_finding(token, Duration::from_secs(15));
    eprintln!("docker build → finding: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "build → finding took {took:?}"
    );
    let (id, diff_ids) = inspect(&tag);
    assert_eq!(diff_ids.len(), 1, "{diff_ids:?}");
    let (_, first) = finding_of(&d, token);
    assert_eq!(first["fingerprint"], found["fingerprint"]);
    assert_location(
        &first,
        "engine",
        &format!("docker-daemon:{tag} {id}"),
        &diff_ids[0],
    );
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(m(&d, NEW_HIGH), new0 + 1);
    assert_eq!(m(&d, LAYERS), layers0 + TARBALL_LAYER);
    let objects1 = m(&d, OBJECTS);
    assert!(objects1 > objects0, "{}", d.metrics());
    let scans1 = m(&d, SCANS_OK);
    assert!(scans1 > scans0, "{}", d.metrics());

    // The same image under another name: the tag event queues a scan, which finds the id
    // scanned already.
    let retag = format!("keyward-serve-{u}-again:2");
    rmi.tag(&tag, &retag);
    wait_until(
        &d,
        Duration::from_secs(15),
        "a scan after the tag event",
        || m(&d, SCANS_OK) > scans1,
    );
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(
        m(&d, OBJECTS),
        objects1,
        "the retagged image was scanned again"
    );
    assert_eq!(m(&d, LAYERS), layers0 + TARBALL_LAYER);
    assert_eq!(m(&d, NEW_HIGH), new0 + 1);
    let (_, again) = finding_of(&d, token);
    assert_eq!(again["location_list"], first["location_list"]);

    // Built without a tag (the engine says nothing) and a scan asked for at once: the images
    // are too young to name (the builder tags a moment after it commits), so they wait...
    let late = rmi.build(None, t_late);
    let dangling = rmi.build(None, t_dangling);
    let built = Instant::now();
    let scans = m(&d, SCANS_OK);
    let (s, v) = d.post("/v1/sources/engine/scan", &serde_json::json!({}));
    assert_eq!(s, 202, "{v}");
    wait_until(&d, Duration::from_secs(15), "the scan asked for", || {
        m(&d, SCANS_OK) > scans
    });
    let listed = d.findings("limit=1000");
    assert!(
        !listed
            .iter()
            .any(|f| same_secret(f, t_late) || same_secret(f, t_dangling)),
        "a fresh untagged image was scanned at once: {listed:#?}"
    );
    // ...so the tag that follows names the one...
    let late_tag = format!("keyward-serve-{u}-late:3");
    rmi.tag(&late, &late_tag);
    let (_, took) = d.wait_finding(t_late, Duration::from_secs(15));
    eprintln!("docker tag of a fresh untagged image → finding: {took:?}");
    assert!(took < Duration::from_secs(5), "tag → finding took {took:?}");
    let (late_diff, dangling_diff) = (inspect(&late).1, inspect(&dangling).1);
    let (_, detail) = finding_of(&d, t_late);
    assert_location(
        &detail,
        "engine",
        &format!("docker-daemon:{late_tag} {late}"),
        &late_diff[0],
    );
    // ...and the other, never tagged, is read once it is old enough, named by its id.
    let (_, _) = d.wait_finding(t_dangling, Duration::from_secs(20));
    let waited = built.elapsed();
    eprintln!("untagged build → finding: {waited:?}");
    assert!(
        waited >= Duration::from_secs(8),
        "an untagged image was read {waited:?} after its build"
    );
    let (_, detail) = finding_of(&d, t_dangling);
    assert_location(
        &detail,
        "engine",
        &format!("docker-daemon:{dangling} {dangling}"),
        &dangling_diff[0],
    );
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(m(&d, NEW_HIGH), new0 + 3);
    assert_eq!(m(&d, LAYERS), layers0 + 3 * TARBALL_LAYER);

    // Killed and started again: the start scan lists the images and reads none of them.
    d.kill9();
    d.restart();
    wait_until(&d, Duration::from_secs(60), "the scan at start", || {
        m(&d, SCANS_OK) >= 1
    });
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(m(&d, LAYERS), 0, "images scanned again after a restart");
    assert_eq!(m(&d, OBJECTS), 0);
    assert_eq!(m(&d, NEW_HIGH), 0);
    let (_, after) = finding_of(&d, token);
    assert_eq!(after["location_list"], first["location_list"]);

    assert_no_secret(&d, &[token, t_late, t_dangling]);
    drop(rmi);
    for name in [&tag, &retag, &late_tag, &late, &dangling] {
        let out = Command::new("docker")
            .args(["image", "inspect", name])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} was not removed");
    }
}

/// The config digest of the only manifest of the OCI layout at `dir`.
fn layout_config(dir: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index:#}");
    let digest = manifests[0]["digest"].as_str().unwrap();
    let blob = |d: &str| dir.join("blobs/sha256").join(&d["sha256:".len()..]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_owned()
}

/// Bytes that are no tar, gzip or JSON (a fixed xorshift stream).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn serve_image_drop_directory_archives_layouts_and_bad_files() {
    require_engine();
    let t = tokens(&[1301, 1302, 1303]);
    let (t_archive, t_layout, t_slow) = (&t[0], &t[1], &t[2]);
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("drop");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&drop_dir).unwrap();
    std::fs::create_dir_all(&staging).unwrap();

    // Three images, each with its token: saved, copied into a layout, saved; then removed.
    let (archive_id, archive_layer, slow_id, slow_layer, layout_layer);
    {
        let mut images = Images::default();
        let a = images.build(context_with(t_archive).path(), DOCKERFILE, &[]);
        (archive_id, archive_layer) = inspect(&a);
        let saved = tempfile::tempdir_in(dir.path()).unwrap();
        std::fs::rename(docker_save(&a, saved.path()), staging.join("a.tar")).unwrap();

        let b = images.build(context_with(t_layout).path(), DOCKERFILE, &[]);
        layout_layer = inspect(&b).1;
        skopeo_copy(
            &format!("docker-daemon:{b}"),
            &format!("oci:{}:v1", staging.join("layout").display()),
            None,
        );

        let c = images.build(context_with(t_slow).path(), DOCKERFILE, &[]);
        (slow_id, slow_layer) = inspect(&c);
        let saved = tempfile::tempdir_in(dir.path()).unwrap();
        std::fs::rename(docker_save(&c, saved.path()), staging.join("c.tar")).unwrap();
    }
    let layout_config = layout_config(&staging.join("layout"));

    let body = format!(
        "{FAST}\n[[drop-directory]]\nname = \"drop\"\npath = {:?}\npoll-interval = \"200ms\"\n",
        drop_dir.display().to_string()
    );
    // A hidden file (a copy in progress, as `rsync` names them) is not read: it would fail.
    std::fs::write(drop_dir.join(".a.tar.Xf3k2Q"), noise(4096)).unwrap();
    let d = Daemon::start(dir.path(), &body);
    d.wait_idle(Duration::from_secs(30));
    assert!(d.findings("limit=1000").is_empty());
    assert_eq!(m(&d, SCANS_FAILED), 0, "{}", d.get("/v1/scans").1);

    // A `docker save` archive moved in.
    let a_path = drop_dir.join("a.tar");
    std::fs::rename(staging.join("a.tar"), &a_path).unwrap();
    let (_, took) = d.wait_finding(t_archive, Duration::from_secs(10));
    eprintln!("drop docker-archive → finding: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "archive → finding took {took:?}"
    );
    let (_, detail) = finding_of(&d, t_archive);
    assert_location(
        &detail,
        "drop",
        &format!("docker-archive:{} {archive_id}", a_path.display()),
        &archive_layer[0],
    );

    // An OCI layout directory moved in.
    let layout = drop_dir.join("layout");
    std::fs::rename(staging.join("layout"), &layout).unwrap();
    let (_, took) = d.wait_finding(t_layout, Duration::from_secs(10));
    eprintln!("drop OCI layout → finding: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "layout → finding took {took:?}"
    );
    let (_, detail) = finding_of(&d, t_layout);
    assert_location(
        &detail,
        "drop",
        &format!("oci:{} {layout_config}", layout.display()),
        &layout_layer[0],
    );

    // An archive written into the directory itself, slowly: nothing is read until it has not
    // changed for a second (a partial tar would fail the scan).
    let whole = std::fs::read(staging.join("c.tar")).unwrap();
    let c_path = drop_dir.join("c.tar");
    let mut out = std::fs::File::create(&c_path).unwrap();
    let pieces = 12;
    let scans = m(&d, SCANS_OK);
    let mut written = Instant::now();
    for piece in whole.chunks(whole.len().div_ceil(pieces)) {
        out.write_all(piece).unwrap();
        out.flush().unwrap();
        written = Instant::now();
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            !d.findings("limit=1000")
                .iter()
                .any(|f| same_secret(f, t_slow)),
            "a file still being written was scanned"
        );
        assert_eq!(m(&d, SCANS_FAILED), 0, "{}", d.get("/v1/scans").1);
    }
    drop(out);
    let while_writing = m(&d, SCANS_OK) - scans;
    eprintln!("drop slow write: {while_writing} scans while it was written");
    // A poll every 200 ms may queue a scan, which finds the file unsettled and comes back in a
    // second or two, not at once (a job loop).
    assert!(
        while_writing <= 30,
        "{while_writing} scans in {:?} of writing",
        Duration::from_millis(250 * pieces as u64)
    );
    let (_, took) = d.wait_finding(t_slow, Duration::from_secs(10));
    let settled = written.elapsed();
    eprintln!("drop slow write, last byte → finding: {settled:?}");
    assert!(
        settled >= Duration::from_secs(1),
        "scanned {settled:?} after the last write, before it settled"
    );
    assert!(
        took < Duration::from_secs(5),
        "slow write → finding took {took:?}"
    );
    assert_eq!(m(&d, SCANS_FAILED), 0, "{}", d.get("/v1/scans").1);
    let (_, detail) = finding_of(&d, t_slow);
    assert_location(
        &detail,
        "drop",
        &format!("docker-archive:{} {slow_id}", c_path.display()),
        &slow_layer[0],
    );

    // A corrupt file: its job fails and says which file; what was found stays.
    let bad = drop_dir.join("corrupt.tar");
    std::fs::write(staging.join("corrupt.tar"), noise(64 << 10)).unwrap();
    std::fs::rename(staging.join("corrupt.tar"), &bad).unwrap();
    let bad_name = bad.display().to_string();
    let mut error = String::new();
    wait_until(
        &d,
        Duration::from_secs(10),
        "a failed scan naming the file",
        || {
            let (_, v) = d.get("/v1/scans?limit=1000");
            let found = v["scans"].as_array().unwrap().iter().find_map(|s| {
                s["last_error"]
                    .as_str()
                    .filter(|e| e.contains(&bad_name))
                    .map(str::to_owned)
            });
            error = found.unwrap_or_default();
            !error.is_empty() && m(&d, SCANS_FAILED) >= 1
        },
    );
    eprintln!("corrupt archive: {error}");
    assert_eq!(
        error,
        format!(
            "docker-archive:{bad_name}: neither manifest.json nor index.json in the archive; not \
             an image?"
        )
    );
    assert!(
        !error.contains(&a_path.display().to_string()),
        "the good archive is named in the error: {error}"
    );
    for token in [t_archive, t_layout, t_slow] {
        finding_of(&d, token);
    }
    assert_eq!(d.findings("limit=1000").len(), 3);
    assert_eq!(m(&d, NEW_HIGH), 3);
    // One layer each, read once: the failed retries read no good archive again.
    assert_eq!(m(&d, LAYERS), 1 + 2 * TARBALL_LAYER, "{}", d.metrics());
    assert!(m(&d, SCANS_OK) >= 3, "{}", d.metrics());
    assert_no_secret(&d, &[t_archive, t_layout, t_slow]);
}

#[test]
fn serve_image_registry_new_tags() {
    require_engine();
    require("skopeo", "skopeo");
    let t = tokens(&[1401, 1402]);
    let (t1, t2) = (&t[0], &t[1]);
    let reg = open_registry();
    let repo = format!("serve-{}/app", unique());
    let at = |tag: &str| format!("docker://{}/{repo}:{tag}", reg.addr);
    let mut images = Images::default();
    let clean = {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("key.txt"), "token = none\n").unwrap();
        images.build(ctx.path(), DOCKERFILE, &[])
    };
    let one = images.build(context_with(t1).path(), DOCKERFILE, &[]);
    let two = images.build(context_with(t2).path(), DOCKERFILE, &[]);
    skopeo_copy(&format!("docker-daemon:{clean}"), &at("v0"), None);

    let body = format!(
        "{FAST}\n[[registry]]\nname = \"registry\"\nregistry = {:?}\nrepository = {repo:?}\n\
         insecure = true\npoll-interval = \"1s\"\n",
        reg.addr
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &body);
    wait_until(&d, Duration::from_secs(30), "the first scan", || {
        m(&d, SCANS_OK) >= 1
    });
    d.wait_idle(Duration::from_secs(30));
    assert!(d.findings("limit=1000").is_empty());
    assert_eq!(m(&d, LAYERS), 1, "v0's layer");

    // A new tag.
    skopeo_copy(&format!("docker-daemon:{one}"), &at("v1"), None);
    let (_, took) = d.wait_finding(t1, Duration::from_secs(10));
    eprintln!("registry push v1 → finding: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "push → finding took {took:?}"
    );
    let (_, detail) = finding_of(&d, t1);
    let (_, layers) = inspect(&one);
    assert_location(
        &detail,
        "registry",
        &format!("{} {}", at("v1"), registry_config(&at("v1"))),
        &layers[0],
    );

    // Another new tag, another token.
    skopeo_copy(&format!("docker-daemon:{two}"), &at("v2"), None);
    let (_, took) = d.wait_finding(t2, Duration::from_secs(10));
    eprintln!("registry push v2 → finding: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "push → finding took {took:?}"
    );
    let (_, detail2) = finding_of(&d, t2);
    let (_, layers) = inspect(&two);
    assert_location(
        &detail2,
        "registry",
        &format!("{} {}", at("v2"), registry_config(&at("v2"))),
        &layers[0],
    );
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(m(&d, NEW_HIGH), 2);
    assert_eq!(m(&d, LAYERS), 3);

    // A third tag on v1's manifest, then polls: nothing is read again.
    sh(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &at("v1"),
        &at("v1-again"),
    ]));
    let (objects, layers, scans) = (m(&d, OBJECTS), m(&d, LAYERS), m(&d, SCANS_OK));
    wait_until(&d, Duration::from_secs(15), "three more polls", || {
        m(&d, SCANS_OK) >= scans + 3
    });
    assert_eq!(m(&d, OBJECTS), objects, "unchanged tags were scanned again");
    assert_eq!(m(&d, LAYERS), layers);
    assert_eq!(m(&d, NEW_HIGH), 2);
    assert_eq!(m(&d, SCANS_FAILED), 0, "{}", d.get("/v1/scans").1);
    let (_, again) = finding_of(&d, t1);
    assert_eq!(again["location_list"], detail["location_list"]);
    assert_eq!(d.findings("limit=1000").len(), 2);
    assert_no_secret(&d, &[t1, t2]);
}

/// The config digest (the image id) of the manifest at `reference` on the test registry.
fn registry_config(reference: &str) -> String {
    let out =
        sh(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", reference]));
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_owned()
}

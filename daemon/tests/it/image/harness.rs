//! What the image tests need around them: the Docker engine (images built in the test from
//! `docker import`ed busybox or `FROM scratch`, removed on drop), skopeo, a real registry
//! (Debian's `docker-registry`) on a free loopback port, and OCI layouts assembled by hand.
//!
//! A missing tool fails the test with the package that provides it; nothing is skipped.

use crate::support::{keyward, stderr};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Fails unless `tool` is on PATH (or is an absolute path that exists).
pub(crate) fn require(tool: &str, package: &str) {
    let found = if tool.starts_with('/') {
        Path::new(tool).exists()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        found,
        "`{tool}` is missing: apt-get install -y {package} (scripts/install-image-test-deps installs it)"
    );
}

/// Runs a command and fails the test with its output when it fails.
pub(crate) fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A unique suffix for names of this test run.
pub(crate) fn unique() -> String {
    let mut b = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("read /dev/urandom");
    hex::encode(b)
}

fn docker() -> Command {
    require("docker", "docker.io");
    let mut c = Command::new("docker");
    // The legacy builder: no BuildKit, no registry access, history as the tests expect.
    c.env("DOCKER_BUILDKIT", "0");
    c
}

/// A hold on the Docker engine, shared or exclusive, across threads and test processes (an
/// `flock` on a file in the temp dir); released on drop.
///
/// Tests that make images hold it shared while their images exist ([`Images`] does). A test
/// whose assertions cover every image the engine has (the daemon's `[docker]` source scans all
/// of them) holds it exclusive, so no other test's image appears meanwhile.
///
/// NOTE: `flock`, not an in-process `RwLock`: the engine is shared with every test process on
/// the host, and a waiting exclusive `flock` does not block new shared ones, so a thread that
/// holds a shared lock and takes another cannot deadlock. Held by `flock(1)` running `read`
/// on a pipe from this process (`File::lock` is newer than the MSRV, and `unsafe` is
/// forbidden): closing the pipe, or this process dying, releases it.
pub(crate) struct EngineLock(std::process::Child);

impl EngineLock {
    fn take(mode: &str) -> EngineLock {
        require("flock", "util-linux");
        let path = std::env::temp_dir().join("keyward-it-docker-engine.lock");
        let mut child = Command::new("flock")
            .arg(mode)
            .arg(&path)
            .args(["sh", "-c", "echo held; read _ignored"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "held\n", "flock {mode} {} failed", path.display());
        EngineLock(child)
    }

    /// Shared: other tests may make images too.
    pub(crate) fn shared() -> EngineLock {
        EngineLock::take("--shared")
    }

    /// Exclusive: no other test makes images until this is dropped.
    pub(crate) fn exclusive() -> EngineLock {
        EngineLock::take("--exclusive")
    }
}

impl Drop for EngineLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Docker images made by a test; removed on drop. Holds the engine shared ([`EngineLock`])
/// from the first image made until they are removed.
#[derive(Default)]
pub(crate) struct Images(Vec<String>, Option<EngineLock>);

impl Images {
    fn hold(&mut self) {
        if self.1.is_none() {
            self.1 = Some(EngineLock::shared());
        }
    }

    /// A base image with busybox (a shell, `rm`, `cat`) made with `docker import`, as no
    /// registry is reachable.
    pub(crate) fn busybox(&mut self) -> String {
        require("/bin/busybox", "busybox-static");
        self.hold();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for a in ["sh", "rm", "cat", "echo", "mkdir", "ls", "true"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        let tar = dir.path().join("root.tar");
        sh(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        let tag = format!("keyward-it-base-{}:1", unique());
        sh(docker().arg("import").arg(&tar).arg(&tag));
        self.0.push(tag.clone());
        tag
    }

    /// Builds `dockerfile` in `ctx` (files already written there) as a new tag.
    pub(crate) fn build(&mut self, ctx: &Path, dockerfile: &str, args: &[&str]) -> String {
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        self.hold();
        let tag = format!("keyward-it-{}:1", unique());
        sh(docker()
            .args(["build", "-q", "--no-cache", "-t", &tag])
            .args(args)
            .arg(ctx));
        self.0.push(tag.clone());
        tag
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        // Newest first: a base is in use while images built on it exist.
        // `rmi` also removes the untagged parent images of what it removes. NOTE: no
        // `docker image prune` here: tests run in parallel, and a prune deletes the untagged
        // intermediate images of another test's build while that build still needs them
        // ("failed to get digest … no such file or directory").
        for t in self.0.iter().rev() {
            let _ = Command::new("docker").args(["rmi", "-f", t]).output();
        }
    }
}

/// `docker save` into `dir`.
pub(crate) fn docker_save(tag: &str, dir: &Path) -> PathBuf {
    let out = dir.join("saved.tar");
    sh(docker().args(["save", "-o"]).arg(&out).arg(tag));
    out
}

/// `skopeo copy SRC DEST` (plain HTTP, credentials for the test registry).
pub(crate) fn skopeo_copy(src: &str, dest: &str, creds: Option<&str>) {
    require("skopeo", "skopeo");
    let mut c = Command::new("skopeo");
    c.args(["copy", "-q", "--dest-tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--dest-creds", cr]);
    }
    sh(c.arg(src).arg(dest));
}

/// A running `docker-registry` on 127.0.0.1. One per test binary and kind; it stops when the
/// test process exits (its stdin pipe closes), since statics are never dropped.
pub(crate) struct Registry {
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// `user:password` when htpasswd auth is on.
    pub(crate) creds: Option<String>,
    _dir: tempfile::TempDir,
    _stdin: std::process::ChildStdin,
}

/// The shared open (anonymous) registry.
pub(crate) fn open_registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::start(false))
}

/// The shared registry with htpasswd (basic) auth.
pub(crate) fn auth_registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::start(true))
}

impl Registry {
    fn start(auth: bool) -> Registry {
        require("/usr/bin/docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        let creds = if auth {
            require("htpasswd", "apache2-utils");
            let pass = format!("pw-{}", unique());
            let out = sh(Command::new("htpasswd").args(["-Bbn", "kw", &pass]));
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            cfg = format!(
                "{cfg}auth:\n  htpasswd:\n    realm: keyward-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
            Some(format!("kw:{pass}"))
        } else {
            None
        };
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        // NOTE: not waited for: it lives as long as the test process (see the type's doc).
        #[allow(clippy::zombie_processes)]
        let mut child = Command::new("sh")
            .args([
                "-c",
                "docker-registry serve \"$1\" >\"$1.log\" 2>&1 & pid=$!; read _ignored; kill $pid",
                "sh",
            ])
            .arg(&cfg_path)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        let stdin = child.stdin.take().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not listen on {addr}: {}",
                std::fs::read_to_string(dir.path().join("config.yml.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry {
            addr,
            creds,
            _dir: dir,
            _stdin: stdin,
        }
    }

    /// A Docker config file with this registry's credentials.
    pub(crate) fn authfile(&self, dir: &Path) -> PathBuf {
        let (u, p) = self.creds.as_deref().unwrap().split_once(':').unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        let path = dir.join("docker-config.json");
        let v = serde_json::json!({"auths": {self.addr.clone(): {"auth": auth}}});
        std::fs::write(&path, v.to_string()).unwrap();
        path
    }
}

/// Runs `keyward scan image --format jsonl --per-location --show-secrets ARGS`; returns the
/// output and the findings, one per place.
pub(crate) fn scan_image(args: &[&str]) -> (Output, Vec<serde_json::Value>) {
    let out = keyward()
        .args([
            "scan",
            "image",
            "--format",
            "jsonl",
            "--per-location",
            "--show-secrets",
        ])
        .args(args)
        .output()
        .expect("run keyward");
    let findings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nstderr: {}", stderr(&out)))
        })
        .collect();
    (out, findings)
}

/// A finding without its `image` (which names the transport): what must agree across
/// transports.
pub(crate) fn comparable(f: &serde_json::Value) -> String {
    let mut f = f.clone();
    f["location"]["image"] = serde_json::Value::Null;
    f.to_string()
}

/// Scans the engine's image `tag` four ways — `docker-daemon:`, `docker-archive:` from
/// `docker save`, `oci:` after `skopeo copy`, `docker://` from the htpasswd registry after
/// `skopeo copy` — asserts the reports agree, and returns the findings.
pub(crate) fn scan_three_ways(tag: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let (out, daemon) = scan_image(&[&format!("docker-daemon:{tag}")]);
    assert!(
        out.status.code() != Some(2),
        "daemon scan failed: {}",
        stderr(&out)
    );

    let saved = docker_save(tag, dir.path());
    let (out, archive) = scan_image(&[&format!("docker-archive:{}", saved.display())]);
    assert!(
        out.status.code() != Some(2),
        "archive scan failed: {}",
        stderr(&out)
    );

    let layout = dir.path().join("oci");
    skopeo_copy(
        &format!("docker-daemon:{tag}"),
        &format!("oci:{}:v1", layout.display()),
        None,
    );
    let (out, oci) = scan_image(&[&format!("oci:{}:v1", layout.display())]);
    assert!(
        out.status.code() != Some(2),
        "oci scan failed: {}",
        stderr(&out)
    );

    let reg = auth_registry();
    let repo = format!("{}/it/{}", reg.addr, tag.replace(':', "-"));
    skopeo_copy(
        &format!("docker-daemon:{tag}"),
        &format!("docker://{repo}:v1"),
        reg.creds.as_deref(),
    );
    let authfile = reg.authfile(dir.path());
    let (out, registry) = scan_image(&[
        "--insecure",
        "--authfile",
        authfile.to_str().unwrap(),
        &format!("docker://{repo}:v1"),
    ]);
    assert!(
        out.status.code() != Some(2),
        "registry scan failed: {}",
        stderr(&out)
    );

    let norm = |v: &[serde_json::Value]| {
        let mut s: Vec<String> = v.iter().map(comparable).collect();
        s.sort();
        s
    };
    let reference = norm(&daemon);
    assert_eq!(
        norm(&archive),
        reference,
        "docker-archive disagrees with docker-daemon"
    );
    assert_eq!(norm(&oci), reference, "oci disagrees with docker-daemon");
    assert_eq!(
        norm(&registry),
        reference,
        "docker:// disagrees with docker-daemon"
    );
    for (name, v) in [
        ("daemon", &daemon),
        ("archive", &archive),
        ("oci", &oci),
        ("registry", &registry),
    ] {
        for f in v {
            assert!(
                f["location"]["image"]
                    .as_str()
                    .unwrap_or("")
                    .contains(" sha256:"),
                "{name}: image carries no id: {f}"
            );
        }
    }
    daemon
}

/// Findings whose secret is `secret`.
pub(crate) fn with_secret<'a>(
    findings: &'a [serde_json::Value],
    secret: &str,
) -> Vec<&'a serde_json::Value> {
    findings.iter().filter(|f| f["secret"] == secret).collect()
}

/// A zip (jar) with these members.
pub(crate) fn jar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// One entry of a hand-made layer tar.
pub(crate) enum Entry<'a> {
    /// A regular file.
    File(&'a str, &'a [u8]),
    /// A directory.
    Dir(&'a str),
    /// A symlink `path -> target`.
    Symlink(&'a str, &'a str),
}

/// A layer tar with exactly these entries; names are written raw (so `..` and absolute paths,
/// which `tar::Builder` refuses, can be made).
pub(crate) fn layer_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let (name, data): (&str, &[u8]) = match e {
            Entry::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                (n, d)
            }
            Entry::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                (n, b"")
            }
            Entry::Symlink(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(t).unwrap();
                (n, b"")
            }
        };
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// gzip.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// `sha256:<hex>`.
pub(crate) fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An OCI layout written by hand.
pub(crate) struct Layout {
    /// The directory.
    pub(crate) dir: PathBuf,
}

impl Layout {
    /// An empty layout in `dir`.
    pub(crate) fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_owned(),
        }
    }

    /// Stores a blob; returns its descriptor.
    pub(crate) fn blob(&self, media_type: &str, data: &[u8]) -> serde_json::Value {
        let d = digest(data);
        std::fs::write(
            self.dir.join("blobs/sha256").join(&d["sha256:".len()..]),
            data,
        )
        .unwrap();
        serde_json::json!({"mediaType": media_type, "digest": d, "size": data.len()})
    }

    /// The path of a blob.
    pub(crate) fn blob_path(&self, d: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(&d["sha256:".len()..])
    }

    /// An image of these layer tars (gzipped) with this platform and history; returns the
    /// manifest's descriptor.
    pub(crate) fn image(&self, arch: &str, layers: &[Vec<u8>], env: &[&str]) -> serde_json::Value {
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        let history: Vec<serde_json::Value> = (0..layers.len())
            .map(|i| serde_json::json!({"created_by": format!("test layer {i}")}))
            .collect();
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": env},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let config = self.blob(
            "application/vnd.oci.image.config.v1+json",
            config.to_string().as_bytes(),
        );
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &gzip(l)))
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": layers,
        });
        let mut d = self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        );
        d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        d
    }

    /// Writes `index.json` listing `manifests` (tagged `v1` when there is one).
    pub(crate) fn index(&self, manifests: Vec<serde_json::Value>) {
        let mut manifests = manifests;
        if manifests.len() == 1 {
            manifests[0]["annotations"] =
                serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
        }
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }

    /// Wraps `manifests` in an image index blob, and lists that in `index.json` as `v1`.
    pub(crate) fn multi_arch(&self, manifests: &[serde_json::Value]) {
        let inner = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let d = self.blob(
            "application/vnd.oci.image.index.v1+json",
            inner.to_string().as_bytes(),
        );
        self.index(vec![d]);
    }
}

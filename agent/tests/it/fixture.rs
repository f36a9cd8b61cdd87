//! Shared setup: one OpenBao (and PostgreSQL when needed) per test, configured through the
//! API, and a `keyward-agent serve` process with a config written for them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use keyward_tests::{KillOnDrop, OpenBao, Postgres, free_port, wait_for, write_file};
use serde_json::{Value, json};

/// The binary under test: `KEYWARD_AGENT_BIN`, else the one cargo built.
pub(crate) fn agent_bin() -> PathBuf {
    std::env::var_os("KEYWARD_AGENT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_keyward-agent")),
        PathBuf::from,
    )
}

pub(crate) fn my_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

pub(crate) const AGENT_POLICY: &str = r#"
path "database/creds/*" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["read"] }
path "pki/issue/*" { capabilities = ["create", "update"] }
path "pki/revoke" { capabilities = ["update"] }
path "pki/cert/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["create", "update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
"#;

/// The documented role (see packaging/agent.toml): revocation also ends open connections.
pub(crate) const CREATION_SQL: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;
pub(crate) const REVOCATION_SQL: [&str; 2] = [
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
    r#"DROP ROLE IF EXISTS "{{name}}";"#,
];

pub(crate) struct Fixture {
    pub(crate) bao: OpenBao,
    pub(crate) pg: Option<Postgres>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) agent: Option<KillOnDrop>,
    pub(crate) metrics_port: u16,
    auth_toml: String,
}

impl Fixture {
    /// OpenBao with the agent policy and an AppRole login; PostgreSQL + database engine if `pg`.
    pub(crate) fn new(pg: bool) -> Self {
        let bao = OpenBao::start();
        let dir = tempfile::tempdir().unwrap();
        bao.must(
            "PUT",
            "sys/policies/acl/keyward-agent",
            Some(&json!({"policy": AGENT_POLICY})),
        );
        bao.must(
            "POST",
            "sys/auth/approle",
            Some(&json!({"type": "approle"})),
        );
        bao.must(
            "POST",
            "auth/approle/role/keyward-agent",
            Some(&json!({"token_policies": ["keyward-agent"], "token_ttl": "1h", "token_max_ttl": "4h"})),
        );
        let role_id =
            bao.must("GET", "auth/approle/role/keyward-agent/role-id", None)["data"]["role_id"]
                .as_str()
                .unwrap()
                .to_owned();
        let secret_id = bao.must("POST", "auth/approle/role/keyward-agent/secret-id", None)["data"]
            ["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let rid = write_file(dir.path(), "role-id", &role_id);
        let sid = write_file(dir.path(), "secret-id", &secret_id);
        let auth_toml = format!(
            "[auth]\nmethod = \"approle\"\nrole-id-file = \"{}\"\nsecret-id-file = \"{}\"\n",
            rid.display(),
            sid.display()
        );
        let pg = pg.then(Postgres::start);
        let fx = Self {
            bao,
            pg,
            dir,
            agent: None,
            metrics_port: free_port(),
            auth_toml,
        };
        if fx.pg.is_some() {
            fx.enable_database();
        }
        fx
    }

    fn enable_database(&self) {
        let pg = self.pg.as_ref().unwrap();
        self.bao.must(
            "POST",
            "sys/mounts/database",
            Some(&json!({"type": "database"})),
        );
        self.bao.must(
            "POST",
            "database/config/pg",
            Some(&json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable", pg.port()),
                "username": "postgres",
                "password": pg.password(),
                "allowed_roles": "*",
            })),
        );
        self.bao.must(
            "POST",
            "database/roles/build",
            Some(&json!({
                "db_name": "pg",
                "creation_statements": [CREATION_SQL],
                "revocation_statements": REVOCATION_SQL,
                "default_ttl": "1h",
                "max_ttl": "2h",
            })),
        );
    }

    pub(crate) fn enable_pki(&self) {
        self.bao.must(
            "POST",
            "sys/mounts/pki",
            Some(&json!({"type": "pki", "config": {"max_lease_ttl": "24h"}})),
        );
        self.bao.must(
            "POST",
            "pki/root/generate/internal",
            Some(&json!({"common_name": "keyward test root", "ttl": "24h"})),
        );
        self.bao.must(
            "POST",
            "pki/roles/build",
            Some(&json!({"allow_any_name": true, "max_ttl": "1h", "key_type": "ec", "key_bits": 256})),
        );
    }

    /// JWT auth: `role` for the agent itself and `build` for builds' id tokens, both bound to
    /// `group/app` on a protected ref, claims mapped into token metadata.
    pub(crate) fn enable_jwt(&self, issuer: &keyward_tests::JwtIssuer) {
        self.bao
            .must("POST", "sys/auth/jwt", Some(&json!({"type": "jwt"})));
        self.bao.must(
            "POST",
            "auth/jwt/config",
            Some(&json!({"jwt_validation_pubkeys": [issuer.public_pem()], "bound_issuer": "https://gitlab.example.test"})),
        );
        for (role, policies) in [
            ("keyward-agent", json!(["keyward-agent"])),
            ("build", json!([])),
        ] {
            self.bao.must(
                "POST",
                &format!("auth/jwt/role/{role}"),
                Some(&json!({
                    "role_type": "jwt",
                    "user_claim": "sub",
                    "bound_audiences": ["keyward"],
                    "bound_claims": {"project_path": "group/app", "ref_protected": "true"},
                    "claim_mappings": {"project_path": "project_path", "ref_protected": "ref_protected", "ref": "ref"},
                    "token_policies": policies,
                    "token_ttl": "1h",
                })),
            );
        }
    }

    pub(crate) fn use_jwt_login(&mut self, jwt_file: &Path) {
        self.auth_toml = format!(
            "[auth]\nmethod = \"jwt\"\nrole = \"keyward-agent\"\njwt-file = \"{}\"\n",
            jwt_file.display()
        );
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.path("agent.sock")
    }

    pub(crate) fn audit_log(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    pub(crate) fn agent_log(&self) -> String {
        std::fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }

    /// The ledger journal's text.
    pub(crate) fn ledger_text(&self) -> String {
        std::fs::read_to_string(self.path("state/ledger.jsonl")).unwrap_or_default()
    }

    /// Sessions the ledger still lists (replaying its put / del lines).
    pub(crate) fn ledger_live(&self) -> usize {
        let mut live = std::collections::BTreeSet::new();
        for line in self.ledger_text().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            match v["op"].as_str().unwrap() {
                "put" => live.insert(v["rec"]["session"].as_str().unwrap().to_owned()),
                _ => live.remove(v["session"].as_str().unwrap()),
            };
        }
        live.len()
    }

    /// Writes the config: `extra` is appended (profiles, `[caller-jwt]`...).
    pub(crate) fn write_config(&self, extra: &str) -> PathBuf {
        let text = format!(
            "[vault]\naddress = \"{addr}\"\nrequest-timeout = \"2s\"\n\n{auth}\n[socket]\npath = \"{sock}\"\n\n\
             [state]\ndir = \"{state}\"\naudit-log = \"{audit}\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n{extra}",
            addr = self.bao.addr(),
            auth = self.auth_toml,
            sock = self.socket().display(),
            state = self.path("state").display(),
            audit = self.audit_log().display(),
            port = self.metrics_port,
        );
        write_file(self.dir.path(), "agent.toml", &text)
    }

    /// A `db` profile allowed for the test's uid, exporting PGUSER/PGPASSWORD.
    pub(crate) fn db_profile(uids: &[u32]) -> String {
        format!(
            "[profiles.db]\nkind = \"database\"\nrole = \"build\"\ndefault-ttl = \"10m\"\nmax-ttl = \"1h\"\n\
             env = {{ username = \"PGUSER\", password = \"PGPASSWORD\" }}\nallow = {{ uids = {uids:?} }}\n"
        )
    }

    /// Starts (or restarts) the agent and waits until it accepts connections and logged in.
    pub(crate) fn start_agent(&mut self) {
        let config = self.path("agent.toml");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("agent.log"))
            .unwrap();
        let child = Command::new(agent_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("KEYWARD_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start keyward-agent");
        self.agent = Some(KillOnDrop(child));
        let ready = wait_for(Duration::from_secs(20), || {
            let r = reqwest::blocking::get(format!("http://127.0.0.1:{}/ready", self.metrics_port))
                .ok()?;
            (r.status().as_u16() == 200
                && std::os::unix::net::UnixStream::connect(self.socket()).is_ok())
            .then_some(())
        });
        assert!(
            ready.is_some(),
            "agent did not become ready; log:\n{}",
            self.agent_log()
        );
        let logged_in = wait_for(Duration::from_secs(20), || {
            self.agent_log()
                .contains("Logged in to Vault.")
                .then_some(())
        });
        assert!(
            logged_in.is_some(),
            "agent did not log in; log:\n{}",
            self.agent_log()
        );
    }

    /// `kill -9` the agent.
    pub(crate) fn kill_agent(&mut self) {
        if let Some(a) = self.agent.take() {
            keyward_tests::signal(a.pid(), "KILL");
            drop(a);
        }
    }

    /// `keyward-agent run …` with the socket set; the caller adds stdio and spawns.
    pub(crate) fn run_cmd(&self, profiles: &[&str], command: &[&str]) -> Command {
        let mut c = Command::new(agent_bin());
        c.arg("run");
        for p in profiles {
            c.args(["--profile", p]);
        }
        c.arg("--")
            .args(command)
            .env("KEYWARD_AGENT_SOCKET", self.socket())
            .env("KEYWARD_LOG", "info");
        c
    }

    /// Runs an agent subcommand, returning (exit code, stdout, stderr).
    pub(crate) fn agent_cmd(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(agent_bin())
            .args(args)
            .env("KEYWARD_AGENT_SOCKET", self.socket())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub(crate) fn metrics(&self) -> String {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .unwrap()
            .text()
            .unwrap()
    }

    /// Audit events as JSON.
    pub(crate) fn audit_events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.audit_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Leases OpenBao still holds under `database/creds/build/`.
    pub(crate) fn db_leases(&self) -> Vec<String> {
        match self
            .bao
            .api("LIST", "sys/leases/lookup/database/creds/build/", None)
        {
            Ok(v) => v["data"]["keys"]
                .as_array()
                .map(|a| a.iter().map(|k| k.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default(),
            Err(e) if e.status == 404 => Vec::new(),
            Err(e) => panic!("listing leases: {e:?}"),
        }
    }

    /// A shell script for `run`: records its pid and the issued user, opens a connection that
    /// stays open in the background, waits for it, then runs `then`.
    /// Starts `run --profile db` with a command that connects, writes `user`, `cmd.pid` and
    /// `ready`, then sleeps; returns once it is ready (the build holds live credentials).
    pub(crate) fn spawn_holding_db_build(&self) -> std::process::Child {
        let script = self.db_script("exec sleep 300");
        let run = self
            .run_cmd(&["db"], &["sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            self.wait_file("ready", Duration::from_secs(30)),
            "command did not start\n{}",
            self.agent_log()
        );
        run
    }

    pub(crate) fn db_script(&self, then: &str) -> String {
        let pg = self.pg.as_ref().unwrap();
        let psql = pg.psql_bin();
        let psql = psql.display();
        let dir = self.dir.path().display();
        let port = pg.port();
        format!(
            r#"set -e
echo $$ > {dir}/cmd.pid
P="{psql} -X -h 127.0.0.1 -p {port} -d postgres"
$P -tAc 'select current_user' > {dir}/user.tmp && mv {dir}/user.tmp {dir}/user
nohup $P -c 'select pg_sleep(300)' > {dir}/bg.log 2>&1 &
echo $! > {dir}/bg.pid
i=0
while [ "$($P -tAc 'select count(*) from pg_stat_activity where usename = current_user and pid <> pg_backend_pid()')" != 1 ]; do
  i=$((i+1)); [ $i -lt 100 ] || exit 99; sleep 0.1
done
touch {dir}/ready
{then}"#
        )
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    pub(crate) fn wait_file(&self, name: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.path(name).exists().then_some(())).is_some()
    }
}

/// Asserts the role, its open connection, the background client and the lease are all gone.
pub(crate) fn assert_all_gone(fx: &Fixture, user: &str, within: Duration) {
    let pg = fx.pg.as_ref().unwrap();
    let gone = wait_for(within, || {
        (!pg.role_exists(user) && pg.connections_of(user) == 0 && fx.db_leases().is_empty())
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "role exists: {}, connections: {}, leases: {:?}\nagent log:\n{}",
        pg.role_exists(user),
        pg.connections_of(user),
        fx.db_leases(),
        fx.agent_log()
    );
    // The client whose connection was cut has exited.
    let bg: u32 = fx.read("bg.pid").parse().unwrap();
    let exited = wait_for(Duration::from_secs(5), || {
        (!process_alive(bg)).then_some(())
    });
    assert!(exited.is_some(), "background psql {bg} still running");
}

/// True if `pid` exists and is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

//! Agent configuration: TOML in two stages.
//!
//! [`RawConfig`] is what serde reads (`deny_unknown_fields`, kebab-case, defaults); it becomes a
//! typed [`Config`] through `TryFrom`, which reports every problem at once. Credentials never
//! appear in the config itself: only `*-file` paths (or env var names) read at the moment of use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors in the configuration file: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not valid TOML for this schema.
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    /// The file parsed, but values are wrong.
    #[error("invalid config:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// The file as written. Every field is documented in `packaging/agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// How to reach Vault / OpenBao.
    pub vault: RawVault,
    /// How the agent logs in.
    pub auth: RawAuth,
    /// The local socket builds connect to.
    #[serde(default)]
    pub socket: RawSocket,
    /// Ledger and audit log locations.
    #[serde(default)]
    pub state: RawState,
    /// Prometheus endpoint.
    #[serde(default)]
    pub metrics: RawMetrics,
    /// Verification of JWTs presented by builds (CI id tokens), done by Vault's JWT auth.
    #[serde(default)]
    pub caller_jwt: Option<RawCallerJwt>,
    /// Uids allowed to run `status` and `revoke` (besides the agent's own uid and root).
    #[serde(default)]
    pub admin_uids: Vec<u32>,
    /// Named credential kinds.
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
}

/// `[vault]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawVault {
    /// `http(s)://host:port`.
    pub address: String,
    /// PEM CA bundle to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// Client certificate (PEM) for TLS and for `cert` auth.
    pub client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    pub client_key_file: Option<PathBuf>,
    /// Per-request timeout.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
}

fn default_request_timeout() -> String {
    // NOTE: short on purpose: a hung Vault must turn into a retried revocation, not a stuck one.
    "5s".to_owned()
}

/// `[auth]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAuth {
    /// `approle`, `jwt`, `cert` or `token`.
    pub method: String,
    /// Auth mount path (defaults to the method name).
    pub mount: Option<String>,
    /// AppRole: file holding the role id.
    pub role_id_file: Option<PathBuf>,
    /// AppRole: file holding the secret id.
    pub secret_id_file: Option<PathBuf>,
    /// JWT / cert: the Vault role to log in as.
    pub role: Option<String>,
    /// JWT: file holding the token (CI id token, projected service-account token).
    pub jwt_file: Option<PathBuf>,
    /// JWT: env var holding the token (used when `jwt-file` is unset).
    pub jwt_env: Option<String>,
    /// Token: file holding a Vault token.
    pub token_file: Option<PathBuf>,
}

/// `[socket]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSocket {
    /// Path of the Unix socket (ignored under systemd socket activation).
    #[serde(default = "default_socket_path")]
    pub path: PathBuf,
    /// Octal file mode.
    #[serde(default = "default_socket_mode")]
    pub mode: String,
    /// Owner (name or uid).
    pub owner: Option<String>,
    /// Group (name or gid): builds run under this group.
    pub group: Option<String>,
}

impl Default for RawSocket {
    fn default() -> Self {
        Self {
            path: default_socket_path(),
            mode: default_socket_mode(),
            owner: None,
            group: None,
        }
    }
}

fn default_socket_path() -> PathBuf {
    PathBuf::from(crate::env_vars::DEFAULT_SOCKET)
}

fn default_socket_mode() -> String {
    // 0660: the agent's user and the build group; never world-connectable.
    "0660".to_owned()
}

/// `[state]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawState {
    /// Directory of the lease ledger (one file per live session).
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// Append-only, hash-chained audit log.
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
}

impl Default for RawState {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
            audit_log: default_audit_log(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/keyward-agent")
}

fn default_audit_log() -> PathBuf {
    PathBuf::from("/var/log/keyward-agent/audit.jsonl")
}

/// `[metrics]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawMetrics {
    /// Local address for `/metrics`, `/live`, `/ready`; unset = no listener.
    pub listen: Option<String>,
}

/// `[caller-jwt]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCallerJwt {
    /// JWT auth mount.
    #[serde(default = "default_jwt_mount")]
    pub mount: String,
    /// Role whose bound claims and `claim_mappings` define what a build's JWT proves.
    pub role: String,
}

fn default_jwt_mount() -> String {
    "jwt".to_owned()
}

/// `[profiles.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawProfile {
    /// `database`, `token`, `kv2`, `pki` or `generic`.
    pub kind: String,
    /// Secrets engine mount (database/kv2/pki).
    pub mount: Option<String>,
    /// database / pki role.
    pub role: Option<String>,
    /// kv2 secret path (below the mount) or generic full path.
    pub path: Option<String>,
    /// token: policies of the child token.
    #[serde(default)]
    pub policies: Vec<String>,
    /// token: use count (0 = unlimited).
    #[serde(default)]
    pub num_uses: u32,
    /// pki: common name of the certificate.
    pub common_name: Option<String>,
    /// TTL when the build asks for none.
    #[serde(default = "default_profile_ttl")]
    pub default_ttl: String,
    /// Longest TTL a build may get; renewals stop here.
    #[serde(default = "default_profile_max_ttl")]
    pub max_ttl: String,
    /// Field -> env var name. Empty = every field as `KEYWARD_<PROFILE>_<FIELD>`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Who may ask for this profile.
    #[serde(default)]
    pub allow: RawAllow,
}

fn default_profile_ttl() -> String {
    "15m".to_owned()
}

fn default_profile_max_ttl() -> String {
    "1h".to_owned()
}

/// `[profiles.NAME.allow]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAllow {
    /// Caller uids (kernel peer credentials).
    #[serde(default)]
    pub uids: Vec<u32>,
    /// Caller gids (primary or supplementary).
    #[serde(default)]
    pub gids: Vec<u32>,
    /// Claim name -> accepted values, checked against a Vault-verified build JWT.
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<String>>,
}

/// The typed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Vault connection.
    pub vault: VaultConfig,
    /// Login method.
    pub auth: AuthConfig,
    /// Socket settings.
    pub socket: SocketConfig,
    /// Directory of the lease ledger.
    pub state_dir: PathBuf,
    /// Audit log path.
    pub audit_log: PathBuf,
    /// Metrics listener.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Build-JWT verification.
    pub caller_jwt: Option<CallerJwtConfig>,
    /// Uids allowed to run status / revoke.
    pub admin_uids: BTreeSet<u32>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

/// Vault connection settings.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Base address without trailing slash.
    pub address: String,
    /// CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Namespace header.
    pub namespace: Option<String>,
    /// Client certificate and key (PEM files).
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// How the agent authenticates.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// `auth/<mount>/login` with role id and secret id.
    AppRole {
        mount: String,
        role_id_file: PathBuf,
        secret_id_file: PathBuf,
    },
    /// `auth/<mount>/login` with a JWT.
    Jwt {
        mount: String,
        role: String,
        source: JwtSource,
    },
    /// `auth/<mount>/login` with the TLS client certificate.
    Cert { mount: String, role: Option<String> },
    /// A token read from a file (re-read when renewal fails).
    Token { file: PathBuf },
}

/// Where the agent's own JWT comes from.
#[derive(Debug, Clone)]
pub enum JwtSource {
    /// A file, re-read at every login (projected tokens rotate).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// Socket settings.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Path.
    pub path: PathBuf,
    /// File mode.
    pub mode: u32,
    /// Owner uid.
    pub owner: Option<u32>,
    /// Group gid.
    pub group: Option<u32>,
}

/// Build-JWT verification settings.
#[derive(Debug, Clone)]
pub struct CallerJwtConfig {
    /// JWT auth mount.
    pub mount: String,
    /// Role.
    pub role: String,
}

/// A named credential kind.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Name as in the config (also the metrics label: a closed set).
    pub name: String,
    /// What to issue.
    pub kind: ProfileKind,
    /// TTL when none is asked for.
    pub default_ttl: Duration,
    /// Upper bound of TTL and renewals.
    pub max_ttl: Duration,
    /// Field -> env var (empty: all fields, default names).
    pub env: BTreeMap<String, String>,
    /// Who may ask.
    pub allow: Allow,
}

/// What a profile issues.
#[derive(Debug, Clone)]
pub enum ProfileKind {
    /// `<mount>/creds/<role>`, revoked by lease.
    Database { mount: String, role: String },
    /// A child of the session token.
    Token {
        policies: Vec<String>,
        num_uses: u32,
    },
    /// `<mount>/data/<path>` read with the session token.
    Kv2 { mount: String, path: String },
    /// `<mount>/issue/<role>`, revoked by serial.
    Pki {
        mount: String,
        role: String,
        common_name: String,
    },
    /// Read `path`, revoke its lease.
    Generic { path: String },
}

impl ProfileKind {
    /// Short name, used in the ledger and the audit log.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Database { .. } => "database",
            Self::Token { .. } => "token",
            Self::Kv2 { .. } => "kv2",
            Self::Pki { .. } => "pki",
            Self::Generic { .. } => "generic",
        }
    }
}

/// A profile's allow-list. Invariant: at least one of `uids`/`gids` is non-empty.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    /// Allowed uids.
    pub uids: BTreeSet<u32>,
    /// Allowed gids.
    pub gids: BTreeSet<u32>,
    /// Claim -> accepted values.
    pub claims: BTreeMap<String, BTreeSet<String>>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fs_err::read_to_string(path)?;
        Self::parse(&text)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        Self::try_from(raw)
    }
}

/// Parses `30s`, `15m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration: {e}"))
}

fn parse_id(what: &str, s: &str, db: &str, errors: &mut Vec<String>) -> Option<u32> {
    if let Ok(id) = s.parse::<u32>() {
        return Some(id);
    }
    // Names are looked up in /etc/passwd or /etc/group (the agent links no NSS).
    let table = fs_err::read_to_string(db).unwrap_or_default();
    let found = table.lines().find_map(|line| {
        let mut parts = line.split(':');
        (parts.next() == Some(s)).then(|| parts.nth(1).and_then(|id| id.parse().ok()))?
    });
    if found.is_none() {
        errors.push(format!("{what}: unknown name {s:?} in {db}"));
    }
    found
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    // NOTE: one `match` per setting, each arm pushing its own error, reads better than
    // `if let ... else` chains here.
    #[allow(clippy::single_match_else)]
    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let dur = |what: &str, s: &str, errors: &mut Vec<String>| {
            parse_duration(s).unwrap_or_else(|e| {
                errors.push(format!("{what}: {e}"));
                Duration::ZERO
            })
        };

        let request_timeout = dur(
            "vault.request-timeout",
            &raw.vault.request_timeout,
            &mut errors,
        );
        let mut profiles = BTreeMap::new();
        let mut profile_ttls = Vec::new();
        for (name, p) in &raw.profiles {
            let default_ttl = dur(
                &format!("profiles.{name}.default-ttl"),
                &p.default_ttl,
                &mut errors,
            );
            let max_ttl = dur(&format!("profiles.{name}.max-ttl"), &p.max_ttl, &mut errors);
            profile_ttls.push((name.clone(), default_ttl, max_ttl));
        }

        let address = raw.vault.address.trim_end_matches('/').to_owned();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            errors.push(format!(
                "vault.address: {address:?} must start with http:// or https://"
            ));
        }
        let client_identity = match (raw.vault.client_cert_file, raw.vault.client_key_file) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                errors.push("vault: client-cert-file and client-key-file go together".to_owned());
                None
            }
        };

        let a = raw.auth;
        let mount = |default: &str| a.mount.clone().unwrap_or_else(|| default.to_owned());
        let auth = match a.method.as_str() {
            "approle" => match (a.role_id_file.clone(), a.secret_id_file.clone()) {
                (Some(role_id_file), Some(secret_id_file)) => Some(AuthConfig::AppRole {
                    mount: mount("approle"),
                    role_id_file,
                    secret_id_file,
                }),
                _ => {
                    errors.push("auth: approle needs role-id-file and secret-id-file".to_owned());
                    None
                }
            },
            "jwt" => {
                let source = match (a.jwt_file.clone(), a.jwt_env.clone()) {
                    (Some(f), _) => Some(JwtSource::File(f)),
                    (None, Some(e)) => Some(JwtSource::Env(e)),
                    (None, None) => None,
                };
                match (a.role.clone(), source) {
                    (Some(role), Some(source)) => Some(AuthConfig::Jwt {
                        mount: mount("jwt"),
                        role,
                        source,
                    }),
                    _ => {
                        errors.push("auth: jwt needs role and jwt-file or jwt-env".to_owned());
                        None
                    }
                }
            }
            "cert" => {
                if client_identity.is_none() {
                    errors.push(
                        "auth: cert needs vault.client-cert-file and vault.client-key-file"
                            .to_owned(),
                    );
                }
                Some(AuthConfig::Cert {
                    mount: mount("cert"),
                    role: a.role.clone(),
                })
            }
            "token" => match a.token_file.clone() {
                Some(file) => Some(AuthConfig::Token { file }),
                None => {
                    errors.push("auth: token needs token-file".to_owned());
                    None
                }
            },
            other => {
                errors.push(format!(
                    "auth.method: {other:?} is not one of approle, jwt, cert, token"
                ));
                None
            }
        };

        let mode = u32::from_str_radix(raw.socket.mode.trim_start_matches("0o"), 8)
            .map_err(|_| errors.push(format!("socket.mode: {:?} is not octal", raw.socket.mode)))
            .unwrap_or(0o660);
        if mode & 0o007 != 0 {
            errors.push(format!("socket.mode: {mode:o} lets any local user connect"));
        }
        let owner = raw
            .socket
            .owner
            .as_deref()
            .and_then(|o| parse_id("socket.owner", o, "/etc/passwd", &mut errors));
        let group = raw
            .socket
            .group
            .as_deref()
            .and_then(|g| parse_id("socket.group", g, "/etc/group", &mut errors));

        let metrics_listen = raw.metrics.listen.as_deref().and_then(|l| match l.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errors.push(format!("metrics.listen: {l:?} is not ip:port"));
                None
            }
        });

        for ((name, p), (_, default_ttl, max_ttl)) in raw.profiles.into_iter().zip(profile_ttls) {
            let ctx = format!("profiles.{name}");
            let need = |field: &str, v: Option<String>, errors: &mut Vec<String>| {
                v.unwrap_or_else(|| {
                    errors.push(format!("{ctx}: kind {} needs {field}", p.kind));
                    String::new()
                })
            };
            let kind = match p.kind.as_str() {
                "database" => Some(ProfileKind::Database {
                    mount: p.mount.clone().unwrap_or_else(|| "database".to_owned()),
                    role: need("role", p.role.clone(), &mut errors),
                }),
                "token" => Some(ProfileKind::Token {
                    policies: p.policies.clone(),
                    num_uses: p.num_uses,
                }),
                "kv2" => Some(ProfileKind::Kv2 {
                    mount: p.mount.clone().unwrap_or_else(|| "secret".to_owned()),
                    path: need("path", p.path.clone(), &mut errors),
                }),
                "pki" => Some(ProfileKind::Pki {
                    mount: p.mount.clone().unwrap_or_else(|| "pki".to_owned()),
                    role: need("role", p.role.clone(), &mut errors),
                    common_name: need("common-name", p.common_name.clone(), &mut errors),
                }),
                "generic" => Some(ProfileKind::Generic {
                    path: need("path", p.path.clone(), &mut errors),
                }),
                other => {
                    errors.push(format!(
                        "{ctx}.kind: {other:?} is not one of database, token, kv2, pki, generic"
                    ));
                    None
                }
            };
            if default_ttl > max_ttl {
                errors.push(format!("{ctx}: default-ttl is longer than max-ttl"));
            }
            if max_ttl < Duration::from_secs(1) {
                errors.push(format!("{ctx}: max-ttl must be at least 1s"));
            }
            if p.allow.uids.is_empty() && p.allow.gids.is_empty() {
                errors.push(format!(
                    "{ctx}.allow: list at least one uid or gid (an empty allow-list would admit every caller)"
                ));
            }
            if !p.allow.claims.is_empty() && raw.caller_jwt.is_none() {
                errors.push(format!("{ctx}.allow.claims needs a [caller-jwt] section"));
            }
            for var in p.env.values() {
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    errors.push(format!("{ctx}.env: {var:?} is not a valid variable name"));
                }
            }
            if let Some(kind) = kind {
                profiles.insert(
                    name.clone(),
                    Profile {
                        name,
                        kind,
                        default_ttl,
                        max_ttl,
                        env: p.env,
                        allow: Allow {
                            uids: p.allow.uids.into_iter().collect(),
                            gids: p.allow.gids.into_iter().collect(),
                            claims: p
                                .allow
                                .claims
                                .into_iter()
                                .map(|(k, v)| (k, v.into_iter().collect()))
                                .collect(),
                        },
                    },
                );
            }
        }

        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        Ok(Config {
            vault: VaultConfig {
                address,
                ca_file: raw.vault.ca_file,
                namespace: raw.vault.namespace,
                client_identity,
                request_timeout,
            },
            auth: auth.expect("auth errors are reported above"),
            socket: SocketConfig {
                path: raw.socket.path,
                mode,
                owner,
                group,
            },
            state_dir: raw.state.dir,
            audit_log: raw.state.audit_log,
            metrics_listen,
            caller_jwt: raw.caller_jwt.map(|c| CallerJwtConfig {
                mount: c.mount,
                role: c.role,
            }),
            admin_uids: raw.admin_uids.into_iter().collect(),
            profiles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
admin-uids = [1000]
[vault]
address = "http://127.0.0.1:8200/"
[auth]
method = "approle"
role-id-file = "/r"
secret-id-file = "/s"
[profiles.db]
kind = "database"
role = "build"
default-ttl = "10m"
max-ttl = "1h"
env = { username = "PGUSER", password = "PGPASSWORD" }
allow = { uids = [1000] }
"#;

    #[test]
    fn parses_a_good_config() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.vault.address, "http://127.0.0.1:8200");
        let db = &c.profiles["db"];
        assert_eq!(db.default_ttl, Duration::from_secs(600));
        assert!(matches!(db.kind, ProfileKind::Database { ref role, .. } if role == "build"));
        assert_eq!(c.socket.mode, 0o660);
    }

    #[test]
    fn reports_every_problem_together() {
        let bad = r#"
[vault]
address = "127.0.0.1:8200"
[auth]
method = "approle"
[profiles.db]
kind = "database"
default-ttl = "2h"
max-ttl = "1h"
"#;
        let ConfigError::Invalid(errors) = Config::parse(bad).unwrap_err() else {
            panic!()
        };
        assert_eq!(errors.len(), 5, "{errors:#?}");
    }

    #[test]
    fn the_packaged_example_is_valid() {
        let c = Config::parse(include_str!("../../packaging/agent.toml")).unwrap();
        assert_eq!(c.profiles.len(), 5);
        assert!(c.caller_jwt.is_some());
    }

    #[test]
    fn rejects_unknown_fields() {
        let bad = GOOD.replace("[vault]", "[vault]\nadress = \"x\"");
        assert!(matches!(Config::parse(&bad), Err(ConfigError::Parse(_))));
    }
}

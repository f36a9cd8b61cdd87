//! `keyward serve --config FILE`: the daemon's configuration.
//!
//! Read in two stages like `keyward.toml`: [`RawServeConfig`] (serde, unknown keys rejected)
//! becomes a typed [`ServeConfig`], with every problem reported together, each naming the file,
//! the line and the key. The daemon refuses to start on an error, and a SIGHUP reload that fails
//! keeps the configuration it has. `packaging/keyward.toml` documents every key.

use crate::config::{Config, RawAllowlist, RawConfig, RawRules, RawScan, line_of, parse_toml};
use crate::finding::SourceKind;
use anyhow::{Result, bail};
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawServeConfig {
    state_dir: Option<String>,
    store: Option<String>,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    scan: RawServeScan,
    #[serde(default)]
    queue: RawQueue,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    allowlist: RawAllowlist,
    #[serde(default)]
    repository: Vec<Spanned<RawRepository>>,
    docker: Option<Spanned<RawDocker>>,
    #[serde(default)]
    drop_directory: Vec<Spanned<RawDrop>>,
    #[serde(default)]
    registry: Vec<Spanned<RawRegistry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawApi {
    listen: Option<Vec<Spanned<String>>>,
    socket: Option<String>,
    token_file: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawServeScan {
    workers: Option<usize>,
    threads: Option<usize>,
    max_file_size: Option<u64>,
    decode_base64: Option<bool>,
    shutdown_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawQueue {
    lease: Option<Spanned<String>>,
    claim_interval: Option<Spanned<String>>,
    retry_min: Option<Spanned<String>>,
    retry_max: Option<Spanned<String>>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRepository {
    name: Spanned<String>,
    path: String,
    poll_interval: Option<String>,
    #[serde(default = "yes")]
    notify: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDocker {
    #[serde(default = "docker_name")]
    name: Spanned<String>,
    socket: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDrop {
    name: Spanned<String>,
    path: String,
    poll_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRegistry {
    name: Spanned<String>,
    registry: String,
    repository: String,
    #[serde(default)]
    insecure: bool,
    poll_interval: Option<String>,
}

fn yes() -> bool {
    true
}

fn docker_name() -> Spanned<String> {
    Spanned::new(0..0, "docker".to_owned())
}

/// The HTTP API's listeners.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// TCP listeners.
    pub listen: Vec<SocketAddr>,
    /// The local socket (the post-receive hook and `keyward findings` use it).
    pub socket: Option<PathBuf>,
    /// Bearer token file; required when a listener is not on loopback. Read at start.
    pub token_file: Option<PathBuf>,
    /// Certificate chain and private key (PEM) for the non-loopback listeners: with them those
    /// listeners speak HTTPS only.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The job queue's timing.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// A claimed job's lease: a daemon that stops renewing it (it died) loses the job to another
    /// after this long.
    pub lease: Duration,
    /// How often an idle worker looks for jobs other daemons queued (local ones wake it at once).
    pub claim_interval: Duration,
    /// Back-off after the first failure; doubles per attempt up to `retry_max`.
    pub retry_min: Duration,
    /// Longest back-off.
    pub retry_max: Duration,
    /// Attempts before a job is marked failed for good (the next change queues a new one).
    pub max_attempts: u32,
}

/// What a configured source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A local clone or bare repository.
    Git {
        /// Its path.
        path: PathBuf,
        /// Watch its refs with file notification (polling runs anyway).
        notify: bool,
    },
    /// The host's Docker engine: every image it builds, pulls, loads or tags.
    Docker {
        /// The engine's socket.
        socket: PathBuf,
    },
    /// A directory where `docker save` archives and OCI layouts land.
    Drop {
        /// Its path.
        path: PathBuf,
    },
    /// A registry repository, polled for new tags and digests.
    Registry {
        /// `host:port`.
        registry: String,
        /// Repository name.
        repository: String,
        /// Plain HTTP.
        insecure: bool,
    },
}

/// One configured source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// Its name: unique, used in the API, in metrics labels and in the store.
    pub name: String,
    /// What it is.
    pub spec: SourceSpec,
    /// How often it is checked for new content without a notification.
    pub poll_interval: Duration,
}

impl SourceConfig {
    /// The kind of findings it produces.
    pub fn kind(&self) -> SourceKind {
        match self.spec {
            SourceSpec::Git { .. } => SourceKind::Git,
            _ => SourceKind::Image,
        }
    }

    /// The job kind (`git`, `docker`, `drop`, `registry`).
    pub fn job_kind(&self) -> &'static str {
        match self.spec {
            SourceSpec::Git { .. } => "git",
            SourceSpec::Docker { .. } => "docker",
            SourceSpec::Drop { .. } => "drop",
            SourceSpec::Registry { .. } => "registry",
        }
    }
}

/// Where the findings store is: a SQLite path or a PostgreSQL URL, which may hold a password, so
/// `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSpec(pub String);

impl StoreSpec {
    /// The spec itself (for opening the store only).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::redact_spec(&self.0))
    }
}

/// The typed configuration.
#[derive(Debug)]
pub struct ServeConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Where the daemon keeps its state (the SQLite store, git scan state).
    pub state_dir: PathBuf,
    /// `postgres://…`, or a SQLite file path.
    pub store: StoreSpec,
    /// Listeners.
    pub api: ApiConfig,
    /// Scans run at once.
    pub workers: usize,
    /// Threads each scan uses.
    pub threads: usize,
    /// Largest file or blob scanned.
    pub max_file_size: u64,
    /// How long SIGTERM waits for running scans before it requeues them and exits.
    pub shutdown_timeout: Duration,
    /// Queue timing.
    pub queue: QueueConfig,
    /// Rules and allowlists (`[rules]`, `[allowlist]`, as in keyward.toml).
    pub scan: Config,
    /// The sources, in file order.
    pub sources: Vec<SourceConfig>,
}

/// The default TCP listener: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9641";

impl ServeConfig {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// Every problem in the file, each naming the file, line and key.
    pub fn load(path: &Path) -> Result<ServeConfig> {
        let text = fs_err::read_to_string(path)?;
        ServeConfig::parse(path, &text)
    }

    /// Parses `text`, read from `path` (relative paths in it are relative to its directory).
    ///
    /// # Errors
    /// As [`ServeConfig::load`].
    pub fn parse(path: &Path, text: &str) -> Result<ServeConfig> {
        let raw: RawServeConfig = parse_toml(path, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let file = path.display().to_string();
        let at = |span: std::ops::Range<usize>| format!("{file}:{}", line_of(text, span.start));
        let dur = |problems: &mut Vec<String>,
                   key: &str,
                   v: Option<&Spanned<String>>,
                   default: Duration|
         -> Duration {
            match v {
                None => default,
                Some(s) => match humantime::parse_duration(s.get_ref()) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => {
                        problems.push(format!(
                            "{}: key `{key}`: must be more than 0",
                            at(s.span())
                        ));
                        default
                    }
                    Err(e) => {
                        problems.push(format!(
                            "{}: key `{key}`: {:?} is not a duration ({e}; e.g. \"30s\", \"5m\")",
                            at(s.span()),
                            s.get_ref()
                        ));
                        default
                    }
                },
            }
        };
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let state_dir = resolve(raw.state_dir.as_deref().unwrap_or("/var/lib/keyward"));
        let store = match raw.store.as_deref() {
            None | Some("sqlite") => state_dir.join("findings.sqlite").display().to_string(),
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                s.to_owned()
            }
            Some(s) => resolve(s).display().to_string(),
        };

        let mut listen = Vec::new();
        let listen_raw = raw
            .api
            .listen
            .unwrap_or_else(|| vec![Spanned::new(0..0, DEFAULT_LISTEN.to_owned())]);
        for l in &listen_raw {
            match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => listen.push(a),
                Err(e) => problems.push(format!(
                    "{}: key `api.listen`: {:?} is not an address:port ({e})",
                    at(l.span()),
                    l.get_ref()
                )),
            }
        }
        let token_file = raw.api.token_file.as_deref().map(resolve);
        if token_file.is_none()
            && let Some(a) = listen.iter().find(|a| !a.ip().is_loopback())
        {
            problems.push(format!(
                "{file}: key `api.token-file`: required because `api.listen` has {a}, which is \
                 not a loopback address (requests there must carry a bearer token)"
            ));
        }
        let tls = match (raw.api.tls_cert.as_deref(), raw.api.tls_key.as_deref()) {
            (Some(c), Some(k)) => Some((resolve(c), resolve(k))),
            (None, None) => None,
            _ => {
                problems.push(format!(
                    "{file}: keys `api.tls-cert` and `api.tls-key`: give both or neither"
                ));
                None
            }
        };
        let api = ApiConfig {
            listen,
            socket: raw.api.socket.as_deref().map(resolve),
            token_file,
            tls,
        };

        let queue = QueueConfig {
            lease: dur(
                &mut problems,
                "queue.lease",
                raw.queue.lease.as_ref(),
                Duration::from_secs(30),
            ),
            claim_interval: dur(
                &mut problems,
                "queue.claim-interval",
                raw.queue.claim_interval.as_ref(),
                Duration::from_secs(2),
            ),
            retry_min: dur(
                &mut problems,
                "queue.retry-min",
                raw.queue.retry_min.as_ref(),
                Duration::from_secs(5),
            ),
            retry_max: dur(
                &mut problems,
                "queue.retry-max",
                raw.queue.retry_max.as_ref(),
                Duration::from_secs(600),
            ),
            max_attempts: raw.queue.max_attempts.unwrap_or(5).max(1),
        };
        let shutdown_timeout = dur(
            &mut problems,
            "scan.shutdown-timeout",
            raw.scan.shutdown_timeout.as_ref(),
            Duration::from_secs(10),
        );

        let mut sources = Vec::new();
        let mut names = HashSet::new();
        let mut source = |problems: &mut Vec<String>,
                          span: std::ops::Range<usize>,
                          table: &str,
                          name: &Spanned<String>,
                          poll: Option<&str>,
                          default_poll: Duration,
                          spec: SourceSpec| {
            let name_at = if name.span().end > 0 {
                name.span()
            } else {
                span.clone()
            };
            let name = name.get_ref().as_str();
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_name {
                problems.push(format!(
                    "{}: [[{table}]] key `name`: {name:?} must be letters, digits, `-`, `_` or `.`",
                    at(name_at.clone())
                ));
            } else if !names.insert(name.to_owned()) {
                problems.push(format!(
                    "{}: [[{table}]] key `name`: {name:?} is used by another source",
                    at(name_at)
                ));
            }
            let poll_interval = match poll.map(humantime::parse_duration) {
                None => default_poll,
                Some(Ok(d)) if !d.is_zero() => d,
                Some(_) => {
                    problems.push(format!(
                        "{}: [[{table}]] key `poll-interval`: {:?} is not a duration above 0",
                        at(span),
                        poll.unwrap_or_default()
                    ));
                    default_poll
                }
            };
            sources.push(SourceConfig {
                name: name.to_owned(),
                spec,
                poll_interval,
            });
        };
        for r in &raw.repository {
            let v = r.get_ref();
            source(
                &mut problems,
                r.span(),
                "repository",
                &v.name,
                v.poll_interval.as_deref(),
                Duration::from_secs(60),
                SourceSpec::Git {
                    path: resolve(&v.path),
                    notify: v.notify,
                },
            );
        }
        if let Some(d) = &raw.docker
            && d.get_ref().enabled
        {
            let v = d.get_ref();
            let socket = match v.socket.as_deref() {
                Some(p) => resolve(p),
                None => crate::watch::docker_events::default_socket().unwrap_or_else(|e| {
                    problems.push(format!(
                        "{}: [docker] key `socket`: not given, and {e:#}",
                        at(d.span())
                    ));
                    PathBuf::new()
                }),
            };
            source(
                &mut problems,
                d.span(),
                "docker",
                &v.name,
                None,
                Duration::from_secs(300),
                SourceSpec::Docker { socket },
            );
        }
        for r in &raw.drop_directory {
            let v = r.get_ref();
            source(
                &mut problems,
                r.span(),
                "drop-directory",
                &v.name,
                v.poll_interval.as_deref(),
                Duration::from_secs(10),
                SourceSpec::Drop {
                    path: resolve(&v.path),
                },
            );
        }
        for r in &raw.registry {
            let v = r.get_ref();
            source(
                &mut problems,
                r.span(),
                "registry",
                &v.name,
                v.poll_interval.as_deref(),
                Duration::from_secs(300),
                SourceSpec::Registry {
                    registry: v.registry.clone(),
                    repository: v.repository.clone(),
                    insecure: v.insecure,
                },
            );
        }

        let mut scan = Config::default();
        let rules = RawConfig {
            rules: raw.rules,
            allowlist: raw.allowlist,
            scan: RawScan {
                max_file_size: raw.scan.max_file_size,
                decode_base64: raw.scan.decode_base64,
            },
        };
        if let Err(e) = scan.merge_raw(path, text, rules) {
            problems.push(format!("{e:#}"));
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(ServeConfig {
            path: path.to_path_buf(),
            state_dir,
            store: StoreSpec(store),
            api,
            workers: raw.scan.workers.unwrap_or(2).max(1),
            threads: raw.scan.threads.unwrap_or(cores).max(1),
            max_file_size: raw.scan.max_file_size.unwrap_or(512 << 20),
            shutdown_timeout,
            queue,
            scan,
            sources,
        })
    }

    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../packaging/keyward.toml");
        let c = ServeConfig::parse(Path::new("/etc/keyward/keyward.toml"), text).unwrap();
        assert_eq!(
            c.api.listen,
            vec![DEFAULT_LISTEN.parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.store.as_str(), "/var/lib/keyward/findings.sqlite");
        let pg =
            ServeConfig::parse(Path::new("k.toml"), "store = \"postgres://u:pw@db/k\"\n").unwrap(); // keyward:allow test fixture, not a credential
        assert_eq!(format!("{:?}", pg.store), "postgres://u:***@db/k");
        assert!(c.sources.iter().any(|s| s.job_kind() == "git"));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = ServeConfig::parse(
            Path::new("k.toml"),
            "[queue]\nlease = \"soon\"\n\n[[repository]]\nname = \"a b\"\npath = \"/x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("k.toml:2: key `queue.lease`: \"soon\" is not a duration"),
            "{e}"
        );
        assert!(e.contains("k.toml:5: [[repository]] key `name`"), "{e}");
        let e = ServeConfig::parse(Path::new("k.toml"), "[api]\nlisten = [\"0.0.0.0:1\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `api.token-file`: required"), "{e}");
        let e = ServeConfig::parse(
            Path::new("k.toml"),
            "[[repository]]\nname = \"a\"\npth = \"/x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("k.toml:3: unknown field `pth`"), "{e}");
    }
}

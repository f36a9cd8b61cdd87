//! Command-line interface definitions (clap). Behaviour lives in `cmd/`.

use crate::report::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// keyward: find leaked credentials in directories, build logs, git history and images.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit status: 0 no findings, 1 findings (see --exit-code), 2 error, 64 bad usage or config.\n\
Logging: -v/-q, or KEYWARD_LOG=debug (overrides both). Logs go to stderr."
)]
pub struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr; no progress line or summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
// NOTE: parsed once per process; boxing the scan arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan something for secrets.
    #[command(subcommand)]
    Scan(ScanCommand),
    /// List and check rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Work with keyward.toml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Git hooks: pre-commit, pre-push, pre-receive (and installing them).
    #[command(subcommand, after_help = HOOK_HELP)]
    Hook(HookCommand),
    /// Run the daemon: watch repositories and images, keep findings, serve the API and metrics.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Triage the daemon's findings (list, show, ignore, resolve) over its API.
    #[command(subcommand, after_help = FINDINGS_HELP)]
    Findings(FindingsCommand),
}

const SERVE_HELP: &str = "Examples:
  keyward serve --config /etc/keyward/keyward.toml
  keyward serve --config /etc/keyward/keyward.toml --check    check config and rules, bind nothing
Signals: SIGHUP reloads config and rules (a bad file keeps the old ones); SIGTERM stops, putting
running scans back in the queue after [scan] shutdown-timeout.
The example config with every key: packaging/keyward.toml.";

const FINDINGS_HELP: &str = "Examples:
  keyward findings list --severity critical
  keyward findings show 93145ee4aeaca419a05364a3d5ad0af6
  keyward findings ignore 93145ee4… --reason \"test fixture, revoked\"
  keyward findings resolve 93145ee4… --reason \"rotated on 2026-12-01\"
The daemon is reached on its local socket (--socket, KEYWARD_SOCKET) or --url http://HOST:PORT
with --token-file.";

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The daemon's config file.
    #[arg(
        long,
        short = 'c',
        env = "KEYWARD_SERVE_CONFIG",
        default_value = "/etc/keyward/keyward.toml"
    )]
    pub config: PathBuf,
    /// Check the config and rules, print what is wrong, and exit (0 valid, 64 not).
    #[arg(long)]
    pub check: bool,
}

/// How `keyward findings` reaches the daemon.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The daemon's local socket.
    #[arg(
        long,
        env = "KEYWARD_SOCKET",
        default_value = "/run/keyward/keyward.sock",
        global = true
    )]
    pub socket: PathBuf,
    /// The daemon's HTTP address instead (http://HOST:PORT).
    #[arg(long, env = "KEYWARD_URL", global = true)]
    pub url: Option<String>,
    /// A file holding the bearer token (for a non-loopback listener).
    #[arg(long, env = "KEYWARD_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

/// `findings …`.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// Findings, newest first.
    List {
        /// open, ignored, resolved or revoked (default: open).
        #[arg(long, default_value = "open")]
        status: String,
        /// critical, high, medium or low.
        #[arg(long)]
        severity: Option<String>,
        /// A rule id.
        #[arg(long)]
        rule: Option<String>,
        /// A source name or kind (git, image).
        #[arg(long)]
        source: Option<String>,
        /// First seen since (unix seconds or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Lowest confidence listed: `medium` (the default, as scan reports), `high`, or `low`
        /// (everything, test fixtures and examples too).
        #[arg(long, value_enum, default_value_t = ConfidenceArg::Medium, value_name = "LEVEL")]
        confidence: ConfidenceArg,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One finding with every location and its status history.
    Show {
        /// Its fingerprint.
        fingerprint: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Mark a finding ignored (a false positive, an accepted risk).
    Ignore(TriageArgs),
    /// Mark a finding resolved (the credential was rotated or revoked).
    Resolve(TriageArgs),
    /// Open a finding again.
    Reopen(TriageArgs),
}

/// `findings ignore|resolve|reopen`.
#[derive(Debug, Args)]
pub struct TriageArgs {
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// Why (kept in the finding's history).
    #[arg(long, short = 'r')]
    pub reason: String,
    /// Who (default: $USER).
    #[arg(long, env = "USER")]
    pub by: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

const HOOK_HELP: &str = "Examples:
  keyward hook install --pre-commit --pre-push        in a clone
  keyward hook install --pre-receive --repo /srv/git/app.git
  keyward hook uninstall
See daemon/README-hooks.md.";

/// `hook …`.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Scan the lines the commit adds (the staged content against HEAD); exit 1 to block.
    PreCommit(HookArgs),
    /// Scan the commits being pushed that the remote does not have (git's pre-push input on
    /// stdin); exit 1 to block.
    PrePush {
        /// The remote's name (git passes it).
        remote: Option<String>,
        /// The remote's URL (git passes it).
        url: Option<String>,
        #[command(flatten)]
        args: HookArgs,
    },
    /// Server side, in a bare repository: scan what a push introduces (`OLD NEW REF` lines on
    /// stdin, objects in git's quarantine included); exit 1 to reject.
    PreReceive(PreReceiveArgs),
    /// Ask the running keyward daemon (`keyward serve`) to scan the pushed refs now.
    PostReceive(PostReceiveArgs),
    /// Install hook scripts (core.hooksPath respected; an existing hook is chained, not
    /// overwritten).
    Install(InstallArgs),
    /// Remove the hook scripts `install` wrote (and restore the hooks they chained).
    Uninstall(InstallArgs),
}

/// `hook post-receive`.
#[derive(Debug, Args)]
pub struct PostReceiveArgs {
    /// The daemon's local socket.
    #[arg(
        long,
        env = "KEYWARD_SOCKET",
        default_value = "/run/keyward/keyward.sock"
    )]
    pub socket: PathBuf,
    /// Accepted for symmetry with the other hooks; the daemon's own config applies.
    #[arg(long, short = 'c', env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Options of every hook.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// Config file (keyward.toml). A `.keyward.toml` at the repository root is read too.
    #[arg(long, short = 'c', env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// What pre-receive does when a scan runs out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnTimeout {
    /// Reject the push (the safe default).
    Reject,
    /// Accept the push, with a warning that it was not fully scanned.
    Allow,
}

/// `hook pre-receive`.
#[derive(Debug, Args)]
pub struct PreReceiveArgs {
    /// Time budget for the scan, in seconds.
    #[arg(
        long,
        env = "KEYWARD_HOOK_TIME_BUDGET",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub time_budget: f64,
    /// Past the budget: reject the push, or allow it with a warning.
    #[arg(long, env = "KEYWARD_HOOK_ON_TIMEOUT", value_enum, default_value_t = OnTimeout::Reject)]
    pub on_timeout: OnTimeout,
    #[command(flatten)]
    pub args: HookArgs,
}

/// `hook install` / `hook uninstall`. Without a hook flag: pre-commit and pre-push in a clone,
/// pre-receive in a bare repository.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The pre-commit hook.
    #[arg(long)]
    pub pre_commit: bool,
    /// The pre-push hook.
    #[arg(long)]
    pub pre_push: bool,
    /// The pre-receive hook (server side).
    #[arg(long)]
    pub pre_receive: bool,
    /// The post-receive hook (server side): tells a running `keyward serve` to scan the push
    /// at once.
    #[arg(long)]
    pub post_receive: bool,
    /// The repository (default: the current directory).
    #[arg(long, default_value = ".", value_name = "PATH")]
    pub repo: PathBuf,
}

/// What to scan.
#[derive(Debug, Subcommand)]
pub enum ScanCommand {
    /// Scan files and directories (walked in parallel; `.git` skipped).
    #[command(
        after_help = "Examples:\n  keyward scan dir .\n  keyward scan dir --format sarif --output keyward.sarif src/ config/\n  keyward scan dir --baseline old.json --exit-code 3 ."
    )]
    Dir(DirArgs),
    /// Scan standard input (build logs, pipes) in constant memory. `keyward scan -` works too.
    #[command(alias = "-")]
    #[command(
        after_help = "Example:\n  ./build.sh 2>&1 | keyward scan stdin --label build-1234.log"
    )]
    Stdin(StdinArgs),
    /// Scan a git repository's whole history: every blob once, attributed to the commit that
    /// introduced it, plus commit and tag messages.
    #[command(after_help = GIT_HELP)]
    Git(GitArgs),
    /// Scan container images: every layer (deleted files too), the config and the history.
    #[command(after_help = IMAGE_HELP)]
    Image(Box<ImageArgs>),
}

/// `--confidence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfidenceArg {
    /// Show everything.
    Low,
    /// Show medium and high.
    Medium,
    /// Show only high.
    High,
}

impl From<ConfidenceArg> for keyward_detectors::Confidence {
    fn from(c: ConfidenceArg) -> Self {
        match c {
            ConfidenceArg::Low => keyward_detectors::Confidence::Low,
            ConfidenceArg::Medium => keyward_detectors::Confidence::Medium,
            ConfidenceArg::High => keyward_detectors::Confidence::High,
        }
    }
}

/// Options shared by every scan.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report here instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Put secrets in the report in clear. Without it, only redacted forms and fingerprints.
    #[arg(long)]
    pub show_secrets: bool,
    /// Config file (keyward.toml). A `.keyward.toml` in a scanned root is read too.
    #[arg(long, short = 'c', env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// An earlier json/jsonl report: secrets already in it (same fingerprint, wherever they now
    /// are) are not reported again.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Lowest confidence shown: `high` (structure-checked credentials), `medium` (the default:
    /// plausible credentials) or `low` (everything, test fixtures and examples too). Hidden
    /// findings are counted in the summary and do not set the exit status.
    #[arg(long, value_enum, default_value_t = ConfidenceArg::Medium, value_name = "LEVEL")]
    pub confidence: ConfidenceArg,
    /// One record per place instead of one per secret (json, jsonl and sarif; text groups
    /// always).
    #[arg(long)]
    pub per_location: bool,
    /// Extra rule file(s), in the built-in pack's format.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,
    /// Use only these rule ids (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub only: Vec<String>,
    /// Turn off these rule ids (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub disable: Vec<String>,
    /// Report matches whose offline validator (checksum, PEM, JWT) failed, instead of dropping them.
    #[arg(long)]
    pub keep_failed_validation: bool,
    /// Do not decode base64 runs to look inside them.
    #[arg(long)]
    pub no_decode: bool,
    /// Worker threads (default: all cores).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Exit status when there are findings.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub exit_code: i32,
    /// Print the closing summary (files, bytes, MB/s, findings by severity) on stderr even when
    /// stderr is not a terminal.
    #[arg(long)]
    pub summary: bool,
    /// Colour the text report: auto (when stdout is a terminal), always, never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
}

/// `scan dir`.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Files and directories to scan.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Skip what .gitignore/.ignore files ignore (off by default: ignored files such as .env
    /// are where secrets hide).
    #[arg(long)]
    pub respect_gitignore: bool,
    /// Scan files that look binary (a NUL byte in the first 8 KiB).
    #[arg(long)]
    pub scan_binary: bool,
    /// Skip files larger than this many bytes (default 512 MiB; suffixes K, M, G allowed).
    #[arg(long, value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    /// Open archives (zip, jar, war, whl, tar, tar.gz, npm .tgz) this many levels deep and scan
    /// their members (`app.jar!config/app.properties`); 0 opens none. Members and archives are
    /// bounded by size (`--max-archive-size`), total expansion (1 GiB) and compression ratio.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub archive_depth: u32,
    /// Largest archive or archive member read into memory (default 64M).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_archive_size: Option<u64>,
    #[command(flatten)]
    pub scan: ScanArgs,
}

const GIT_HELP: &str = "Examples:
  keyward scan git .                          every ref: branches, tags, remotes, stash
  keyward scan git --include-unreachable repo.git
  keyward scan git --range origin/main..HEAD .   CI: only what a push adds
  keyward scan git --state .keyward-git.state .  incremental: only objects new since last run
  keyward scan git --stats-json stats.json .     counts (blobs scanned, bytes, ...) as JSON";

/// `scan git`.
#[derive(Debug, Args)]
pub struct GitArgs {
    /// A working clone or a bare repository.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Also scan objects that no ref reaches (commits force-pushed away, dropped stashes).
    #[arg(long)]
    pub include_unreachable: bool,
    /// Only blobs introduced by commits not reachable from REV (`REV..` over every ref).
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,
    /// Only blobs introduced by commits in A..B (reachable from B, not from A).
    #[arg(long, value_name = "A..B")]
    pub range: Option<String>,
    /// State file: skip objects an earlier run with the same rules scanned, and record what
    /// this run scanned.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Write what the scan did (blobs scanned, bytes, commits, submodules, …) as JSON here.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Scan blobs that look binary (a NUL byte in the first 8 KiB).
    #[arg(long)]
    pub scan_binary: bool,
    /// Skip blobs larger than this many bytes (default 512 MiB; suffixes K, M, G allowed).
    #[arg(long, value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    #[command(flatten)]
    pub scan: ScanArgs,
}

/// `scan stdin`.
#[derive(Debug, Args)]
pub struct StdinArgs {
    /// Name to put in findings' `path` (e.g. the build log's name).
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub scan: ScanArgs,
}

const IMAGE_HELP: &str = "Targets (skopeo's transports):\n  docker-archive:FILE        a `docker save` tarball\n  oci:DIR[:TAG]              an OCI image layout\n  oci-archive:FILE           an OCI layout as a tar\n  docker-daemon:IMAGE[:TAG]  the local Docker engine (DOCKER_HOST honoured)\n  docker://HOST/REPO:TAG     a registry (or @sha256:DIGEST)\n\nExamples:\n  keyward scan image docker-daemon:myapp:latest\n  keyward scan image --format jsonl docker-archive:myapp.tar\n  keyward scan image --insecure --platform linux/arm64 docker://127.0.0.1:5000/team/app:1.4";

/// `scan image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Images to scan; a layer shared between them is scanned once.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Only these platforms of a multi-platform image (`os/arch[/variant]`, repeatable;
    /// default: all).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Vec<String>,
    /// Registry user name (with --password; otherwise ~/.docker/config.json is read).
    #[arg(long, env = "KEYWARD_REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Registry password or token. Prefer the environment variable to the flag.
    #[arg(long, env = "KEYWARD_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Docker config file with registry credentials (default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Talk plain HTTP to the registry (local test registries).
    #[arg(long)]
    pub insecure: bool,
    /// The Docker engine (`unix:///var/run/docker.sock`, `tcp://HOST:PORT`).
    #[arg(long, env = "DOCKER_HOST", value_name = "URL")]
    pub docker_host: Option<String>,
    /// Levels of archives (zip, jar, war, whl, tar, tar.gz, npm .tgz) opened inside layers;
    /// 0 opens none.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub archive_depth: u32,
    /// Largest archive or archive member read into memory (default 64M).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_archive_size: Option<u64>,
    /// Skip files in layers larger than this (default 512 MiB; suffixes K, M, G).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_file_size: Option<u64>,
    /// Scan files that look binary.
    #[arg(long)]
    pub scan_binary: bool,
    #[command(flatten)]
    pub scan: ScanArgs,
}

/// `rules …`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules (built-in and from --rules files).
    List {
        /// Extra rule file(s).
        #[arg(long = "rules", value_name = "FILE")]
        rule_files: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check rule files: they load, and each rule's examples match and negatives do not.
    Check {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a documented example keyward.toml.
    Example,
    /// Check a config file (and the rule files it names) without scanning anything.
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// `100`, `64K`, `10M`, `2G` (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n.saturating_mul(mult))
        .map_err(|_| format!("{s:?} is not a size (e.g. 1048576, 64K, 10M, 2G)"))
}

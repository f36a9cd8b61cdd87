//! Environment variable names and well-known paths, in one place.

/// Log filter; overrides `-v`/`-q`.
pub const KEYWARD_LOG: &str = "KEYWARD_LOG";
/// Socket path for `run`, `status`, `revoke`.
pub const KEYWARD_AGENT_SOCKET: &str = "KEYWARD_AGENT_SOCKET";
/// A build's JWT (CI id token) that `run` presents to the agent.
pub const KEYWARD_BUILD_JWT: &str = "KEYWARD_BUILD_JWT";
/// Set for the command by `run`: the session id.
pub const KEYWARD_SESSION: &str = "KEYWARD_SESSION";
/// Set for the command by `run --files`: the private credentials directory.
pub const KEYWARD_CREDENTIALS_DIR: &str = "KEYWARD_CREDENTIALS_DIR";
/// systemd socket activation.
pub const LISTEN_FDS: &str = "LISTEN_FDS";
/// systemd socket activation.
pub const LISTEN_PID: &str = "LISTEN_PID";
/// CI variables copied into the session's (audited, untrusted) build metadata.
pub const BUILD_META_VARS: &[&str] = &[
    "CI_JOB_ID",
    "CI_PIPELINE_ID",
    "CI_PROJECT_PATH",
    "CI_COMMIT_REF_NAME",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ID",
    "GITHUB_REF",
    "BUILD_ID",
];
/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/keyward-agent/agent.sock";

/// Reads environment variables; tests pass a map instead of mutating the process env.
pub trait Env {
    /// The value of `name`, if set and valid UTF-8.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct SystemEnv;

impl Env for SystemEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, name).cloned()
    }
}

//! keyward-agent: a broker that hands builds short-lived Vault / OpenBao credentials and always
//! revokes them — when the build ends, is killed, or after the agent itself crashed.
//!
//! The pieces, in the order a session meets them:
//! - [`config`]: TOML in two stages ([`config::RawConfig`] → [`config::Config`]);
//! - [`vault`] + [`auth`]: the HTTP client and the agent's own login, renewal, re-login;
//! - [`api`]: the Unix socket protocol; callers are identified by `SO_PEERCRED`;
//! - [`session`]: open → session token → [`ledger`] → [`profile`] issue → hand out; end →
//!   revoke with `sync` and verify → retry with [`backoff`] what failed;
//! - [`audit`]: hash-chained JSON lines; [`metrics`]: Prometheus.
//!
//! Secret values live only in [`secret::Secret`]:
//!
//! ```
//! use keyward_agent::secret::Secret;
//! let s = Secret::from_str_copy("s.abcdef");
//! assert_eq!(format!("{s:?}"), "[redacted]");
//! ```

pub mod api;
pub mod audit;
pub mod auth;
pub mod backoff;
pub mod cmd;
pub mod config;
pub mod env_vars;
pub mod lease;
pub mod ledger;
pub mod metrics;
pub mod profile;
pub mod secret;
pub mod session;
pub mod vault;

//! `keyward-agent serve`: log in, recover the ledger, listen.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use super::exit;
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::config::{Config, SocketConfig};
use crate::env_vars::{self, Env};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::session::Agent;
use crate::vault::VaultClient;

/// How long shutdown waits for revocations before giving up (the ledger keeps the rest).
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

fn listener(cfg: &SocketConfig, env: &impl Env) -> anyhow::Result<tokio::net::UnixListener> {
    let pid = rustix::process::getpid().as_raw_nonzero().get().to_string();
    if env.get(env_vars::LISTEN_PID).as_deref() == Some(pid.as_str())
        && env
            .get(env_vars::LISTEN_FDS)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            >= 1
    {
        use std::os::fd::FromRawFd as _;
        // SAFETY: systemd passes the first activated socket as fd 3 (SD_LISTEN_FDS_START) and
        // LISTEN_PID names this process, so fd 3 is ours and open; nothing else owns it.
        #[allow(unsafe_code)]
        let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
        std_listener.set_nonblocking(true)?;
        info!("Using the systemd-activated socket.");
        return Ok(tokio::net::UnixListener::from_std(std_listener)?);
    }
    let path = &cfg.path;
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another agent is listening on {}", path.display());
        }
        fs_err::remove_file(path)?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(cfg.mode))?;
    if cfg.owner.is_some() || cfg.group.is_some() {
        std::os::unix::fs::chown(path, cfg.owner, cfg.group)
            .with_context(|| format!("chown {}", path.display()))?;
    }
    info!(path = %path.display(), mode = format!("{:o}", cfg.mode), "Listening.");
    Ok(l)
}

/// Runs the agent until SIGTERM/SIGINT.
pub async fn serve(cfg: Config, env: &impl Env) -> anyhow::Result<u8> {
    let vault = VaultClient::new(&cfg.vault)?;
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(Metrics::register(&registry));
    let auth = Arc::new(Auth::new(cfg.auth.clone(), vault.clone()));
    let audit = AuditLog::open(&cfg.audit_log)
        .with_context(|| format!("opening the audit log {}", cfg.audit_log.display()))?;
    let ledger = Ledger::open(&cfg.state_dir)
        .with_context(|| format!("opening the ledger in {}", cfg.state_dir.display()))?;
    let socket = listener(&cfg.socket, env)?;
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?,
        ),
        None => None,
    };
    let agent = Arc::new(Agent::new(
        cfg,
        vault,
        auth.clone(),
        ledger,
        audit,
        metrics.clone(),
    ));

    if let Err(e) = auth.login().await {
        // Keep going: orphan revocations and sessions wait for `maintain` to log in.
        warn!(error = %e, "First login failed; retrying in the background.");
    }
    tokio::spawn(auth.clone().maintain(metrics.clone()));
    let orphans = agent.recover();
    if orphans > 0 {
        info!(
            sessions = orphans,
            "Revoking credentials left by an earlier run."
        );
    }
    if let Some(l) = metrics_listener {
        tokio::spawn(crate::metrics::serve(l, metrics.clone()));
    }
    tokio::spawn(crate::api::server::serve(socket, agent.clone()));
    metrics.set_ready();
    info!("Agent ready.");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    info!("Shutting down; revoking live sessions.");
    match tokio::time::timeout(DRAIN_DEADLINE, agent.end_all("agent-shutdown")).await {
        Ok(n) => info!(sessions = n, "Live sessions revoked."),
        Err(_) => {
            warn!("Shutdown deadline reached; the ledger keeps what is left for the next start.");
        }
    }
    Ok(exit::OK)
}

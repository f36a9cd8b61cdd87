//! `keyward-agent run --profile NAME … -- COMMAND …`.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use keyward_detectors::Masker;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::api::Response;
use crate::api::client::Client;
use crate::env_vars::{self, Env};
use crate::secret::Secret;

/// `run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Profile to request (repeatable).
    #[arg(long = "profile", required = true)]
    pub profiles: Vec<String>,
    /// Session TTL (e.g. `10m`); capped by each profile's max TTL.
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub ttl: Option<Duration>,
    /// Write credentials as 0600 files in this new 0700 directory instead of env vars.
    #[arg(long)]
    pub files: Option<PathBuf>,
    /// File holding the build's JWT (CI id token); else `KEYWARD_BUILD_JWT`.
    #[arg(long)]
    pub jwt_file: Option<PathBuf>,
    /// Build metadata for the audit log (`KEY=VALUE`, repeatable).
    #[arg(long = "meta", value_parser = parse_kv)]
    pub meta: Vec<(String, String)>,
    /// Agent socket.
    #[arg(long, env = "KEYWARD_AGENT_SOCKET", default_value = env_vars::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Signals forwarded to the command.
const FORWARDED: &[(i32, &str)] = &[
    (1, "HUP"),
    (2, "INT"),
    (3, "QUIT"),
    (10, "USR1"),
    (12, "USR2"),
    (15, "TERM"),
];

/// Runs the command; returns its exit code (128+N when killed by signal N).
pub async fn run(args: RunArgs, env: &impl Env) -> anyhow::Result<u8> {
    let mut meta: BTreeMap<String, String> = env_vars::BUILD_META_VARS
        .iter()
        .filter_map(|k| env.get(k).map(|v| ((*k).to_owned(), v)))
        .collect();
    meta.extend(args.meta.iter().cloned());
    let jwt = match (&args.jwt_file, env.get(env_vars::KEYWARD_BUILD_JWT)) {
        (Some(f), _) => {
            Some(Secret::from_file(f).with_context(|| format!("reading {}", f.display()))?)
        }
        (None, Some(v)) => Some(Secret::new(v)),
        (None, None) => None,
    };
    let mut client = Client::connect(&args.socket).await?;
    let mut req = json!({"op": "open", "profiles": args.profiles, "meta": meta});
    if let Some(ttl) = args.ttl {
        req["ttl_secs"] = json!(ttl.as_secs());
    }
    let line = {
        let mut v = req;
        if let Some(j) = &jwt {
            v["jwt"] = json!(j.expose());
        }
        let line = Zeroizing::new(v.to_string().into_bytes());
        if let Some(serde_json::Value::String(s)) = v.get_mut("jwt") {
            zeroize::Zeroize::zeroize(s);
        }
        line
    };
    let (session, credentials) = match client.call(&line).await? {
        Response::Opened {
            session,
            credentials,
            ..
        } => (session, credentials),
        Response::Error { message, .. } => bail!("the agent refused: {message}"),
        other => bail!("unexpected response: {other:?}"),
    };
    drop(line);
    info!(session = %session, credentials = credentials.len(), "Session opened.");

    // Every issued value is masked in the command's output (also with --files: a build may
    // cat them).
    let masker = Arc::new(Masker::new(
        credentials.iter().map(|c| c.value.expose().as_bytes()),
    ));
    if masker.skipped_short() > 0 {
        warn!(
            count = masker.skipped_short(),
            min_len = keyward_detectors::MIN_MASK_LEN,
            "Some credential values are too short to be masked in the build output."
        );
    }

    let mut cmd = tokio::process::Command::new(&args.command[0]);
    // stdout and stderr are pipes through the masker, even when ours are a terminal: masking
    // matters more than the command seeing a TTY (it may turn colors or progress bars off).
    cmd.args(&args.command[1..])
        .env(env_vars::KEYWARD_SESSION, &session)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let files_dir = if let Some(dir) = &args.files {
        {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| {
                    format!(
                        "creating the private directory {} (it must not exist)",
                        dir.display()
                    )
                })?;
            for c in &credentials {
                let path = dir.join(&c.name);
                let mut f = fs_err::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(c.value.expose().as_bytes())?;
            }
            cmd.env(env_vars::KEYWARD_CREDENTIALS_DIR, dir);
            Some(dir.clone())
        }
    } else {
        for c in &credentials {
            cmd.env(&c.name, c.value.expose());
        }
        None
    };
    drop(credentials);
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // system calls (prctl, getppid); it allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            // If `run` dies (even by SIGKILL), the kernel kills the command too; the agent sees
            // the socket close and revokes.
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                // ESRCH: the parent is gone already (no allocation after fork).
                return Err(std::io::Error::from_raw_os_error(3));
            }
            Ok(())
        });
    }
    let spawned = cmd
        .spawn()
        .with_context(|| format!("starting {}", args.command[0].display()));
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            end_session(&mut client).await;
            cleanup(files_dir.as_ref());
            return Err(e);
        }
    };
    let pumps = [
        child
            .stdout
            .take()
            .map(|r| tokio::spawn(pump(Arc::clone(&masker), r, tokio::io::stdout()))),
        child
            .stderr
            .take()
            .map(|r| tokio::spawn(pump(Arc::clone(&masker), r, tokio::io::stderr()))),
    ];
    drop(masker);
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);

    let mut signals = Vec::new();
    for (n, _) in FORWARDED {
        signals.push((*n, signal(SignalKind::from_raw(*n))?));
    }
    let mut agent_gone = false;
    let status = loop {
        let next_signal = futures_select_signal(&mut signals);
        tokio::select! {
            s = child.wait() => break s?,
            n = next_signal => {
                if let (Some(pid), Some(sig)) = (pid, rustix::process::Signal::from_named_raw(n)) {
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
            msg = client.recv(), if !agent_gone => {
                if let Ok(Some(Response::Ended { reason })) = msg {
                    warn!(reason = %reason, "The agent ended the session; credentials are revoked.");
                } else {
                    warn!("Lost the connection to the agent; it revokes the session's credentials.");
                }
                agent_gone = true;
            }
        }
    };
    // The command's output may still be in the pipes; a background process that inherited
    // them may keep them open forever, so wait a bounded time.
    let drain_until = tokio::time::Instant::now() + DRAIN;
    for p in pumps.into_iter().flatten() {
        match tokio::time::timeout_at(drain_until, p).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "Passing on the command's output failed."),
            Ok(Err(e)) => warn!(error = %e, "The output task failed."),
            Err(_) => warn!("The command's output is still open after it exited; not waiting."),
        }
    }
    if !agent_gone {
        end_session(&mut client).await;
    }
    cleanup(files_dir.as_ref());
    Ok(status
        .code()
        .map_or_else(|| 128 + status.signal().unwrap_or(0) as u8, |c| c as u8))
}

/// After this long without output, bytes held back as a possible start of a value are
/// written (see [`keyward_detectors::MaskStream::flush_held`]).
const IDLE_FLUSH: Duration = Duration::from_millis(50);

/// How long to wait for the command's output to end after it exits.
const DRAIN: Duration = Duration::from_secs(2);

/// Copies `from` to `to` through a mask stream, flushing after every read.
async fn pump(
    masker: Arc<Masker>,
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    let mut stream = masker.stream();
    let mut buf = Zeroizing::new(vec![0_u8; 64 * 1024]);
    let mut out = Zeroizing::new(Vec::with_capacity(64 * 1024));
    // Whether the held bytes were already offered to an idle flush (so wait without a timeout).
    let mut idle_done = false;
    loop {
        let read = if stream.pending() > 0 && !idle_done {
            match tokio::time::timeout(IDLE_FLUSH, from.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    stream.flush_held(&mut out);
                    idle_done = true;
                    write_out(&mut to, &mut out).await?;
                    continue;
                }
            }
        } else {
            from.read(&mut buf).await
        };
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                stream.finish(&mut out);
                write_out(&mut to, &mut out).await?;
                return Err(e);
            }
        };
        if n == 0 {
            stream.finish(&mut out);
            return write_out(&mut to, &mut out).await;
        }
        idle_done = false;
        stream.push(&buf[..n], &mut out);
        write_out(&mut to, &mut out).await?;
    }
}

async fn write_out(to: &mut (impl AsyncWrite + Unpin), out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        to.write_all(out).await?;
        to.flush().await?;
        zeroize::Zeroize::zeroize(out);
    }
    Ok(())
}

async fn futures_select_signal(signals: &mut [(i32, tokio::signal::unix::Signal)]) -> i32 {
    // Polls every signal stream; resolves with the first that fires.
    std::future::poll_fn(|cx| {
        for (n, s) in signals.iter_mut() {
            if s.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*n);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn end_session(client: &mut Client) {
    let closed =
        tokio::time::timeout(Duration::from_secs(60), client.call(br#"{"op":"close"}"#)).await;
    match closed {
        Ok(Ok(Response::Closed { revoked, failed: 0 })) => {
            info!(revoked, "Session closed; credentials revoked.");
        }
        Ok(Ok(Response::Closed { revoked, failed })) => {
            warn!(
                revoked,
                failed, "Session closed; the agent keeps retrying revocations that failed."
            );
        }
        Ok(Ok(other)) => warn!(response = ?other, "Unexpected answer to close."),
        Ok(Err(e)) => {
            warn!(error = %e, "Could not close the session; the agent revokes when the connection drops.");
        }
        Err(_) => warn!("The agent did not confirm revocation within 60 s."),
    }
}

fn cleanup(dir: Option<&PathBuf>) {
    if let Some(Err(e)) = dir.map(fs_err::remove_dir_all) {
        warn!(error = %e, "Could not remove the credentials directory.");
    }
}

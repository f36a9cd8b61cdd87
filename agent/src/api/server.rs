//! The socket server: peer credentials, one session per connection.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::{MAX_LINE, Request};
use crate::lease::{Caller, SessionId};
use crate::session::{Agent, OpenError, OpenRequest};

#[derive(Serialize)]
struct OpenedOut<'a> {
    r#type: &'static str,
    session: &'a str,
    deadline: u64,
    credentials: Vec<CredOut<'a>>,
}

#[derive(Serialize)]
struct CredOut<'a> {
    profile: &'a str,
    name: &'a str,
    value: &'a str,
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at EOF.
pub(crate) async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Zeroizing<Vec<u8>>,
) -> std::io::Result<Option<()>> {
    buf.clear();
    let n = r.take(MAX_LINE as u64).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "request line too long or cut off",
        ));
    }
    Ok(Some(()))
}

async fn send(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    v: &serde_json::Value,
) -> std::io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    w.write_all(line.as_bytes()).await
}

/// Accepts connections until the listener fails for good.
pub async fn serve(listener: UnixListener, agent: Arc<Agent>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let agent = agent.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, agent).await {
                        debug!(error = %e, "Client connection ended with an error.");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "Socket accept failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, agent: Arc<Agent>) -> std::io::Result<()> {
    // The kernel's word on who is calling (SO_PEERCRED), taken at connect time.
    let cred = stream.peer_cred()?;
    let caller = Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid().unwrap_or(0),
    };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut buf = Zeroizing::new(Vec::with_capacity(1024));
    let mut session: Option<(SessionId, tokio::sync::watch::Receiver<Option<String>>)> = None;
    loop {
        let line = if let Some((_, ended)) = &mut session {
            tokio::select! {
                l = read_line(&mut r, &mut buf) => l,
                _ = ended.changed() => {
                    let reason = ended.borrow().clone().unwrap_or_default();
                    let _ = send(&mut w, &json!({"type": "ended", "reason": reason})).await;
                    return Ok(());
                }
            }
        } else {
            read_line(&mut r, &mut buf).await
        };
        let Ok(Some(())) = line else {
            // Closed: the client exited or was killed.
            if let Some((id, _)) = session.take() {
                agent.end(&id, "client-disconnected").await;
            }
            return Ok(());
        };
        let line = &buf[..];
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                // serde's message names the field, never echoes a string value.
                send(
                    &mut w,
                    &json!({"type": "error", "message": format!("bad request: {e}")}),
                )
                .await?;
                continue;
            }
        };
        match req {
            Request::Open {
                profiles,
                ttl_secs,
                meta,
                jwt,
            } => {
                if session.is_some() {
                    send(&mut w, &json!({"type": "error", "message": "this connection already has a session"})).await?;
                    continue;
                }
                let req = OpenRequest {
                    profiles,
                    ttl: ttl_secs.map(Duration::from_secs),
                    meta,
                    jwt,
                };
                match agent.open(caller, req).await {
                    Ok(opened) => {
                        let out = OpenedOut {
                            r#type: "opened",
                            session: opened.id.as_str(),
                            deadline: opened.deadline,
                            credentials: opened
                                .fields
                                .iter()
                                .map(|(p, (name, v))| CredOut {
                                    profile: p,
                                    name,
                                    value: v.expose(),
                                })
                                .collect(),
                        };
                        let mut bytes = Zeroizing::new(Vec::with_capacity(8192));
                        serde_json::to_writer(&mut *bytes, &out).expect("serializing to memory");
                        bytes.push(b'\n');
                        let id = opened.id.clone();
                        session = Some((opened.id, opened.ended));
                        if let Err(e) = w.write_all(&bytes).await {
                            agent.end(&id, "client-disconnected").await;
                            return Err(e);
                        }
                    }
                    Err(e) => {
                        let denied = matches!(e, OpenError::Denied { .. });
                        send(
                            &mut w,
                            &json!({"type": "error", "message": e.to_string(), "denied": denied}),
                        )
                        .await?;
                    }
                }
            }
            Request::Close => {
                let Some((id, _)) = session.take() else {
                    send(
                        &mut w,
                        &json!({"type": "error", "message": "no session on this connection"}),
                    )
                    .await?;
                    continue;
                };
                let (revoked, failed) = agent.end(&id, "client-closed").await.unwrap_or((0, 0));
                send(
                    &mut w,
                    &json!({"type": "closed", "revoked": revoked, "failed": failed}),
                )
                .await?;
                return Ok(());
            }
            Request::Status | Request::Revoke { .. } if !agent.is_admin(caller.uid) => {
                agent.audit().record("deny", json!({"caller": {"uid": caller.uid, "gid": caller.gid, "pid": caller.pid}, "op": "admin", "reason": "not an admin uid"}));
                send(&mut w, &json!({"type": "error", "message": "denied: status and revoke are for admins", "denied": true})).await?;
            }
            Request::Status => {
                let mut v = agent.status();
                v["type"] = json!("status");
                send(&mut w, &v).await?;
            }
            Request::Revoke {
                session: target,
                all,
            } => {
                let n = if all {
                    agent.end_all("operator").await
                } else if let Some(id) = target.as_deref().and_then(SessionId::parse) {
                    usize::from(agent.end(&id, "operator").await.is_some())
                } else {
                    send(
                        &mut w,
                        &json!({"type": "error", "message": "give a session id or --all"}),
                    )
                    .await?;
                    continue;
                };
                agent.audit().record("operator-revoke", json!({"caller": {"uid": caller.uid, "pid": caller.pid}, "session": target, "all": all, "sessions": n}));
                send(&mut w, &json!({"type": "revoked", "sessions": n})).await?;
            }
        }
    }
}

//! `keyward-agent status` and `keyward-agent revoke`.

use std::io::Write as _;
use std::path::Path;

use anyhow::bail;
use serde_json::{Value, json};

use super::exit;
use crate::api::Response;
use crate::api::client::Client;

/// Prints sessions and their credentials (ids, accessors, serials, expiries; no values).
pub async fn status(socket: &Path, as_json: bool) -> anyhow::Result<u8> {
    let mut c = Client::connect(socket).await?;
    let sessions = match c
        .call(json!({"op": "status"}).to_string().as_bytes())
        .await?
    {
        Response::Status { sessions } => sessions,
        Response::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected response: {other:?}"),
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&sessions)?)?;
        return Ok(exit::OK);
    }
    let list = sessions.as_array().cloned().unwrap_or_default();
    writeln!(
        out,
        "{:<32}  {:<8}  {:>6}  {:>8}  {:<20}  CREDENTIALS",
        "SESSION", "STATE", "UID", "PID", "DEADLINE"
    )?;
    for s in &list {
        let deadline = s["deadline"].as_u64().unwrap_or(0);
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(deadline),
        );
        let creds: Vec<String> = s["credentials"]
            .as_array()
            .map(|a| a.iter().map(describe).collect())
            .unwrap_or_default();
        writeln!(
            out,
            "{:<32}  {:<8}  {:>6}  {:>8}  {:<20}  {}",
            s["session"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?"),
            s["caller"]["uid"],
            s["caller"]["pid"],
            when,
            creds.join(", ")
        )?;
    }
    writeln!(out, "{} session(s)", list.len())?;
    Ok(exit::OK)
}

fn describe(c: &Value) -> String {
    let id = c
        .get("lease_id")
        .or_else(|| c.get("accessor"))
        .or_else(|| c.get("serial"));
    format!(
        "{}:{}:{}",
        c["profile"].as_str().unwrap_or("?"),
        c["kind"].as_str().unwrap_or("?"),
        id.and_then(Value::as_str).unwrap_or("?")
    )
}

/// Ends one session or all.
pub async fn revoke(socket: &Path, session: Option<&str>, all: bool) -> anyhow::Result<u8> {
    let mut c = Client::connect(socket).await?;
    let req = json!({"op": "revoke", "session": session, "all": all});
    match c.call(req.to_string().as_bytes()).await? {
        Response::Revoked { sessions } => {
            writeln!(std::io::stdout().lock(), "revoked {sessions} session(s)")?;
            if sessions == 0 && !all {
                return Ok(exit::FINDING);
            }
            Ok(exit::OK)
        }
        Response::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected response: {other:?}"),
    }
}

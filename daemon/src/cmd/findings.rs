//! `keyward findings list|show|ignore|resolve|reopen`: triage over the daemon's API.

use super::{EXIT_CLEAN, EXIT_ERROR};
use crate::cli::{ApiArgs, FindingsCommand, TriageArgs};
use crate::client::{self, Endpoint};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn endpoint(api: &ApiArgs) -> Result<Endpoint> {
    Endpoint::new(
        api.url.as_deref(),
        api.socket.clone(),
        api.token_file.as_ref(),
    )
}

fn call(api: &ApiArgs, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let r = client::request(&endpoint(api)?, method, path, body, TIMEOUT)?;
    if r.status >= 400 {
        let msg = r
            .body
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| r.body.to_string(), str::to_owned);
        bail!("the daemon answered {}: {msg}", r.status);
    }
    Ok(r.body)
}

/// Query-string encoding of one value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn time(t: Option<i64>) -> String {
    t.and_then(|s| u64::try_from(s).ok()).map_or_else(
        || "-".to_owned(),
        |s| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(s))
                .to_string()
        },
    )
}

/// `keyward findings …`.
///
/// # Errors
/// The daemon cannot be reached or refused the request.
pub fn findings(cmd: &FindingsCommand) -> Result<i32> {
    match cmd {
        FindingsCommand::List {
            status,
            severity,
            rule,
            source,
            since,
            confidence,
            limit,
            json,
            api,
        } => {
            let confidence = keyward_detectors::Confidence::from(*confidence);
            let mut q = format!(
                "status={}&confidence={confidence}&limit={limit}",
                enc(status)
            );
            for (k, v) in [
                ("severity", severity),
                ("rule", rule),
                ("source", source),
                ("since", since),
            ] {
                if let Some(v) = v {
                    let _ = write!(q, "&{k}={}", enc(v));
                }
            }
            let body = call(api, "GET", &format!("/v1/findings?{q}"), None)?;
            if *json {
                print(&format!("{}\n", serde_json::to_string_pretty(&body)?))?;
                return Ok(EXIT_CLEAN);
            }
            let list = body
                .get("findings")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut text = String::new();
            for f in &list {
                let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let _ = writeln!(
                    text,
                    "{:<8} {:<6} {:<32} {:<34} {:<24} {:>3} loc  {}",
                    s("severity").to_uppercase(),
                    s("confidence"),
                    s("fingerprint"),
                    s("rule"),
                    s("redacted"),
                    f.get("locations").and_then(Value::as_u64).unwrap_or(0),
                    s("status"),
                );
            }
            let _ = writeln!(
                text,
                "{} finding{}{}",
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                match confidence {
                    keyward_detectors::Confidence::Low => "",
                    keyward_detectors::Confidence::Medium => {
                        " of medium confidence and up (--confidence low lists all)"
                    }
                    keyward_detectors::Confidence::High => " of high confidence",
                }
            );
            print(&text)?;
            Ok(EXIT_CLEAN)
        }
        FindingsCommand::Show {
            fingerprint,
            json,
            api,
        } => {
            let f = call(
                api,
                "GET",
                &format!("/v1/findings/{}", enc(fingerprint)),
                None,
            )?;
            if *json {
                print(&format!("{}\n", serde_json::to_string_pretty(&f)?))?;
                return Ok(EXIT_CLEAN);
            }
            print(&show(&f))?;
            Ok(EXIT_CLEAN)
        }
        FindingsCommand::Ignore(a) => triage(a, "ignored"),
        FindingsCommand::Resolve(a) => triage(a, "resolved"),
        FindingsCommand::Reopen(a) => triage(a, "open"),
    }
}

// Short accessor names keep the layout readable.
#[allow(clippy::many_single_char_names)]
fn show(f: &Value) -> String {
    let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let n = |k: &str| f.get(k).and_then(Value::as_i64);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} {}  ({})",
        s("severity").to_uppercase(),
        s("rule_name"),
        s("rule")
    );
    let _ = writeln!(t, "  fingerprint  {}", s("fingerprint"));
    let _ = writeln!(t, "  secret       {}", s("redacted"));
    let _ = writeln!(t, "  validation   {}", s("validation"));
    let reasons: Vec<&str> = f
        .get("reasons")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        t,
        "  confidence   {}{}",
        s("confidence"),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    let _ = writeln!(t, "  status       {}", s("status"));
    let _ = writeln!(t, "  first seen   {}", time(n("first_seen")));
    let _ = writeln!(t, "  created      {}", time(n("content_created")));
    let locations = f
        .get("location_list")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let _ = writeln!(t, "  locations    {}", locations.len());
    for l in &locations {
        let g = |k: &str| l.get(k).and_then(Value::as_str);
        let place = match (g("commit"), g("image")) {
            (Some(c), _) => format!("commit {}", &c[..c.len().min(12)]),
            (None, Some(i)) => format!("image {i}"),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "    [{}] {}:{} {}",
            g("source").unwrap_or("-"),
            g("path").unwrap_or("-"),
            l.get("line").and_then(Value::as_u64).unwrap_or(0),
            place
        );
    }
    if let Some(h) = f
        .get("history")
        .and_then(Value::as_array)
        .filter(|h| !h.is_empty())
    {
        let _ = writeln!(t, "  history");
        for c in h {
            let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-");
            let _ = writeln!(
                t,
                "    {} {} by {}: {}",
                time(c.get("at").and_then(Value::as_i64)),
                g("status"),
                g("by"),
                g("reason")
            );
        }
    }
    t
}

fn triage(a: &TriageArgs, status: &str) -> Result<i32> {
    let body = json!({"status": status, "reason": a.reason, "by": a.by.clone().unwrap_or_else(|| "cli".to_owned())});
    let r = client::request(
        &endpoint(&a.api)?,
        "POST",
        &format!("/v1/findings/{}/status", enc(&a.fingerprint)),
        Some(&body),
        TIMEOUT,
    )?;
    if r.status == 404 {
        eprintln!("keyward: no finding {}", a.fingerprint);
        return Ok(EXIT_ERROR);
    }
    if r.status >= 400 {
        bail!("the daemon answered {}: {}", r.status, r.body);
    }
    eprintln!("keyward: {} is now {status}", a.fingerprint);
    Ok(EXIT_CLEAN)
}

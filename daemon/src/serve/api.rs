//! The HTTP API (JSON; described by `daemon/openapi.json`, served at `/openapi.json`).
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | the process runs |
//! | `GET /readyz` | the store is open and the sources are loaded (503 otherwise) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /v1/findings` | findings, filtered by `status`, `severity`, `rule`, `source`, `since`, `confidence` (that level and up) |
//! | `GET /v1/findings/{fingerprint}` | one finding with its locations and status history |
//! | `POST /v1/findings/{fingerprint}/status` | triage: `{"status", "reason", "by"}` |
//! | `GET /v1/scans` | recent scan jobs with their progress and errors |
//! | `GET /v1/sources` | configured sources |
//! | `POST /v1/sources/{name}/scan` | queue a scan of a source |
//! | `POST /v1/notify/git` | the post-receive hook: `{"path": GIT_DIR}` |
//!
//! Listeners: TCP addresses from `[api] listen` (loopback by default) and the local socket. A
//! listener on a non-loopback address requires `Authorization: Bearer <token>` on every route
//! but `/healthz` and `/readyz`; a request without it gets 401 and is logged without its headers.

use super::{Daemon, now};
use crate::error::UsageError;
use crate::store::{FindingFilter, Status};
use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyward_detectors::Confidence;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// A bound TCP listener: whether it needs the token, and its TLS acceptor if it speaks HTTPS.
struct TcpListener {
    listener: tokio::net::TcpListener,
    needs_token: bool,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Bound listeners, before serving.
pub struct Listeners {
    tcp: Vec<TcpListener>,
    unix: Option<(tokio::net::UnixListener, PathBuf)>,
}

/// Binds every configured listener.
///
/// # Errors
/// An address or socket path that cannot be bound (named in the error).
pub async fn bind(daemon: &Daemon) -> Result<Listeners> {
    let api = daemon.current().config.api.clone();
    let acceptor = match &api.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let mut tcp = Vec::new();
    for addr in &api.listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let local = l.local_addr().map_or(*addr, |a| a);
        let needs_token = !addr.ip().is_loopback();
        let tls = acceptor.clone().filter(|_| needs_token);
        tracing::info!(address = %local, token_required = needs_token, tls = tls.is_some(), "API listening.");
        tcp.push(TcpListener {
            listener: l,
            needs_token,
            tls,
        });
    }
    let unix = match &api.socket {
        Some(path) => {
            if let Some(dir) = path.parent() {
                fs_err::create_dir_all(dir).context("creating the socket's directory")?;
            }
            // A socket left by a daemon that died; a live one would refuse the bind below
            // only after we removed it, so check it answers first.
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    anyhow::bail!(
                        "{}: another keyward daemon is listening there",
                        path.display()
                    );
                }
                fs_err::remove_file(path).context("removing a stale socket")?;
            }
            let l = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("listening on {}", path.display()))?;
            // Owner and group only: the hook's user must be in the daemon's group.
            fs_err::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
            tracing::info!(socket = %path.display(), "API listening on the local socket.");
            Some((l, path.clone()))
        }
        None => None,
    };
    Ok(Listeners { tcp, unix })
}

/// The serving tasks, stopped together.
pub struct ApiTasks {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket: Option<PathBuf>,
}

impl ApiTasks {
    /// Stops accepting, lets requests in flight finish (at most 5 s), removes the socket.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
        if let Some(p) = self.socket {
            let _ = fs_err::remove_file(p);
        }
    }
}

/// Serves every listener.
pub fn spawn(daemon: &Arc<Daemon>, listeners: Listeners) -> ApiTasks {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    for l in listeners.tcp {
        let app = router(daemon.clone(), l.needs_token);
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            if let Some(tls) = l.tls {
                serve_tls(l.listener, tls, app, rx).await;
            } else if let Err(e) = axum::serve(l.listener, app)
                .with_graceful_shutdown(shutdown(rx))
                .await
            {
                tracing::error!(error = %e, "API listener failed.");
            }
        }));
    }
    let socket = listeners.unix.map(|(l, path)| {
        let app = router(daemon.clone(), false);
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app)
                .with_graceful_shutdown(shutdown(rx))
                .await
            {
                tracing::error!(error = %e, "API socket failed.");
            }
        }));
        path
    });
    ApiTasks {
        stop,
        tasks,
        socket,
    }
}

/// A TLS acceptor from PEM files (certificate chain, private key).
///
/// # Errors
/// A file that cannot be read or holds no usable certificate or key (named in the error).
fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| UsageError(format!("{}: api.tls-cert: {e}", cert.display())))?;
    anyhow::ensure!(
        !certs.is_empty(),
        UsageError(format!(
            "{}: api.tls-cert: no certificate in the file",
            cert.display()
        ))
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| UsageError(format!("{}: api.tls-key: {e}", key.display())))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| UsageError(format!("api.tls-cert / api.tls-key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves HTTPS on `listener` until `stop`: one task per connection, a handshake that does not
/// finish in 10 s is dropped.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => return,
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream));
            let Ok(Ok(tls)) = handshake.await else {
                tracing::debug!("TLS handshake failed or timed out.");
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

/// The routes; with `needs_token`, behind the bearer-token check.
pub fn router(daemon: Arc<Daemon>, needs_token: bool) -> Router {
    let v1 = Router::new()
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/findings", get(list_findings))
        .route("/v1/findings/{fingerprint}", get(show_finding))
        .route("/v1/findings/{fingerprint}/status", post(set_status))
        .route("/v1/scans", get(list_scans))
        .route("/v1/sources", get(list_sources))
        .route("/v1/sources/{name}/scan", post(scan_source))
        .route("/v1/notify/git", post(notify_git));
    let v1 = if needs_token {
        v1.layer(axum::middleware::from_fn_with_state(
            daemon.clone(),
            require_token,
        ))
    } else {
        v1
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(v1)
        .with_state(daemon)
}

/// An API error: the cause is logged, the client gets a short message.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        tracing::error!(error = %format!("{e:#}"), "API request failed.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the daemon's log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// Runs `f` on the store on a blocking thread.
async fn blocking<T: Send + 'static>(
    daemon: &Arc<Daemon>,
    f: impl FnOnce(&Daemon) -> Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let d = daemon.clone();
    tokio::task::spawn_blocking(move || f(&d))
        .await
        .map_err(|e| ApiError::from(anyhow::anyhow!("task failed: {e}")))?
        .map_err(ApiError::from)
}

async fn require_token(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let ok = {
        let token = daemon
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (token.as_ref(), given) {
            (Some(t), Some(g)) => constant_time_eq(t.expose(), g),
            _ => false,
        }
    };
    if ok {
        return next.run(request).await;
    }
    daemon.metrics.unauthorized.inc();
    tracing::warn!(
        method = %request.method(),
        path = %request.uri().path(),
        token_given = given.is_some(),
        "API request refused: missing or wrong bearer token."
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "a bearer token is required on this listener"})),
    )
        .into_response()
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(daemon): State<Arc<Daemon>>) -> Response {
    if daemon.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(daemon): State<Arc<Daemon>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        daemon.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /v1/findings` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    status: Option<String>,
    severity: Option<String>,
    rule: Option<String>,
    source: Option<String>,
    since: Option<String>,
    confidence: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

/// `since`: unix seconds, or an RFC 3339 time.
fn parse_since(s: &str) -> Result<i64, ApiError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .ok_or_else(|| {
            bad(format!(
                "since: {s:?} is neither unix seconds nor an RFC 3339 time"
            ))
        })
}

async fn list_findings(
    State(daemon): State<Arc<Daemon>>,
    query: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| bad(e.body_text()))?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|_| bad("status: one of open, ignored, resolved, revoked"))?;
    if let Some(s) = &q.severity
        && !super::metrics::SEVERITIES.contains(&s.as_str())
    {
        return Err(bad("severity: one of critical, high, medium, low"));
    }
    // The level and up; absent means all (the API is for tools, which choose for themselves).
    let confidence = q
        .confidence
        .as_deref()
        .map(|c| Confidence::parse(c).ok_or_else(|| bad("confidence: one of low, medium, high")))
        .transpose()?;
    let filter = FindingFilter {
        status,
        confidence,
        severity: q.severity,
        rule: q.rule,
        source: q.source,
        since: q.since.as_deref().map(parse_since).transpose()?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        offset: q.offset.unwrap_or(0),
    };
    let findings = blocking(&daemon, move |d| d.store_op(|s| s.list_findings(&filter))).await?;
    Ok(Json(json!({ "findings": findings })))
}

async fn show_finding(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(fingerprint): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let fp = fingerprint.clone();
    match blocking(&daemon, move |d| d.store_op(|s| s.finding(&fp))).await? {
        Some(f) => Ok(Json(serde_json::to_value(f).map_err(anyhow::Error::from)?)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such finding")),
    }
}

/// `POST /v1/findings/{fingerprint}/status` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    status: String,
    reason: String,
    by: Option<String>,
}

async fn set_status(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(fingerprint): UrlPath<String>,
    body: Result<Json<StatusChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(change) = body.map_err(|e| bad(e.body_text()))?;
    let status: Status = change
        .status
        .parse()
        .map_err(|_| bad("status: one of open, ignored, resolved, revoked"))?;
    let reason = change.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(bad("reason: say why the status changes"));
    }
    let by = change
        .by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "api".to_owned());
    let fp = fingerprint.clone();
    let (who, why) = (by.clone(), reason.clone());
    let changed = blocking(&daemon, move |d| {
        let ok = d.store_op(|s| s.set_status(&fp, status, &who, &why, now()))?;
        if ok {
            d.refresh_gauges();
        }
        Ok(ok)
    })
    .await?;
    if !changed {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such finding"));
    }
    tracing::info!(fingerprint = %fingerprint, status = status.as_str(), by = %by, "Finding status changed.");
    let fp = fingerprint.clone();
    let detail = blocking(&daemon, move |d| d.store_op(|s| s.finding(&fp))).await?;
    Ok(Json(
        serde_json::to_value(detail).map_err(anyhow::Error::from)?,
    ))
}

/// `GET /v1/scans` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScansQuery {
    limit: Option<u32>,
}

async fn list_scans(
    State(daemon): State<Arc<Daemon>>,
    query: Result<Query<ScansQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| bad(e.body_text()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let jobs = blocking(&daemon, move |d| d.store_op(|s| s.list_jobs(limit))).await?;
    Ok(Json(json!({ "scans": jobs })))
}

async fn list_sources(State(daemon): State<Arc<Daemon>>) -> Result<Json<Value>, ApiError> {
    let sources = blocking(&daemon, |d| {
        let current = d.current();
        let mut out = Vec::new();
        for s in &current.config.sources {
            let last = d
                .store
                .get_state(&super::last_success_key(&s.name))?
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| t.parse::<i64>().ok());
            out.push(json!({
                "name": s.name,
                "kind": s.job_kind(),
                "source_kind": s.kind().as_str(),
                "poll_interval_s": s.poll_interval.as_secs(),
                "last_success": last,
            }));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(json!({ "sources": sources })))
}

async fn scan_source(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(name): UrlPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(source) = daemon.current().config.source(&name).cloned() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such source"));
    };
    let job = blocking(&daemon, move |d| {
        d.enqueue(&source.name, source.job_kind(), "api")
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "source": name, "job": job, "queued": job.is_some() })),
    ))
}

/// `POST /v1/notify/git` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitNotify {
    path: PathBuf,
}

async fn notify_git(
    State(daemon): State<Arc<Daemon>>,
    body: Result<Json<GitNotify>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(n) = body.map_err(|e| bad(e.body_text()))?;
    // Paths are resolved on a blocking thread (the file system may be slow).
    let found = blocking(&daemon, move |d| {
        let wanted = std::fs::canonicalize(&n.path).unwrap_or(n.path);
        let current = d.current();
        let source = current.config.sources.iter().find(|s| match &s.spec {
            super::config::SourceSpec::Git { path, .. } => {
                let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                p == wanted || p.join(".git") == wanted
            }
            _ => false,
        });
        let Some(source) = source.cloned() else {
            return Ok(None);
        };
        d.note_notified(&source.name);
        let job = d.enqueue(&source.name, source.job_kind(), "hook")?;
        Ok(Some((source.name, job)))
    })
    .await?;
    let Some((name, job)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this repository is not watched (add a [[repository]] for it)",
        ));
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "source": name, "job": job, "queued": job.is_some() })),
    ))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abcdefgh", b"abcdefgh"));
        assert!(!constant_time_eq(b"abcdefgh", b"abcdefgi"));
        assert!(!constant_time_eq(b"abcdefgh", b"abcdefg"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}

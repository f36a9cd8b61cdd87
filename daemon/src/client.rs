//! A small blocking client of the daemon's API, over its local socket or over HTTP: what
//! `keyward findings` and the post-receive hook use. hyper's HTTP/1 client on a tokio
//! current-thread runtime (the same stack the daemon serves with).

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use keyward_detectors::Secret;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Where the daemon is.
pub enum Endpoint {
    /// Its local socket.
    Unix(PathBuf),
    /// `http://HOST:PORT`, with a bearer token when the listener needs one.
    Http {
        /// `HOST:PORT`.
        authority: String,
        /// Bearer token.
        token: Option<Secret<String>>,
    },
}

impl Endpoint {
    /// An endpoint from `--url` (http://HOST:PORT) or else `--socket`.
    ///
    /// # Errors
    /// A URL that is not `http://HOST:PORT`, or an unreadable token file.
    pub fn new(
        url: Option<&str>,
        socket: PathBuf,
        token_file: Option<&PathBuf>,
    ) -> Result<Endpoint> {
        let Some(url) = url else {
            return Ok(Endpoint::Unix(socket));
        };
        let Some(authority) = url.strip_prefix("http://") else {
            bail!("--url {url:?}: expected http://HOST:PORT");
        };
        let token = token_file
            .map(|p| fs_err::read_to_string(p).map(|t| Secret::new(t.trim().to_owned())))
            .transpose()
            .context("reading the token file")?;
        Ok(Endpoint::Http {
            authority: authority.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn describe(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Http { authority, .. } => format!("http://{authority}"),
        }
    }
}

/// A response: status and body (JSON when the body is JSON, else a string).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// Sends one request and waits at most `timeout` for the answer.
///
/// # Errors
/// The daemon cannot be reached (the error says where it was looked for) or did not answer.
pub fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Response> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let where_ = endpoint.describe();
    runtime
        .block_on(async {
            tokio::time::timeout(timeout, send(endpoint, method, path, body))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {} s", timeout.as_secs_f64()))?
        })
        .with_context(|| format!("talking to the keyward daemon at {where_}"))
}

async fn send(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Response> {
    let bytes = body
        .map(|b| serde_json::to_vec(b).expect("JSON serializes"))
        .unwrap_or_default();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    let (io_result, host) = match endpoint {
        Endpoint::Unix(p) => (
            tokio::net::UnixStream::connect(p).await.map(Io::Unix),
            "localhost".to_owned(),
        ),
        Endpoint::Http { authority, token } => {
            if let Some(t) = token {
                req = req.header(
                    hyper::header::AUTHORIZATION,
                    format!("Bearer {}", t.expose()),
                );
            }
            (
                tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map(Io::Tcp),
                authority.clone(),
            )
        }
    };
    let io = io_result.context("connecting (is `keyward serve` running?)")?;
    let req = req
        .header(hyper::header::HOST, host)
        .body(Full::new(Bytes::from(bytes)))
        .context("building the request")?;
    let response = match io {
        Io::Unix(s) => exchange(s, req).await?,
        Io::Tcp(s) => exchange(s, req).await?,
    };
    Ok(response)
}

enum Io {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn exchange<S>(stream: S, req: hyper::Request<Full<Bytes>>) -> Result<Response>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = sender
        .send_request(req)
        .await
        .context("sending the request")?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok(Response { status, body })
}

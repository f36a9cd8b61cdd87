//! `docker-daemon:IMAGE[:TAG]`: the local Docker engine, through its Engine API on the Unix
//! socket (or `tcp://`), as `DOCKER_HOST` says. `GET /images/{name}/get` is `docker save`'s
//! tarball, streamed straight into [`super::tarball`]: nothing is written to disk.
//!
//! NOTE: a minimal HTTP/1.1 client over the socket (one request per connection, `Connection:
//! close`, chunked or sized bodies; headers parsed by `httparse`). ureq cannot dial a Unix
//! socket, and hyper would mean a tokio runtime plus a channel back into the blocking tar
//! reader, for one GET.

use super::percent_encode;
use super::{ImageScan, tarball};
use anyhow::{Context, Result, anyhow, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

/// The engine's default socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Scans image `name` from the engine.
///
/// # Errors
/// The engine cannot be reached, or has no such image.
pub fn scan(ctx: &ImageScan<'_>, name: &str, target: &str) -> Result<()> {
    let host = ctx.opts.docker_host.as_deref().unwrap_or("");
    let encoded = percent_encode(name);
    // Inspect first: a missing image is a clear error, and the id is logged.
    let (status, body) = get(host, &format!("/images/{encoded}/json"))?;
    if status != 200 {
        bail!("docker engine: {name}: {}", error_message(status, body));
    }
    let info: serde_json::Value = serde_json::from_reader(body.take(super::oci::MAX_DOCUMENT))
        .context("parsing the engine's image inspect")?;
    tracing::info!(image = name, id = %info["Id"].as_str().unwrap_or(""), "Reading image from the Docker engine.");
    let (status, body) = get(host, &format!("/images/{encoded}/get"))?;
    if status != 200 {
        bail!("docker engine: {name}: {}", error_message(status, body));
    }
    tarball::scan(ctx, body, target)
}

fn error_message(status: u16, body: Box<dyn Read>) -> String {
    let v: serde_json::Value =
        serde_json::from_reader(body.take(64 << 10)).unwrap_or(serde_json::Value::Null);
    format!(
        "HTTP {status}: {}",
        v["message"].as_str().unwrap_or("(no message)")
    )
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Connects to `host` (`unix:///path`, `tcp://host:port`, empty for the default socket).
fn connect(host: &str) -> Result<Box<dyn Stream>> {
    if host.is_empty() || host.starts_with("unix://") {
        let path = host.strip_prefix("unix://").unwrap_or(DEFAULT_SOCKET);
        let s = UnixStream::connect(path)
            .with_context(|| format!("connecting to the Docker engine at {path}"))?;
        Ok(Box::new(s))
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let s = std::net::TcpStream::connect(addr)
            .with_context(|| format!("connecting to the Docker engine at {addr}"))?;
        Ok(Box::new(s))
    } else {
        bail!("DOCKER_HOST {host:?}: only unix:// and tcp:// (without TLS) are supported")
    }
}

/// One GET; the status and the body as a reader.
fn get(host: &str, path: &str) -> Result<(u16, Box<dyn Read>)> {
    let mut stream = connect(host)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: keyward\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut r = BufReader::with_capacity(1 << 20, stream);
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head)?;
        if n == 0 {
            bail!("the Docker engine closed the connection before answering");
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.len() > 64 << 10 {
            bail!("the Docker engine's response headers are too long");
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&head)
        .map_err(|e| anyhow!("bad response from the Docker engine: {e}"))?;
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let body: Box<dyn Read> = if header("transfer-encoding").is_some_and(|v| v.contains("chunked"))
    {
        Box::new(Chunked::new(r))
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        Box::new(r.take(len))
    } else {
        Box::new(r)
    };
    Ok((status, body))
}

/// A `Transfer-Encoding: chunked` body.
struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: u64,
    /// Whether a chunk was read (so its CRLF must be consumed before the next size line).
    started: bool,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            started: false,
            done: false,
        }
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        Ok(String::from_utf8_lossy(&line).trim().to_owned())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            if self.started {
                self.line()?; // the CRLF after the chunk data
            }
            self.started = true;
            let size_line = self.line()?;
            let hex = size_line.split(';').next().unwrap_or("").trim();
            self.left = u64::from_str_radix(hex, 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad chunk size {hex:?}"),
                )
            })?;
            if self.left == 0 {
                // Trailers until an empty line.
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut s = String::new();
        Chunked::new(&body[..]).read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
        let cut = b"5\r\nhel";
        assert!(Chunked::new(&cut[..]).read_to_string(&mut s).is_err());
    }

    #[test]
    fn names_are_encoded() {
        assert_eq!(
            percent_encode("127.0.0.1:5000/a/b:1"),
            "127.0.0.1%3A5000%2Fa%2Fb%3A1"
        );
    }
}

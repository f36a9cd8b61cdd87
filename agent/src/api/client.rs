//! The client side of the socket API (used by `run`, `status`, `revoke`).

use std::path::Path;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use zeroize::Zeroizing;

use super::Response;

/// A connection to the agent.
#[derive(Debug)]
pub struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    buf: Zeroizing<Vec<u8>>,
}

impl Client {
    /// Connects to the socket.
    pub async fn connect(path: &Path) -> anyhow::Result<Self> {
        let s = UnixStream::connect(path)
            .await
            .with_context(|| format!("connecting to the agent at {}", path.display()))?;
        let (r, w) = s.into_split();
        Ok(Self {
            r: BufReader::new(r),
            w,
            buf: Zeroizing::new(Vec::with_capacity(8192)),
        })
    }

    /// Sends one request. The caller builds the bytes (they may hold a JWT) in a zeroizing buffer.
    pub async fn send(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.w.write_all(line).await?;
        self.w.write_all(b"\n").await?;
        Ok(())
    }

    /// Reads the next response; `None` when the agent closed the connection.
    pub async fn recv(&mut self) -> anyhow::Result<Option<Response>> {
        // Responses can be larger than requests (certificates): no line limit here, the agent
        // is trusted.
        use tokio::io::AsyncBufReadExt as _;
        self.buf.clear();
        if self.r.read_until(b'\n', &mut self.buf).await? == 0 {
            return Ok(None);
        }
        let resp =
            serde_json::from_slice(&self.buf).context("malformed response from the agent")?;
        Ok(Some(resp))
    }

    /// Sends and expects one response.
    pub async fn call(&mut self, line: &[u8]) -> anyhow::Result<Response> {
        self.send(line).await?;
        match self.recv().await? {
            Some(r) => Ok(r),
            None => bail!("the agent closed the connection"),
        }
    }
}

//! What the file clients (`file.rs`, `http.rs`, `soak.rs`) share on the
//! wire: connecting, the article's request, a body read into its length and
//! CRC-32, and an answer that is not what was expected shown as one
//! printable line. No protocol decisions here.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Connect to `addr`, Nagle off.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The article's request for `path`: the path, then a NUL.
pub fn file_request(path: &str) -> Vec<u8> {
    let mut request = path.as_bytes().to_vec();
    request.push(0);
    request
}

/// A body as it arrives: its length and CRC-32 so far.
pub struct Body {
    crc: crc32fast::Hasher,
    got: u64,
}

impl Body {
    pub fn new() -> Body {
        Body {
            crc: crc32fast::Hasher::new(),
            got: 0,
        }
    }

    /// How many bytes are in.
    pub fn got(&self) -> u64 {
        self.got
    }

    /// `bytes` arrived.
    pub fn take(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.got += bytes.len() as u64;
    }

    /// Its length and CRC-32.
    pub fn finish(self) -> (u64, u32) {
        (self.got, self.crc.finalize())
    }
}

/// Read on into `body`, a body of `size` bytes, until it holds `until` of
/// them (never reading past `size`), waiting `pause` after every read (a
/// slow reader) when given. The connection closing first is an error.
pub async fn read_body(
    stream: &mut TcpStream,
    buf: &mut [u8],
    body: &mut Body,
    until: u64,
    size: u64,
    pause: Option<Duration>,
) -> anyhow::Result<()> {
    while body.got < until {
        let want = ((size - body.got) as usize).min(buf.len());
        let n = stream.read(&mut buf[..want]).await?;
        if n == 0 {
            bail!("the server closed after {} of {size} bytes", body.got);
        }
        body.take(&buf[..n]);
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(())
}

/// Up to 40 bytes of `bytes` as escaped text, and the whole count: how an
/// answer that is not what was expected is shown.
pub fn printable(bytes: &[u8], total: usize) -> String {
    let shown = &bytes[..bytes.len().min(40)];
    let more = if total > shown.len() { "…" } else { "" };
    format!("\"{}{more}\" ({total} bytes)", shown.escape_ascii())
}

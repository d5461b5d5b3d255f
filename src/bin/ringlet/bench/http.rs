//! The HTTP/1.1 side of `ringlet bench file --mode http` and of the soak's
//! HTTP sessions: the request for one path, and its answer read whole and
//! measured.
//!
//! One request at a time on a keep-alive connection. An answer must be
//! `200` with a `Content-Length` (what ringlet and nginx send for static
//! files) or, failing that, a body that ends with the connection; chunked
//! answers are refused by name, as is any other status (with its reason
//! phrase, in one printable line). `Connection: close` (nginx sends it
//! after `keepalive_requests`) makes the caller reconnect.

use anyhow::{Context as _, bail};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::wire::{Body, printable, read_body};

/// The most bytes a response head may take.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed per response.
const MAX_HEADERS: usize = 32;

/// One answer: its body's size and CRC-32, and whether the server ends the
/// connection after it.
pub struct Answer {
    pub size: u64,
    pub crc: u32,
    pub close: bool,
}

/// `GET` for `path` (a leading `/` added when missing, bytes outside a
/// URL path's set percent-encoded), naming `host`.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    let mut target = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        target.push('/');
    }
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            target.push(b as char);
        } else {
            target.push_str(&format!("%{b:02X}"));
        }
    }
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringlet-bench\r\n\r\n")
        .into_bytes()
}

/// Read the answer to the request for `path` from `stream`, using `buf`
/// for its bytes.
pub async fn read_answer(
    stream: &mut TcpStream,
    buf: &mut [u8],
    path: &str,
) -> anyhow::Result<Answer> {
    let mut filled = 0;
    let (head_len, length, close) = loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!(
                "the server closed the connection {}",
                if filled == 0 {
                    "before answering".to_string()
                } else {
                    format!("in the middle of a response head ({filled} bytes)")
                }
            );
        }
        filled += n;
        if let Some(head) = parse_head(&buf[..filled]).with_context(|| format!("GET {path}"))? {
            break head;
        }
        if filled >= MAX_HEAD.min(buf.len()) {
            bail!(
                "no end of an HTTP response head in {filled} bytes: {}",
                printable(&buf[..filled], filled)
            );
        }
    };
    let mut body = Body::new();
    body.take(&buf[head_len..filled]);
    match length {
        Some(size) => {
            if body.got() > size {
                bail!(
                    "more bytes than the Content-Length of {size} ({}, one request in flight)",
                    body.got()
                );
            }
            read_body(stream, buf, &mut body, size, size, None).await?;
        }
        // No length: the body ends with the connection (a reset is an error).
        None => loop {
            let n = stream.read(buf).await?;
            if n == 0 {
                break;
            }
            body.take(&buf[..n]);
        },
    }
    let (size, crc) = body.finish();
    Ok(Answer {
        size,
        crc,
        close: close || length.is_none(),
    })
}

/// A complete head in `bytes`: its length, the body's length (`None`: to
/// the end of the connection) and whether the connection closes after it;
/// `Ok(None)` while the head is still partial.
fn parse_head(bytes: &[u8]) -> anyhow::Result<Option<(usize, Option<u64>, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => bail!(
            "not an HTTP/1.x response ({e}): {}",
            printable(bytes, bytes.len())
        ),
    };
    let code = res.code.unwrap_or(0);
    if code != 200 {
        let reason = res.reason.unwrap_or("");
        bail!("the server answered {code} {reason}, not 200");
    }
    let mut length = None;
    let mut close = res.version == Some(0);
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (n, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => bail!(
                    "a bad or conflicting Content-Length: {}",
                    printable(h.value, h.value.len())
                ),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("a Transfer-Encoding answer: ringlet bench reads Content-Length bodies only");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                close = true;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                close = false;
            }
        }
    }
    Ok(Some((head_len, length, close)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_path_encoded() {
        let r = String::from_utf8(request("dir/a b%.bin", "127.0.0.1:80")).unwrap();
        assert_eq!(
            r,
            "GET /dir/a%20b%25.bin HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUser-Agent: ringlet-bench\r\n\r\n"
        );
        assert!(
            String::from_utf8(request("/x", "h"))
                .unwrap()
                .starts_with("GET /x HTTP/1.1\r\n")
        );
    }

    #[test]
    fn heads_are_read_for_length_and_close() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_head(ok).unwrap(), Some((38, Some(5), false)));
        assert_eq!(parse_head(&ok[..20]).unwrap(), None);
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_head(close).unwrap().unwrap().2);
        let old = b"HTTP/1.0 200 OK\r\n\r\n";
        assert_eq!(parse_head(old).unwrap(), Some((19, None, true)));
    }

    #[test]
    fn what_cannot_be_measured_is_named() {
        let e = |b: &[u8]| parse_head(b).unwrap_err().to_string();
        assert!(e(b"HTTP/1.1 404 Not Found\r\n\r\n").contains("answered 404 Not Found"));
        assert!(
            e(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .contains("Transfer-Encoding")
        );
        assert!(
            e(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .contains("conflicting Content-Length")
        );
        assert!(e(b"OK 12\n0123456789ab").contains("not an HTTP/1.x response"));
    }
}

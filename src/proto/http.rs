//! Static files over HTTP/1.1: `GET` and `HEAD` of the files beneath a
//! [`Root`], for curl, browsers, wrk and anything else that speaks HTTP.
//!
//! One connection carries any number of requests (keep-alive, pipelining:
//! bytes after a request's head are the next request). Each answer has a
//! `Content-Length`, a `Content-Type` by extension, `Last-Modified` and a
//! strong `ETag`; `If-None-Match` / `If-Modified-Since` get 304, one
//! `Range: bytes=` gets 206 (or 416), a directory its `index.html` (no
//! listings). Bodies go out through [`Connection::send_file`], as the file
//! protocol's do.
//!
//! Requests are parsed by `httparse`. Nothing with a body is accepted: a
//! `Transfer-Encoding`, a non-zero or repeated `Content-Length` (the shapes
//! of request smuggling) is a 400, and so is a missing or repeated `Host`,
//! an obsolete line fold, or a path with a NUL or a bad `%` escape.
//! `%2e%2e` decodes to `..`, which the root refuses like any escape (403).
//! A refused request is answered with its status and the connection
//! closes; a 404 or 403 keeps it open. This module never reads more than
//! [`MAX_HEAD`] bytes of one head.

use std::borrow::Cow;
use std::io;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info};

use crate::access::Entry;
use crate::fs::{DisplayPath, OpenError, RegularFile, Root};
use crate::io::{Buf, Connection, Outcome};
use crate::proto::Protocol;
use crate::proto::request::{self, Framed};

/// The longest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines in one head.
const MAX_HEADERS: usize = 64;
/// How long a request head may take to arrive once it has begun, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP/1.1 static file server.
#[derive(Debug, Clone)]
pub struct HttpServer {
    root: Arc<Root>,
    request_timeout: Duration,
}

impl HttpServer {
    /// Serve the files beneath `root`.
    pub fn new(root: Root) -> HttpServer {
        HttpServer {
            root: Arc::new(root),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// How long a request head may take once its first byte arrived (408
    /// after that).
    pub fn request_timeout(mut self, limit: Duration) -> HttpServer {
        self.request_timeout = limit;
        self
    }
}

/// The methods served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// One parsed request head: what the answer depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path, `%`-decoded, without its query.
    pub path: Vec<u8>,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
    pub keep_alive: bool,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<SystemTime>,
    pub range: Option<String>,
    pub if_range: Option<String>,
}

/// What a request head turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A request to answer, and the length of its head in the buffer.
    Request(Request, usize),
    /// A request refused before any file is looked at: answer this status
    /// (with why, for the log) and close.
    Refused(u16, &'static str),
}

/// Parse the head at the front of `buf`. `None`: incomplete, read more;
/// `full`: the buffer cannot grow, so decide now.
pub fn parse_head(buf: &[u8], full: bool) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if !full => return None,
        Ok(httparse::Status::Partial) => {
            return Some(if memchr::memchr(b'\n', buf).is_none() {
                Head::Refused(414, "request line longer than the head limit")
            } else {
                Head::Refused(431, "request head longer than its limit")
            });
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Some(Head::Refused(431, "too many header lines"));
        }
        Err(httparse::Error::Version) => {
            return Some(Head::Refused(505, "not HTTP/1.x"));
        }
        Err(_) => return Some(Head::Refused(400, "malformed request head")),
    };
    Some(match request(&req) {
        Ok(r) => Head::Request(r, len),
        Err((status, why)) => Head::Refused(status, why),
    })
}

/// Check a complete head and pick out what the answer needs.
fn request(req: &httparse::Request<'_, '_>) -> Result<Request, (u16, &'static str)> {
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => return Err((405, "method not allowed")),
    };
    let minor = req.version.unwrap_or(1);
    let mut r = Request {
        method,
        path: Vec::new(),
        keep_alive: minor == 1,
        minor_version: minor,
        if_none_match: None,
        if_modified_since: None,
        range: None,
        if_range: None,
    };
    let (mut hosts, mut lengths) = (0, 0);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| (400, "header value not text"))?;
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(value) {
                return Err((400, "a Host that is not a host[:port]"));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            if value != "0" {
                return Err((400, "a request body (Content-Length) where none is allowed"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((400, "Transfer-Encoding on a request without a body"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    r.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                    r.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("if-none-match") {
            r.if_none_match = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            // An unparseable date is ignored (RFC 9110 13.1.3).
            r.if_modified_since = httpdate::parse_http_date(value).ok();
        } else if name.eq_ignore_ascii_case("range") {
            r.range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-range") {
            r.if_range = Some(value.to_string());
        }
    }
    if lengths > 1 {
        return Err((400, "more than one Content-Length"));
    }
    if minor == 1 && hosts != 1 {
        return Err((400, "an HTTP/1.1 request needs exactly one Host"));
    }
    let path = origin(req.path.unwrap_or(""))?;
    let path = path.split(['?', '#']).next().unwrap_or("");
    r.path = percent_decode(path.as_bytes()).ok_or((400, "bad % escape or NUL in the path"))?;
    Ok(r)
}

/// The path part of a request target: origin-form (`/path`) as it is;
/// absolute-form (`http://host/path`, which RFC 9112 3.2.2 says a server
/// must accept) without its scheme and host, the host checked as `Host`
/// is. Any other form (`*`, authority-form) is refused.
fn origin(target: &str) -> Result<&str, (u16, &'static str)> {
    if target.starts_with('/') {
        return Ok(target);
    }
    let scheme_end = target.find("://").ok_or((
        400,
        "only origin-form (/path) and absolute-form (http://host/path) targets are served",
    ))?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err((400, "an absolute-form target whose scheme is not http"));
    }
    let rest = &target[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    if host.is_empty() || !valid_host(host) {
        return Err((400, "an absolute-form target without a valid host"));
    }
    Ok(if path.starts_with('/') { path } else { "/" })
}

/// Is `value` a `host[:port]` (RFC 9110 7.2: a name, an IPv4 address or a
/// bracketed IPv6 literal, no user info, no path)? Empty is allowed in
/// `Host`, for a target without an authority.
fn valid_host(value: &str) -> bool {
    value.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    })
}

/// `%XX`-decode `raw`; `None` for a bad escape or a NUL.
fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            i += 3;
            u8::from_str_radix(s, 16).ok()?
        } else {
            i += 1;
            raw[i - 1]
        };
        if b == 0 {
            return None;
        }
        out.push(b);
    }
    Some(out)
}

/// A `Range` header against a body of `total` bytes: `None` to ignore it
/// (malformed, or several ranges: the whole body is sent),
/// `Some(Ok((start, len)))` for one satisfiable range, `Some(Err(()))`
/// for an unsatisfiable one (416).
pub fn parse_range(header: &str, total: u64) -> Option<Result<(u64, u64), ()>> {
    let (unit, spec) = header.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let num = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            Some(None)
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok().map(Some)
        } else {
            None
        }
    };
    Some(match (num(first)?, num(last)?) {
        (Some(a), Some(b)) if a > b => return None,
        (Some(a), _) if a >= total => Err(()),
        (Some(a), Some(b)) => Ok((a, b.min(total - 1) - a + 1)),
        (Some(a), None) => Ok((a, total - a)),
        (None, Some(0)) => Err(()),
        (None, Some(_)) if total == 0 => Err(()),
        (None, Some(n)) => Ok((total - n.min(total), n.min(total))),
        (None, None) => return None,
    })
}

/// The strong validator of one version of a file.
fn etag(file: &RegularFile) -> String {
    let ns = file
        .modified()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{:x}-{:x}\"", file.inode(), file.size(), ns)
}

/// Does an `If-None-Match` list name `tag` (weak comparison, RFC 9110 13.1.2)?
fn none_match(list: &str, tag: &str) -> bool {
    list.trim() == "*"
        || list
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag)
}

/// What an answer's head says of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persist {
    /// Kept open, HTTP/1.1's default: nothing to say.
    Kept,
    /// Kept open for an HTTP/1.0 client that asked (`Connection:
    /// keep-alive`), which it needs to hear back.
    KeptHttp10,
    /// Closed after this answer: `Connection: close`.
    Closing,
}

impl Persist {
    /// For `req`, on a connection whose server may be draining.
    fn of(req: &Request, draining: bool) -> Persist {
        match (req.keep_alive && !draining, req.minor_version) {
            (false, _) => Persist::Closing,
            (true, 0) => Persist::KeptHttp10,
            (true, _) => Persist::Kept,
        }
    }
}

/// The standard reason phrase of the statuses this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// What an open failure answers, and how it is counted.
fn refusal(e: &OpenError) -> (u16, Outcome) {
    match e {
        OpenError::NotFound | OpenError::Invalid(_) | OpenError::Empty => (404, Outcome::NotFound),
        OpenError::Escapes | OpenError::Link => (403, Outcome::Escape),
        OpenError::PermissionDenied => (403, Outcome::Denied),
        OpenError::NotRegular(_) => (403, Outcome::NotRegular),
        OpenError::Raced => (503, Outcome::Invalid),
        OpenError::Io(_) => (500, Outcome::Invalid),
    }
}

impl Protocol for HttpServer {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let peer = conn.peer();
        let mut buf = Buf::with_capacity(MAX_HEAD);
        // Response heads: a few hundred bytes.
        let mut out = Buf::with_capacity(2048);
        loop {
            let (res, b) = request::read_until(conn, buf, self.request_timeout, parse_head).await;
            buf = b;
            let (req, len) = match res? {
                Framed::Done(Head::Request(req, len)) => (req, len),
                Framed::Done(Head::Refused(status, why)) => {
                    info!("http: {peer}: {status} {}: {why}", reason(status));
                    conn.record(if status == 414 || status == 431 {
                        Outcome::TooLong
                    } else {
                        Outcome::Invalid
                    });
                    // Timed only for the access log.
                    let started = conn.access_log().map(|_| Instant::now());
                    let sent = self.status_only(conn, &mut out, status).await;
                    log_request(
                        conn,
                        buf.filled(),
                        (status, status_body(status).len() as u64),
                        started,
                    );
                    return sent;
                }
                Framed::Closed => return Ok(()),
                Framed::Truncated => {
                    conn.record(Outcome::Incomplete);
                    debug!("http: {peer}: closed in the middle of a request head");
                    return Ok(());
                }
                Framed::TooSlow(kind) => {
                    info!(
                        "http: {peer}: 408: request head {}",
                        request::too_slow(kind, self.request_timeout)
                    );
                    conn.record(Outcome::Timeout);
                    // Timed only for the access log.
                    let started = conn.access_log().map(|_| Instant::now());
                    let sent = self.status_only(conn, &mut out, 408).await;
                    log_request(
                        conn,
                        buf.filled(),
                        (408, status_body(408).len() as u64),
                        started,
                    );
                    return sent;
                }
            };
            // A drain's request is answered, then the connection closes.
            let persist = Persist::of(&req, conn.draining());
            // Timed only for the access log.
            let started = conn.access_log().map(|_| Instant::now());
            let mut note = (0, 0);
            let answered = self.answer(conn, &req, persist, &mut out, &mut note).await;
            log_request(conn, &buf.filled()[..len], note, started);
            buf.consume(len);
            answered?;
            if persist == Persist::Closing {
                return Ok(());
            }
            conn.yield_if_needed().await;
        }
    }
}

impl HttpServer {
    /// Answer one request: the file, part of it, 304, or why not.
    async fn answer<C: Connection>(
        &self,
        conn: &mut C,
        req: &Request,
        persist: Persist,
        out: &mut Buf,
        note: &mut (u16, u64),
    ) -> io::Result<()> {
        let (file, opened) = match self.open(conn, &req.path).await {
            Ok(found) => found,
            Err(e) => {
                let (status, outcome) = refusal(&e);
                debug!(
                    "http: {} {}: {status}: {e}",
                    conn.peer(),
                    DisplayPath(&req.path)
                );
                conn.record(outcome);
                let body = status_body(status);
                let head = self.head(
                    status,
                    persist,
                    &[
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", &body.len().to_string()),
                    ],
                );
                let body = if req.method == Method::Head {
                    ""
                } else {
                    &body
                };
                *note = (status, body.len() as u64);
                return self.write(conn, out, &head, body.as_bytes()).await;
            }
        };
        let tag = etag(&file);
        let modified = httpdate::fmt_http_date(file.modified());
        let fresh = match (&req.if_none_match, req.if_modified_since) {
            (Some(list), _) => none_match(list, &tag),
            // HTTP dates have whole seconds: not modified within that second.
            (None, Some(since)) => file.modified() < since + Duration::from_secs(1),
            (None, None) => false,
        };
        if fresh {
            conn.record(Outcome::Served);
            let head = self.head(
                304,
                persist,
                &[("ETag", &tag), ("Last-Modified", &modified)],
            );
            *note = (304, 0);
            return self.write(conn, out, &head, b"").await;
        }
        let total = file.size();
        let range = match (&req.range, &req.if_range) {
            (Some(r), None) => parse_range(r, total),
            (Some(r), Some(v)) if *v == tag || *v == modified => parse_range(r, total),
            _ => None,
        };
        let kind = content_type(&opened);
        let (status, file, content_range) = match range {
            None => (200, file, None),
            Some(Ok((start, len))) => (
                206,
                file.range(start, len),
                Some(format!("bytes {start}-{}/{total}", start + len - 1)),
            ),
            Some(Err(())) => {
                conn.record(Outcome::Invalid);
                let head = self.head(
                    416,
                    persist,
                    &[
                        ("Content-Range", &format!("bytes */{total}")),
                        ("Content-Length", "0"),
                    ],
                );
                *note = (416, 0);
                return self.write(conn, out, &head, b"").await;
            }
        };
        let len = file.size();
        let mut fields = vec![
            ("Content-Type", kind),
            ("Content-Length", len.to_string()),
            ("ETag", tag),
            ("Last-Modified", modified),
            ("Accept-Ranges", "bytes".to_string()),
        ];
        if let Some(cr) = content_range {
            fields.push(("Content-Range", cr));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let head = self.head(status, persist, &fields);
        *note = (status, 0);
        if req.method == Method::Head || len == 0 || head.len() > out.capacity() {
            self.write(conn, out, &head, b"").await?;
            if req.method == Method::Head || len == 0 {
                conn.record(Outcome::Served);
                return Ok(());
            }
        } else {
            out.clear();
            out.extend_from_slice(&head);
        }
        // The head (unless already sent) and the body in one go: a small
        // file can leave in the same send as its head.
        let b = std::mem::replace(out, Buf::with_capacity(0));
        let (sent, b) = conn.send_file_after(b, file).await;
        *out = b;
        let sent = sent.map_err(|e| {
            conn.record(Outcome::Truncated);
            io::Error::new(e.kind(), format!("sending {}: {e}", DisplayPath(&req.path)))
        })?;
        note.1 = sent;
        if sent < len {
            conn.record(Outcome::Truncated);
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while being sent: the stream stopped after {sent} of the {len} bytes promised",
                    DisplayPath(&req.path)
                ),
            ));
        }
        conn.record(Outcome::Served);
        Ok(())
    }

    /// Open `path`, or for a directory its `index.html` (404 without one).
    /// Also says which name was opened (for its `Content-Type`).
    async fn open<'p, C: Connection>(
        &self,
        conn: &mut C,
        path: &'p [u8],
    ) -> Result<(RegularFile, Cow<'p, [u8]>), OpenError> {
        match conn.open_file(&self.root, path).await {
            Ok(file) => Ok((file, Cow::Borrowed(path))),
            // `/` (the root itself) or any other directory.
            Err(OpenError::Empty | OpenError::NotRegular("directory")) => {
                let mut index = path.to_vec();
                if !index.ends_with(b"/") {
                    index.push(b'/');
                }
                index.extend_from_slice(b"index.html");
                match conn.open_file(&self.root, &index).await {
                    Ok(file) => Ok((file, Cow::Owned(index))),
                    Err(OpenError::NotRegular(_)) => Err(OpenError::NotFound),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A status line and header block, with `Date`, `Server` and
    /// `Connection` added.
    fn head(&self, status: u16, persist: Persist, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut h = Vec::with_capacity(256);
        let _ = write!(
            h,
            "HTTP/1.1 {status} {}\r\nDate: {}\r\nServer: ringlet\r\n",
            reason(status),
            now()
        );
        for (name, value) in fields {
            let _ = write!(h, "{name}: {value}\r\n");
        }
        if status == 405 {
            h.extend_from_slice(b"Allow: GET, HEAD\r\n");
        }
        match persist {
            Persist::Kept => {}
            Persist::KeptHttp10 => h.extend_from_slice(b"Connection: keep-alive\r\n"),
            Persist::Closing => h.extend_from_slice(b"Connection: close\r\n"),
        }
        h.extend_from_slice(b"\r\n");
        h
    }

    /// Answer only a status (a refused request) and close.
    async fn status_only<C: Connection>(
        &self,
        conn: &mut C,
        out: &mut Buf,
        status: u16,
    ) -> io::Result<()> {
        let body = status_body(status);
        let head = self.head(
            status,
            Persist::Closing,
            &[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", &body.len().to_string()),
            ],
        );
        self.write(conn, out, &head, body.as_bytes()).await
    }

    /// Send `head` then `body` from the reusable buffer `out`.
    async fn write<C: Connection>(
        &self,
        conn: &mut C,
        out: &mut Buf,
        head: &[u8],
        body: &[u8],
    ) -> io::Result<()> {
        let mut b = std::mem::replace(out, Buf::with_capacity(0));
        for part in [head, body] {
            let mut rest = part;
            while !rest.is_empty() {
                b.clear();
                let n = b.extend_from_slice(rest);
                rest = &rest[n..];
                let (res, back) = conn.write_all(b).await;
                b = back;
                res?;
            }
        }
        *out = b;
        Ok(())
    }
}

/// The body of an answer that is only a status.
fn status_body(status: u16) -> String {
    format!("{status} {}\n", reason(status))
}

/// One access log line for the request whose head is `raw` (when a log is
/// on): what it asked, as it was sent, and `(status, body bytes)`. The head
/// is parsed again only here, so that a server without a log keeps no
/// more of it than it needs.
fn log_request<C: Connection>(
    conn: &C,
    raw: &[u8],
    (status, bytes): (u16, u64),
    started: Option<Instant>,
) {
    let (Some(log), Some(started)) = (conn.access_log(), started) else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // A refused head may be partial or malformed: log what can be read.
    let _ = req.parse(raw);
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let version = match req.version {
        Some(0) => "HTTP/1.0",
        Some(_) => "HTTP/1.1",
        None => "-",
    };
    log.log(&Entry::Http {
        client: conn.peer(),
        method: req.method.unwrap_or("-"),
        target: req.path.map_or(b"-", str::as_bytes),
        version,
        status,
        bytes,
        referer: header("referer"),
        user_agent: header("user-agent"),
        duration: started.elapsed(),
    });
}

/// The `Date` of a response now, formatted once a second per thread.
fn now() -> String {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs || text.is_empty() {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        text.clone()
    })
}

/// `Content-Type` by the path's extension.
fn content_type(path: &[u8]) -> String {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(b"");
    let name = String::from_utf8_lossy(name);
    match mime_guess::from_path(name.as_ref()).first_raw() {
        Some(t) if t.starts_with("text/") => format!("{t}; charset=utf-8"),
        Some(t) => t.to_string(),
        None => "application/octet-stream".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Head {
        parse_head(raw.as_bytes(), false).expect("complete")
    }

    #[test]
    fn a_plain_get_and_its_keep_alive() {
        let Head::Request(r, len) = parse("GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\nGET") else {
            panic!()
        };
        assert_eq!(
            (r.method, r.path.as_slice(), r.keep_alive, len),
            (Method::Get, &b"/a b"[..], true, 36)
        );
        let Head::Request(r, _) = parse("HEAD / HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert!(!r.keep_alive && r.method == Method::Head);
        let Head::Request(r, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") else {
            panic!()
        };
        assert!(r.keep_alive);
        let Head::Request(r, _) = parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        else {
            panic!()
        };
        assert!(!r.keep_alive);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost:", false), None);
    }

    #[test]
    fn smuggling_shapes_and_bad_paths_are_refused() {
        for (raw, status) in [
            ("POST / HTTP/1.1\r\nHost: h\r\n\r\n", 405),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
                400,
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
                400,
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /a% HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET ftp://h/f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http:///f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http://u@h/f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http://h/f HTTP/1.1\r\n\r\n", 400),
            ("GET /f HTTP/1.1\r\nHost: u@h\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            ("GET / HTTP/1.1\r\nHo st: h\r\n\r\n", 400),
        ] {
            match parse(raw) {
                Head::Refused(s, _) => assert_eq!(s, status, "{raw:?}"),
                other => panic!("{raw:?} accepted: {other:?}"),
            }
        }
        let Head::Request(r, _) = parse("GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(r.path, b"/../etc/passwd", "decoded, for the root to refuse");
    }

    #[test]
    fn absolute_form_targets_are_served_by_their_path() {
        for (raw, path) in [
            ("GET http://h/f?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", &b"/f"[..]),
            (
                "GET HTTP://h:8080/a%20b HTTP/1.1\r\nHost: other\r\n\r\n",
                b"/a b",
            ),
            ("GET http://[::1]:80 HTTP/1.1\r\nHost: h\r\n\r\n", b"/"),
            ("GET https://h/../x HTTP/1.0\r\n\r\n", b"/../x"),
        ] {
            match parse(raw) {
                Head::Request(r, _) => assert_eq!(r.path, path, "{raw:?}"),
                other => panic!("{raw:?} refused: {other:?}"),
            }
        }
    }

    #[test]
    fn a_full_buffer_is_414_or_431() {
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(MAX_HEAD));
        assert_eq!(
            parse_head(&long_line.as_bytes()[..MAX_HEAD], true),
            Some(Head::Refused(
                414,
                "request line longer than the head limit"
            ))
        );
        let many = format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(MAX_HEAD));
        assert!(matches!(
            parse_head(&many.as_bytes()[..MAX_HEAD], true),
            Some(Head::Refused(431, _))
        ));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 10))));
        assert_eq!(parse_range("bytes=90-200", 100), Some(Ok((90, 10))));
        assert_eq!(parse_range("bytes=95-", 100), Some(Ok((95, 5))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 10))));
        assert_eq!(parse_range("bytes=-500", 100), Some(Ok((0, 100))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-", 0), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=a-b", 100), None);
    }

    #[test]
    fn validators() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"x\""));
        assert!(!none_match("\"a\"", "\"b\""));
        assert_eq!(content_type(b"/x/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"/blob"), "application/octet-stream");
    }
}

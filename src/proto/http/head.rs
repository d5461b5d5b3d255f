//! Reading one request head (request line and headers, parsed by
//! `httparse`): what the answer depends on, or the status that refuses it
//! before any file is looked at. Pure: no I/O, no answer written.
//!
//! Nothing with a body is accepted: a `Transfer-Encoding`, a non-zero or
//! repeated `Content-Length` (the shapes of request smuggling) is a 400, and
//! so is a missing or repeated `Host`, an obsolete line fold, or a path with
//! a NUL or a bad `%` escape. `%2e%2e` decodes to `..`, for the root to
//! refuse like any escape. Never more than [`MAX_HEAD`] bytes are looked at.

use std::time::SystemTime;

use crate::proto::http::response::Persist;
use crate::proto::http::status::Status;

/// The longest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines in one head.
pub(super) const MAX_HEADERS: usize = 64;

/// The methods served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: the head and the body.
    Get,
    /// `HEAD`: the head a `GET` would get, no body.
    Head,
}

impl Method {
    /// As sent: `GET`, `HEAD`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// One parsed request head: what the answer depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD` (anything else is answered 405 before this exists).
    pub method: Method,
    /// The path, `%`-decoded, without its query.
    pub path: Vec<u8>,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
    pub keep_alive: bool,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// The `If-None-Match` header's value, as sent.
    pub if_none_match: Option<String>,
    /// The `If-Modified-Since` header, parsed (an unparsable date is none).
    pub if_modified_since: Option<SystemTime>,
    /// The `Range` header's value, as sent (see [`Range`](super::Range)).
    pub range: Option<String>,
    /// The `If-Range` header's value, as sent.
    pub if_range: Option<String>,
    /// Where the access log's fields lie in the head, as sent.
    pub(super) raw: Raw,
}

/// Where a field lies in the head it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Span {
    at: usize,
    len: usize,
}

impl Span {
    /// Where `part`, a slice of `head`, lies in it (an empty span for a
    /// part that is not in it, such as an empty value held elsewhere).
    fn of(head: &[u8], part: &[u8]) -> Span {
        let at = (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
        match at.checked_add(part.len()) {
            Some(end) if end <= head.len() => Span {
                at,
                len: part.len(),
            },
            _ => Span::default(),
        }
    }

    /// The bytes of `head` this span names.
    pub(super) fn in_head(self, head: &[u8]) -> &[u8] {
        head.get(self.at..self.at + self.len).unwrap_or_default()
    }
}

/// The access log's fields of a request, as sent: not decoded, not trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Raw {
    pub(super) target: Option<Span>,
    /// The first `Referer`.
    pub(super) referer: Option<Span>,
    /// The first `User-Agent`.
    pub(super) user_agent: Option<Span>,
}

impl Request {
    /// What the answer's head says of the connection, on a server that may
    /// be draining (a drain's request is answered, then the connection
    /// closes).
    pub fn persist(&self, draining: bool) -> Persist {
        match (self.keep_alive && !draining, self.minor_version) {
            (false, _) => Persist::Closing,
            (true, 0) => Persist::KeptHttp10,
            (true, _) => Persist::Kept,
        }
    }
}

/// What a request head turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A request to answer, and the length of its head in the buffer.
    Request(Request, usize),
    /// A request refused before any file is looked at: answer this status
    /// (with why, for the log) and close.
    Refused(Status, &'static str),
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
                Head::Refused(
                    Status::UriTooLong,
                    "request line longer than the head limit",
                )
            } else {
                Head::Refused(
                    Status::HeaderFieldsTooLarge,
                    "request head longer than its limit",
                )
            });
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Some(Head::Refused(
                Status::HeaderFieldsTooLarge,
                "too many header lines",
            ));
        }
        Err(httparse::Error::Version) => {
            return Some(Head::Refused(Status::VersionNotSupported, "not HTTP/1.x"));
        }
        Err(_) => return Some(Head::Refused(Status::BadRequest, "malformed request head")),
    };
    Some(match request(buf, &req) {
        Ok(r) => Head::Request(r, len),
        Err((status, why)) => Head::Refused(status, why),
    })
}

/// A refusal: its status, and why.
type Refusal = (Status, &'static str);

/// A 400, and why.
const fn bad(why: &'static str) -> Refusal {
    (Status::BadRequest, why)
}

/// Check a complete head (parsed from `buf`) and pick out what the answer
/// needs.
fn request(buf: &[u8], req: &httparse::Request<'_, '_>) -> Result<Request, Refusal> {
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => return Err((Status::MethodNotAllowed, "method not allowed")),
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
        raw: Raw::default(),
    };
    let (mut hosts, mut lengths) = (0, 0);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| bad("header value not text"))?;
        let name = h.name;
        if name.eq_ignore_ascii_case("referer") {
            r.raw.referer.get_or_insert(Span::of(buf, h.value));
        } else if name.eq_ignore_ascii_case("user-agent") {
            r.raw.user_agent.get_or_insert(Span::of(buf, h.value));
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(value) {
                return Err(bad("a Host that is not a host[:port]"));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            if value != "0" {
                return Err(bad("a request body (Content-Length) where none is allowed"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("Transfer-Encoding on a request without a body"));
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
        return Err(bad("more than one Content-Length"));
    }
    if minor == 1 && hosts != 1 {
        return Err(bad("an HTTP/1.1 request needs exactly one Host"));
    }
    let target = req.path.unwrap_or("");
    if let Some(sent) = req.path {
        r.raw.target = Some(Span::of(buf, sent.as_bytes()));
    }
    let path = origin(target)?;
    let path = path.split(['?', '#']).next().unwrap_or("");
    r.path = percent_decode(path.as_bytes()).ok_or(bad("bad % escape or NUL in the path"))?;
    Ok(r)
}

/// The path part of a request target: origin-form (`/path`) as it is;
/// absolute-form (`http://host/path`, which RFC 9112 3.2.2 says a server
/// must accept) without its scheme and host, the host checked as `Host`
/// is. Any other form (`*`, authority-form) is refused.
fn origin(target: &str) -> Result<&str, Refusal> {
    if target.starts_with('/') {
        return Ok(target);
    }
    let scheme_end = target.find("://").ok_or(bad(
        "only origin-form (/path) and absolute-form (http://host/path) targets are served",
    ))?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad("an absolute-form target whose scheme is not http"));
    }
    let rest = &target[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    if host.is_empty() || !valid_host(host) {
        return Err(bad("an absolute-form target without a valid host"));
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
                Head::Refused(s, _) => assert_eq!(s.code(), status, "{raw:?}"),
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
                Status::UriTooLong,
                "request line longer than the head limit"
            ))
        );
        let many = format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(MAX_HEAD));
        assert!(matches!(
            parse_head(&many.as_bytes()[..MAX_HEAD], true),
            Some(Head::Refused(Status::HeaderFieldsTooLarge, _))
        ));
    }
}

//! The access log's line for one HTTP request (when a log is on): what it
//! asked, as it was sent, and what it was answered. An answered request's
//! fields come from its parsed head; only a refused head, which may be
//! partial or malformed, is read again here, for what can be read of it.

use std::time::Instant;

use crate::access::Entry;
use crate::io::Connection;
use crate::proto::http::answer::Note;
use crate::proto::http::head::MAX_HEADERS;
use crate::proto::http::{Method, Request};

/// What one line says of the request, as sent.
struct Asked<'a> {
    method: &'a str,
    target: &'a [u8],
    version: &'a str,
    referer: Option<&'a str>,
    user_agent: Option<&'a str>,
}

/// The line of `req`, parsed from `head`.
pub(super) fn answered<C: Connection>(
    conn: &C,
    head: &[u8],
    req: &Request,
    note: Note,
    started: Option<Instant>,
) {
    let (Some(_), Some(started)) = (conn.access_log(), started) else {
        return;
    };
    // Every header value of an answered head is text: a 400 otherwise.
    let text = |span: Option<super::head::Span>| {
        span.and_then(|s| std::str::from_utf8(s.in_head(head)).ok())
    };
    let asked = Asked {
        method: Method::as_str(req.method),
        target: req.raw.target.map_or(b"-", |s| s.in_head(head)),
        version: version(Some(req.minor_version)),
        referer: text(req.raw.referer),
        user_agent: text(req.raw.user_agent),
    };
    line(conn, &asked, note, started);
}

/// The line of a refused request whose head (or what came of it) is `raw`.
pub(super) fn refused<C: Connection>(conn: &C, raw: &[u8], note: Note, started: Option<Instant>) {
    let (Some(_), Some(started)) = (conn.access_log(), started) else {
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
    let asked = Asked {
        method: req.method.unwrap_or("-"),
        target: req.path.map_or(b"-", str::as_bytes),
        version: version(req.version),
        referer: header("referer"),
        user_agent: header("user-agent"),
    };
    line(conn, &asked, note, started);
}

/// The version as the line says it (`-`: none could be read).
fn version(minor: Option<u8>) -> &'static str {
    match minor {
        Some(0) => "HTTP/1.0",
        Some(_) => "HTTP/1.1",
        None => "-",
    }
}

fn line<C: Connection>(conn: &C, asked: &Asked<'_>, note: Note, started: Instant) {
    let Some(log) = conn.access_log() else {
        return;
    };
    log.log(&Entry::Http {
        client: conn.peer(),
        method: asked.method,
        target: asked.target,
        version: asked.version,
        status: note.status.code(),
        bytes: note.bytes,
        referer: asked.referer,
        user_agent: asked.user_agent,
        duration: started.elapsed(),
    });
}

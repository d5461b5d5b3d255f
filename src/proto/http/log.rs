//! The access log's line for one HTTP request (when a log is on): what it
//! asked, as it was sent, and what it was answered. An answered request's
//! fields come from its parsed head; only a refused head, which may be
//! partial or malformed, is read again here, for what can be read of it.

use std::time::Instant;

use crate::access::Entry;
use crate::io::Connection;
use crate::proto::http::answer::Note;
use crate::proto::http::head::{MAX_HEADERS, Request, Span};

/// What one line says of the request, as sent.
#[derive(Debug, PartialEq, Eq)]
struct Asked<'a> {
    method: &'a str,
    target: &'a [u8],
    version: &'a str,
    referer: Option<&'a str>,
    user_agent: Option<&'a str>,
}

impl<'a> Asked<'a> {
    /// From `req`, parsed from `head`.
    fn parsed(head: &'a [u8], req: &Request) -> Asked<'a> {
        // Every header value of an answered head is text: a 400 otherwise.
        let text =
            |span: Option<Span>| span.and_then(|s| std::str::from_utf8(s.in_head(head)).ok());
        Asked {
            method: req.method.as_str(),
            target: req.raw.target.map_or(b"-", |s| s.in_head(head)),
            version: version(Some(req.minor_version)),
            referer: text(req.raw.referer),
            user_agent: text(req.raw.user_agent),
        }
    }

    /// From `raw` read again (into `headers`): a refused head may be
    /// partial or malformed, so whatever can be read of it.
    fn reparsed(raw: &'a [u8], headers: &'a mut [httparse::Header<'a>]) -> Asked<'a> {
        let mut req = httparse::Request::new(headers);
        let _ = req.parse(raw);
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        Asked {
            referer: header("referer"),
            user_agent: header("user-agent"),
            method: req.method.unwrap_or("-"),
            target: req.path.map_or(b"-", str::as_bytes),
            version: version(req.version),
        }
    }
}

/// The line of `req`, parsed from `head`.
pub(super) fn answered<C: Connection>(
    conn: &C,
    head: &[u8],
    req: &Request,
    note: Note,
    started: Option<Instant>,
) {
    if let Some(started) = started {
        line(conn, &Asked::parsed(head, req), note, started);
    }
}

/// The line of a refused request whose head (or what came of it) is `raw`.
pub(super) fn refused<C: Connection>(conn: &C, raw: &[u8], note: Note, started: Option<Instant>) {
    if let Some(started) = started {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        line(conn, &Asked::reparsed(raw, &mut headers), note, started);
    }
}

/// The version as the line says it (`-`: none could be read).
fn version(minor: Option<u8>) -> &'static str {
    match minor {
        Some(0) => "HTTP/1.0",
        Some(_) => "HTTP/1.1",
        None => "-",
    }
}

/// One line, when a log is on (`started`: when the request's handling
/// began).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::head::{Head, parse_head};

    #[test]
    fn a_parsed_head_logs_what_reading_it_again_would() {
        for raw in [
            "GET /a%20b?x=\"1\" HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\nUser-Agent: t/1\r\n\r\n",
            "HEAD http://h/f HTTP/1.0\r\nuser-agent:  spaced  \r\nREFERER: a\r\nReferer: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nReferer:\r\nUser-Agent: \t\r\n\r\nGET /next",
        ] {
            let Some(Head::Request(req, len)) = parse_head(raw.as_bytes(), false) else {
                panic!("{raw:?} refused")
            };
            let head = &raw.as_bytes()[..len];
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            assert_eq!(
                Asked::parsed(head, &req),
                Asked::reparsed(head, &mut headers),
                "{raw:?}"
            );
        }
    }
}

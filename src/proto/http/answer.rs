//! Answering one parsed request: the file, a range of it, 304, 416, or the
//! status an open failure comes to; and any answer that is only a status
//! (a [`Reply::text`]). Each head is written once, into the buffer it is
//! sent from; bodies go out through [`Connection::send_file_after`].

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

use tracing::debug;

use crate::fs::{DisplayPath, OpenError, RegularFile, Root};
use crate::io::{Buf, Connection, Outcome};
use crate::proto::http::head::{Method, Request};
use crate::proto::http::range::Range;
use crate::proto::http::response::{HeadWriter, Persist, Target};
use crate::proto::http::status::Status;
use crate::proto::window;

/// The `Content-Type` of a status's text body.
const TEXT: &str = "text/plain; charset=utf-8";

/// What an answer was, for the access log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Note {
    pub(super) status: Status,
    /// Body bytes sent.
    pub(super) bytes: u64,
}

/// One answer under way: the connection, the buffer its head is written
/// into and sent from, and what its head says of the connection.
pub(super) struct Reply<'a, C> {
    pub(super) conn: &'a mut C,
    pub(super) out: &'a mut Buf,
    pub(super) persist: Persist,
}

/// Answer one request for a file beneath `root`: the file, part of it,
/// 304, or why not. The note is for the access log, whatever became of the
/// answer.
pub(super) async fn answer<C: Connection>(
    root: &Root,
    r: &mut Reply<'_, C>,
    req: &Request,
) -> (Note, io::Result<()>) {
    let (file, opened) = match open(root, r.conn, &req.path).await {
        Ok(found) => found,
        Err(e) => return r.refuse(req, &e).await,
    };
    let tags = Tags::of(&file);
    if tags.fresh(req, &file) {
        return r.not_modified(&tags).await;
    }
    match tags.range(req, file.size()) {
        Range::Unsatisfiable => r.unsatisfiable(file.size()).await,
        range => r.file(req, file, &opened, &tags, range).await,
    }
}

/// Open `path`, or for a directory its `index.html` (404 without one).
/// Also says which name was opened (for its `Content-Type`).
async fn open<'p, C: Connection>(
    root: &Root,
    conn: &mut C,
    path: &'p [u8],
) -> Result<(RegularFile, Cow<'p, [u8]>), OpenError> {
    match conn.open_file(root, path).await {
        Ok(file) => Ok((file, Cow::Borrowed(path))),
        // `/` (the root itself) or any other directory.
        Err(OpenError::Empty | OpenError::NotRegular("directory")) => {
            let mut index = path.to_vec();
            if !index.ends_with(b"/") {
                index.push(b'/');
            }
            index.extend_from_slice(b"index.html");
            match conn.open_file(root, &index).await {
                Ok(file) => Ok((file, Cow::Owned(index))),
                Err(OpenError::NotRegular(_)) => Err(OpenError::NotFound),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

impl<C: Connection> Reply<'_, C> {
    /// An answer that is only `status`: its text body unless `body` is
    /// false (a `HEAD`), with the body's length either way.
    pub(super) async fn text(&mut self, status: Status, body: bool) -> (Note, io::Result<()>) {
        let text = status.text_body();
        let filled = self.head(status, |w| {
            w.field("Content-Type", TEXT)
                .field("Content-Length", text.len())
        });
        let text = if body { text } else { "" };
        let filled = filled.and_then(|()| fits(self.out.put(text.as_bytes())));
        let note = Note {
            status,
            bytes: text.len() as u64,
        };
        (note, self.send(filled).await)
    }

    /// The file could not be opened: the status that says why.
    async fn refuse(&mut self, req: &Request, e: &OpenError) -> (Note, io::Result<()>) {
        let (status, outcome) = refusal(e);
        debug!(
            "http: {} {}: {}: {e}",
            self.conn.peer(),
            DisplayPath(&req.path),
            status.code()
        );
        self.conn.record(outcome);
        self.text(status, req.method != Method::Head).await
    }

    /// 304: the client's copy is current.
    async fn not_modified(&mut self, tags: &Tags) -> (Note, io::Result<()>) {
        self.conn.record(Outcome::Served);
        let status = Status::NotModified;
        let filled = self.head(status, |w| {
            w.field("ETag", &tags.etag)
                .field("Last-Modified", &tags.modified)
        });
        (Note { status, bytes: 0 }, self.send(filled).await)
    }

    /// 416: the range lies outside the file's `total` bytes.
    async fn unsatisfiable(&mut self, total: u64) -> (Note, io::Result<()>) {
        self.conn.record(Outcome::Invalid);
        let status = Status::RangeNotSatisfiable;
        let filled = self.head(status, |w| {
            w.field("Content-Range", format_args!("bytes */{total}"))
                .field("Content-Length", 0)
        });
        (Note { status, bytes: 0 }, self.send(filled).await)
    }

    /// 200 or 206: the head, then (unless a `HEAD`) the body, the whole
    /// window or a cut. A small file can leave in the same send as its head.
    async fn file(
        &mut self,
        req: &Request,
        file: RegularFile,
        opened: &[u8],
        tags: &Tags,
        range: Range,
    ) -> (Note, io::Result<()>) {
        let total = file.size();
        let (status, file) = match range {
            Range::Satisfiable { start, len } => (Status::PartialContent, file.range(start, len)),
            _ => (Status::Ok, file),
        };
        let len = file.size();
        let mut note = Note { status, bytes: 0 };
        let filled = self.head(status, |w| {
            let w = w
                .field("Content-Type", ContentType::of(opened))
                .field("Content-Length", len)
                .field("ETag", &tags.etag)
                .field("Last-Modified", &tags.modified)
                .field("Accept-Ranges", "bytes");
            match range {
                Range::Satisfiable { start, len } => w.field(
                    "Content-Range",
                    format_args!("bytes {start}-{}/{total}", start + len - 1),
                ),
                _ => w,
            }
        });
        if let Err(e) = filled {
            return (note, Err(e));
        }
        if req.method == Method::Head || len == 0 {
            let sent = self.send(Ok(())).await;
            if sent.is_ok() {
                self.conn.record(Outcome::Served);
            }
            return (note, sent);
        }
        let head = std::mem::replace(self.out, Buf::with_capacity(0));
        let (sent, head) = self.conn.send_file_after(head, file).await;
        *self.out = head;
        match window::whole(sent, len, &req.path) {
            Ok(sent) => {
                note.bytes = sent;
                self.conn.record(Outcome::Served);
                (note, Ok(()))
            }
            Err(cut) => {
                note.bytes = cut.sent;
                self.conn.record(Outcome::Truncated);
                (note, Err(cut.error))
            }
        }
    }

    /// Write the head of `status` into the empty buffer: the status line,
    /// `Date`, `Server`, what `fields` adds, and the lines `end` adds.
    fn head(
        &mut self,
        status: Status,
        fields: impl FnOnce(HeadWriter<'_, Buf>) -> HeadWriter<'_, Buf>,
    ) -> io::Result<()> {
        self.out.clear();
        let w = HeadWriter::new(&mut *self.out, status)
            .date()
            .field("Server", "ringlet");
        fits(fields(w).end(self.persist))
    }

    /// Send what the buffer holds, once it was `filled` whole.
    async fn send(&mut self, filled: io::Result<()>) -> io::Result<()> {
        filled?;
        let b = std::mem::replace(self.out, Buf::with_capacity(0));
        let (res, b) = self.conn.write_all(b).await;
        *self.out = b;
        res
    }
}

/// An answer that did not fit its buffer is never sent cut short. Heads
/// are a few hundred bytes (fixed fields, numbers, a MIME type), so this
/// does not happen with the buffer `serve` gives.
fn fits(whole: bool) -> io::Result<()> {
    if whole {
        Ok(())
    } else {
        Err(io::Error::other("an HTTP answer longer than its buffer"))
    }
}

/// What an open failure answers, and how it is counted.
fn refusal(e: &OpenError) -> (Status, Outcome) {
    match e {
        OpenError::NotFound | OpenError::Invalid(_) | OpenError::Empty => {
            (Status::NotFound, Outcome::NotFound)
        }
        OpenError::Escapes | OpenError::Link => (Status::Forbidden, Outcome::Escape),
        OpenError::PermissionDenied => (Status::Forbidden, Outcome::Denied),
        OpenError::NotRegular(_) => (Status::Forbidden, Outcome::NotRegular),
        OpenError::Raced => (Status::ServiceUnavailable, Outcome::Invalid),
        OpenError::Io(_) => (Status::InternalServerError, Outcome::Invalid),
    }
}

/// The validators of one version of a file.
struct Tags {
    /// Strong: inode, size and modification time.
    etag: String,
    /// `Last-Modified`, an HTTP date.
    modified: String,
}

impl Tags {
    fn of(file: &RegularFile) -> Tags {
        let ns = file
            .modified()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Tags {
            etag: format!("\"{:x}-{:x}-{:x}\"", file.inode(), file.size(), ns),
            modified: httpdate::fmt_http_date(file.modified()),
        }
    }

    /// Is the client's copy current (`If-None-Match` first, RFC 9110 13.2.2)?
    fn fresh(&self, req: &Request, file: &RegularFile) -> bool {
        match (&req.if_none_match, req.if_modified_since) {
            (Some(list), _) => none_match(list, &self.etag),
            // HTTP dates have whole seconds: not modified within that second.
            (None, Some(since)) => file.modified() < since + Duration::from_secs(1),
            (None, None) => false,
        }
    }

    /// The request's `Range` against `total` bytes, if its `If-Range` (when
    /// there is one) names this version.
    fn range(&self, req: &Request, total: u64) -> Range {
        match (&req.range, &req.if_range) {
            (Some(r), None) => Range::parse(r, total),
            (Some(r), Some(v)) if *v == self.etag || *v == self.modified => Range::parse(r, total),
            _ => Range::Whole,
        }
    }
}

/// Does an `If-None-Match` list name `tag` (weak comparison, RFC 9110 13.1.2)?
fn none_match(list: &str, tag: &str) -> bool {
    list.trim() == "*"
        || list
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag)
}

/// `Content-Type` by the path's extension.
struct ContentType(Option<&'static str>);

impl ContentType {
    fn of(path: &[u8]) -> ContentType {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(b"");
        let name = String::from_utf8_lossy(name);
        ContentType(mime_guess::from_path(name.as_ref()).first_raw())
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) if t.starts_with("text/") => write!(f, "{t}; charset=utf-8"),
            Some(t) => f.write_str(t),
            None => f.write_str("application/octet-stream"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"x\""));
        assert!(!none_match("\"a\"", "\"b\""));
        let kind = |path: &[u8]| ContentType::of(path).to_string();
        assert_eq!(kind(b"/x/index.html"), "text/html; charset=utf-8");
        assert_eq!(kind(b"/blob"), "application/octet-stream");
    }
}

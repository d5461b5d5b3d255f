//! One line of the log, newline included, appended to a thread's buffer:
//! an [`Entry`] in the combined or the JSON format (see the `access`
//! header), with the client's address, numbers and durations written by
//! hand; each field cut to its budget (so that a line is at most
//! `MAX_LINE`) and escaped by `escape`. No allocation, no I/O.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::clock::Stamp;
use super::escape::{push_json_opt, push_json_str, push_nginx, push_nginx_or_dash};
use super::{Entry, Format, MAX_LINE};

/// The most bytes (escaped) a request target or a file path takes.
pub(super) const MAX_TARGET: usize = 16 * 1024;
/// The most bytes (escaped) a referer or a user agent takes.
const MAX_HEADER: usize = 4 * 1024;
/// The most bytes (escaped) a method, version, outcome or service takes.
const MAX_WORD: usize = 64;

/// One line, newline included, appended to `out`: at most [`MAX_LINE`].
pub(super) fn format_entry(out: &mut Vec<u8>, format: Format, entry: &Entry<'_>, stamp: &Stamp) {
    let start = out.len();
    match format {
        Format::Combined => combined(out, entry, stamp),
        Format::Json => json(out, entry, stamp),
    }
    out.push(b'\n');
    debug_assert!(out.len() - start <= MAX_LINE);
}

fn client(entry: &Entry<'_>) -> SocketAddr {
    match *entry {
        Entry::Http { client, .. } | Entry::File { client, .. } | Entry::Session { client, .. } => {
            client
        }
    }
}

fn push_ip(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip().to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            push_u64(out, a.into());
            for n in [b, c, d] {
                out.push(b'.');
                push_u64(out, n.into());
            }
        }
        v6 => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Seconds to the microsecond: `0.000123`.
fn push_secs(out: &mut Vec<u8>, d: Duration) {
    push_u64(out, d.as_secs());
    let micros = d.subsec_micros();
    let mut frac = *b".000000";
    let mut n = micros;
    for b in frac[1..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&frac);
}

fn combined(out: &mut Vec<u8>, entry: &Entry<'_>, stamp: &Stamp) {
    push_ip(out, client(entry));
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(&stamp.local);
    out.extend_from_slice(b"] \"");
    match *entry {
        Entry::Http {
            method,
            target,
            version,
            status,
            bytes,
            referer,
            user_agent,
            duration,
            ..
        } => {
            push_nginx(out, method.as_bytes(), MAX_WORD);
            out.push(b' ');
            push_nginx(out, target, MAX_TARGET);
            out.push(b' ');
            push_nginx(out, version.as_bytes(), MAX_WORD);
            out.extend_from_slice(b"\" ");
            push_u64(out, u64::from(status));
            out.push(b' ');
            push_u64(out, bytes);
            out.extend_from_slice(b" \"");
            push_nginx_or_dash(out, referer, MAX_HEADER);
            out.extend_from_slice(b"\" \"");
            push_nginx_or_dash(out, user_agent, MAX_HEADER);
            out.extend_from_slice(b"\" rt=");
            push_secs(out, duration);
        }
        Entry::File {
            path,
            outcome,
            bytes,
            duration,
            ..
        } => {
            out.extend_from_slice(b"FILE ");
            push_nginx(out, path, MAX_TARGET);
            out.extend_from_slice(b"\" ");
            push_nginx(out, outcome.as_bytes(), MAX_WORD);
            out.push(b' ');
            push_u64(out, bytes);
            out.extend_from_slice(b" rt=");
            push_secs(out, duration);
        }
        Entry::Session {
            service,
            bytes_in,
            bytes_out,
            duration,
            ..
        } => {
            out.extend_from_slice(b"SESSION ");
            push_nginx(out, service.as_bytes(), MAX_WORD);
            out.extend_from_slice(b"\" in=");
            push_u64(out, bytes_in);
            out.extend_from_slice(b" out=");
            push_u64(out, bytes_out);
            out.extend_from_slice(b" rt=");
            push_secs(out, duration);
        }
    }
}

fn json(out: &mut Vec<u8>, entry: &Entry<'_>, stamp: &Stamp) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(&stamp.iso);
    out.extend_from_slice(match entry {
        Entry::Http { .. } => b"\",\"kind\":\"http\",\"client\":\"",
        Entry::File { .. } => b"\",\"kind\":\"file\",\"client\":\"",
        Entry::Session { .. } => b"\",\"kind\":\"session\",\"client\":\"",
    });
    push_ip(out, client(entry));
    out.push(b'"');
    match *entry {
        Entry::Http {
            method,
            target,
            version,
            status,
            bytes,
            referer,
            user_agent,
            duration,
            ..
        } => {
            out.extend_from_slice(b",\"method\":");
            push_json_str(out, method.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"target\":");
            push_json_str(out, target, MAX_TARGET);
            out.extend_from_slice(b",\"version\":");
            push_json_str(out, version.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"status\":");
            push_u64(out, u64::from(status));
            out.extend_from_slice(b",\"bytes\":");
            push_u64(out, bytes);
            out.extend_from_slice(b",\"referer\":");
            push_json_opt(out, referer, MAX_HEADER);
            out.extend_from_slice(b",\"user_agent\":");
            push_json_opt(out, user_agent, MAX_HEADER);
            out.extend_from_slice(b",\"duration\":");
            push_secs(out, duration);
        }
        Entry::File {
            path,
            outcome,
            bytes,
            duration,
            ..
        } => {
            out.extend_from_slice(b",\"path\":");
            push_json_str(out, path, MAX_TARGET);
            out.extend_from_slice(b",\"outcome\":");
            push_json_str(out, outcome.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"bytes\":");
            push_u64(out, bytes);
            out.extend_from_slice(b",\"duration\":");
            push_secs(out, duration);
        }
        Entry::Session {
            service,
            bytes_in,
            bytes_out,
            duration,
            ..
        } => {
            out.extend_from_slice(b",\"service\":");
            push_json_str(out, service.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"bytes_in\":");
            push_u64(out, bytes_in);
            out.extend_from_slice(b",\"bytes_out\":");
            push_u64(out, bytes_out);
            out.extend_from_slice(b",\"duration\":");
            push_secs(out, duration);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use crate::access::test_support::{T, file_entry, http, line, session};
    use crate::access::{Entry, Format};
    use std::time::Duration;

    #[test]
    fn combined_lines() {
        assert_eq!(
            line(
                Format::Combined,
                &http(b"/a?b", None, Some("curl/8.5.0")),
                T
            ),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"GET /a?b HTTP/1.1\" 200 5120 \"-\" \"curl/8.5.0\" rt=0.000123\n"
        );
        assert_eq!(
            line(
                Format::Combined,
                &http(b"/", Some("http://x/"), Some("")),
                T
            ),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"GET / HTTP/1.1\" 200 5120 \"http://x/\" \"\" rt=0.000123\n"
        );
        assert_eq!(
            line(Format::Combined, &file_entry(b"/etc/motd"), T),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"FILE /etc/motd\" served 5120 rt=0.001000\n"
        );
        assert_eq!(
            line(Format::Combined, &session(), T),
            "10.1.2.3 - - [04/Dec/2026:02:45:07 +0000] \"SESSION echo\" in=12 out=34 rt=1.500000\n"
        );
        let v6 = Entry::Session {
            client: "[2001:db8::1]:9".parse().unwrap(),
            service: "echo",
            bytes_in: 0,
            bytes_out: u64::MAX,
            duration: Duration::ZERO,
        };
        assert_eq!(
            line(Format::Combined, &v6, T),
            "2001:db8::1 - - [04/Dec/2026:02:45:07 +0000] \"SESSION echo\" in=0 out=18446744073709551615 rt=0.000000\n"
        );
    }

    #[test]
    fn json_lines() {
        let cases = [
            (
                http(b"/a?b", None, Some("curl/8.5.0")),
                r#"{"time":"2026-12-04T02:45:07+00:00","kind":"http","client":"127.0.0.1","method":"GET","target":"/a?b","version":"HTTP/1.1","status":200,"bytes":5120,"referer":null,"user_agent":"curl/8.5.0","duration":0.000123}"#,
            ),
            (
                file_entry(b"/etc/motd"),
                r#"{"time":"2026-12-04T02:45:07+00:00","kind":"file","client":"127.0.0.1","path":"/etc/motd","outcome":"served","bytes":5120,"duration":0.001000}"#,
            ),
            (
                session(),
                r#"{"time":"2026-12-04T02:45:07+00:00","kind":"session","client":"10.1.2.3","service":"echo","bytes_in":12,"bytes_out":34,"duration":1.500000}"#,
            ),
        ];
        for (entry, want) in cases {
            let got = line(Format::Json, &entry, T);
            assert_eq!(got, format!("{want}\n"));
            let v: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_eq!(v["time"], "2026-12-04T02:45:07+00:00");
        }
        let v: serde_json::Value =
            serde_json::from_str(&line(Format::Json, &http(b"/", None, None), T)).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration"], 0.000123);
        assert!(v["user_agent"].is_null());
    }
}

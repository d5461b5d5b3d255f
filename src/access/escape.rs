//! One field of a line, escaped and cut to its budget: nginx's escaping
//! for the combined format (`"`, `\`, below 0x20 and from 0x7f as
//! `\xHH`), a JSON string for the JSON format (invalid UTF-8 as `\xHH`);
//! a field longer than its budget ends in `...`, never splitting a
//! character or an escape. Printable ASCII within the budget, the common
//! case, is copied in one pass.

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// nginx's escaping of a log variable: `"`, `\`, below 0x20, from 0x7f.
fn nginx_escapes(b: u8) -> bool {
    ESCAPED[usize::from(b)]
}

/// The bytes [`nginx_escapes`], as a table.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b == b'"' as usize || b == b'\\' as usize || b < 0x20 || b >= 0x7f;
        b += 1;
    }
    table
};

/// Printable ASCII but `"` and `\`, within `budget`: written as it is, in
/// both formats (the common case, one pass).
fn plain(s: &[u8], budget: usize) -> bool {
    s.len() <= budget && !s.iter().any(|&b| nginx_escapes(b))
}

/// `s` escaped as nginx does, cut with `...` to at most `budget` bytes.
pub(super) fn push_nginx(out: &mut Vec<u8>, s: &[u8], budget: usize) {
    if plain(s, budget) {
        out.extend_from_slice(s);
        return;
    }
    let len = |b: u8| if nginx_escapes(b) { 4 } else { 1 };
    let total: usize = s.iter().map(|&b| len(b)).sum();
    let limit = if total <= budget { total } else { budget - 3 };
    let mut used = 0;
    for &b in s {
        used += len(b);
        if used > limit {
            out.extend_from_slice(b"...");
            return;
        }
        if nginx_escapes(b) {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

pub(super) fn push_nginx_or_dash(out: &mut Vec<u8>, s: Option<&str>, budget: usize) {
    match s {
        Some(s) => push_nginx(out, s.as_bytes(), budget),
        None => out.push(b'-'),
    }
}

/// The escaped length of one character in a JSON string.
fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 || c == '\x7f' => 6,
        c => c.len_utf8(),
    }
}

fn push_json_char(out: &mut Vec<u8>, c: char) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let b = c as u8;
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX_LOWER[usize::from(b >> 4)],
                HEX_LOWER[usize::from(b & 15)],
            ]);
        }
        c => {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// An invalid UTF-8 byte in a JSON string: the four characters `\xHH`,
/// the backslash escaped (five bytes).
const JSON_INVALID_LEN: usize = 5;

/// `s` as a JSON string, quotes included, its contents cut with `...` to at
/// most `budget` bytes.
pub(super) fn push_json_str(out: &mut Vec<u8>, s: &[u8], budget: usize) {
    if plain(s, budget) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let total: usize = s
        .utf8_chunks()
        .map(|c| {
            c.valid().chars().map(json_char_len).sum::<usize>()
                + c.invalid().len() * JSON_INVALID_LEN
        })
        .sum();
    let limit = if total <= budget { total } else { budget - 3 };
    let mut used = 0;
    out.push(b'"');
    'all: for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            used += json_char_len(c);
            if used > limit {
                out.extend_from_slice(b"...");
                break 'all;
            }
            push_json_char(out, c);
        }
        for &b in chunk.invalid() {
            used += JSON_INVALID_LEN;
            if used > limit {
                out.extend_from_slice(b"...");
                break 'all;
            }
            out.extend_from_slice(&[
                b'\\',
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 15)],
            ]);
        }
    }
    out.push(b'"');
}

pub(super) fn push_json_opt(out: &mut Vec<u8>, s: Option<&str>, budget: usize) {
    match s {
        Some(s) => push_json_str(out, s.as_bytes(), budget),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use crate::access::format::MAX_TARGET;
    use crate::access::test_support::{T, file_entry, http, line};
    use crate::access::{Entry, Format};
    use std::time::Duration;

    #[test]
    fn combined_escapes_as_nginx() {
        let target = b"/q\"\\\x01\t\x7f\xff\xc3\xa9 ~";
        assert_eq!(
            line(
                Format::Combined,
                &http(target, Some("a\"b"), Some("x\ny\\")),
                T
            ),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"GET /q\\x22\\x5C\\x01\\x09\\x7F\\xFF\\xC3\\xA9 ~ HTTP/1.1\" 200 5120 \"a\\x22b\" \"x\\x0Ay\\x5C\" rt=0.000123\n"
        );
        assert_eq!(
            line(Format::Combined, &file_entry(b"a b\x00\"c"), T),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"FILE a b\\x00\\x22c\" served 5120 rt=0.001000\n"
        );
    }

    #[test]
    fn json_escapes_and_parses() {
        let target = b"/q\"\\\x01\t\n\r\x7f\xff\xc3\xa9 ~";
        let got = line(
            Format::Json,
            &http(target, Some("\u{1f600}"), Some("x\x1fy")),
            T,
        );
        assert_eq!(
            got,
            "{\"time\":\"2026-12-04T02:45:07+00:00\",\"kind\":\"http\",\"client\":\"127.0.0.1\",\"method\":\"GET\",\
             \"target\":\"/q\\\"\\\\\\u0001\\t\\n\\r\\u007f\\\\xFF\u{e9} ~\",\"version\":\"HTTP/1.1\",\"status\":200,\
             \"bytes\":5120,\"referer\":\"\u{1f600}\",\"user_agent\":\"x\\u001fy\",\"duration\":0.000123}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["target"], "/q\"\\\u{1}\t\n\r\u{7f}\\xFF\u{e9} ~");
        assert_eq!(v["referer"], "\u{1f600}");
        assert_eq!(v["user_agent"], "x\u{1f}y");
        let got = line(Format::Json, &file_entry(b"\xfe\"\x00"), T);
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["path"], "\\xFE\"\u{0}");
    }

    #[test]
    fn long_fields_are_cut_to_one_bounded_line() {
        // Worst case: every byte escaped four times (combined) or six (JSON).
        let target = vec![1u8; 100_000];
        let header = "\u{1}".repeat(100_000);
        let word = "\u{1}".repeat(1000);
        let entry = Entry::Http {
            client: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1"
                .parse()
                .unwrap(),
            method: &word,
            target: &target,
            version: &word,
            status: u16::MAX,
            bytes: u64::MAX,
            referer: Some(&header),
            user_agent: Some(&header),
            duration: Duration::MAX,
        };
        let c = line(Format::Combined, &entry, u64::MAX);
        assert!(c.contains("\\x01\\x01...\" 65535"), "{}", &c[..200]);
        assert_eq!(c.matches("...").count(), 5);
        let j = line(Format::Json, &entry, u64::MAX);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        let t = v["target"].as_str().unwrap();
        assert!(t.ends_with("\u{1}..."));
        assert_eq!(t.len(), (MAX_TARGET - 3) / 6 + 3);
        assert_eq!(v["time"], "9999-12-31T23:59:59+00:00");
        // A cut never splits a character.
        let wide = "é".repeat(20_000);
        let entry = file_entry(wide.as_bytes());
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json, &entry, T)).unwrap();
        assert_eq!(
            v["path"].as_str().unwrap(),
            format!("{}...", "é".repeat((MAX_TARGET - 3) / 2))
        );
        // A field that fits exactly is not cut.
        let fits = "a".repeat(MAX_TARGET);
        let c = line(Format::Combined, &file_entry(fits.as_bytes()), T);
        assert!(c.contains(&format!("FILE {fits}\"")));
    }
}

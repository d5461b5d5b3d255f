//! PROXY protocol v1: the text line `PROXY TCP4|TCP6|UNKNOWN ...\r\n`,
//! strictly (single spaces, addresses in the stated family, decimal ports
//! without leading zeros, CRLF within 107 bytes), refused as soon as the
//! bytes so far can no longer begin a valid line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::header::{Header, ProxyError, signature};

/// v1's longest line, CRLF included.
const V1_MAX: usize = 107;
const V1_SIG: &[u8] = b"PROXY ";

/// A v1 header at the front of `buf` (which starts with `P`): as
/// [`parse`](super::parse).
pub(super) fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    match signature(buf, V1_SIG) {
        None => return Err(ProxyError::NotProxy),
        Some(false) => return Ok(None),
        Some(true) => {}
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    let end = window[V1_SIG.len()..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|i| i + V1_SIG.len());
    let Some(cr) = end else {
        v1_line(&window[V1_SIG.len()..], false)?;
        return if window.len() == V1_MAX {
            Err(ProxyError::TooLong)
        } else {
            Ok(None)
        };
    };
    if window[cr] == b'\n' {
        return Err(ProxyError::Malformed("a bare LF ends the v1 line"));
    }
    let line = &window[V1_SIG.len()..cr];
    match window.get(cr + 1) {
        Some(b'\n') => {
            let header = v1_line(line, true)?.ok_or(ProxyError::Malformed("v1 line"))?;
            Ok(Some((header, cr + 2)))
        }
        Some(_) => Err(ProxyError::Malformed("a CR without LF in the v1 line")),
        None => {
            // The CR is the last byte we have: the line must be whole.
            v1_line(line, true)?;
            if cr + 1 == V1_MAX {
                Err(ProxyError::TooLong)
            } else {
                Ok(None)
            }
        }
    }
}

/// The v1 line after `PROXY ` and before CRLF. `complete`: the CRLF follows
/// (`Ok(Some)` or `Err`); otherwise it is what arrived so far (`Ok(None)` while
/// it can still become valid).
fn v1_line(line: &[u8], complete: bool) -> Result<Option<Header>, ProxyError> {
    const PROTOS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
    let (proto, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let Some(rest) = rest else {
        return match (complete, proto) {
            (true, b"UNKNOWN") => Ok(Some(Header::Local)),
            (true, b"TCP4" | b"TCP6") => Err(ProxyError::Malformed("v1 line without addresses")),
            (false, p) if PROTOS.iter().any(|k| k.starts_with(p)) => Ok(None),
            _ => Err(ProxyError::Malformed(
                "v1 protocol is none of TCP4, TCP6, UNKNOWN",
            )),
        };
    };
    let v6 = match proto {
        b"UNKNOWN" => return Ok(complete.then_some(Header::Local)),
        b"TCP4" => false,
        b"TCP6" => true,
        _ => {
            return Err(ProxyError::Malformed(
                "v1 protocol is none of TCP4, TCP6, UNKNOWN",
            ));
        }
    };
    let mut fields = [&[][..]; 4];
    let mut count = 0;
    for field in rest.split(|&b| b == b' ') {
        if count == 4 {
            return Err(if field.is_empty() || fields.iter().any(|f| f.is_empty()) {
                ProxyError::Malformed("v1 fields are not single-spaced")
            } else {
                ProxyError::Malformed("v1 line has more than 4 fields")
            });
        }
        fields[count] = field;
        count += 1;
    }
    for (k, field) in fields[..count].iter().enumerate() {
        let whole = complete || k + 1 < count;
        if whole && field.is_empty() {
            return Err(ProxyError::Malformed("v1 fields are not single-spaced"));
        }
        match (k < 2, whole) {
            (true, true) => {
                ip(field, v6)?;
            }
            (true, false) => ip_prefix(field, v6)?,
            (false, true) => {
                port(field)?;
            }
            (false, false) => port_prefix(field)?,
        }
    }
    if !complete {
        return Ok(None);
    }
    if count < 4 {
        return Err(ProxyError::Malformed(
            "v1 line needs source, destination and both ports",
        ));
    }
    let (src, dst) = (ip(fields[0], v6)?, ip(fields[1], v6)?);
    let (sport, dport) = (port(fields[2])?, port(fields[3])?);
    Ok(Some(Header::Proxied {
        source: SocketAddr::new(src, sport),
        destination: SocketAddr::new(dst, dport),
    }))
}

fn ip(field: &[u8], v6: bool) -> Result<IpAddr, ProxyError> {
    let text = std::str::from_utf8(field).map_err(|_| ProxyError::Malformed("v1 address"))?;
    if v6 {
        Ipv6Addr::from_str(text)
            .map(IpAddr::V6)
            .map_err(|_| ProxyError::Malformed("v1 TCP6 source or destination is not IPv6"))
    } else {
        // std refuses leading zeros in an octet, as the spec does.
        Ipv4Addr::from_str(text)
            .map(IpAddr::V4)
            .map_err(|_| ProxyError::Malformed("v1 TCP4 source or destination is not IPv4"))
    }
}

/// Could `field` still grow into an address of the family?
fn ip_prefix(field: &[u8], v6: bool) -> Result<(), ProxyError> {
    if v6 {
        // The longest, with an IPv4 tail: 6 groups of 4, 6 colons, 15.
        let ok = field.len() <= 45
            && field
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.');
        return if ok {
            Ok(())
        } else {
            Err(ProxyError::Malformed(
                "v1 TCP6 source or destination is not IPv6",
            ))
        };
    }
    let bad = Err(ProxyError::Malformed(
        "v1 TCP4 source or destination is not IPv4",
    ));
    let mut parts = field.split(|&b| b == b'.').peekable();
    let mut count = 0;
    while let Some(part) = parts.next() {
        count += 1;
        let last = parts.peek().is_none();
        if count > 4 || !last && part.is_empty() || number(part, 255).is_err() {
            return bad;
        }
    }
    Ok(())
}

/// A decimal number so far: digits only, no leading zero, at most `max`.
/// An empty `digits` is a number yet to come.
fn number(digits: &[u8], max: u32) -> Result<(), ()> {
    if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(());
    }
    let value = digits
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if value > max { Err(()) } else { Ok(()) }
}

fn port(field: &[u8]) -> Result<u16, ProxyError> {
    port_prefix(field)?;
    if field.is_empty() {
        return Err(ProxyError::Malformed("v1 port is empty"));
    }
    Ok(field.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

fn port_prefix(field: &[u8]) -> Result<(), ProxyError> {
    number(field, 65535)
        .map_err(|()| ProxyError::Malformed("v1 port is not decimal 0-65535 without leading zeros"))
}

//! The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`, v1 and v2): what
//! a balancer puts in front of a connection to say whose it is, parsed from
//! the bytes read so far ([`parse`]), and the address blocks a header is
//! trusted from ([`Cidr`], [`loopback`]).
//!
//! Pure functions over byte slices and addresses. This module never does I/O,
//! never waits, never allocates while parsing, never reads past the slice it
//! is given, and never decides trust by itself: the caller checks the socket's
//! peer against its `--proxy-from` blocks before it believes a header, and owns
//! the header deadline.
//!
//! Decisions:
//! - [`MAX_HEADER`] is 4096 bytes. v1 never needs more than 107. v2 is 16 bytes
//!   plus an address block (at most 216, AF_UNIX) plus TLVs; HAProxy's
//!   `send-proxy-v2` TLVs (ALPN, authority ≤ 255, unique id ≤ 128, CRC32C, the
//!   SSL block with its version, cipher, algorithms and CN, netns) stay well
//!   under 2 KiB, and a cloud balancer's (an AWS endpoint id, an Azure link id)
//!   are a few dozen bytes. The field itself allows 65 551; the cap bounds what
//!   a connection may make the server hold before it is served.
//! - v2 `PROXY` over UDP or AF_UNIX is refused ([`ProxyError::Unsupported`],
//!   naming which): those addresses are not a `SocketAddr`, and serving the
//!   connection under the balancer's address would misattribute every request.
//!   v2 `PROXY` with `AF_UNSPEC` (`\x00`) is the sender saying it has no
//!   address to give, the same as v1 `UNKNOWN`: both are [`Header::Local`].
//!   v2 `LOCAL` is `Local` whatever its family byte (the spec: ignored).
//! - v2 TLVs are skipped, but for a proxied TCP connection their framing must
//!   fill the header exactly (as HAProxy checks); a CRC32C TLV is not verified.
//! - v1 is strict: single spaces, addresses in the stated family (IPv4 with no
//!   leading zeros; IPv6 as `inet_ntop` writes it, `::ffff:1.2.3.4` included),
//!   ports 0..=65535 in decimal without sign or leading zeros, CRLF within 107
//!   bytes. After `UNKNOWN` and a space the rest of the line is ignored.
//! - [`Cidr`] refuses a block with host bits set (`10.0.0.1/8`): on a trust
//!   list a typo must not silently widen or narrow what is trusted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection: the client's address and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The balancer's own connection (v2 LOCAL, e.g. a health check; v1 `UNKNOWN`):
    /// serve it as it is, under the socket's own peer address.
    Local,
}

/// Why a header was refused (for one log line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The bytes start with neither the v1 (`PROXY `) nor the v2 signature.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// A signature, then something the spec does not allow.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    /// No end within the limit: v1 without CRLF in 107 bytes, v2 longer than [`MAX_HEADER`].
    #[error("PROXY header too long")]
    TooLong,
    /// A valid v2 header for a connection this server cannot represent.
    #[error("unsupported PROXY header: {0}")]
    Unsupported(&'static str),
}

/// The longest header accepted, in bytes: v1's 107; v2's 16 + address block +
/// TLVs, capped at 4096 (see the module's decisions).
pub const MAX_HEADER: usize = 4096;

/// v1's longest line, CRLF included.
const V1_MAX: usize = 107;
const V1_SIG: &[u8] = b"PROXY ";
const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;

/// Look for a whole PROXY header (v1 or v2) at the front of `buf`. `Ok(None)`:
/// incomplete so far, read more (only while `buf` could still be a prefix of a
/// valid header); `Ok(Some((header, len)))`: the header and how many bytes it
/// took (the bytes after it belong to the protocol); `Err`: refuse the
/// connection. Never panics, never reads past `buf`.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => v1(buf),
        Some(b'\r') => v2(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// `buf` against a signature: `Some(true)` all of it there, `Some(false)` a
/// prefix of it so far, `None` not it.
fn signature(buf: &[u8], sig: &[u8]) -> Option<bool> {
    let n = buf.len().min(sig.len());
    (buf[..n] == sig[..n]).then_some(n == sig.len())
}

fn v1(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
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

fn v2(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    match signature(buf, V2_SIG) {
        None => return Err(ProxyError::NotProxy),
        Some(false) => return Ok(None),
        Some(true) => {}
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version is not 2"));
    }
    let proxy = match ver_cmd & 0x0f {
        0 => false,
        1 => true,
        _ => {
            return Err(ProxyError::Malformed(
                "v2 command is neither LOCAL nor PROXY",
            ));
        }
    };
    let Some(&family) = buf.get(13) else {
        return Ok(None);
    };
    // The address block a proxied connection must carry (None: UNSPEC, Local).
    let block = if !proxy {
        None
    } else {
        match family {
            0x00 => None,
            0x11 => Some(12),
            0x21 => Some(36),
            0x12 => return Err(ProxyError::Unsupported("v2 PROXY for UDP over IPv4")),
            0x22 => return Err(ProxyError::Unsupported("v2 PROXY for UDP over IPv6")),
            0x31 => return Err(ProxyError::Unsupported("v2 PROXY for a unix stream")),
            0x32 => return Err(ProxyError::Unsupported("v2 PROXY for unix datagrams")),
            _ => return Err(ProxyError::Malformed("v2 family/protocol byte is unknown")),
        }
    };
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(None);
    };
    let rest = usize::from(u16::from_be_bytes([hi, lo]));
    let total = V2_FIXED + rest;
    if total > MAX_HEADER {
        return Err(ProxyError::TooLong);
    }
    if rest < block.unwrap_or(0) {
        return Err(ProxyError::Malformed(
            "v2 length is shorter than the address block",
        ));
    }
    let Some(header) = buf.get(..total) else {
        return Ok(None);
    };
    let Some(block) = block else {
        return Ok(Some((Header::Local, total)));
    };
    let a = &header[V2_FIXED..];
    let (source, destination) = if family == 0x11 {
        let ip = |at: usize| Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]);
        let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
        (
            SocketAddr::V4(SocketAddrV4::new(ip(0), port(8))),
            SocketAddr::V4(SocketAddrV4::new(ip(4), port(10))),
        )
    } else {
        let ip = |at: usize| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[at..at + 16]);
            Ipv6Addr::from(o)
        };
        let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
        (
            SocketAddr::V6(SocketAddrV6::new(ip(0), port(32), 0, 0)),
            SocketAddr::V6(SocketAddrV6::new(ip(16), port(34), 0, 0)),
        )
    };
    tlvs(&a[block..])?;
    Ok(Some((
        Header::Proxied {
            source,
            destination,
        },
        total,
    )))
}

/// The TLVs after the address block: type, 2-byte length, value, filling it exactly.
fn tlvs(mut rest: &[u8]) -> Result<(), ProxyError> {
    while !rest.is_empty() {
        let [_, hi, lo, ..] = *rest else {
            return Err(ProxyError::Malformed("v2 TLV cut short"));
        };
        let len = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        rest = rest
            .get(len..)
            .ok_or(ProxyError::Malformed("v2 TLV runs past the header"))?;
    }
    Ok(())
}

/// An address block: `127.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The block `addr/prefix`: refused if the prefix is longer than the
    /// family's or if `addr` has bits set past the prefix.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, String> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!(
                "the prefix of an {} block is at most {max}, not {prefix}",
                if addr.is_ipv4() { "IPv4" } else { "IPv6" }
            ));
        }
        let block = Cidr { addr, prefix };
        let masked = block.network();
        if masked != addr {
            return Err(format!(
                "{addr}/{prefix} has host bits set (the block is {masked}/{prefix}; one host is {addr}/{max})"
            ));
        }
        Ok(block)
    }

    /// The block's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// How many leading bits an address must share with [`Cidr::addr`].
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask4(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask6(self.prefix))),
        }
    }

    /// Is `ip` in the block? An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`,
    /// what a dual-stack listener sees) is matched against IPv4 blocks as the
    /// IPv4 address it maps; a plain IPv4 address is never in an IPv6 block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => in4(net, self.prefix, a),
            (IpAddr::V4(net), IpAddr::V6(a)) => {
                a.to_ipv4_mapped().is_some_and(|a| in4(net, self.prefix, a))
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask6(self.prefix) == u128::from(net)
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn in4(net: Ipv4Addr, prefix: u8, a: Ipv4Addr) -> bool {
    u32::from(a) & mask4(prefix) == u32::from(net)
}

fn mask4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let fail = |why: String| format!("expected ADDRESS/PREFIX, e.g. 10.0.0.0/8: {s:?}: {why}");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr)
            .map_err(|_| fail(format!("{addr:?} is not an IPv4 or IPv6 address")))?;
        let prefix = match prefix {
            None => {
                if addr.is_ipv4() {
                    32
                } else {
                    128
                }
            }
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail(format!("the prefix {p:?} is not a number of bits")));
                }
                p.parse::<u8>()
                    .map_err(|_| fail(format!("the prefix {p:?} is too long")))?
            }
        };
        Cidr::new(addr, prefix).map_err(fail)
    }
}

/// Loopback only: 127.0.0.0/8 and ::1/128 (the default of --proxy-from).
pub fn loopback() -> Vec<Cidr> {
    vec![
        Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        },
        Cidr {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v2 signature, written out from the spec's bytes.
    const SIG: [u8; 12] = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
    ];

    fn v2(rest: &[u8]) -> Vec<u8> {
        let mut h = SIG.to_vec();
        h.extend_from_slice(rest);
        h
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn proxied(source: &str, destination: &str) -> Header {
        Header::Proxied {
            source: sa(source),
            destination: sa(destination),
        }
    }

    fn malformed(buf: &[u8]) -> bool {
        matches!(parse(buf), Err(ProxyError::Malformed(_)))
    }

    /// Every strict prefix is "read more"; the whole, followed by protocol
    /// bytes, is the header and exactly `len` bytes.
    fn whole(header: &[u8], expected: Header, len: usize) {
        assert_eq!(header.len(), len, "the test's own header");
        for k in 0..len {
            assert_eq!(
                parse(&header[..k]),
                Ok(None),
                "prefix of {k} bytes of {header:?}"
            );
        }
        assert_eq!(parse(header), Ok(Some((expected, len))));
        let mut more = header.to_vec();
        more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(parse(&more), Ok(Some((expected, len))));
    }

    #[test]
    fn v1_tcp4() {
        whole(
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            proxied("192.168.0.1:56324", "192.168.0.11:443"),
            47,
        );
        whole(
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            proxied("255.255.255.255:65535", "255.255.255.255:65535"),
            56,
        );
        whole(
            b"PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n",
            proxied("0.0.0.0:0", "10.0.0.1:0"),
            33,
        );
    }

    #[test]
    fn v1_tcp6() {
        whole(
            b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n",
            proxied("[2001:db8::1]:0", "[::ffff:10.0.0.1]:65535"),
            48,
        );
        let max = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                    FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 1\r\n";
        let all = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]";
        whole(
            max,
            proxied(&format!("{all}:65535"), &format!("{all}:1")),
            100,
        );
    }

    #[test]
    fn v1_unknown_is_local() {
        whole(b"PROXY UNKNOWN\r\n", Header::Local, 15);
        // The worst case of the spec: 107 bytes, the rest ignored.
        whole(
            b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
              ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            Header::Local,
            107,
        );
        whole(b"PROXY UNKNOWN anything at all\r\n", Header::Local, 31);
    }

    #[test]
    fn v1_malformed() {
        let cases: &[&[u8]] = &[
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 44a\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80  443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n",
            b"PROXY TCP4 ::1 ::1 80 443\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 80 443\r\n",
            b"PROXY TCP6 ::1%eth0 ::1 80 443\r\n",
            b"PROXY TCP6 1::2::3 ::1 80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\rX",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY TCP4\r\n",
            b"PROXY TCP4 \r\n",
            b"PROXY \r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY UNKNOWN\n",
        ];
        for case in cases {
            assert!(
                malformed(case),
                "{:?}: {:?}",
                String::from_utf8_lossy(case),
                parse(case)
            );
        }
    }

    #[test]
    fn v1_refusals_say_why() {
        let why = |line: &[u8]| match parse(line) {
            Err(ProxyError::Malformed(why)) => why,
            other => panic!("{line:?}: {other:?}"),
        };
        assert_eq!(
            why(b"PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n"),
            "v1 fields are not single-spaced"
        );
        assert_eq!(
            why(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 \r\n"),
            "v1 fields are not single-spaced"
        );
        assert_eq!(
            why(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 080\r\n"),
            "v1 port is not decimal 0-65535 without leading zeros"
        );
        assert_eq!(
            why(b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n"),
            "v1 TCP6 source or destination is not IPv6"
        );
        assert_eq!(
            why(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n"),
            "a bare LF ends the v1 line"
        );
        assert_eq!(
            why(b"PROXY TCP4 1.2.3.4  5.6.7.8 80\r\n"),
            "v1 fields are not single-spaced"
        );
        assert_eq!(
            why(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n"),
            "v1 line has more than 4 fields"
        );
        assert_eq!(
            why(b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"),
            "v1 line needs source, destination and both ports"
        );
    }

    #[test]
    fn v1_refused_before_the_line_ends() {
        // As soon as the bytes can no longer begin a valid line.
        let cases: &[&[u8]] = &[
            b"PROXY X",
            b"PROXY TCP4X",
            b"PROXY  ",
            b"PROXY TCP4 1.2.3.4  ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 00",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536",
            b"PROXY TCP4 256",
            b"PROXY TCP4 1..",
            b"PROXY TCP4 1.2.3.4.",
            b"PROXY TCP4 ::",
            b"PROXY TCP6 ::g",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r",
        ];
        for case in cases {
            assert!(
                malformed(case),
                "{:?}: {:?}",
                String::from_utf8_lossy(case),
                parse(case)
            );
        }
    }

    #[test]
    fn v1_without_crlf_in_107_bytes_is_too_long() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(106, b'a');
        assert_eq!(parse(&line), Ok(None));
        line.push(b'a');
        assert_eq!(line.len(), 107);
        assert_eq!(parse(&line), Err(ProxyError::TooLong));
        line.extend_from_slice(b"\r\n");
        assert_eq!(parse(&line), Err(ProxyError::TooLong));
        // The CR as the 107th byte: its LF would be the 108th.
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(106, b'a');
        line.push(b'\r');
        assert_eq!(parse(&line), Err(ProxyError::TooLong));
        line.push(b'\n');
        assert_eq!(parse(&line), Err(ProxyError::TooLong));
        // 105 + CRLF = 107 is still a line.
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(105, b'a');
        line.extend_from_slice(b"\r\n");
        assert_eq!(parse(&line), Ok(Some((Header::Local, 107))));
    }

    #[test]
    fn v2_ipv4() {
        let h = v2(&[
            0x21, 0x11, 0x00, 0x0C, // v2 PROXY, TCP over IPv4, 12 bytes
            192, 168, 0, 1, // source
            10, 0, 0, 2, // destination
            0xD2, 0x04, // 53764
            0x01, 0xBB, // 443
        ]);
        whole(&h, proxied("192.168.0.1:53764", "10.0.0.2:443"), 28);
    }

    #[test]
    fn v2_ipv4_with_tlvs() {
        let h = v2(&[
            0x21, 0x11, 0x00, 0x22, // 12 + 22 bytes
            192, 168, 0, 1, 10, 0, 0, 2, 0xD2, 0x04, 0x01, 0xBB, //
            0x01, 0x00, 0x02, b'h', b'2', // ALPN "h2"
            0x04, 0x00, 0x00, // NOOP, empty
            0x02, 0x00, 0x0B, b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o',
            b'm', // AUTHORITY "example.com"
        ]);
        whole(&h, proxied("192.168.0.1:53764", "10.0.0.2:443"), 50);
    }

    #[test]
    fn v2_ipv6() {
        let mut rest = vec![0x21, 0x21, 0x00, 0x24]; // PROXY, TCP over IPv6, 36 bytes
        rest.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        rest.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        rest.extend_from_slice(&[0x1F, 0x90, 0x00, 0x50]); // 8080, 80
        whole(&v2(&rest), proxied("[2001:db8::1]:8080", "[::1]:80"), 52);
        // With an AWS-style custom TLV (0xEA) after the addresses.
        rest[3] = 0x24 + 7;
        rest.extend_from_slice(&[0xEA, 0x00, 0x04, b'v', b'p', b'c', b'e']);
        whole(&v2(&rest), proxied("[2001:db8::1]:8080", "[::1]:80"), 59);
    }

    #[test]
    fn v2_local() {
        whole(&v2(&[0x20, 0x00, 0x00, 0x00]), Header::Local, 16);
        // LOCAL with addresses and a TLV: all of it skipped.
        let h = v2(&[
            0x20, 0x11, 0x00, 0x11, // LOCAL, TCP over IPv4, 17 bytes
            127, 0, 0, 1, 127, 0, 0, 1, 0x30, 0x39, 0x00, 0x50, //
            0x05, 0x00, 0x02, 0xAB, 0xCD, // UNIQUE_ID
        ]);
        whole(&h, Header::Local, 33);
        // LOCAL ignores the family byte, even one PROXY would refuse.
        whole(&v2(&[0x20, 0xFF, 0x00, 0x03, 1, 2, 3]), Header::Local, 19);
        whole(&v2(&[0x20, 0x31, 0x00, 0x00]), Header::Local, 16);
        // PROXY with AF_UNSPEC: no address given, as v1 UNKNOWN.
        whole(&v2(&[0x21, 0x00, 0x00, 0x02, 9, 9]), Header::Local, 18);
    }

    #[test]
    fn v2_unsupported_families_are_named() {
        for (family, what) in [
            (0x12, "v2 PROXY for UDP over IPv4"),
            (0x22, "v2 PROXY for UDP over IPv6"),
            (0x31, "v2 PROXY for a unix stream"),
            (0x32, "v2 PROXY for unix datagrams"),
        ] {
            // Refused on the family byte, without waiting for the rest.
            assert_eq!(
                parse(&v2(&[0x21, family])),
                Err(ProxyError::Unsupported(what))
            );
            let h = v2(&[0x21, family, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
            assert_eq!(parse(&h), Err(ProxyError::Unsupported(what)));
        }
    }

    #[test]
    fn v2_malformed() {
        let ipv4 = [192, 168, 0, 1, 10, 0, 0, 2, 0xD2, 0x04, 0x01, 0xBB];
        let with = |head: [u8; 4], tail: &[u8]| {
            let mut h = v2(&head);
            h.extend_from_slice(&ipv4);
            h.extend_from_slice(tail);
            h
        };
        let cases = [
            // version 1, 3, 0 in the version nibble
            v2(&[0x11]),
            v2(&[0x31, 0x11, 0x00, 0x0C]),
            v2(&[0x01]),
            // commands 2 and 15
            v2(&[0x22]),
            v2(&[0x2F, 0x11, 0x00, 0x0C]),
            // families the spec does not define, under PROXY
            v2(&[0x21, 0x13]),
            v2(&[0x21, 0x41]),
            v2(&[0x21, 0x10]),
            v2(&[0x21, 0x01]),
            // a length shorter than the address block
            with([0x21, 0x11, 0x00, 0x0B], &[]),
            v2(&[0x21, 0x11, 0x00, 0x00]),
            v2(&[0x21, 0x21, 0x00, 0x23]),
            v2(&[0x21, 0x21, 0x00, 0x0C]),
            // TLVs that do not fill the header exactly
            with([0x21, 0x11, 0x00, 0x0E], &[0x04, 0x00]),
            with([0x21, 0x11, 0x00, 0x0F], &[0x04, 0x00, 0x01]),
            with([0x21, 0x11, 0x00, 0x11], &[0x01, 0x00, 0x03, b'h', b'2']),
        ];
        for case in cases {
            assert!(malformed(&case), "{case:02x?}: {:?}", parse(&case));
        }
    }

    #[test]
    fn v2_truncated_address_block_waits() {
        // The length says 12, 8 arrived: read more (the caller's deadline ends it).
        let h = v2(&[0x21, 0x11, 0x00, 0x0C, 192, 168, 0, 1, 10, 0, 0, 2]);
        assert_eq!(parse(&h), Ok(None));
    }

    #[test]
    fn oversize() {
        assert_eq!(MAX_HEADER, 4096);
        // The length field alone decides: 16 + 4081 > 4096.
        let len = (MAX_HEADER - 16 + 1) as u16;
        let [hi, lo] = len.to_be_bytes();
        assert_eq!(parse(&v2(&[0x21, 0x11, hi, lo])), Err(ProxyError::TooLong));
        assert_eq!(
            parse(&v2(&[0x20, 0x00, 0xFF, 0xFF])),
            Err(ProxyError::TooLong)
        );
        // Exactly MAX_HEADER: 16 + 12 + a NOOP TLV of 3 + 4065.
        let [hi, lo] = ((MAX_HEADER - 16) as u16).to_be_bytes();
        let mut h = v2(&[0x21, 0x11, hi, lo, 1, 2, 3, 4, 5, 6, 7, 8, 0, 80, 1, 187]);
        let [thi, tlo] = 4065u16.to_be_bytes();
        h.extend_from_slice(&[0x04, thi, tlo]);
        h.resize(MAX_HEADER - 1, 0);
        assert_eq!(parse(&h), Ok(None));
        h.push(0);
        assert_eq!(
            parse(&h),
            Ok(Some((proxied("1.2.3.4:80", "5.6.7.8:443"), 4096)))
        );
    }

    #[test]
    fn garbage_is_refused_at_once() {
        let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        // A TLS 1.2 ClientHello's record and handshake headers.
        let tls = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03,
        ];
        let ssh = b"SSH-2.0-OpenSSH_9.6\r\n";
        for bytes in [&http[..], &tls[..], &ssh[..]] {
            assert_eq!(parse(&bytes[..1]), Err(ProxyError::NotProxy));
            assert_eq!(parse(bytes), Err(ProxyError::NotProxy));
        }
        // A signature broken at any byte is not a PROXY header.
        assert_eq!(parse(b"PROXX"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXY\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PUT / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\nGET"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIT\r"), Err(ProxyError::NotProxy));
        // Prefixes of either signature wait.
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"PROX"), Ok(None));
        assert_eq!(parse(b"PROXY "), Ok(None));
        assert_eq!(parse(b"\r\n"), Ok(None));
        assert_eq!(parse(&SIG[..11]), Ok(None));
        assert_eq!(parse(&v2(&[0x21, 0x11, 0x00])), Ok(None));
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_v4() {
        let net = cidr("10.0.0.0/8");
        assert_eq!((net.addr(), net.prefix()), (ip("10.0.0.0"), 8));
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.0.0.0")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("9.255.255.255")));
        let half = cidr("128.0.0.0/1");
        assert!(half.contains(ip("200.1.2.3")));
        assert!(!half.contains(ip("127.255.255.255")));
        let host = cidr("192.168.1.7");
        assert_eq!(host, cidr("192.168.1.7/32"));
        assert!(host.contains(ip("192.168.1.7")));
        assert!(!host.contains(ip("192.168.1.6")));
        assert!(!host.contains(ip("192.168.1.8")));
    }

    #[test]
    fn cidr_v6() {
        let net = cidr("2001:db8::/32");
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::")));
        assert!(
            !net.contains(ip("32.1.13.184")),
            "an IPv4 address is never in an IPv6 block"
        );
        let host = cidr("::1");
        assert_eq!((host.addr(), host.prefix()), (ip("::1"), 128));
        assert!(host.contains(ip("::1")));
        assert!(!host.contains(ip("::2")));
        assert!(!host.contains(ip("::")));
        let pair = cidr("fe80::/127");
        assert!(pair.contains(ip("fe80::1")));
        assert!(!pair.contains(ip("fe80::2")));
    }

    #[test]
    fn cidr_mapped_addresses_match_ipv4_blocks() {
        let lo = cidr("127.0.0.0/8");
        assert!(lo.contains(ip("::ffff:127.0.0.1")));
        assert!(lo.contains(ip("::ffff:127.9.8.7")));
        assert!(!lo.contains(ip("::ffff:128.0.0.1")));
        // ::127.0.0.1 (IPv4-compatible, deprecated) and ::1 are not mapped.
        assert!(!lo.contains(ip("::127.0.0.1")));
        assert!(!cidr("0.0.0.0/8").contains(ip("::1")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        // As an IPv6 address it is in IPv6 blocks too.
        assert!(cidr("::ffff:0:0/96").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn cidr_prefix_zero_is_everything_of_its_family() {
        let v4 = cidr("0.0.0.0/0");
        for a in ["0.0.0.0", "1.2.3.4", "255.255.255.255", "::ffff:8.8.8.8"] {
            assert!(v4.contains(ip(a)), "{a}");
        }
        let v6 = cidr("::/0");
        for a in [
            "::",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:1.2.3.4",
        ] {
            assert!(v6.contains(ip(a)), "{a}");
        }
        assert!(!v6.contains(ip("1.2.3.4")));
    }

    #[test]
    fn cidr_refusals_say_why() {
        let err = |s: &str| s.parse::<Cidr>().unwrap_err();
        let head = "expected ADDRESS/PREFIX, e.g. 10.0.0.0/8: ";
        assert_eq!(
            err("10.0.0.0/33"),
            format!("{head}\"10.0.0.0/33\": the prefix of an IPv4 block is at most 32, not 33")
        );
        assert_eq!(
            err("::/129"),
            format!("{head}\"::/129\": the prefix of an IPv6 block is at most 128, not 129")
        );
        assert_eq!(
            err("10.0.0.1/8"),
            format!(
                "{head}\"10.0.0.1/8\": 10.0.0.1/8 has host bits set \
                 (the block is 10.0.0.0/8; one host is 10.0.0.1/32)"
            )
        );
        assert_eq!(
            err("banana"),
            format!("{head}\"banana\": \"banana\" is not an IPv4 or IPv6 address")
        );
        assert_eq!(
            err("10.0.0.0/+8"),
            format!("{head}\"10.0.0.0/+8\": the prefix \"+8\" is not a number of bits")
        );
        assert_eq!(
            err("::/1000"),
            format!("{head}\"::/1000\": the prefix \"1000\" is not a number of bits")
        );
        assert_eq!(
            err("::/300"),
            format!("{head}\"::/300\": the prefix \"300\" is too long")
        );
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/8/9",
            "10.0.0.0 /8",
            "10.0.0.0/ 8",
            " 10.0.0.0/8",
            "10.0.0.0/-1",
            "10.0.0/8",
            "[::1]/128",
            "::1%lo/128",
            "2001:db8::1/32",
        ] {
            assert!(err(bad).starts_with(head), "{bad:?}");
        }
    }

    #[test]
    fn loopback_is_the_two_loopback_blocks() {
        let lo = loopback();
        assert_eq!(
            lo.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["127.0.0.0/8", "::1/128"]
        );
        let trusted = |a: &str| lo.iter().any(|c| c.contains(ip(a)));
        for a in ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"] {
            assert!(trusted(a), "{a}");
        }
        for a in [
            "128.0.0.1",
            "126.255.255.255",
            "10.0.0.1",
            "::2",
            "::",
            "::ffff:10.0.0.1",
        ] {
            assert!(!trusted(a), "{a}");
        }
    }
}

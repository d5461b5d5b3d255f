//! The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`, v1 and v2): what
//! a balancer puts in front of a connection to say whose it is, parsed from
//! the bytes read so far ([`parse`]), and the address blocks a header is
//! trusted from ([`Cidr`], [`loopback`]).
//!
//! Rooms: `header` (what a header says, why one is refused, the limit),
//! `v1` (the text line), `v2` (the binary header and its TLVs), `trusted`
//! (address blocks); this file tells the two versions apart by their first
//! byte.
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

mod header;
mod trusted;
mod v1;
mod v2;

pub use header::{Header, MAX_HEADER, ProxyError};
pub use trusted::{Cidr, loopback};

/// Look for a whole PROXY header (v1 or v2) at the front of `buf`. `Ok(None)`:
/// incomplete so far, read more (only while `buf` could still be a prefix of a
/// valid header); `Ok(Some((header, len)))`: the header and how many bytes it
/// took (the bytes after it belong to the protocol); `Err`: refuse the
/// connection. Never panics, never reads past `buf`.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => v1::parse(buf),
        Some(b'\r') => v2::parse(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

#[cfg(test)]
mod tests;

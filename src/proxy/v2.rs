//! PROXY protocol v2: the binary header (signature, version and command,
//! family, length, address block, TLVs). TCP over IPv4 or IPv6 is
//! `Proxied`; `LOCAL` and `AF_UNSPEC` are `Local`; UDP and AF_UNIX are
//! refused by name. TLVs are skipped, their framing checked.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::header::{Header, MAX_HEADER, ProxyError, signature};

const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;

/// A v2 header at the front of `buf` (which starts with `\r`): as
/// [`parse`](super::parse).
pub(super) fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
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

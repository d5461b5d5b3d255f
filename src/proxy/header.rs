//! What a PROXY header says ([`Header`]), why one is refused
//! ([`ProxyError`]), the longest accepted ([`MAX_HEADER`]), and the
//! signature check both versions open with. Types only; no parsing of
//! either version.

use std::net::SocketAddr;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection: the client's address and the address it connected to.
    Proxied {
        /// The client's address: what logs and everything per peer use.
        source: SocketAddr,
        /// The address the client connected to (the balancer's frontend).
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
/// TLVs, capped at 4096 (see the decisions in `proxy`'s header).
pub const MAX_HEADER: usize = 4096;

/// `buf` against a signature: `Some(true)` all of it there, `Some(false)` a
/// prefix of it so far, `None` not it.
pub(super) fn signature(buf: &[u8], sig: &[u8]) -> Option<bool> {
    let n = buf.len().min(sig.len());
    (buf[..n] == sig[..n]).then_some(n == sig.len())
}

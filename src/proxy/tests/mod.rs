//! The PROXY parser's tests: helpers shared by every version's tests, and
//! how [`parse`] tells a header from anything else by its first bytes.

use std::net::SocketAddr;

use super::{Header, ProxyError, parse};

mod trusted;
mod v1;
mod v2;

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

/// Every case is refused as malformed.
fn all_malformed(cases: &[&[u8]]) {
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

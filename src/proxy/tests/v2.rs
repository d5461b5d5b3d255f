//! v2 headers: both families, TLVs, LOCAL, refused families, the size limit.

use super::{malformed, proxied, v2, whole};
use crate::proxy::{Header, MAX_HEADER, ProxyError, parse};

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

//! v1 lines: whole ones, refusals (and their reasons), the 107-byte limit.

use super::{all_malformed, proxied, whole};
use crate::proxy::{Header, ProxyError, parse};

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
    all_malformed(cases);
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
    all_malformed(cases);
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

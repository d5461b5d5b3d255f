//! Address blocks: parsing, membership (mapped addresses included), refusals.

use std::net::IpAddr;

use crate::proxy::{Cidr, loopback};

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

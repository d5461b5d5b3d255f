//! The address blocks a PROXY header is trusted from: [`Cidr`] (parsed
//! strictly: no host bits set past the prefix) and [`loopback`], the
//! default of `--proxy-from`. An IPv4-mapped IPv6 peer matches IPv4 blocks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

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

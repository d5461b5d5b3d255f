//! A listen address or `off`: the value of every `--NAME ADDR|off` flag
//! (each protocol's and `--metrics`). Parsing only; nothing here binds.

use std::net::SocketAddr;

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    On(SocketAddr),
    Off,
}

/// `IP:PORT` or `off` (any case), for clap's `value_parser`.
pub fn parse(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    s.parse().map(Listen::On).map_err(|_| {
        "expected IP:PORT (e.g. 127.0.0.1:6000 or [::1]:6000, port 0 for any) or `off`".to_string()
    })
}

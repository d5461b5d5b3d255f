//! A connection behind a load balancer: its PROXY protocol header (v1 or
//! v2), read before the protocol runs, on the services that require one.
//!
//! Only a trusted source (`ProxyPolicy::trusted`, `--proxy-from`) may send
//! a header, and the whole of it must arrive within the policy's deadline.
//! What it yields is the client's address, which replaces the balancer's in
//! everything per peer, and the bytes that came after it in the same read
//! (the start of the protocol's first request), which the protocol then
//! reads first. A v2 `LOCAL` header (a health check) is served as it is.
//! Anything else ends the connection before the protocol sees a byte. The
//! parsing itself is `crate::proxy`'s; this module never decides what a
//! protocol says.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::io::{Buf, Connection};
use crate::proxy::{self, Cidr, Header};

/// Who may send PROXY headers, and how soon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPolicy {
    /// The sources (balancers) whose headers are believed.
    pub trusted: Vec<Cidr>,
    /// How long after the connection the whole header may take.
    pub deadline: Duration,
}

impl ProxyPolicy {
    /// Headers from loopback only, within 5 s.
    pub fn loopback() -> ProxyPolicy {
        ProxyPolicy {
            trusted: proxy::loopback(),
            deadline: Duration::from_secs(5),
        }
    }

    fn trusts(&self, peer: SocketAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(peer.ip()))
    }
}

/// What a good header left: the client's address (`None`: a `LOCAL`
/// header, keep the socket's peer), and the bytes read past it.
pub(crate) struct Admitted {
    pub client: Option<SocketAddr>,
    pub rest: Vec<u8>,
}

/// Read and check the PROXY header of `conn`, whose socket peer is `peer`.
/// `Err` says why the connection must not be served (one log line).
pub(crate) async fn read_header<C: Connection>(
    conn: &mut C,
    peer: SocketAddr,
    policy: &ProxyPolicy,
) -> Result<Admitted, String> {
    if !policy.trusts(peer) {
        return Err(format!(
            "refused: {} is not a trusted source of PROXY headers for this listener",
            peer.ip()
        ));
    }
    conn.set_read_deadline(Some(Instant::now() + policy.deadline));
    let mut buf = Buf::with_capacity(proxy::MAX_HEADER);
    let read = loop {
        match proxy::parse(buf.filled()) {
            Ok(Some((header, len))) => break Ok((header, buf.filled()[len..].to_vec())),
            Err(e) => break Err(format!("refused: no valid PROXY header: {e}")),
            Ok(None) if buf.is_full() => {
                break Err(format!(
                    "refused: no whole PROXY header in {} bytes",
                    proxy::MAX_HEADER
                ));
            }
            Ok(None) => {}
        }
        let (res, b) = conn.read(buf).await;
        buf = b;
        match res {
            Ok(0) => break Err("closed before its PROXY header was whole".to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                break Err(format!(
                    "refused: no whole PROXY header within {:?}",
                    policy.deadline
                ));
            }
            Err(e) => break Err(format!("reading its PROXY header: {e}")),
        }
    };
    conn.set_read_deadline(None);
    let (header, rest) = read?;
    Ok(Admitted {
        client: match header {
            Header::Proxied { source, .. } => Some(source),
            Header::Local => None,
        },
        rest,
    })
}

//! Listening sockets: one `SO_REUSEPORT` socket per shard and service, and
//! one owner per port.
//!
//! They are bound on the main thread before any shard starts, so a bad address
//! or a port in use is reported at once, and port 0 resolves to one ephemeral
//! port that every shard then shares. Sockets are non-blocking from birth.
//!
//! `SO_REUSEPORT` would let any process of the same user join a port's group
//! silently and take a share of its connections (a second ringlet, maybe
//! another version serving another root). So before the shards bind, a
//! plain bind without it checks that nothing else is bound there: it fails
//! on any listener, ours or not. This module only creates sockets;
//! accepting is the shard's job.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use socket2::{Domain, Protocol, Socket, Type};

/// The kernel's accept queue length asked for each listener.
pub const BACKLOG: i32 = 1024;

/// Bind `count` listeners on `addr`; returns them and the address they share.
pub fn bind_shards(addr: SocketAddr, count: usize) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    if addr.port() != 0 {
        ensure_unowned(addr)?;
    }
    let first = bind_one(addr)?;
    let actual = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no IP address"))?;
    let mut fds = vec![OwnedFd::from(first)];
    for _ in 1..count {
        fds.push(bind_one(actual)?.into());
    }
    Ok((fds, actual))
}

/// Share one listening socket (inherited from systemd) among `count` shards:
/// each gets a duplicate of the same socket. Checks it is a listening TCP
/// socket and makes it non-blocking.
pub fn share(fd: &OwnedFd, count: usize) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let socket = socket2::SockRef::from(fd);
    if !socket.is_listener()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a listening socket",
        ));
    }
    if socket.r#type()? != Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a stream (TCP) socket",
        ));
    }
    socket.set_nonblocking(true)?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))?;
    let fds = (0..count)
        .map(|_| fd.try_clone())
        .collect::<io::Result<_>>()?;
    Ok((fds, addr))
}

/// Give `count` shards the inherited sockets `fds` of one service: as many
/// sockets as shards (an upgrade's hand-over), one each; otherwise every
/// shard a duplicate of every one (`true`: shared, so no shard may keep an
/// accept armed on them alone). Checks they are listening TCP sockets on
/// one address and makes them non-blocking.
pub fn distribute(
    fds: &[OwnedFd],
    count: usize,
) -> io::Result<(Vec<Vec<OwnedFd>>, SocketAddr, bool)> {
    let mut addr = None;
    for fd in fds {
        let (_, at) = share(fd, 0)?;
        if addr.is_some_and(|a| a != at) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sockets on two addresses ({} and {at})", addr.unwrap()),
            ));
        }
        addr = Some(at);
    }
    let addr = addr.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no socket"))?;
    if fds.len() == count {
        let own = fds.iter().map(|fd| Ok(vec![fd.try_clone()?]));
        return Ok((own.collect::<io::Result<_>>()?, addr, false));
    }
    let every = (0..count).map(|_| fds.iter().map(|fd| fd.try_clone()).collect());
    Ok((every.collect::<io::Result<_>>()?, addr, true))
}

/// Fail with `EADDRINUSE` when any socket listens on `addr` (or on an
/// address overlapping it, such as the wildcard on that port), whoever owns
/// it: a bind without `SO_REUSEPORT` joins no group. `SO_REUSEADDR` lets it
/// pass connections of an earlier run lingering in TIME_WAIT.
fn ensure_unowned(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

fn bind_one(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_someone_listens_on_is_refused() {
        let (fds, addr) = bind_shards("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        // Our own group, another instance of it, a wildcard overlapping it.
        let err = bind_shards(addr, 2).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
        let any: SocketAddr = format!("0.0.0.0:{}", addr.port()).parse().unwrap();
        assert!(bind_shards(any, 1).is_err());
        drop(fds);
        // Once closed, the port is free again.
        assert!(bind_shards(addr, 2).is_ok());
    }

    #[test]
    fn port_zero_resolves_once_for_every_shard() {
        let (fds, addr) = bind_shards("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(fds.len(), 3);
        assert_ne!(addr.port(), 0);
        for fd in fds {
            let s = Socket::from(fd);
            assert_eq!(s.local_addr().unwrap().as_socket(), Some(addr));
        }
    }
}

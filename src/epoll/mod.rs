//! The epoll backend: the same protocols on tokio, the same shard skeleton.
//!
//! One tokio `current_thread` runtime per shard, its thread pinned to one
//! CPU, accepting on its own `SO_REUSEPORT` listener per service; admission,
//! back-off, isolation, closing and supervision are the shared ones from
//! `server/`. It is the baseline the uring backend is measured against and
//! the fallback where io_uring is unavailable. It must stay a fair fight: no
//! handicaps.

use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UnixStream};

use crate::backend::{Runtime, ShardConfig, StartError};
use crate::io::Timeouts;

mod conn;

pub(crate) use conn::EpollConn;

/// One epoll shard: what its connections need to know.
pub(crate) struct Epoll {
    timeouts: Timeouts,
}

impl Runtime for Epoll {
    type Setup = ();
    type Conn = EpollConn;
    type Listener = TcpListener;
    type Control = UnixStream;

    const NAME: &'static str = "epoll";

    fn prepare(_shards: usize) {}

    fn run<F: Future<Output = ()> + 'static>(
        config: ShardConfig,
        _setup: (),
        main: impl FnOnce(Rc<Self>) -> F + 'static,
    ) -> Result<(), StartError> {
        pin_to(config.cpu)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let shard = Rc::new(Epoll {
            timeouts: config.timeouts,
        });
        tokio::task::LocalSet::new().block_on(&runtime, main(shard));
        Ok(())
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        tokio::task::spawn_local(task);
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + 'static + use<> {
        tokio::time::sleep(d)
    }

    fn listener(&self, fd: OwnedFd, _exclusive: bool) -> io::Result<TcpListener> {
        TcpListener::from_std(std::net::TcpListener::from(fd))
    }

    async fn accept(&self, l: &mut TcpListener) -> io::Result<EpollConn> {
        let (stream, peer) = l.accept().await?;
        stream.set_nodelay(true)?;
        Ok(EpollConn::new(stream, peer, self.timeouts))
    }

    /// tokio accepts only when polled: nothing taken is left behind.
    async fn close_listener(&self, _l: TcpListener) -> Vec<EpollConn> {
        Vec::new()
    }

    fn control(&self, fd: OwnedFd) -> io::Result<UnixStream> {
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true)?;
        UnixStream::from_std(std)
    }

    async fn read_control(&self, c: &mut UnixStream) -> io::Result<Option<u8>> {
        let mut byte = [0u8; 1];
        Ok((c.read(&mut byte).await? == 1).then_some(byte[0]))
    }
}

fn pin_to(cpu: usize) -> Result<(), StartError> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| StartError::Pin {
        cpu,
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_cpu_out_of_reach_fails_with_the_os_error_as_source() {
        let err = pin_to(rustix::thread::CpuSet::MAX_CPU - 1).unwrap_err();
        assert!(matches!(err, StartError::Pin { .. }), "{err:?}");
        assert!(err.to_string().starts_with("cannot pin to CPU"), "{err}");
        let source = err.source().expect("a source");
        let os = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(os.raw_os_error(), Some(libc::EINVAL));
    }
}

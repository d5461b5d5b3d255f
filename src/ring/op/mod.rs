//! The operations, one file each: a struct that owns what the kernel reads
//! while it works — its buffer, its path, and a [`SharedFd`] clone of every
//! descriptor it names — and builds its SQE. What an operation gives back is
//! built from its completion and that data ([`Single::complete`]).
//!
//! A new ring operation is one file here: the struct, its [`Operation`]
//! impl (the SQE), and its [`Single`] impl (the result). Submitting and
//! chaining (the ring's), cancellation (the lifecycle's) and deadlines (the
//! heartbeat's sweep, [`deadline`]: no timer is linked to an operation) are
//! written once for all of them.
//!
//! [`deadline`]: super::deadline
//!
//! [`SharedFd`]: super::SharedFd

use io_uring::squeue;

use super::completion::{Completion, Discard};
use crate::buf::Buf;

mod accept;
pub(crate) mod cancel;
#[cfg(test)]
mod nop;
mod openat2;
mod poll;
mod read;
mod recv;
mod send;
mod splice;
mod timeout;

pub use accept::{Accept, AcceptMulti, accepted};
#[cfg(test)]
pub use nop::Nop;
pub use openat2::OpenAt2;
pub use poll::PollWritable;
pub use read::Read;
pub use recv::{Recv, RecvProvided};
pub use send::Send;
#[cfg(feature = "internals")]
pub use send::SendZc;
pub use splice::Splice;
pub use timeout::Timeout;

/// An io_uring operation: its SQE, and the data the SQE points at.
///
/// # Safety
/// Every pointer in the SQE [`Operation::sqe`] returns must point into heap
/// memory owned by `self` (a `Buf`'s bytes, a `Box`, a `CString`), so that it
/// stays valid when `self` is moved, or be null; and every descriptor the SQE
/// names must be held open by `self` (a [`SharedFd`](super::SharedFd) or an
/// owned handle). The ring keeps `self` alive until the operation's final
/// completion, even when its future is dropped.
pub unsafe trait Operation: 'static {
    /// The SQE, without `user_data` or link flags (the ring sets those).
    fn sqe(&mut self) -> squeue::Entry;

    /// Releases what a completion carries when nobody will read it (e.g.
    /// closes the descriptor an accept or open made).
    const DISCARD: Option<Discard> = None;

    /// The SQE sets `BUFFER_SELECT`: the kernel picks one of the ring's
    /// provided buffers, and an `ENOBUFS` completion is counted as a
    /// receive that found them all in use.
    const SELECTS_BUFFER: bool = false;
}

/// A single-shot operation: one completion, one result.
pub trait Single: Operation {
    type Output;

    /// The result, from the completion and the data given back.
    fn complete(self, c: Completion) -> Self::Output;
}

/// A read-like completion: on success, mark that many bytes of `buf` filled.
fn filled(c: Completion, buf: &mut Buf) -> std::io::Result<usize> {
    c.into_result().map(|n| {
        // SAFETY: the kernel wrote `n` bytes at `buf`'s spare pointer.
        unsafe { buf.assume_written(n as usize) };
        n as usize
    })
}

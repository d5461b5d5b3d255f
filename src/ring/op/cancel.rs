//! `IORING_OP_ASYNC_CANCEL`: ask the kernel to cancel an operation in flight.
//!
//! Pushed by the ring when an operation's future is dropped early, its
//! deadline passed, or the ring stops; the cancelled operation still posts
//! its (final) completion, which is when its data and descriptors are
//! released.

use io_uring::{opcode, squeue};

/// The SQE cancelling the operation whose `user_data` is `key`. It points
/// at no memory and names no descriptor.
pub(crate) fn sqe(key: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(key).build()
}

//! `IORING_OP_NOP`: nothing, for testing the ring's plumbing.

use io_uring::{opcode, squeue};

use super::{Operation, Single};
use crate::ring::completion::Completion;

/// Does nothing; completes with 0.
pub struct Nop;

// SAFETY: a NOP points at no memory and names no descriptor.
unsafe impl Operation for Nop {
    fn sqe(&mut self) -> squeue::Entry {
        opcode::Nop::new().build()
    }
}

impl Single for Nop {
    type Output = Completion;

    fn complete(self, c: Completion) -> Completion {
        c
    }
}

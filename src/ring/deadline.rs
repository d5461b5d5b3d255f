//! Deadlines for operations, checked by a sweep instead of a linked
//! timeout per operation.
//!
//! A `LINK_TIMEOUT` beside every receive and send doubles the SQEs and arms
//! and cancels a kernel timer per message: about a tenth of the server's
//! CPU per message at 20,000 messages/s (measured, BENCHMARKS.md). Here a
//! connection registers one [`Watch`]; before each operation it arms the
//! watch with the operation and its deadline (a cell write), and the shard
//! sweeps every watch a few times a second ([`Deadlines::sweep`]),
//! cancelling the operations whose deadline passed: they complete as
//! `TimedOut`. A deadline is therefore honoured to within a sweep period
//! (the shard's heartbeat, 100 ms).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use slab::Slab;

use super::Ring;
use super::lifecycle::Op;
use super::op::Single;

/// One operation's deadline: the operation (slot and epoch), and when.
type Armed = (usize, u64, Instant);

/// A shard's watches.
#[derive(Default)]
pub struct Deadlines {
    watches: RefCell<Slab<Rc<Cell<Option<Armed>>>>>,
}

impl Deadlines {
    pub fn new() -> Rc<Deadlines> {
        Rc::new(Deadlines::default())
    }

    /// A watch for one connection, removed when dropped.
    pub fn watch(self: &Rc<Deadlines>) -> Watch {
        let cell = Rc::new(Cell::new(None));
        let index = self.watches.borrow_mut().insert(cell.clone());
        Watch {
            deadlines: self.clone(),
            index,
            cell,
        }
    }

    /// Cancel every watched operation whose deadline is not after `now`.
    pub fn sweep(&self, ring: &Ring, now: Instant) {
        let due: Vec<(usize, u64)> = self
            .watches
            .borrow()
            .iter()
            .filter_map(|(_, cell)| match cell.get() {
                Some((key, epoch, at)) if at <= now => {
                    cell.set(None);
                    Some((key, epoch))
                }
                _ => None,
            })
            .collect();
        for (key, epoch) in due {
            ring.inner().expire(key, epoch);
        }
    }

    /// Watches registered (connections), for tests.
    #[cfg(test)]
    pub fn watched(&self) -> usize {
        self.watches.borrow().len()
    }
}

/// One connection's deadline: at most one operation is watched at a time.
pub struct Watch {
    deadlines: Rc<Deadlines>,
    index: usize,
    cell: Rc<Cell<Option<Armed>>>,
}

impl Watch {
    /// Run `op`, cancelling it (it fails with `TimedOut`) if it is still in
    /// flight once `at` has passed.
    pub async fn run<T: Single>(&self, op: Op<T>, at: Instant) -> T::Output {
        if let Some((key, epoch)) = op.id() {
            self.cell.set(Some((key, epoch, at)));
        }
        let out = op.await;
        self.cell.set(None);
        out
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.deadlines.watches.borrow_mut().try_remove(self.index);
    }
}

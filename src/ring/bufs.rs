//! The provided-buffer ring: receive buffers the kernel picks when data
//! arrives, so that a connection waiting for data holds no buffer.
//!
//! One group per shard ring: `count` buffers of `size` bytes in one
//! allocation, their addresses published in a page-aligned array shared with
//! the kernel (`IORING_REGISTER_PBUF_RING`, Linux 5.19). A `recv` with
//! `BUFFER_SELECT` takes one at completion time and names it in its CQE; the
//! receiver copies the bytes out and lets go of its [`Provided`], which
//! recycles the buffer: appends it at the array's tail again. Out of
//! buffers, a `recv` fails with `ENOBUFS` (the ring counts those as it
//! reaps them) and the caller receives into its own memory instead.
//!
//! Memory is only touched when the kernel writes into it, so a quiet shard's
//! buffers cost address space, not RSS.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::Cell;
use std::io;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// The buffer group id of a shard's receive buffers.
pub const GROUP: u16 = 0;

/// `struct io_uring_buf`; the first entry's `resv` is the ring's tail.
#[repr(C)]
struct Entry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

/// A registered ring of receive buffers.
pub struct BufRing {
    entries: NonNull<Entry>,
    entries_layout: Layout,
    memory: NonNull<u8>,
    memory_layout: Layout,
    count: u16,
    size: u32,
    tail: Cell<u16>,
    /// Buffers the kernel handed out and nobody recycled yet.
    out: Cell<usize>,
}

impl BufRing {
    /// Allocate `count` (a power of two, at most 32768) buffers of `size`
    /// bytes and register them with `uring` as group [`GROUP`]. Fails on
    /// kernels before 5.19.
    pub fn register(uring: &IoUring, count: u16, size: u32) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && count <= 1 << 15 && size > 0);
        let entries_layout = Layout::from_size_align(count as usize * 16, 4096)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let memory_layout = Layout::from_size_align(count as usize * size as usize, 64)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: both layouts have a non-zero size.
        let (entries, memory) =
            unsafe { (alloc_zeroed(entries_layout), alloc_zeroed(memory_layout)) };
        let (Some(entries), Some(memory)) =
            (NonNull::new(entries.cast::<Entry>()), NonNull::new(memory))
        else {
            std::alloc::handle_alloc_error(memory_layout);
        };
        let ring = BufRing {
            entries,
            entries_layout,
            memory,
            memory_layout,
            count,
            size,
            tail: Cell::new(0),
            out: Cell::new(count as usize),
        };
        for bid in 0..count {
            ring.recycle(bid);
        }
        // SAFETY: the array is page-aligned, `count` entries long, and lives
        // until this BufRing is dropped, which happens only after the ring
        // that uses it is gone (see `Queues`'s drop) or never (leaked).
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                count,
                GROUP,
                0,
            )?;
        }
        Ok(ring)
    }

    /// Each buffer's size: the most one receive returns.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// How many buffers there are.
    #[cfg(test)]
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Buffers handed out by the kernel and not yet recycled.
    #[cfg(test)]
    pub fn out(&self) -> usize {
        self.out.get()
    }

    /// Note that the kernel handed out a buffer (a CQE named it).
    pub(crate) fn handed_out(&self) {
        self.out.set(self.out.get() + 1);
    }

    /// The first `len` bytes the kernel wrote into buffer `bid`.
    ///
    /// # Safety
    /// `bid` must have been named by a completion and not recycled since:
    /// the kernel then no longer writes into it.
    pub(crate) unsafe fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= self.size as usize);
        // SAFETY: in bounds (asserted); the caller guarantees the kernel is
        // done with it, and it stays untouched until recycled.
        unsafe {
            std::slice::from_raw_parts(
                self.memory.as_ptr().add(bid as usize * self.size as usize),
                len,
            )
        }
    }

    /// Give buffer `bid` back to the kernel.
    pub(crate) fn recycle(&self, bid: u16) {
        assert!(bid < self.count, "buffer id {bid} out of range");
        let tail = self.tail.get();
        let mask = self.count - 1;
        // SAFETY: the slot at `tail & mask` is within the array and is not
        // one the kernel reads (it reads only below the tail). Fields are
        // written one by one through raw pointers: the kernel may be reading
        // the first entry's `resv` (the tail) at the same time.
        unsafe {
            let e = self.entries.as_ptr().add((tail & mask) as usize);
            let addr = self.memory.as_ptr().add(bid as usize * self.size as usize);
            std::ptr::addr_of_mut!((*e).addr).write(addr as u64);
            std::ptr::addr_of_mut!((*e).len).write(self.size);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
            let tail_field = std::ptr::addr_of_mut!((*self.entries.as_ptr()).resv);
            // Publish the entry: the kernel reads the tail with acquire.
            AtomicU16::from_ptr(tail_field).store(tail.wrapping_add(1), Ordering::Release);
        }
        self.tail.set(tail.wrapping_add(1));
        self.out.set(self.out.get() - 1);
    }
}

/// Bytes a receive got in a provided buffer; the buffer goes back to the
/// kernel when this is dropped, so copy them out and let go promptly.
pub struct Provided {
    bufs: Rc<BufRing>,
    bid: Option<u16>,
    len: usize,
    more: bool,
}

impl Provided {
    /// Wrap a receive's completion of `len` bytes in buffer `bid` of `bufs`
    /// (`None`: no buffer was taken, as at end of stream).
    pub(crate) fn new(bufs: Rc<BufRing>, bid: Option<u16>, len: usize, more: bool) -> Provided {
        Provided {
            bufs,
            bid,
            len,
            more,
        }
    }

    /// The bytes received; empty at end of stream.
    pub fn bytes(&self) -> &[u8] {
        match self.bid {
            // SAFETY: the kernel named `bid` in this receive's completion
            // and it is recycled only when `self` is dropped.
            Some(bid) => unsafe { self.bufs.bytes(bid, self.len) },
            None => &[],
        }
    }

    /// The kernel said more data was already waiting in the socket.
    pub fn more_waiting(&self) -> bool {
        self.more
    }
}

impl Drop for Provided {
    fn drop(&mut self) {
        if let Some(bid) = self.bid {
            self.bufs.recycle(bid);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with these layouts; by now no
        // operation may select a buffer (see the safety note there).
        unsafe {
            dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            dealloc(self.memory.as_ptr(), self.memory_layout);
        }
    }
}

//! [`Buf`]: a fixed-capacity, owned byte buffer that holds memory only while
//! it must.
//!
//! The capacity is chosen once, and is what bounds a connection's memory.
//! The bytes behind it come and go: they are taken on first use, and an
//! empty `Buf` can be *parked* — its memory handed to a small per-thread
//! pool — while its connection waits for data it does not need a buffer to
//! wait for (the completion ring receives into a provided buffer, then
//! copies). So 10,000 idle connections hold 10,000 empty handles, not
//! 10,000 buffers, and a busy shard reuses the same few warm buffers.
//!
//! Memory is not zeroed when taken for the ring, which writes through
//! [`Buf::spare_ptr`]: a `Buf` tracks how much of it was ever written. A
//! backend that asks for the spare part as a `&mut [u8]`
//! ([`Buf::spare_mut`]) gets fresh memory from calloc (zero pages the kernel
//! maps only when written, so a mostly-empty buffer stays cheap), or pooled
//! memory with its unwritten tail zeroed once.
//!
//! The pool grows while the thread is busy (up to 64 MiB), so that a steady
//! load reuses buffers instead of allocating and freeing one per message;
//! [`trim_if_quiet`], called by each shard's heartbeat, shrinks it to 2 MiB
//! once no buffer was taken for a heartbeat, and hands the freed memory back
//! to the kernel.

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;

/// Bytes of parked memory a thread keeps while busy; more is freed.
const POOL_BUSY_BYTES: usize = 64 << 20;
/// Bytes it keeps once quiet (see [`trim_if_quiet`]).
const POOL_QUIET_BYTES: usize = 2 << 20;
/// Distinct buffer sizes pooled (a server uses a handful).
const POOL_SIZES: usize = 8;
/// Larger buffers are never pooled (they are rare and would pin memory).
const POOL_MAX_CAPACITY: usize = 256 * 1024;
/// Freed bytes worth handing back to the kernel once the thread is quiet.
const TRIM_AFTER: usize = 1 << 20;

type Memory = Box<[MaybeUninit<u8>]>;

/// Parked memory by size, each with how many leading bytes are initialised.
#[derive(Default)]
struct Pool {
    sizes: Vec<(usize, Vec<(Memory, usize)>)>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
    /// Buffers taken (pooled or new) since the last [`trim_if_quiet`].
    static TAKEN: Cell<usize> = const { Cell::new(0) };
    /// Bytes freed to the allocator since the last trim.
    static FREED: Cell<usize> = const { Cell::new(0) };
}

/// A fixed-size, owned byte buffer with a filled front part.
///
/// A protocol reads what arrived ([`Buf::filled`]), drops what it used
/// ([`Buf::consume`]) and appends what to send ([`Buf::extend_from_slice`]).
/// The capacity, chosen once, bounds the connection's memory; how the bytes
/// get in (the kernel writing into the spare part, a parked buffer's memory
/// lent back) is the backends' business, and not public.
#[derive(Debug)]
pub struct Buf {
    /// Empty while parked or never used; `capacity` bytes otherwise.
    bytes: Memory,
    /// The first `init` bytes of `bytes` are initialised (`filled <= init`).
    init: usize,
    capacity: usize,
    filled: usize,
}

impl Buf {
    /// A buffer able to hold `capacity` bytes, empty. No memory is taken
    /// until bytes are written into it.
    pub fn with_capacity(capacity: usize) -> Buf {
        Buf {
            bytes: Box::default(),
            init: 0,
            capacity,
            filled: 0,
        }
    }

    /// The bytes received so far.
    pub fn filled(&self) -> &[u8] {
        // SAFETY: the first `filled` bytes are initialised (`filled <= init`).
        unsafe { std::slice::from_raw_parts(self.bytes.as_ptr().cast(), self.filled) }
    }

    /// How many bytes are filled.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// True when nothing is filled.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The most bytes this buffer can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when there is no room left to read into.
    pub fn is_full(&self) -> bool {
        self.filled == self.capacity
    }

    /// Forget every filled byte.
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// Drop the first `n` filled bytes, moving the rest to the front.
    ///
    /// # Panics
    /// If `n` is more than [`Buf::len`].
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.filled,
            "consume({n}) past the filled {}",
            self.filled
        );
        self.bytes.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// Append `data`; returns how many bytes fitted.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.capacity - self.filled);
        if n > 0 {
            let at = self.filled;
            self.memory()[at..at + n].write_copy_of_slice(&data[..n]);
            self.filled += n;
            self.init = self.init.max(self.filled);
        }
        n
    }

    /// The unfilled part as ordinary bytes, for a backend to read into
    /// (zeroing whatever part was never written). Follow with
    /// [`Buf::advance`].
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        let cap = self.capacity;
        if self.bytes.len() != cap {
            // Fresh zeroed memory (calloc) touches no page until written:
            // a buffer that only ever holds a short line costs one page.
            (self.bytes, self.init) = take(cap, true);
        }
        let (at, init) = (self.filled, self.init);
        for b in &mut self.bytes[init..cap] {
            b.write(0);
        }
        self.init = cap;
        // SAFETY: every byte is initialised now.
        unsafe {
            std::slice::from_raw_parts_mut(self.bytes.as_mut_ptr().cast::<u8>().add(at), cap - at)
        }
    }

    /// The unfilled part as a pointer and a length, for the kernel to write
    /// into. Follow with [`Buf::assume_written`].
    pub(crate) fn spare_ptr(&mut self) -> (*mut u8, usize) {
        let at = self.filled;
        let spare = &mut self.memory()[at..];
        (spare.as_mut_ptr().cast(), spare.len())
    }

    /// Mark `n` more bytes of the spare part as filled, after writing them
    /// through [`Buf::spare_mut`].
    ///
    /// # Panics
    /// If `n` is more than the spare room.
    pub(crate) fn advance(&mut self, n: usize) {
        assert!(self.filled + n <= self.capacity, "advance past capacity");
        assert!(
            self.filled + n <= self.init,
            "advance past the written bytes"
        );
        self.filled += n;
    }

    /// Mark `n` more bytes of the spare part as filled, after something
    /// wrote them through [`Buf::spare_ptr`].
    ///
    /// # Safety
    /// The first `n` bytes of the spare part must have been written.
    ///
    /// # Panics
    /// If `n` is more than the spare room.
    pub(crate) unsafe fn assume_written(&mut self, n: usize) {
        assert!(self.filled + n <= self.capacity, "advance past capacity");
        self.filled += n;
        self.init = self.init.max(self.filled);
    }

    /// If nothing is filled, give the memory back to this thread's pool
    /// until the next write: an empty buffer costs nothing while parked.
    pub(crate) fn park(&mut self) {
        if self.filled == 0 && !self.bytes.is_empty() {
            give(std::mem::take(&mut self.bytes), self.init);
            self.init = 0;
        }
    }

    /// True while the buffer holds memory (not parked, and used).
    #[cfg(test)]
    pub(crate) fn holds_memory(&self) -> bool {
        !self.bytes.is_empty()
    }

    /// The memory, taken from the pool or allocated if parked.
    fn memory(&mut self) -> &mut [MaybeUninit<u8>] {
        if self.bytes.len() != self.capacity {
            (self.bytes, self.init) = take(self.capacity, false);
        }
        &mut self.bytes
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            give(std::mem::take(&mut self.bytes), self.init);
        }
    }
}

/// Memory of `capacity` bytes and how much of it is initialised: a pooled
/// one of that size, or a new one (`zeroed`: all initialised, by calloc).
fn take(capacity: usize, zeroed: bool) -> (Memory, usize) {
    let _ = TAKEN.try_with(|t| t.set(t.get() + 1));
    POOL.try_with(|pool| {
        let mut pool = pool.try_borrow_mut().ok()?;
        let (_, free) = pool.sizes.iter_mut().find(|(c, _)| *c == capacity)?;
        let memory = free.pop()?;
        pool.bytes -= capacity;
        Some(memory)
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        if zeroed {
            let bytes: Box<[u8]> = vec![0; capacity].into_boxed_slice();
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; initialised
            // bytes are valid `MaybeUninit`s.
            let bytes = unsafe { Box::from_raw(Box::into_raw(bytes) as *mut [MaybeUninit<u8>]) };
            (bytes, capacity)
        } else {
            (Box::new_uninit_slice(capacity), 0)
        }
    })
}

/// Keep `bytes` for reuse if the pool has room; free them otherwise.
fn give(bytes: Memory, init: usize) {
    let len = bytes.len();
    let kept = len <= POOL_MAX_CAPACITY
        && POOL
            .try_with(|pool| {
                let Ok(mut pool) = pool.try_borrow_mut() else {
                    return false;
                };
                if pool.bytes + len > POOL_BUSY_BYTES {
                    return false;
                }
                let at = match pool.sizes.iter().position(|(c, _)| *c == len) {
                    Some(at) => at,
                    None if pool.sizes.len() < POOL_SIZES => {
                        pool.sizes.push((len, Vec::new()));
                        pool.sizes.len() - 1
                    }
                    None => return false,
                };
                pool.sizes[at].1.push((bytes, init));
                pool.bytes += len;
                true
            })
            .unwrap_or(false);
    if !kept {
        let _ = FREED.try_with(|f| f.set(f.get() + len));
    }
}

/// Once a thread is quiet (no buffer taken since the last call), shrink
/// its pool to what a quiet thread needs and hand the memory it freed back
/// to the kernel, if that is a fair amount. While busy, the pool grows to
/// as many buffers as the thread has in flight, so a steady load neither
/// allocates nor frees. Call it periodically (each shard's heartbeat does);
/// it is cheap when there is nothing to do.
pub fn trim_if_quiet() {
    let taken = TAKEN.try_with(|t| t.replace(0)).unwrap_or(1);
    if taken > 0 {
        return;
    }
    let dropped = POOL
        .try_with(|pool| {
            let Ok(mut pool) = pool.try_borrow_mut() else {
                return Vec::new();
            };
            let mut dropped = Vec::new();
            while pool.bytes > POOL_QUIET_BYTES {
                let Some((cap, free)) = pool.sizes.iter_mut().max_by_key(|(c, f)| c * f.len())
                else {
                    break;
                };
                let Some(memory) = free.pop() else { break };
                pool.bytes -= *cap;
                dropped.push(memory);
            }
            dropped
        })
        .unwrap_or_default();
    let freed = dropped.iter().map(|(m, _)| m.len()).sum::<usize>();
    drop(dropped);
    let freed = FREED.try_with(|f| f.get() + freed).unwrap_or(0);
    if freed >= TRIM_AFTER {
        let _ = FREED.try_with(|f| f.set(0));
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    } else {
        let _ = FREED.try_with(|f| f.set(freed));
    }
}

/// Bytes of parked memory this thread holds, for tests.
#[cfg(test)]
fn pooled_bytes() -> usize {
    POOL.with(|p| p.borrow().bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_moves_the_tail_to_the_front() {
        let mut b = Buf::with_capacity(8);
        assert_eq!(b.extend_from_slice(b"abc\ndef"), 7);
        b.consume(4);
        assert_eq!(b.filled(), b"def");
        assert_eq!(b.spare_mut().len(), 5);
    }

    #[test]
    fn extend_stops_at_capacity() {
        let mut b = Buf::with_capacity(3);
        assert_eq!(b.extend_from_slice(b"abcdef"), 3);
        assert!(b.is_full());
        assert_eq!(b.filled(), b"abc");
    }

    #[test]
    fn memory_is_taken_on_first_write_and_parked_only_when_empty() {
        let mut b = Buf::with_capacity(1000);
        assert!(!b.holds_memory(), "a new buffer takes no memory");
        assert_eq!(b.filled(), b"");
        assert_eq!(b.spare_mut().len(), 1000);
        assert!(b.holds_memory());
        b.extend_from_slice(b"keep me");
        b.park();
        assert!(b.holds_memory(), "parking must never drop filled bytes");
        assert_eq!(b.filled(), b"keep me");
        b.clear();
        b.park();
        assert!(!b.holds_memory());
        assert!(b.is_empty() && !b.is_full() && b.capacity() == 1000);
        assert_eq!(b.extend_from_slice(b"back"), 4);
        assert_eq!(b.filled(), b"back");
    }

    #[test]
    fn parked_memory_is_reused_by_the_next_buffer_of_that_size() {
        let mut a = Buf::with_capacity(4321);
        a.extend_from_slice(b"x");
        let at = a.filled().as_ptr();
        a.clear();
        a.park();
        let mut b = Buf::with_capacity(4321);
        b.extend_from_slice(b"y");
        assert_eq!(b.filled().as_ptr(), at, "the pooled memory was not reused");
        assert_eq!(b.filled(), b"y");
        let mut other = Buf::with_capacity(1234);
        other.extend_from_slice(b"z");
        assert_ne!(
            other.filled().as_ptr(),
            at,
            "a pooled buffer of another size"
        );
    }

    #[test]
    fn the_pool_grows_while_busy_and_shrinks_once_quiet() {
        let cap = 64 * 1024;
        let mut bufs: Vec<Buf> = (0..100).map(|_| Buf::with_capacity(cap)).collect();
        for b in &mut bufs {
            b.extend_from_slice(b"x");
        }
        let before = pooled_bytes();
        for b in &mut bufs {
            b.clear();
            b.park();
        }
        assert_eq!(pooled_bytes(), before + 100 * cap, "all 100 parked");
        trim_if_quiet(); // buffers were taken since the last call: busy
        assert_eq!(pooled_bytes(), before + 100 * cap);
        trim_if_quiet(); // nothing taken since: quiet
        assert!(
            pooled_bytes() <= POOL_QUIET_BYTES,
            "{} bytes still pooled",
            pooled_bytes()
        );
        // Reuse still works after the shrink.
        bufs[0].extend_from_slice(b"y");
        assert_eq!(bufs[0].filled(), b"y");
    }

    #[test]
    fn a_zero_capacity_buffer_works() {
        let mut b = Buf::with_capacity(0);
        assert!(b.is_full());
        assert_eq!(b.extend_from_slice(b"abc"), 0);
        assert_eq!(b.spare_mut().len(), 0);
        b.advance(0);
        b.park();
    }
}

//! A bump allocator that rewinds whenever everything it handed out has been freed.
//!
//! What a router allocates during a call — the header values the host writes into the guest,
//! the queue names and lists of the answer — is all freed by the time the call's answer has been
//! read (`cabi_post_route-batch`). The general-purpose allocator (dlmalloc) spends as long
//! on those few small blocks as the router spends deciding; here an allocation is a pointer
//! bump and a free a counter decrement, and the arena starts over from its first byte when the
//! count reaches zero, which is after every call.
//!
//! Invariants:
//! - Only allocations made while the arena is [open](Arena::open) come from it: whatever the
//!   router keeps across calls (its settings) is made before, by the system allocator, so
//!   it never pins the arena.
//! - A block is handed out of the arena only if it fits; anything else (a huge batch, a pinned
//!   arena) goes to the system allocator, so the arena can be slow to rewind but never wrong.
//! - `live` counts the arena's blocks not yet freed; the arena rewinds exactly when it is zero,
//!   so no live block is ever handed out twice.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// Room for the transient blocks of one call: a batch of 64 messages needs a few KiB.
const SIZE: usize = 64 * 1024;

pub struct Arena {
    memory: UnsafeCell<[u8; SIZE]>,
    /// Offset of the first free byte.
    next: Cell<usize>,
    live: Cell<usize>,
    open: Cell<bool>,
}

// A wasm32-wasip2 guest has one thread: the cells are never touched concurrently.
unsafe impl Sync for Arena {}

impl Arena {
    pub const fn new() -> Self {
        Arena {
            memory: UnsafeCell::new([0; SIZE]),
            next: Cell::new(0),
            live: Cell::new(0),
            open: Cell::new(false),
        }
    }

    /// From now on, serve allocations from the arena.
    pub fn open(&self) {
        self.open.set(true);
    }

    fn base(&self) -> usize {
        self.memory.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        (self.base()..self.base() + SIZE).contains(&(ptr as usize))
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.open.get() {
            // `align` is a power of two: rounding up is a mask, not a division.
            let mask = layout.align() - 1;
            let start = (self.base() + self.next.get() + mask) & !mask;
            let end = start + layout.size();
            if end <= self.base() + SIZE {
                self.next.set(end - self.base());
                self.live.set(self.live.get() + 1);
                return start as *mut u8;
            }
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            return unsafe { System.dealloc(ptr, layout) };
        }
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.next.set(0);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The most recent block grows (or shrinks) in place.
        let top = self.base() + self.next.get();
        if self.owns(ptr) && ptr as usize + layout.size() == top {
            let end = ptr as usize + new_size;
            if end <= self.base() + SIZE {
                self.next.set(end - self.base());
                return ptr;
            }
        }
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

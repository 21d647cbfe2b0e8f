//! The guest's allocator: a bump arena. Every call runs in a fresh instance that the host
//! throws away afterwards, so nothing needs freeing. Allocating from memory the module
//! starts with (the arena lives in `.bss`), instead of growing linear memory on the first
//! allocation as the default allocator does, spares the host from remapping the
//! instance's memory after each call, which costs a TLB flush on every core.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Room for a typical call's allocations before linear memory has to grow.
const ARENA_BYTES: usize = 1 << 20;
const WASM_PAGE: usize = 64 << 10;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: a plugin instance runs one call on one thread; the arena is only ever handed
// out in disjoint pieces by `BumpAllocator`.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));
/// The next free byte and the end of the current region; 0 before the first allocation.
static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);

pub struct BumpAllocator;

fn align_up(at: usize, align: usize) -> Option<usize> {
    Some(at.checked_add(align - 1)? & !(align - 1))
}

/// Fresh pages at the end of linear memory, enough for `layout`: `(start, end)`.
#[cfg(target_arch = "wasm32")]
fn grow(layout: Layout) -> Option<(usize, usize)> {
    let pages = layout
        .size()
        .checked_add(layout.align())?
        .div_ceil(WASM_PAGE);
    let old = core::arch::wasm32::memory_grow(0, pages);
    (old != usize::MAX).then(|| (old * WASM_PAGE, (old + pages) * WASM_PAGE))
}

#[cfg(not(target_arch = "wasm32"))]
fn grow(_: Layout) -> Option<(usize, usize)> {
    None
}

// SAFETY: every block handed out is aligned as asked, lies inside the arena or inside
// pages just grown, and never overlaps another: `NEXT` only moves forward.
unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (mut next, mut end) = (NEXT.load(Relaxed), END.load(Relaxed));
        if end == 0 {
            next = ARENA.0.get() as usize;
            end = next + ARENA_BYTES;
        }
        let fits = align_up(next, layout.align())
            .and_then(|start| Some((start, start.checked_add(layout.size())?)))
            .filter(|&(_, stop)| stop <= end);
        let (start, stop) = match fits {
            Some(found) => found,
            None => {
                let Some((base, new_end)) = grow(layout) else {
                    return std::ptr::null_mut();
                };
                end = new_end;
                let start = base; // page-aligned, which covers any alignment asked
                (start, start + layout.size())
            }
        };
        NEXT.store(stop, Relaxed);
        END.store(end, Relaxed);
        start as *mut u8
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The last block grows (or shrinks) in place when there is room.
        let at = ptr as usize;
        if at + layout.size() == NEXT.load(Relaxed)
            && at
                .checked_add(new_size)
                .is_some_and(|stop| stop <= END.load(Relaxed))
        {
            NEXT.store(at + new_size, Relaxed);
            return ptr;
        }
        // SAFETY: the caller's contract for `realloc` carries over to `alloc` with the
        // new size and the old alignment.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_disjoint_and_the_last_grows_in_place() {
        let a = BumpAllocator;
        let l = |size, align| Layout::from_size_align(size, align).expect("layout");
        // SAFETY: sizes are non-zero and every block is used within its layout.
        unsafe {
            let x = a.alloc(l(3, 1));
            let y = a.alloc(l(8, 8));
            assert_eq!(y as usize % 8, 0);
            assert!(y as usize >= x as usize + 3, "disjoint");
            y.write_bytes(7, 8);
            let z = a.realloc(y, l(8, 8), 64);
            assert_eq!(z, y, "the last block grows in place");
            let w = a.alloc(l(16, 16));
            let v = a.realloc(x, l(3, 1), 32);
            assert!(v as usize >= w as usize + 16, "an earlier block moves");
            assert!(a.alloc(l(ARENA_BYTES, 1)).is_null(), "no growth off wasm32");
        }
    }
}

//! A global allocator unlike the host's: every block is preceded by a header, so the pointer
//! handed out is never one `malloc` returned. Freeing it with any other allocator makes the C
//! library abort at once, which is what the tests rely on to prove that no allocation crosses
//! the boundary to be freed on the other side.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Offsets every block by a header of at least 32 bytes.
pub struct OffsetAllocator;

const MIN_HEADER: usize = 32;
const TAG: usize = 0xA7A3_0A11;

fn header(layout: Layout) -> usize {
    layout.align().max(MIN_HEADER)
}

fn outer(layout: Layout) -> Option<Layout> {
    Layout::from_size_align(layout.size().checked_add(header(layout))?, header(layout)).ok()
}

// SAFETY: blocks come from `System` with room for the header in front; `dealloc` and `realloc`
// find the original block by the same arithmetic, and the tag checks that they do.
unsafe impl GlobalAlloc for OffsetAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size.
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        // SAFETY: the header is inside the block and aligned for a usize.
        unsafe {
            let user = base.add(header(layout));
            user.cast::<usize>().sub(1).write(TAG);
            user
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(outer) = outer(layout) else { return };
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe {
            if ptr.cast::<usize>().sub(1).read() != TAG {
                // A block this allocator did not hand out: stop before corrupting the heap.
                std::process::abort();
            }
            System.dealloc(ptr.sub(header(layout)), outer);
        }
    }
}

// SPDX-License-Identifier: GPL-2.0
//! TEST BACKEND, temporary: a RAM-backed [`VolumeBackend`] so volume disks
//! can be tested before the pool's I/O path exists (like null_blk's
//! `memory_backed`). The pool backend replaces it; delete this file then.
//!
//! Data lives in 4 KiB blocks in a sparse map (block index -> block),
//! allocated on first write (`GFP_KERNEL` inside the tag set's `GFP_NOIO`
//! scope, see `kwrap/noio.rs`); unmapped blocks read as zeroes;
//! discard and write zeroes free blocks. Everything is done synchronously in
//! `queue_rq` under one mutex (writes complete through
//! `blk_mq_complete_request`, the rest end directly); flush and FUA are no-ops (RAM is as durable
//! as it gets).

use crate::volume::{Io, VolumeBackend, BLOCK_SIZE};
use kernel::{
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{Arc, Mutex},
};

const BLOCK: usize = BLOCK_SIZE as usize;

/// The blocks of a RAM volume.
struct Blocks {
    map: RBTree<u64, KBox<[u8; BLOCK]>>,
    count: u64,
}

impl Blocks {
    /// Frees every block in `[first, end)`.
    fn unmap(&mut self, first: u64, end: u64) {
        loop {
            let key = match self.map.cursor_lower_bound(&first) {
                Some(c) => *c.current().0,
                None => return,
            };
            if key >= end {
                return;
            }
            if self.map.remove(&key).is_some() {
                self.count = self.count.saturating_sub(1);
            }
        }
    }
}

/// A RAM volume's data (test backend).
#[pin_data]
pub(crate) struct MemBackend {
    #[pin]
    blocks: Mutex<Blocks>,
}

/// Calls `f(block, offset in block, offset in segment, n)` for the chunks of
/// `seg` (which starts at byte `pos` of the volume) that lie in one block each.
fn for_each_chunk(
    pos: u64,
    seg_len: usize,
    mut f: impl FnMut(u64, usize, usize, usize) -> Result,
) -> Result {
    let mut done = 0;
    while done < seg_len {
        let p = pos + done as u64;
        let in_block = (p % BLOCK_SIZE) as usize;
        let n = (BLOCK - in_block).min(seg_len - done);
        f(p / BLOCK_SIZE, in_block, done, n)?;
        done += n;
    }
    Ok(())
}

impl MemBackend {
    /// An empty RAM volume.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(MemBackend {
                blocks <- new_mutex!(Blocks {
                    map: RBTree::new(),
                    count: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Blocks that hold data.
    pub(crate) fn mapped_blocks(&self) -> u64 {
        self.blocks.lock().count
    }

    /// Frees every block at or beyond byte `size` (the volume shrank).
    pub(crate) fn truncate(&self, size: u64) {
        self.blocks
            .lock()
            .unmap(size.div_ceil(BLOCK_SIZE), u64::MAX);
    }

    fn do_read(&self, io: &Io<Self>) -> Result {
        let blocks = self.blocks.lock();
        let mut pos = io.offset();
        io.for_each_segment(|seg| {
            for_each_chunk(pos, seg.len(), |blk, off, at, n| {
                match blocks.map.get(&blk) {
                    Some(b) => seg.copy_from_slice(at, b.get(off..off + n).ok_or(EIO)?),
                    None => seg.zero(at, n),
                }
            })?;
            pos += seg.len() as u64;
            Ok(())
        })
    }

    fn do_write(&self, io: &Io<Self>) -> Result {
        let mut blocks = self.blocks.lock();
        let mut pos = io.offset();
        io.for_each_segment(|seg| {
            for_each_chunk(pos, seg.len(), |blk, off, at, n| {
                if blocks.map.get(&blk).is_none() {
                    let data = KBox::init(pin_init::init_zeroed::<[u8; BLOCK]>(), GFP_KERNEL)?;
                    blocks.map.insert(RBTreeNode::new(blk, data, GFP_KERNEL)?);
                    blocks.count += 1;
                }
                let b = blocks.map.get_mut(&blk).ok_or(EIO)?;
                seg.copy_to_slice(at, b.get_mut(off..off + n).ok_or(EIO)?)
            })?;
            pos += seg.len() as u64;
            Ok(())
        })
    }

    fn do_unmap(&self, io: &Io<Self>) -> Result {
        let start = io.offset();
        let end = start + io.len();
        let mut blocks = self.blocks.lock();
        // Partial blocks at either end are zeroed, whole ones freed. (With a
        // 4 KiB logical block size every range is whole blocks.)
        let first = start.div_ceil(BLOCK_SIZE);
        let last = end / BLOCK_SIZE;
        for (p, e) in [
            (start, (first * BLOCK_SIZE).min(end)),
            ((last * BLOCK_SIZE).max(start), end),
        ] {
            if p < e {
                if let Some(b) = blocks.map.get_mut(&(p / BLOCK_SIZE)) {
                    let off = (p % BLOCK_SIZE) as usize;
                    b.get_mut(off..off + (e - p) as usize).ok_or(EIO)?.fill(0);
                }
            }
        }
        if first < last {
            blocks.unmap(first, last);
        }
        Ok(())
    }
}

impl VolumeBackend for MemBackend {
    type RequestData = ();

    fn read(&self, io: Io<Self>) {
        let r = self.do_read(&io);
        io.end(r);
    }

    fn write(&self, io: Io<Self>) {
        let r = self.do_write(&io);
        // Through `blk_mq_complete_request`, the path the pool's lower-bio
        // completions will take, so the tests exercise it too.
        io.complete(r);
    }

    fn flush(&self, io: Io<Self>) {
        io.end(Ok(()));
    }

    fn discard(&self, io: Io<Self>) {
        let r = self.do_unmap(&io);
        io.end(r);
    }

    fn write_zeroes(&self, io: Io<Self>) {
        let r = self.do_unmap(&io);
        io.end(r);
    }
}

// SPDX-License-Identifier: GPL-2.0
//! What a stream carries: the source of "which extents of the snapshot to
//! send" (`Changes`), and `send`, which encodes them.
//!
//! Today both sources read devices: `BlockScan` reads the snapshot (a full
//! stream: every non-zero block, zero runs as holes) or compares it with
//! the base snapshot block by block (an incremental: the blocks that
//! differ; holes where the snapshot reads zeros and the base did not) —
//! which reads both devices in full. A kernel listing of the extents that
//! differ (through the control device) will be another `Changes`.

use super::{Encoder, Header};
use crate::devio::VolumeDev;
use crate::image::import::is_zero;
use crate::progress::Progress;
use std::io::{self, Write};

const BLOCK: usize = 4096;
const CHUNK: usize = 1 << 20;

/// One extent to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Data { offset: u64, data: Vec<u8> },
    Hole { offset: u64, len: u64 },
}

/// The extents of the snapshot to send, ascending and not overlapping.
pub trait Changes {
    /// The next one; `None` at the end.
    fn next_change(&mut self) -> io::Result<Option<Change>>;
    /// Bytes of the snapshot examined so far (for progress).
    fn scanned(&self) -> u64;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Same,
    Zero,
    Data,
}

/// Reads the snapshot (and the base, for an incremental) block by block.
pub struct BlockScan<'a> {
    snap: &'a mut dyn VolumeDev,
    base: Option<&'a mut dyn VolumeDev>,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    bbuf: Vec<u8>,
    /// Classified blocks of `buf` from `pos`: (offset in buf, class).
    classes: Vec<Class>,
    /// Start of `buf` on the device and the next block to hand out.
    buf_start: u64,
    next: usize,
}

impl<'a> BlockScan<'a> {
    pub fn full(snap: &'a mut dyn VolumeDev) -> Self {
        Self::new(snap, None)
    }

    pub fn incremental(snap: &'a mut dyn VolumeDev, base: &'a mut dyn VolumeDev) -> Self {
        Self::new(snap, Some(base))
    }

    fn new(snap: &'a mut dyn VolumeDev, base: Option<&'a mut dyn VolumeDev>) -> Self {
        let size = snap.size() / BLOCK as u64 * BLOCK as u64;
        BlockScan {
            snap,
            base,
            size,
            pos: 0,
            buf: vec![0; CHUNK],
            bbuf: Vec::new(),
            classes: Vec::new(),
            buf_start: 0,
            next: 0,
        }
    }

    /// Reads and classifies the next chunk.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos >= self.size {
            return Ok(false);
        }
        let n = (self.size - self.pos).min(CHUNK as u64) as usize;
        self.buf.resize(n, 0);
        self.snap.read_at(self.pos, &mut self.buf)?;
        self.classes.clear();
        if let Some(base) = self.base.as_deref_mut() {
            // The base reads zeros past its end.
            self.bbuf.clear();
            self.bbuf.resize(n, 0);
            let bsize = base.size();
            if self.pos < bsize {
                let m = (bsize - self.pos).min(n as u64) as usize;
                base.read_at(self.pos, &mut self.bbuf[..m])?;
            }
        }
        for i in (0..n).step_by(BLOCK) {
            let b = &self.buf[i..(i + BLOCK).min(n)];
            let c = match self.base {
                Some(_) if self.bbuf[i..(i + BLOCK).min(n)] == *b => Class::Same,
                _ if is_zero(b) => Class::Zero,
                _ => Class::Data,
            };
            self.classes.push(c);
        }
        self.buf_start = self.pos;
        self.next = 0;
        self.pos += n as u64;
        Ok(true)
    }
}

impl Changes for BlockScan<'_> {
    fn next_change(&mut self) -> io::Result<Option<Change>> {
        loop {
            while self.next < self.classes.len() && self.classes[self.next] == Class::Same {
                self.next += 1;
            }
            if self.next < self.classes.len() {
                break;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
        // A run of one class within this chunk (the encoder and the
        // receiver see runs of at most 1 MiB; adjacent holes are merged
        // across chunks by `send`).
        let c = self.classes[self.next];
        let s = self.next;
        while self.next < self.classes.len() && self.classes[self.next] == c {
            self.next += 1;
        }
        let offset = self.buf_start + (s * BLOCK) as u64;
        let end = ((self.next * BLOCK).min(self.buf.len())) as u64;
        Ok(Some(match c {
            Class::Data => Change::Data {
                offset,
                data: self.buf[s * BLOCK..end as usize].to_vec(),
            },
            _ => Change::Hole {
                offset,
                len: end - (s * BLOCK) as u64,
            },
        }))
    }

    fn scanned(&self) -> u64 {
        self.pos
    }
}

/// What `send` wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendStats {
    pub data_bytes: u64,
    pub hole_bytes: u64,
    pub stream_bytes: u64,
}

/// Encodes the changes as a stream on `out`.
pub fn send<W: Write>(
    changes: &mut dyn Changes,
    header: &Header,
    out: W,
    progress: &mut Progress,
) -> io::Result<SendStats> {
    let mut enc = Encoder::new(out, header)?;
    let mut st = SendStats::default();
    // A hole waiting to be merged with the next one.
    let mut hole: Option<(u64, u64)> = None;
    let mut seen = 0;
    while let Some(c) = changes.next_change()? {
        match c {
            Change::Hole { offset, len } => match &mut hole {
                Some((o, l)) if *o + *l == offset => *l += len,
                _ => {
                    if let Some((o, l)) = hole.take() {
                        enc.hole(o, l)?;
                        st.hole_bytes += l;
                    }
                    hole = Some((offset, len));
                }
            },
            Change::Data { offset, data } => {
                if let Some((o, l)) = hole.take() {
                    enc.hole(o, l)?;
                    st.hole_bytes += l;
                }
                enc.data(offset, &data)?;
                st.data_bytes += data.len() as u64;
            }
        }
        let now = changes.scanned();
        progress.add(now - seen);
        seen = now;
    }
    if let Some((o, l)) = hole.take() {
        enc.hole(o, l)?;
        st.hole_bytes += l;
    }
    let now = changes.scanned();
    progress.add(now.saturating_sub(seen));
    st.stream_bytes = enc.written + super::FRAME as u64;
    enc.finish()?;
    Ok(st)
}

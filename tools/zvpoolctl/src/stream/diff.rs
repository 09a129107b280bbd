// SPDX-License-Identifier: GPL-2.0
//! What a stream carries: the source of "which extents of the snapshot to
//! send" (`Changes`), and `send`, which encodes them.
//!
//! Two sources: `KernelList` takes the extents the kernel lists through the
//! control device (`diff POOL SNAP [BASE]`: what the snapshot's block table
//! maps, or maps differently from the base's, found by comparing the
//! tables and skipping what they share) and reads only those from the
//! snapshot; `BlockScan`, for modules without that command, reads the
//! snapshot (a full stream: every non-zero block, zero runs as holes) or
//! compares it with the base snapshot block by block (an incremental: the
//! blocks that differ; holes where the snapshot reads zeros and the base
//! did not), which reads both devices in full.

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

/// One line of the kernel's listing: data to read from the snapshot
/// (`map`) or a range that reads zeros (`unmap`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub map: bool,
    pub offset: u64,
    pub len: u64,
}

/// Parses the kernel's `diff` answer: `size BYTES`, then `map|unmap OFFSET
/// LENGTH` lines, 4 KiB-aligned, ascending, not overlapping, inside the
/// size. Returns the size and the lines; anything else is refused.
pub fn parse_listing(text: &str) -> Result<(u64, Vec<Listed>), String> {
    let mut lines = text.lines();
    let bad = |l: &str| format!("unexpected line {l:?} in the kernel's extent list");
    let first = lines.next().unwrap_or("");
    let size = first
        .strip_prefix("size ")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| bad(first))?;
    let mut out = Vec::new();
    let mut end = 0u64;
    for l in lines {
        let w: Vec<&str> = l.split(' ').collect();
        let (map, off, len) = match w[..] {
            [kind @ ("map" | "unmap"), o, n] => (
                kind == "map",
                o.parse::<u64>().map_err(|_| bad(l))?,
                n.parse::<u64>().map_err(|_| bad(l))?,
            ),
            _ => return Err(bad(l)),
        };
        let stop = off.checked_add(len).ok_or_else(|| bad(l))?;
        if len == 0
            || off < end
            || stop > size
            || off % BLOCK as u64 != 0
            || len % BLOCK as u64 != 0
        {
            return Err(bad(l));
        }
        end = stop;
        out.push(Listed {
            map,
            offset: off,
            len,
        });
    }
    Ok((size, out))
}

/// The kernel's list of what differs, with the data of each `map` range
/// read from the snapshot in chunks (all-zero blocks go as holes, as in
/// [`BlockScan`]).
pub struct KernelList<'a> {
    snap: &'a mut dyn VolumeDev,
    items: std::vec::IntoIter<Listed>,
    /// The `map` range being read: next offset and end.
    cur: Option<(u64, u64)>,
    buf: Vec<u8>,
    /// Where `buf` starts on the device, and the next byte of it to hand out.
    buf_start: u64,
    next: usize,
    pos: u64,
}

impl<'a> KernelList<'a> {
    pub fn new(snap: &'a mut dyn VolumeDev, items: Vec<Listed>) -> Self {
        KernelList {
            snap,
            items: items.into_iter(),
            cur: None,
            buf: Vec::new(),
            buf_start: 0,
            next: 0,
            pos: 0,
        }
    }
}

impl Changes for KernelList<'_> {
    fn next_change(&mut self) -> io::Result<Option<Change>> {
        while self.next >= self.buf.len() {
            match self.cur {
                Some((at, end)) if at < end => {
                    let n = (end - at).min(CHUNK as u64) as usize;
                    self.buf.resize(n, 0);
                    self.snap.read_at(at, &mut self.buf)?;
                    self.buf_start = at;
                    self.next = 0;
                    self.cur = Some((at + n as u64, end));
                }
                _ => {
                    self.cur = None;
                    self.buf.clear();
                    self.next = 0;
                    let Some(it) = self.items.next() else {
                        return Ok(None);
                    };
                    self.pos = it.offset + it.len;
                    if !it.map {
                        return Ok(Some(Change::Hole {
                            offset: it.offset,
                            len: it.len,
                        }));
                    }
                    self.cur = Some((it.offset, it.offset + it.len));
                }
            }
        }
        // A run of zero or of non-zero blocks from `next`.
        let zero = |i: usize| is_zero(&self.buf[i..(i + BLOCK).min(self.buf.len())]);
        let s = self.next;
        let z = zero(s);
        let mut e = s + BLOCK;
        while e < self.buf.len() && zero(e) == z {
            e += BLOCK;
        }
        let e = e.min(self.buf.len());
        self.next = e;
        let offset = self.buf_start + s as u64;
        Ok(Some(if z {
            Change::Hole {
                offset,
                len: (e - s) as u64,
            }
        } else {
            Change::Data {
                offset,
                data: self.buf[s..e].to_vec(),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_listings_are_checked() {
        let ok = "size 65536\nmap 0 8192\nunmap 8192 4096\nmap 32768 32768\n";
        let (size, l) = parse_listing(ok).unwrap();
        assert_eq!(size, 65536);
        assert_eq!(
            l,
            vec![
                Listed {
                    map: true,
                    offset: 0,
                    len: 8192
                },
                Listed {
                    map: false,
                    offset: 8192,
                    len: 4096
                },
                Listed {
                    map: true,
                    offset: 32768,
                    len: 32768
                },
            ]
        );
        assert_eq!(parse_listing("size 4096\n").unwrap(), (4096, vec![]));
        for bad in [
            "",
            "map 0 4096\n",
            "size x\n",
            "size 65536\nmap 0 4096 9\n",
            "size 65536\nzero 0 4096\n",
            "size 65536\nmap 0 0\n",
            "size 65536\nmap 100 4096\n",
            "size 65536\nmap 0 4000\n",
            "size 65536\nmap 4096 4096\nmap 0 4096\n",
            "size 65536\nmap 0 8192\nunmap 4096 4096\n",
            "size 65536\nmap 61440 8192\n",
            "size 65536\nmap 18446744073709551615 4096\n",
        ] {
            assert!(parse_listing(bad).is_err(), "{bad:?} accepted");
        }
    }
}

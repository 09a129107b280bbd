// SPDX-License-Identifier: GPL-2.0
//! Snapshot streams (`snapshot send` / `snapshot receive`): the encoder and
//! the decoder of the stream format of `Documentation/stream-format.md`.
//!
//! A stream is a header, extent records in ascending volume order (data
//! with its CRC32C, or a hole) and a trailer (record count, data bytes and
//! a CRC32C over every byte before the trailer). Every frame is checked
//! before it is handed out: the decoder never returns a record whose bytes
//! were damaged, and `next` returns `Ok(None)` only after a valid trailer
//! and the end of the input.

pub mod apply;
pub mod diff;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Read, Write};
use zvcore::crc32c::{crc32c, Crc32c};

pub const MAGIC: &[u8; 8] = b"ZVSTREAM";
pub const VERSION: u16 = 1;
/// Header flag: an incremental stream (it has a base).
pub const FLAG_INCREMENTAL: u16 = 1;
pub const BLOCK: u64 = 4096;
/// Largest volume a stream may describe (the volume size limit, 2^50).
pub const MAX_VOLUME: u64 = 1 << 50;
/// Largest data record (bounds the decoder's allocation).
pub const MAX_DATA: u64 = 8 << 20;
/// Every record and the trailer are 32-byte frames.
pub const FRAME: usize = 32;
/// Longest identity string (volume, snapshot, pool UUID).
pub const MAX_NAME: usize = 63;
/// The fixed part of the header before the identity strings.
const HEADER_FIXED: usize = 32;
/// The header's length bound (fixed part, six strings, CRC).
const MAX_HEADER: usize = HEADER_FIXED + 6 * (1 + MAX_NAME) + 4;

const KIND_DATA: u32 = 1;
const KIND_HOLE: u32 = 2;
const KIND_END: u32 = 3;

/// Where a snapshot comes from: the pool's UUID (empty if unknown), the
/// volume's name and the snapshot's name (the part after `@`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub pool_uuid: String,
    pub volume: String,
    pub snapshot: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uuid = if self.pool_uuid.is_empty() {
            "-"
        } else {
            &self.pool_uuid
        };
        write!(f, "{}@{} (pool {uuid})", self.volume, self.snapshot)
    }
}

/// The stream header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub volume_size: u64,
    pub snap: Identity,
    /// The base snapshot of an incremental stream.
    pub base: Option<Identity>,
}

/// One verified record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `data.len()` bytes at `offset`.
    Data { offset: u64, data: Vec<u8> },
    /// `len` bytes at `offset` read as zeros.
    Hole { offset: u64, len: u64 },
}

impl Record {
    pub fn offset(&self) -> u64 {
        match self {
            Record::Data { offset, .. } | Record::Hole { offset, .. } => *offset,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Record::Data { data, .. } => data.len() as u64,
            Record::Hole { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn end(&self) -> u64 {
        self.offset() + self.len()
    }
}

/// Why a stream was refused: a message and the byte offset in the stream
/// where the problem was found.
#[derive(Debug)]
pub struct StreamError {
    pub at: u64,
    pub msg: String,
    /// The input failed (not the stream's content).
    pub io: Option<io::Error>,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at stream byte {})", self.msg, self.at)
    }
}

fn ident_ok(s: &str, uuid: bool) -> bool {
    s.len() <= MAX_NAME
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') || (uuid && c == ':')
        })
}

/// Checks a header's fields (the encoder and the decoder apply the same
/// rules).
pub fn check_header(h: &Header) -> Result<(), String> {
    if h.volume_size == 0 || !h.volume_size.is_multiple_of(BLOCK) || h.volume_size > MAX_VOLUME {
        return Err(format!(
            "volume size {} is not a multiple of {BLOCK} between {BLOCK} and 2^50",
            h.volume_size
        ));
    }
    let ids = std::iter::once(&h.snap).chain(h.base.as_ref());
    for id in ids {
        if !ident_ok(&id.pool_uuid, true)
            || !ident_ok(&id.volume, false)
            || !ident_ok(&id.snapshot, false)
            || id.volume.is_empty()
            || id.snapshot.is_empty()
        {
            return Err(format!("invalid snapshot identity {id}"));
        }
    }
    Ok(())
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.push(s.len() as u8);
    b.extend_from_slice(s.as_bytes());
}

/// The header's bytes, CRC included.
pub fn encode_header(h: &Header) -> Result<Vec<u8>, String> {
    check_header(h)?;
    let mut b = Vec::with_capacity(MAX_HEADER);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    let flags = if h.base.is_some() {
        FLAG_INCREMENTAL
    } else {
        0
    };
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&[0; 4]); // header length, set below
    b.extend_from_slice(&(BLOCK as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&h.volume_size.to_le_bytes());
    let empty = Identity::default();
    for id in [&h.snap, h.base.as_ref().unwrap_or(&empty)] {
        put_str(&mut b, &id.pool_uuid);
        put_str(&mut b, &id.volume);
        put_str(&mut b, &id.snapshot);
    }
    let len = (b.len() + 4) as u32;
    b[12..16].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    Ok(b)
}

fn frame(kind: u32, a: u64, b: u64, crc: u32) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[0..4].copy_from_slice(&kind.to_le_bytes());
    f[8..16].copy_from_slice(&a.to_le_bytes());
    f[16..24].copy_from_slice(&b.to_le_bytes());
    f[24..28].copy_from_slice(&crc.to_le_bytes());
    let fc = crc32c(&f[..28]);
    f[28..32].copy_from_slice(&fc.to_le_bytes());
    f
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Writes a stream: the header at `new`, records in ascending order, the
/// trailer at `finish`.
pub struct Encoder<W: Write> {
    w: W,
    crc: Crc32c,
    size: u64,
    /// End of the last record (records must not go back).
    pos: u64,
    records: u64,
    data_bytes: u64,
    /// Bytes written so far.
    pub written: u64,
}

impl<W: Write> Encoder<W> {
    pub fn new(mut w: W, h: &Header) -> io::Result<Self> {
        let hb = encode_header(h).map_err(io::Error::other)?;
        w.write_all(&hb)?;
        Ok(Encoder {
            w,
            crc: Crc32c::new().update(&hb),
            size: h.volume_size,
            pos: 0,
            records: 0,
            data_bytes: 0,
            written: hb.len() as u64,
        })
    }

    fn check(&self, offset: u64, len: u64) -> io::Result<()> {
        let ok = len > 0
            && offset.is_multiple_of(BLOCK)
            && len.is_multiple_of(BLOCK)
            && offset >= self.pos
            && offset.checked_add(len).is_some_and(|e| e <= self.size);
        if ok {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "record at {offset} of {len} bytes out of order or range"
            )))
        }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.crc = self.crc.update(b);
        self.written += b.len() as u64;
        Ok(())
    }

    /// A data record (split into records of at most `MAX_DATA` bytes).
    pub fn data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut off = offset;
        for chunk in data.chunks(MAX_DATA as usize) {
            let len = chunk.len() as u64;
            self.check(off, len)?;
            let f = frame(KIND_DATA, off, len, crc32c(chunk));
            self.put(&f)?;
            self.put(chunk)?;
            self.records += 1;
            self.data_bytes += len;
            off += len;
            self.pos = off;
        }
        Ok(())
    }

    /// A hole: `len` bytes at `offset` read as zeros.
    pub fn hole(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len)?;
        let f = frame(KIND_HOLE, offset, len, 0);
        self.put(&f)?;
        self.records += 1;
        self.pos = offset + len;
        Ok(())
    }

    /// Writes the trailer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let f = frame(KIND_END, self.records, self.data_bytes, self.crc.finish());
        self.w.write_all(&f)?;
        self.written += FRAME as u64;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Reads and verifies a stream.
pub struct Decoder<R: Read> {
    r: R,
    crc: Crc32c,
    /// Stream bytes consumed.
    pub consumed: u64,
    size: u64,
    pos: u64,
    records: u64,
    data_bytes: u64,
    done: bool,
}

impl<R: Read> Decoder<R> {
    /// Reads and checks the header.
    pub fn new(mut r: R) -> Result<(Self, Header), StreamError> {
        let bad = |at: u64, msg: String| StreamError { at, msg, io: None };
        let mut fixed = [0u8; HEADER_FIXED];
        read_full(&mut r, &mut fixed, 0, "the stream header")?;
        if &fixed[0..8] != MAGIC {
            return Err(bad(0, "not a zvpool snapshot stream (bad magic)".into()));
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if version != VERSION {
            return Err(bad(
                8,
                format!("stream version {version} is not supported (this zvpoolctl reads version {VERSION})"),
            ));
        }
        let flags = u16::from_le_bytes([fixed[10], fixed[11]]);
        if flags & !FLAG_INCREMENTAL != 0 {
            return Err(bad(10, format!("unknown stream flags {flags:#x}")));
        }
        let len = le32(&fixed, 12) as usize;
        if !(HEADER_FIXED + 6 + 4..=MAX_HEADER).contains(&len) {
            return Err(bad(12, format!("header length {len} out of range")));
        }
        let block = le32(&fixed, 16);
        if u64::from(block) != BLOCK || le32(&fixed, 20) != 0 {
            return Err(bad(16, format!("block size {block} is not {BLOCK}")));
        }
        let mut rest = vec![0u8; len - HEADER_FIXED];
        read_full(&mut r, &mut rest, HEADER_FIXED as u64, "the stream header")?;
        let mut all = fixed.to_vec();
        all.extend_from_slice(&rest);
        let want = le32(&all, len - 4);
        if crc32c(&all[..len - 4]) != want {
            return Err(bad(
                (len - 4) as u64,
                "header checksum mismatch (the stream is damaged)".into(),
            ));
        }
        // Six length-prefixed strings, exactly filling the header.
        let mut at = HEADER_FIXED;
        let mut strs = Vec::new();
        for _ in 0..6 {
            let n = *all.get(at).unwrap_or(&0) as usize;
            let s = all
                .get(at + 1..at + 1 + n)
                .filter(|_| at + 1 + n <= len - 4)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| bad(at as u64, "malformed identity in the header".into()))?;
            strs.push(s.to_string());
            at += 1 + n;
        }
        if at != len - 4 {
            return Err(bad(at as u64, "malformed identity in the header".into()));
        }
        let id = |i: usize| Identity {
            pool_uuid: strs[i].clone(),
            volume: strs[i + 1].clone(),
            snapshot: strs[i + 2].clone(),
        };
        let incremental = flags & FLAG_INCREMENTAL != 0;
        let base_empty = strs[3..].iter().all(String::is_empty);
        if !incremental && !base_empty {
            return Err(bad(at as u64, "a full stream with a base identity".into()));
        }
        let h = Header {
            volume_size: le64(&all, 24),
            snap: id(0),
            base: incremental.then(|| id(3)),
        };
        check_header(&h).map_err(|m| bad(24, m))?;
        Ok((
            Decoder {
                r,
                crc: Crc32c::new().update(&all),
                consumed: len as u64,
                size: h.volume_size,
                pos: 0,
                records: 0,
                data_bytes: 0,
                done: false,
            },
            h,
        ))
    }

    /// The next verified record; `Ok(None)` after a valid trailer at the
    /// end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, StreamError> {
        if self.done {
            return Ok(None);
        }
        let at = self.consumed;
        let n = self.records + 1;
        let bad = |msg: String| StreamError { at, msg, io: None };
        let mut f = [0u8; FRAME];
        let got = read_some(&mut self.r, &mut f, at)?;
        if got == 0 {
            return Err(bad(format!(
                "the stream ends after {} record(s) without its trailer (truncated)",
                self.records
            )));
        }
        if got < FRAME {
            return Err(bad(format!("the stream is truncated inside record {n}")));
        }
        if crc32c(&f[..28]) != le32(&f, 28) {
            return Err(bad(format!(
                "record {n}: frame checksum mismatch (the stream is damaged)"
            )));
        }
        let kind = le32(&f, 0);
        let (a, b, c) = (le64(&f, 8), le64(&f, 16), le32(&f, 24));
        if le32(&f, 4) != 0 {
            return Err(bad(format!("record {n}: reserved field is not zero")));
        }
        if kind == KIND_END {
            if a != self.records || b != self.data_bytes {
                return Err(bad(format!(
                    "trailer says {a} records and {b} data bytes, the stream had {} and {}",
                    self.records, self.data_bytes
                )));
            }
            if c != self.crc.finish() {
                return Err(bad("stream checksum mismatch in the trailer".into()));
            }
            self.consumed += FRAME as u64;
            let mut extra = [0u8; 1];
            if read_some(&mut self.r, &mut extra, self.consumed)? != 0 {
                return Err(StreamError {
                    at: self.consumed,
                    msg: "data after the trailer".into(),
                    io: None,
                });
            }
            self.done = true;
            return Ok(None);
        }
        let (offset, len) = (a, b);
        let in_range = len > 0
            && offset.is_multiple_of(BLOCK)
            && len.is_multiple_of(BLOCK)
            && offset >= self.pos
            && offset.checked_add(len).is_some_and(|e| e <= self.size);
        if !in_range {
            return Err(bad(format!(
                "record {n}: extent at {offset} of {len} bytes is out of order or outside the volume"
            )));
        }
        let rec = match kind {
            KIND_HOLE => {
                if c != 0 {
                    return Err(bad(format!("record {n}: a hole with a checksum")));
                }
                Record::Hole { offset, len }
            }
            KIND_DATA => {
                if len > MAX_DATA {
                    return Err(bad(format!(
                        "record {n}: {len} bytes of data (at most {MAX_DATA})"
                    )));
                }
                let mut data = vec![0u8; len as usize];
                let dat = at + FRAME as u64;
                let got = read_some(&mut self.r, &mut data, dat)?;
                if got < data.len() {
                    return Err(StreamError {
                        at: dat + got as u64,
                        msg: format!("the stream is truncated inside the data of record {n}"),
                        io: None,
                    });
                }
                if crc32c(&data) != c {
                    return Err(StreamError {
                        at: dat,
                        msg: format!(
                            "record {n} (volume offset {offset}): data checksum mismatch (the stream is damaged)"
                        ),
                        io: None,
                    });
                }
                self.data_bytes += len;
                Record::Data { offset, data }
            }
            k => return Err(bad(format!("record {n}: unknown record kind {k}"))),
        };
        self.crc = self.crc.update(&f);
        if let Record::Data { data, .. } = &rec {
            self.crc = self.crc.update(data);
        }
        self.consumed += FRAME as u64 + if kind == KIND_DATA { len } else { 0 };
        self.records += 1;
        self.pos = offset + len;
        Ok(Some(rec))
    }

    /// Records verified so far.
    pub fn records(&self) -> u64 {
        self.records
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_some<R: Read>(r: &mut R, buf: &mut [u8], at: u64) -> Result<usize, StreamError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(StreamError {
                    at: at + n as u64,
                    msg: format!("read the stream: {}", crate::error::io_text(&e)),
                    io: Some(e),
                })
            }
        }
    }
    Ok(n)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8], at: u64, what: &str) -> Result<(), StreamError> {
    let n = read_some(r, buf, at)?;
    if n < buf.len() {
        return Err(StreamError {
            at: at + n as u64,
            msg: if at + n as u64 == 0 {
                "the stream is empty".into()
            } else {
                format!("the stream is truncated inside {what}")
            },
            io: None,
        });
    }
    Ok(())
}

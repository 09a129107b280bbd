// SPDX-License-Identifier: GPL-2.0
//! Bounds-checked little-endian encoding and decoding of on-disk structures.
//!
//! Nothing is ever transmuted from disk bytes: every field is read through a
//! [`Reader`], which returns [`Error::Truncated`] instead of panicking.

use super::error::{Error, Result};

/// Writes little-endian fields into a caller-provided buffer.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Appends raw bytes.
    pub fn put_bytes(&mut self, b: &[u8]) -> Result<()> {
        let end = self.pos.checked_add(b.len()).ok_or(Error::Truncated)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(Error::Truncated)?;
        dst.copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    /// Appends `n` zero bytes.
    pub fn put_zeros(&mut self, n: usize) -> Result<()> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(Error::Truncated)?;
        dst.fill(0);
        self.pos = end;
        Ok(())
    }

    /// Appends a `u8`.
    pub fn put_u8(&mut self, v: u8) -> Result<()> {
        self.put_bytes(&[v])
    }

    /// Appends a little-endian `u16`.
    pub fn put_u16(&mut self, v: u16) -> Result<()> {
        self.put_bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u32`.
    pub fn put_u32(&mut self, v: u32) -> Result<()> {
        self.put_bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u64`.
    pub fn put_u64(&mut self, v: u64) -> Result<()> {
        self.put_bytes(&v.to_le_bytes())
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }

    /// Overwrites a `u32` at an absolute offset already written (e.g. a checksum
    /// or length field filled in at the end).
    pub fn patch_u32(&mut self, at: usize, v: u32) -> Result<()> {
        let end = at.checked_add(4).ok_or(Error::Truncated)?;
        if end > self.pos {
            return Err(Error::Truncated);
        }
        let dst = self.buf.get_mut(at..end).ok_or(Error::Truncated)?;
        dst.copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
}

/// Reads little-endian fields from untrusted bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Takes the next `n` bytes.
    pub fn get_bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Takes the next `N` bytes as an array.
    pub fn get_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.get_bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.get_bytes(n).map(|_| ())
    }

    /// Reads a `u8`.
    pub fn get_u8(&mut self) -> Result<u8> {
        Ok(self.get_array::<1>()?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn get_u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.get_array()?))
    }

    /// Reads a little-endian `u32`.
    pub fn get_u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.get_array()?))
    }

    /// Reads a little-endian `u64`.
    pub fn get_u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.get_array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        w.put_u8(1).unwrap();
        w.put_u16(0x0203).unwrap();
        w.put_u32(0x0405_0607).unwrap();
        w.put_u64(0x0809_0a0b_0c0d_0e0f).unwrap();
        w.put_zeros(2).unwrap();
        w.patch_u32(3, 0xdead_beef).unwrap();
        assert_eq!(w.pos(), 17);
        let mut r = Reader::new(&buf);
        assert_eq!(r.get_u8().unwrap(), 1);
        assert_eq!(r.get_u16().unwrap(), 0x0203);
        assert_eq!(r.get_u32().unwrap(), 0xdead_beef);
        assert_eq!(r.get_u64().unwrap(), 0x0809_0a0b_0c0d_0e0f);
        assert_eq!(r.get_u16().unwrap(), 0);
    }

    #[test]
    fn bounds_are_errors() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put_u32(1), Err(Error::Truncated));
        assert_eq!(w.pos(), 0);
        assert_eq!(w.patch_u32(0, 1), Err(Error::Truncated));
        let mut r = Reader::new(&buf);
        assert_eq!(r.get_u64(), Err(Error::Truncated));
        assert_eq!(r.get_bytes(usize::MAX), Err(Error::Truncated));
        assert_eq!(r.get_u16().unwrap(), 0);
        assert_eq!(r.get_u16(), Err(Error::Truncated));
    }
}

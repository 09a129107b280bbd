// SPDX-License-Identifier: GPL-2.0
//! The receiving side: verified records written into a volume device.
//!
//! Each record is verified by the decoder before it is written; the
//! trailer (record count, bytes, the CRC over the whole stream) is checked
//! before `apply` returns Ok, and only then does `snapshot receive` take
//! the snapshot. When the stream breaks, the volume holds every record
//! before the damage and nothing after it; `--resume` applies the whole
//! stream again, reading the target first and writing only what differs
//! (no state is kept anywhere: what was written is recomputed from the
//! target).

use super::{Decoder, Record};
use crate::devio::VolumeDev;
use crate::progress::Progress;
use std::io::Read;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOpts {
    /// The volume was created for this stream: it reads zeros everywhere,
    /// so holes need no I/O.
    pub fresh: bool,
    /// Resume: read the target and write only records it does not hold.
    pub resume: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStats {
    pub records: u64,
    /// Data bytes written.
    pub written: u64,
    /// Data bytes the target already held (resume).
    pub already: u64,
    /// Hole bytes zeroed.
    pub zeroed: u64,
}

/// Why applying stopped: the message and what the volume holds.
#[derive(Debug)]
pub struct ApplyError {
    pub msg: String,
    /// Records written (all of them before the damage).
    pub records: u64,
    /// The end of the last record written (volume offset).
    pub good_to: u64,
}

pub fn apply<R: Read>(
    dec: &mut Decoder<R>,
    dev: &mut dyn VolumeDev,
    opts: ApplyOpts,
    progress: &mut Progress,
) -> Result<ApplyStats, ApplyError> {
    let mut st = ApplyStats::default();
    let mut good_to = 0u64;
    let fail = |msg: String, st: &ApplyStats, good_to: u64| ApplyError {
        msg,
        records: st.records,
        good_to,
    };
    let size = dev.size();
    let mut cmp = Vec::new();
    loop {
        let rec = match dec.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(fail(e.to_string(), &st, good_to)),
        };
        if rec.end() > size {
            return Err(fail(
                format!(
                    "record at {} of {} bytes is beyond the volume's {} bytes",
                    rec.offset(),
                    rec.len(),
                    size
                ),
                &st,
                good_to,
            ));
        }
        let io = |e: std::io::Error, what: &str| {
            format!(
                "{what} {} bytes at volume offset {}: {}",
                rec.len(),
                rec.offset(),
                crate::error::io_text(&e)
            )
        };
        match &rec {
            Record::Data { offset, data } => {
                let mut same = false;
                if opts.resume {
                    cmp.resize(data.len(), 0);
                    dev.read_at(*offset, &mut cmp)
                        .map_err(|e| fail(io(e, "read"), &st, good_to))?;
                    same = cmp == *data;
                }
                if same {
                    st.already += data.len() as u64;
                } else {
                    dev.write_at(*offset, data)
                        .map_err(|e| fail(io(e, "write"), &st, good_to))?;
                    st.written += data.len() as u64;
                }
            }
            Record::Hole { offset, len } => {
                if !opts.fresh {
                    dev.zero_range(*offset, *len)
                        .map_err(|e| fail(io(e, "zero"), &st, good_to))?;
                    st.zeroed += len;
                }
            }
        }
        st.records += 1;
        // Progress is the position in the volume (an incremental skips
        // what did not change).
        progress.add(rec.end() - good_to);
        good_to = rec.end();
    }
    progress.add(size.saturating_sub(good_to));
    dev.sync().map_err(|e| {
        fail(
            format!("flush the volume: {}", crate::error::io_text(&e)),
            &st,
            good_to,
        )
    })?;
    Ok(st)
}

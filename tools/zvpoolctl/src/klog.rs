// SPDX-License-Identifier: GPL-2.0
//! The kernel's reason for a refusal: every refusal logs one line
//! `zvpool: <object>: <reason>`. Before each configfs write zvpoolctl marks the
//! end of the kernel log; after a failed write it collects the `zvpool:` lines
//! logged since (and nvmet's, `nvmet:`, for `volume export`). Sources:
//! `/dev/kmsg` (non-blocking reads), else `dmesg`, else nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// At most this many lines are reported for one failure (the newest).
const MAX_LINES: usize = 3;
/// Lines of zvpool and of the NVMe-oF target (`volume export` reports
/// nvmet's reasons: a transport that is missing, an address in use).
const PREFIXES: &[&str] = &["zvpool:", "nvmet:", "nvmet_tcp:", "nvme_loop:"];

fn ours(msg: &str) -> bool {
    PREFIXES.iter().any(|p| msg.starts_with(p))
}
const O_NONBLOCK: i32 = 0o4000;

pub trait KernelLog {
    /// Remembers the current end of the log.
    fn mark(&mut self);
    /// Every `zvpool:` line logged since the mark, with its level (`None`
    /// when the source does not say), oldest first.
    fn all_since_mark(&mut self) -> Vec<(Option<u32>, String)>;
    /// The newest `zvpool:` lines of warning level or more severe logged
    /// since the mark (refusals are logged as errors).
    fn since_mark(&mut self) -> Vec<String> {
        newest(
            self.all_since_mark()
                .into_iter()
                .filter(|(l, _)| l.is_none_or(|p| p <= 4))
                .map(|(_, m)| m)
                .collect(),
        )
    }
}

/// No kernel log available.
pub struct NoLog;

impl KernelLog for NoLog {
    fn mark(&mut self) {}
    fn all_since_mark(&mut self) -> Vec<(Option<u32>, String)> {
        Vec::new()
    }
}

/// `/dev/kmsg` (or a file in its format, for tests): records
/// `prio,seq,usec,flags;message`, continuation lines start with a space.
pub struct KmsgLog {
    path: PathBuf,
    file: Option<File>,
}

impl KmsgLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KmsgLog {
            path: path.into(),
            file: None,
        }
    }

    /// Opens the log positioned at its end; fails if it cannot be read.
    fn open_at_end(&self) -> io::Result<File> {
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&self.path)?;
        f.seek(SeekFrom::End(0))?;
        Ok(f)
    }
}

impl KernelLog for KmsgLog {
    fn mark(&mut self) {
        self.file = self.open_at_end().ok();
    }

    fn all_since_mark(&mut self) -> Vec<(Option<u32>, String)> {
        let Some(mut f) = self.file.take() else {
            return Vec::new();
        };
        // /dev/kmsg returns one record per read and EAGAIN at the end; EPIPE
        // means records were overwritten (the next read continues).
        let mut text = Vec::new();
        let mut buf = vec![0u8; 16384];
        for _ in 0..100_000 {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(32) => continue,
                Err(_) => break,
            }
        }
        parse_kmsg_all(&String::from_utf8_lossy(&text))
    }
}

/// Messages of `/dev/kmsg` records that start with `zvpool:` and have a
/// level of warning or more severe (refusals are logged as errors; the
/// driver's informational lines, e.g. "stopped", are not reasons).
pub fn parse_kmsg(text: &str) -> Vec<String> {
    parse_kmsg_all(text)
        .into_iter()
        .filter(|(l, _)| l.is_none_or(|p| p <= 4))
        .map(|(_, m)| m)
        .collect()
}

/// Every `zvpool:` message of `/dev/kmsg` records, with its level (0-7).
pub fn parse_kmsg_all(text: &str) -> Vec<(Option<u32>, String)> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(';'))
        .map(|(head, msg)| {
            let prio = head.split(',').next().and_then(|p| p.parse::<u32>().ok());
            (prio.map(|p| p & 7), msg.trim_end())
        })
        .filter(|(_, m)| ours(m))
        .map(|(l, m)| (l, m.to_string()))
        .collect()
}

fn newest(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_LINES {
        lines.drain(..lines.len() - MAX_LINES);
    }
    lines
}

/// `dmesg` output: `[   12.345678] zvpool: ...`. The mark is the last
/// `zvpool:` line at mark time (timestamps make lines unique).
pub struct DmesgLog {
    mark: Option<String>,
}

impl DmesgLog {
    fn lines() -> Option<Vec<String>> {
        let out = Command::new("dmesg")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| dmesg_message(l).is_some())
                .map(str::to_string)
                .collect(),
        )
    }
}

/// The `zvpool:` message of a dmesg line, without the timestamp.
pub fn dmesg_message(line: &str) -> Option<&str> {
    let rest = if line.starts_with('[') {
        line.split_once(']').map(|(_, r)| r.trim_start())?
    } else {
        line
    };
    ours(rest).then_some(rest.trim_end())
}

impl KernelLog for DmesgLog {
    fn mark(&mut self) {
        self.mark = Self::lines().and_then(|mut l| l.pop());
    }

    fn all_since_mark(&mut self) -> Vec<(Option<u32>, String)> {
        let Some(lines) = Self::lines() else {
            return Vec::new();
        };
        let start = match &self.mark {
            Some(m) => match lines.iter().rposition(|l| l == m) {
                Some(i) => i + 1,
                // The mark scrolled out of the ring buffer: the newest only.
                None => lines.len().saturating_sub(1),
            },
            None => 0,
        };
        lines[start..]
            .iter()
            .filter_map(|l| dmesg_message(l).map(|m| (None, m.to_string())))
            .collect()
    }
}

/// The default source: `/dev/kmsg` when it can be read, else `dmesg`.
pub struct AutoLog {
    inner: Option<Box<dyn KernelLog>>,
}

impl AutoLog {
    pub fn new() -> Self {
        AutoLog { inner: None }
    }
}

impl Default for AutoLog {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelLog for AutoLog {
    fn mark(&mut self) {
        if self.inner.is_none() {
            let kmsg = KmsgLog::new("/dev/kmsg");
            self.inner = Some(if kmsg.open_at_end().is_ok() {
                Box::new(kmsg)
            } else if DmesgLog::lines().is_some() {
                Box::new(DmesgLog { mark: None })
            } else {
                Box::new(NoLog)
            });
        }
        if let Some(l) = self.inner.as_mut() {
            l.mark();
        }
    }

    fn all_since_mark(&mut self) -> Vec<(Option<u32>, String)> {
        self.inner
            .as_mut()
            .map(|l| l.all_since_mark())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::io::Write;

    #[test]
    fn kmsg_records() {
        let text = "3,100,5000,-;zvpool: tank: member /dev/x is busy\n SUBSYSTEM=block\n\
                    4,101,5001,-;nvme nvme0: something\n\
                    6,102,5001,-;zvpool: tank: stopped\n\
                    12,103,5001,-;zvpool: tank: a warning (facility 1)\n\
                    3,102,5002,c;zvpool: tank/vm1: size is not a multiple of 4096\n";
        assert_eq!(
            parse_kmsg(text),
            vec![
                "zvpool: tank: member /dev/x is busy".to_string(),
                "zvpool: tank: a warning (facility 1)".to_string(),
                "zvpool: tank/vm1: size is not a multiple of 4096".to_string()
            ]
        );
    }

    #[test]
    fn kmsg_file_since_mark() {
        let dir = TempDir::new("klog");
        let path = dir.path().join("kmsg");
        std::fs::write(&path, "3,1,1,-;zvpool: old: stale reason\n").unwrap();
        let mut log = KmsgLog::new(&path);
        log.mark();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        for i in 0..5 {
            writeln!(f, "3,{},2,-;zvpool: tank: reason {i}", i + 2).unwrap();
        }
        writeln!(f, "6,9,3,-;other: not ours").unwrap();
        let got = log.since_mark();
        assert_eq!(
            got,
            vec![
                "zvpool: tank: reason 2",
                "zvpool: tank: reason 3",
                "zvpool: tank: reason 4"
            ]
        );
        // Consumed: nothing without a new mark.
        assert!(log.since_mark().is_empty());
    }

    #[test]
    fn missing_kmsg_gives_nothing() {
        let mut log = KmsgLog::new("/nonexistent/zvpoolctl/kmsg");
        log.mark();
        assert!(log.since_mark().is_empty());
    }

    #[test]
    fn dmesg_lines() {
        assert_eq!(
            dmesg_message("[   12.345678] zvpool: tank: busy"),
            Some("zvpool: tank: busy")
        );
        assert_eq!(
            dmesg_message("zvpool: tank: busy"),
            Some("zvpool: tank: busy")
        );
        assert_eq!(dmesg_message("[   1.0] nvme: x"), None);
    }
}

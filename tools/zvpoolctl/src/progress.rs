// SPDX-License-Identifier: GPL-2.0
//! The progress line of `volume import`, `volume export-image`, `snapshot
//! send` and `snapshot receive`: bytes done of the total, rate and time
//! left, redrawn in place on stderr at most five times a second, only when
//! stderr is a terminal (and not `--quiet`).

use crate::size::human;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(200);

pub struct Progress {
    what: String,
    total: u64,
    done: u64,
    start: Instant,
    last: Option<Instant>,
    sink: Option<Box<dyn Write>>,
}

/// Follows a background operation of the kernel until it is done: `poll`
/// returns the bytes done so far and whether it finished, or `None` once
/// the operation is gone (cancelled); polled every half second, with a
/// progress line of `total` bytes. Returns whether it finished.
pub fn follow<E>(
    what: impl Into<String>,
    total: u64,
    mut poll: impl FnMut() -> Result<Option<(u64, bool)>, E>,
) -> Result<bool, E> {
    let mut prog = Progress::new(what, total, false);
    let mut seen = 0u64;
    loop {
        let Some((done, finished)) = poll()? else {
            prog.finish();
            return Ok(false);
        };
        prog.add(done.saturating_sub(seen));
        seen = seen.max(done);
        if finished {
            prog.finish();
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Progress {
    /// A progress line on stderr if it is a terminal and not `quiet`.
    pub fn new(what: impl Into<String>, total: u64, quiet: bool) -> Self {
        let sink: Option<Box<dyn Write>> = if !quiet && std::io::stderr().is_terminal() {
            Some(Box::new(std::io::stderr()))
        } else {
            None
        };
        Self::with_sink(what, total, sink)
    }

    /// A progress line written to `sink` (`None`: silent).
    pub fn with_sink(what: impl Into<String>, total: u64, sink: Option<Box<dyn Write>>) -> Self {
        Progress {
            what: what.into(),
            total,
            done: 0,
            start: Instant::now(),
            last: None,
            sink,
        }
    }

    /// `n` more bytes are done.
    pub fn add(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        let now = Instant::now();
        if self.sink.is_some() && self.last.is_none_or(|l| now - l >= REDRAW) {
            self.last = Some(now);
            let line = self.line(now - self.start);
            if let Some(s) = self.sink.as_mut() {
                let _ = write!(s, "\r{line}\x1b[K");
                let _ = s.flush();
            }
        }
    }

    /// The last state of the line, then a newline.
    pub fn finish(&mut self) {
        let line = self.line(self.start.elapsed());
        if let Some(s) = self.sink.as_mut() {
            let _ = writeln!(s, "\r{line}\x1b[K");
            let _ = s.flush();
        }
        self.sink = None;
    }

    /// `import tank/vm1: 1.00G / 20.0G (5%), 120M/s, 2m30s left`.
    pub fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            (self.done as f64 / secs) as u64
        } else {
            0
        };
        let pct = if self.total > 0 {
            (self.done.min(self.total) as u128 * 100 / self.total as u128) as u64
        } else {
            100
        };
        let eta = if rate > 0 && self.total > self.done {
            format!(", {} left", duration((self.total - self.done) / rate))
        } else {
            String::new()
        };
        format!(
            "{}: {} / {} ({pct}%), {}/s{eta}",
            self.what,
            human(self.done),
            human(self.total),
            human(rate)
        )
    }
}

/// `45s`, `2m30s`, `1h05m`.
fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn line_has_done_total_rate_and_eta() {
        let mut p = Progress::with_sink("import tank/vm1", 4 << 30, None);
        p.add(1 << 30);
        assert_eq!(
            p.line(Duration::from_secs(10)),
            "import tank/vm1: 1.00G / 4.00G (25%), 102M/s, 30s left"
        );
        p.add(3 << 30);
        assert_eq!(
            p.line(Duration::from_secs(200)),
            "import tank/vm1: 4.00G / 4.00G (100%), 20.5M/s"
        );
        assert_eq!(duration(150), "2m30s");
        assert_eq!(duration(3900), "1h05m");
    }

    #[test]
    fn writes_to_its_sink_only_and_ends_with_a_newline() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut p = Progress::with_sink("send", 100, Some(Box::new(Shared(buf.clone()))));
        p.add(50);
        p.add(50);
        p.finish();
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("\rsend: 50B / 100B (50%)"), "{text:?}");
        assert!(text.contains("\rsend: 100B / 100B (100%)"), "{text:?}");
        assert!(text.ends_with('\n'));
        // Silent: nothing to write to, and nothing breaks.
        let mut q = Progress::with_sink("send", 0, None);
        q.add(1);
        q.finish();
    }
}

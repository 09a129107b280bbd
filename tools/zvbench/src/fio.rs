// SPDX-License-Identifier: GPL-2.0
//! What the report needs from one fio run (`--output-format=json
//! --group_reporting --lat_percentiles=1 --percentile_list=50:99:99.9`), and
//! fio's per-job IOPS logs (`--write_iops_log --log_avg_msec`).

use crate::json::{self, Value};

/// One direction (read or write) of a fio job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DirStats {
    pub iops: f64,
    pub bw_bytes: f64,
    pub io_bytes: f64,
    pub total_ios: f64,
    /// Total latency (submission + completion), nanoseconds.
    pub lat_mean_ns: f64,
    pub lat_p50_ns: Option<f64>,
    pub lat_p99_ns: Option<f64>,
    pub lat_p999_ns: Option<f64>,
    pub lat_max_ns: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FioRun {
    /// fio's error number of the job (0: none; 28: ENOSPC, 5: EIO, ...).
    pub error: i64,
    pub read: Option<DirStats>,
    pub write: Option<DirStats>,
    pub usr_cpu: f64,
    pub sys_cpu: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    Read,
    Write,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Read => "read",
            Dir::Write => "write",
        }
    }
}

impl FioRun {
    pub fn dir(&self, d: Dir) -> Option<&DirStats> {
        match d {
            Dir::Read => self.read.as_ref(),
            Dir::Write => self.write.as_ref(),
        }
    }
    pub fn total_ios(&self) -> f64 {
        self.read.as_ref().map_or(0.0, |s| s.total_ios)
            + self.write.as_ref().map_or(0.0, |s| s.total_ios)
    }
}

/// A percentile from fio's `"percentile"` object, whose keys are printed
/// with six decimals (`"99.900000"`).
fn percentile(lat: &Value, p: f64) -> Option<f64> {
    lat.get("percentile")?
        .members()
        .iter()
        .find(|(k, _)| {
            k.parse::<f64>()
                .map(|x| (x - p).abs() < 1e-6)
                .unwrap_or(false)
        })
        .and_then(|(_, v)| v.as_f64())
}

fn dir_stats(d: &Value) -> Option<DirStats> {
    let f = |k: &str| d.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let total_ios = f("total_ios");
    if total_ios <= 0.0 {
        return None; // this direction did no I/O
    }
    // With lat_percentiles=1 the percentiles are on lat_ns; older fio or
    // other settings put them on clat_ns only.
    let lat = d.get("lat_ns").cloned().unwrap_or(Value::Null);
    let pct_src = if lat.get("percentile").is_some() {
        &lat
    } else {
        d.get("clat_ns").unwrap_or(&Value::Null)
    };
    let lf = |k: &str| lat.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    Some(DirStats {
        iops: f("iops"),
        bw_bytes: f("bw_bytes"),
        io_bytes: f("io_bytes"),
        total_ios,
        lat_mean_ns: lf("mean"),
        lat_p50_ns: percentile(pct_src, 50.0),
        lat_p99_ns: percentile(pct_src, 99.0),
        lat_p999_ns: percentile(pct_src, 99.9),
        lat_max_ns: lf("max"),
    })
}

/// Reads fio's JSON output (the first job: runs use `--group_reporting`).
pub fn parse_run(text: &str) -> Result<FioRun, String> {
    let v = json::parse_lenient(text).map_err(|e| e.to_string())?;
    let jobs = v
        .get("jobs")
        .and_then(Value::as_array)
        .ok_or("no \"jobs\" array")?;
    let job = jobs.first().ok_or("empty \"jobs\" array")?;
    let num = |k: &str| job.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    Ok(FioRun {
        error: num("error") as i64,
        read: job.get("read").and_then(dir_stats),
        write: job.get("write").and_then(dir_stats),
        usr_cpu: num("usr_cpu"),
        sys_cpu: num("sys_cpu"),
    })
}

/// A sample of fio's averaged IOPS log: (milliseconds since the job's start,
/// IOPS, direction 0 read / 1 write).
pub fn parse_iops_log(text: &str) -> Vec<(u64, f64, u8)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(',').map(str::trim);
            let t = it.next()?.parse::<u64>().ok()?;
            let v = it.next()?.parse::<f64>().ok()?;
            let d = it.next()?.parse::<u8>().ok()?;
            Some((t, v, d))
        })
        .collect()
}

/// Sums the per-job logs of one run into one series of (second, IOPS) for
/// one direction; each sample counts in the whole second it ends in
/// (fio logs at `log_avg_msec=1000` boundaries, give or take a few ms).
pub fn sum_iops_logs(logs: &[Vec<(u64, f64, u8)>], ddir: u8) -> Vec<(u64, f64)> {
    let mut sums: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for log in logs {
        for &(t, v, d) in log {
            if d == ddir {
                *sums.entry((t + 500) / 1000).or_insert(0.0) += v;
            }
        }
    }
    sums.into_iter().collect()
}

#[cfg(test)]
pub const SAMPLE: &str = r#"fio: some note fio printed first
{
  "fio version" : "fio-3.33",
  "jobs" : [
    {
      "jobname" : "randrw70-4k-4x32-large",
      "error" : 0,
      "job options" : { "rw" : "randrw", "iodepth" : "32", "numjobs" : "4" },
      "read" : {
        "io_bytes" : 354734080, "bw_bytes" : 177278400, "iops" : 43280.859570,
        "runtime" : 2001, "total_ios" : 86605,
        "clat_ns" : { "min" : 430, "max" : 4265503, "mean" : 98826.5,
                      "percentile" : { "50.000000" : 117248, "99.000000" : 276480, "99.900000" : 505856 } },
        "lat_ns" : { "min" : 1682, "max" : 4275288, "mean" : 107273.078737, "N" : 86605,
                     "percentile" : { "50.000000" : 126464, "99.000000" : 292864, "99.900000" : 509952 } }
      },
      "write" : {
        "io_bytes" : 152121344, "bw_bytes" : 76022660, "iops" : 18560.219890,
        "runtime" : 2001, "total_ios" : 37139,
        "lat_ns" : { "min" : 23335, "max" : 4268888, "mean" : 179033.197097,
                     "percentile" : { "50.000000" : 164864, "99.000000" : 464896, "99.900000" : 815104 } }
      },
      "trim" : { "io_bytes" : 0, "iops" : 0.0, "total_ios" : 0, "lat_ns" : { "max" : 0 } },
      "usr_cpu" : 5.5, "sys_cpu" : 40.25
    }
  ]
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mixed_run() {
        let r = parse_run(SAMPLE).unwrap();
        assert_eq!(r.error, 0);
        let rd = r.read.as_ref().unwrap();
        assert_eq!(rd.iops, 43280.859570);
        assert_eq!(rd.total_ios, 86605.0);
        // Percentiles of the total latency (lat_ns), not clat_ns.
        assert_eq!(rd.lat_p50_ns, Some(126464.0));
        assert_eq!(rd.lat_p99_ns, Some(292864.0));
        assert_eq!(rd.lat_p999_ns, Some(509952.0));
        assert_eq!(rd.lat_max_ns, 4275288.0);
        let wr = r.dir(Dir::Write).unwrap();
        assert_eq!(wr.bw_bytes, 76022660.0);
        assert_eq!(wr.lat_p999_ns, Some(815104.0));
        assert_eq!(r.total_ios(), 86605.0 + 37139.0);
        assert_eq!((r.usr_cpu, r.sys_cpu), (5.5, 40.25));
    }

    #[test]
    fn a_direction_without_io_is_absent_and_errors_are_kept() {
        let t = r#"{"jobs": [{"error": 28, "write": {"iops": 10.5, "total_ios": 21, "bw_bytes": 43008,
            "clat_ns": {"max": 9, "percentile": {"99.000000": 7}}, "lat_ns": {"max": 10, "mean": 5}},
            "read": {"iops": 0, "total_ios": 0}}]}"#;
        let r = parse_run(t).unwrap();
        assert_eq!(r.error, 28);
        assert!(r.read.is_none());
        let w = r.write.unwrap();
        // No percentiles on lat_ns: fall back to clat_ns.
        assert_eq!(w.lat_p99_ns, Some(7.0));
        assert_eq!(w.lat_p50_ns, None);
        assert_eq!(w.lat_max_ns, 10.0);
        assert!(parse_run("{\"jobs\": []}").is_err());
        assert!(parse_run("{\"nojobs\": 1}").is_err());
    }

    #[test]
    fn iops_logs_of_several_jobs_add_up_per_second() {
        let a =
            parse_iops_log("1000, 100, 1, 0, 0\n2001, 110, 1, 0, 0\n2001, 5, 0, 0, 0\ngarbage\n");
        let b = parse_iops_log("999, 50, 1, 0, 0\n1998, 60, 1, 0, 0, 0\n3000, 70, 1, 0, 0\n");
        assert_eq!(a.len(), 3);
        assert_eq!(
            sum_iops_logs(&[a.clone(), b], 1),
            vec![(1, 150.0), (2, 170.0), (3, 70.0)]
        );
        assert_eq!(sum_iops_logs(&[a], 0), vec![(2, 5.0)]);
    }
}

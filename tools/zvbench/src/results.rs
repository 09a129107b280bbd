// SPDX-License-Identifier: GPL-2.0
//! The results directory the guest sends back (scripts/guest/bench.sh), plus
//! the host's `host.env`:
//!
//! ```text
//! meta.env host.env        key=value lines (run settings, kernel, CPUs, tools)
//! systems.tsv              system  base  description
//! runs.tsv                 system  workload  rep  rc  t0  t1  busy_jiffies  idle_jiffies
//! devices.tsv              name  /dev/node  key=value ...
//! fio/SYSTEM/WORKLOAD.REP.json
//! ow/SYSTEM/repN_iops.J.log   fio IOPS logs of the sustained overwrite, per job J
//! status/SYSTEM.b.N.{before,after}.txt   zvpool pool status around overwrite rep N
//! logs/SYSTEM.setup-error.txt
//! ```

use crate::fio::{self, FioRun};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct Run {
    pub system: String,
    pub workload: String,
    pub rep: u32,
    /// fio's exit status (or 1 for a failed setup step).
    pub rc: i32,
    pub t0: f64,
    pub t1: f64,
    /// Guest CPU time (all CPUs) while the run lasted, in USER_HZ ticks (10 ms).
    pub busy_jiffies: u64,
    pub fio: Option<FioRun>,
    /// Why `fio` is None (missing or unreadable JSON).
    pub fio_error: Option<String>,
}

impl Run {
    /// A run whose numbers count: fio exited 0 and reported no error.
    pub fn ok(&self) -> bool {
        self.rc == 0 && self.fio.as_ref().is_some_and(|f| f.error == 0)
    }
    /// Guest CPU microseconds per I/O.
    pub fn cpu_us_per_io(&self) -> Option<f64> {
        let ios = self.fio.as_ref()?.total_ios();
        (ios > 0.0 && self.busy_jiffies > 0).then(|| self.busy_jiffies as f64 * 10_000.0 / ios)
    }
    pub fn error_text(&self) -> String {
        if let Some(e) = &self.fio_error {
            return e.clone();
        }
        match self.fio.as_ref().map(|f| f.error) {
            Some(e) if e != 0 => format!("fio error {} ({})", e, errno_name(e)),
            _ if self.rc != 0 => format!("exit status {}", self.rc),
            _ => String::new(),
        }
    }
}

pub fn errno_name(e: i64) -> &'static str {
    match e {
        5 => "EIO",
        12 => "ENOMEM",
        16 => "EBUSY",
        22 => "EINVAL",
        28 => "ENOSPC",
        30 => "EROFS",
        110 => "ETIMEDOUT",
        _ => "errno",
    }
}

#[derive(Clone, Debug, Default)]
pub struct System {
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, Default)]
pub struct Device {
    pub name: String,
    pub node: String,
    pub attrs: Vec<(String, String)>,
}

impl Device {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

/// The sustained overwrite of one system.
#[derive(Clone, Debug, Default)]
pub struct Overwrite {
    pub region_mib: Option<u64>,
    /// (seconds since the first rep started, IOPS summed over the jobs).
    pub series: Vec<(f64, f64)>,
    /// zvpool pool counters before the first rep and after the last.
    pub status_before: Vec<(String, String)>,
    pub status_after: Vec<(String, String)>,
}

impl Overwrite {
    fn counter(s: &[(String, String)], k: &str) -> Option<f64> {
        s.iter()
            .find(|(a, _)| a == k)
            .and_then(|(_, v)| v.parse().ok())
    }
    /// Write amplification over the sustained overwrite:
    /// (user + GC blocks written) / user blocks written, as counter deltas.
    pub fn write_amplification(&self) -> Option<f64> {
        let d = |k| {
            Some(Self::counter(&self.status_after, k)? - Self::counter(&self.status_before, k)?)
        };
        let (u, g) = (d("user_blocks_written")?, d("gc_blocks_written")?);
        (u > 0.0).then(|| (u + g) / u)
    }
    pub fn delta(&self, k: &str) -> Option<f64> {
        Some(Self::counter(&self.status_after, k)? - Self::counter(&self.status_before, k)?)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Results {
    pub dir: PathBuf,
    pub meta: Vec<(String, String)>,
    pub host: Vec<(String, String)>,
    pub systems: Vec<System>,
    pub runs: Vec<Run>,
    pub devices: Vec<Device>,
    pub overwrite: BTreeMap<String, Overwrite>,
    pub setup_errors: Vec<(String, String)>,
}

/// `key=value` lines; other lines are ignored; a key may repeat.
pub fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `key value` lines (configfs status files).
pub fn parse_status(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

pub fn parse_runs(text: &str) -> Vec<Run> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 8 {
                return None;
            }
            Some(Run {
                system: f[0].to_string(),
                workload: f[1].to_string(),
                rep: f[2].parse().ok()?,
                rc: f[3].parse().unwrap_or(1),
                t0: f[4].parse().unwrap_or(0.0),
                t1: f[5].parse().unwrap_or(0.0),
                busy_jiffies: f[6].parse().unwrap_or(0),
                ..Run::default()
            })
        })
        .collect()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

impl Results {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.meta
            .iter()
            .chain(self.host.iter())
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.meta
            .iter()
            .chain(self.host.iter())
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn quick(&self) -> bool {
        self.get("mode") == Some("quick")
    }
    pub fn system(&self, name: &str) -> Option<&System> {
        self.systems.iter().find(|s| s.name == name)
    }
    pub fn runs_of<'a>(
        &'a self,
        system: &'a str,
        workload: &'a str,
    ) -> impl Iterator<Item = &'a Run> + 'a {
        self.runs
            .iter()
            .filter(move |r| r.system == system && r.workload == workload)
    }

    pub fn load(dir: &Path) -> Result<Results, String> {
        let runs_text = fs::read_to_string(dir.join("runs.tsv")).map_err(|e| {
            format!(
                "{}: {e} (not a bench results directory?)",
                dir.join("runs.tsv").display()
            )
        })?;
        let mut r = Results {
            dir: dir.to_path_buf(),
            meta: parse_env(&read(&dir.join("meta.env"))),
            host: parse_env(&read(&dir.join("host.env"))),
            runs: parse_runs(&runs_text),
            ..Results::default()
        };
        r.meta.extend(parse_env(&read(&dir.join("end.env"))));
        for l in read(&dir.join("systems.tsv")).lines() {
            let f: Vec<&str> = l.splitn(3, '\t').collect();
            if f.len() == 3 {
                r.systems.push(System {
                    name: f[0].into(),
                    description: f[2].into(),
                });
            }
        }
        for l in read(&dir.join("devices.tsv")).lines() {
            let f: Vec<&str> = l.splitn(3, '\t').collect();
            if f.len() == 3 {
                let attrs = f[2]
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                r.devices.push(Device {
                    name: f[0].into(),
                    node: f[1].into(),
                    attrs,
                });
            }
        }
        for run in r.runs.iter_mut() {
            if run.workload == "setup" {
                continue;
            }
            let p = dir
                .join("fio")
                .join(&run.system)
                .join(format!("{}.{}.json", run.workload, run.rep));
            match fs::read_to_string(&p) {
                Ok(t) => match fio::parse_run(&t) {
                    Ok(f) => run.fio = Some(f),
                    Err(e) => run.fio_error = Some(format!("unreadable fio output: {e}")),
                },
                Err(_) => run.fio_error = Some("no fio output".into()),
            }
        }
        let systems: Vec<String> = r.runs.iter().map(|x| x.system.clone()).collect();
        for s in systems.iter() {
            if r.overwrite.contains_key(s) {
                continue;
            }
            let reps: Vec<(u32, f64)> = r
                .runs_of(s, "overwrite-4k-4x32")
                .map(|x| (x.rep, x.t0))
                .collect::<Vec<_>>();
            if reps.is_empty() {
                continue;
            }
            let owdir = dir.join("ow").join(s);
            let mut ow = Overwrite {
                region_mib: parse_env(&read(&owdir.join("info.env")))
                    .iter()
                    .find(|(k, _)| k == "region_mib")
                    .and_then(|(_, v)| v.parse().ok()),
                ..Overwrite::default()
            };
            let first_t0 = reps.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
            let last = reps.iter().map(|x| x.0).max().unwrap_or(1);
            for &(rep, t0) in reps.iter() {
                let mut logs = Vec::new();
                for j in 1..=64 {
                    let p = owdir.join(format!("rep{rep}_iops.{j}.log"));
                    if !p.exists() {
                        break;
                    }
                    logs.push(fio::parse_iops_log(&read(&p)));
                }
                for (sec, iops) in fio::sum_iops_logs(&logs, 1) {
                    ow.series.push((t0 - first_t0 + sec as f64, iops));
                }
            }
            ow.series.sort_by(|a, b| a.0.total_cmp(&b.0));
            let st = |n: String| parse_status(&read(&dir.join("status").join(n)));
            ow.status_before = st(format!("{s}.b.1.before.txt"));
            ow.status_after = st(format!("{s}.b.{last}.after.txt"));
            r.overwrite.insert(s.clone(), ow);
        }
        if let Ok(rd) = fs::read_dir(dir.join("logs")) {
            let mut errs: Vec<(String, String)> = rd
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let s = n.strip_suffix(".setup-error.txt")?.to_string();
                    Some((s, read(&e.path()).trim().to_string()))
                })
                .collect();
            errs.sort();
            r.setup_errors = errs;
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zvbench-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn env_status_and_runs_files() {
        let e = parse_env(
            "mode=quick\ntool=fio 3.33\ntool=dmzadm 2.2.2\nnot a pair\nkernel=7.3.4 (x=y)\n",
        );
        assert_eq!(e.len(), 4);
        assert_eq!(e[3], ("kernel".into(), "7.3.4 (x=y)".into()));
        let s = parse_status("state active\nuser_blocks_written 100\nwrite_amplification 1.250\n");
        assert_eq!(s[1], ("user_blocks_written".into(), "100".into()));
        let runs = parse_runs("zvpool-zns\tfill\t1\t0\t10.5\t20.25\t1500\t300\nshort\tline\n");
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].rep, runs[0].t1, runs[0].busy_jiffies),
            (1, 20.25, 1500)
        );
    }

    #[test]
    fn loads_a_results_directory() {
        let d = tmpdir("load");
        fs::write(d.join("meta.env"), "mode=quick\nreps=2\n").unwrap();
        fs::write(d.join("host.env"), "accel=tcg\n").unwrap();
        fs::write(
            d.join("systems.tsv"),
            "zvpool-zns\traw-zns\tzvpool volume on bzns0\n",
        )
        .unwrap();
        fs::write(
            d.join("runs.tsv"),
            "zvpool-zns\trandread-4k-qd1-large\t1\t0\t1\t2\t100\t0\n\
             zvpool-zns\trandread-4k-qd1-large\t2\t1\t3\t4\t100\t0\n\
             zvpool-zns\toverwrite-4k-4x32\t1\t0\t100\t110\t0\t0\n\
             zvpool-zns\toverwrite-4k-4x32\t2\t0\t111.5\t121\t0\t0\n",
        )
        .unwrap();
        fs::create_dir_all(d.join("fio/zvpool-zns")).unwrap();
        fs::write(
            d.join("fio/zvpool-zns/randread-4k-qd1-large.1.json"),
            fio::SAMPLE,
        )
        .unwrap();
        fs::write(
            d.join("fio/zvpool-zns/randread-4k-qd1-large.2.json"),
            "{\"jobs\": [",
        )
        .unwrap();
        fs::create_dir_all(d.join("ow/zvpool-zns")).unwrap();
        fs::write(d.join("ow/zvpool-zns/info.env"), "region_mib=800\n").unwrap();
        fs::write(
            d.join("ow/zvpool-zns/rep1_iops.1.log"),
            "1000, 10, 1, 0, 0\n2000, 20, 1, 0, 0\n",
        )
        .unwrap();
        fs::write(
            d.join("ow/zvpool-zns/rep1_iops.2.log"),
            "1000, 1, 1, 0, 0\n",
        )
        .unwrap();
        fs::write(
            d.join("ow/zvpool-zns/rep2_iops.1.log"),
            "1000, 30, 1, 0, 0\n",
        )
        .unwrap();
        fs::create_dir_all(d.join("status")).unwrap();
        fs::write(
            d.join("status/zvpool-zns.b.1.before.txt"),
            "user_blocks_written 1000\ngc_blocks_written 10\n",
        )
        .unwrap();
        fs::write(
            d.join("status/zvpool-zns.b.2.after.txt"),
            "user_blocks_written 3000\ngc_blocks_written 1010\n",
        )
        .unwrap();
        fs::create_dir_all(d.join("logs")).unwrap();
        fs::write(d.join("logs/dm-zoned.setup-error.txt"), "dmzadm\n").unwrap();

        let r = Results::load(&d).unwrap();
        assert!(r.quick());
        assert_eq!(r.get("accel"), Some("tcg"));
        let runs: Vec<&Run> = r.runs_of("zvpool-zns", "randread-4k-qd1-large").collect();
        assert!(runs[0].ok());
        assert_eq!(
            runs[0].cpu_us_per_io(),
            Some(100.0 * 10_000.0 / (86605.0 + 37139.0))
        );
        assert!(!runs[1].ok());
        assert!(runs[1].error_text().starts_with("unreadable fio output"));
        let ow = &r.overwrite["zvpool-zns"];
        assert_eq!(ow.region_mib, Some(800));
        assert_eq!(ow.series, vec![(1.0, 11.0), (2.0, 20.0), (12.5, 30.0)]);
        assert_eq!(ow.write_amplification(), Some(1.5));
        assert_eq!(
            r.setup_errors,
            vec![("dm-zoned".to_string(), "dmzadm".to_string())]
        );
        let _ = fs::remove_dir_all(&d);
        assert!(Results::load(&d).is_err());
    }
}

// SPDX-License-Identifier: GPL-2.0
//! From the results to the report: one table per workload (rows = systems),
//! the goals of issue 7 next to the measured numbers (not asserted), the
//! sustained-overwrite chart, and the same data as JSON.

use crate::fio::Dir;
use crate::json::{num, obj, string, Value};
use crate::results::{Results, Run};
use crate::svg;
use std::fmt::Write as _;

/// The workloads, in report order: (name, title template, directions).
/// `{L}` / `{S}` in a title stand for the large / small working set.
pub const WORKLOADS: &[(&str, &str, &[Dir])] = &[
    (
        "randwrite-4k-qd1-large",
        "4 KiB random write, QD1, {L} working set",
        &[Dir::Write],
    ),
    (
        "randwrite-4k-qd1-small",
        "4 KiB random write, QD1, {S} working set",
        &[Dir::Write],
    ),
    (
        "randwrite-4k-4x32-large",
        "4 KiB random write, 4 jobs x QD32, {L} working set",
        &[Dir::Write],
    ),
    (
        "randwrite-4k-4x32-small",
        "4 KiB random write, 4 jobs x QD32, {S} working set",
        &[Dir::Write],
    ),
    (
        "randread-4k-qd1-large",
        "4 KiB random read, QD1, {L} working set",
        &[Dir::Read],
    ),
    (
        "randread-4k-qd1-small",
        "4 KiB random read, QD1, {S} working set",
        &[Dir::Read],
    ),
    (
        "randread-4k-4x32-large",
        "4 KiB random read, 4 jobs x QD32, {L} working set",
        &[Dir::Read],
    ),
    (
        "randread-4k-4x32-small",
        "4 KiB random read, 4 jobs x QD32, {S} working set",
        &[Dir::Read],
    ),
    (
        "seqwrite-128k-qd8",
        "128 KiB sequential write, QD8, {L} (one pass)",
        &[Dir::Write],
    ),
    (
        "seqread-128k-qd8",
        "128 KiB sequential read, QD8, {L}",
        &[Dir::Read],
    ),
    (
        "randrw70-4k-4x32-large",
        "4 KiB random 70 % read / 30 % write, 4 jobs x QD32, {L} working set",
        &[Dir::Read, Dir::Write],
    ),
    (
        "overwrite-4k-4x32",
        "Sustained 4 KiB random overwrite, 4 jobs x QD32, at {F} % fill (GC active on zvpool)",
        &[Dir::Write],
    ),
];

/// Median, minimum and maximum of the reps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(vals: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
    /// (max - min) / median, in percent.
    pub fn spread_pct(&self) -> Option<f64> {
        (self.median > 0.0).then(|| (self.max - self.min) / self.median * 100.0)
    }
}

/// One system (and direction) in one workload's table.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub system: String,
    pub dir: Option<Dir>,
    pub reps: usize,
    pub reps_ok: usize,
    pub iops: Option<Summary>,
    pub mib_s: Option<f64>,
    pub p50_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub p999_ns: Option<f64>,
    /// The largest latency of all good reps.
    pub max_ns: Option<f64>,
    pub cpu_us_per_io: Option<f64>,
    pub base: Option<String>,
    pub ratio: Option<f64>,
    pub errors: Vec<String>,
}

fn median_of(runs: &[&Run], f: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
    Summary::of(&v).map(|s| s.median)
}

fn row_for(sys: &str, dir: Dir, runs: &[&Run]) -> Row {
    let ok: Vec<&Run> = runs.iter().copied().filter(|r| r.ok()).collect();
    let d = |r: &Run| r.fio.as_ref().and_then(|f| f.dir(dir)).cloned();
    let iops: Vec<f64> = ok.iter().filter_map(|r| d(r).map(|s| s.iops)).collect();
    let mut errors: Vec<String> = runs
        .iter()
        .filter(|r| !r.ok())
        .map(|r| format!("rep {}: {}", r.rep, r.error_text()))
        .collect();
    errors.dedup();
    Row {
        system: sys.to_string(),
        dir: Some(dir),
        reps: runs.len(),
        reps_ok: ok.len(),
        iops: Summary::of(&iops),
        mib_s: median_of(&ok, |r| d(r).map(|s| s.bw_bytes / 1048576.0)),
        p50_ns: median_of(&ok, |r| d(r).and_then(|s| s.lat_p50_ns)),
        p99_ns: median_of(&ok, |r| d(r).and_then(|s| s.lat_p99_ns)),
        p999_ns: median_of(&ok, |r| d(r).and_then(|s| s.lat_p999_ns)),
        max_ns: ok
            .iter()
            .filter_map(|r| d(r).map(|s| s.lat_max_ns))
            .reduce(f64::max),
        cpu_us_per_io: median_of(&ok, |r| r.cpu_us_per_io()),
        errors,
        ..Row::default()
    }
}

/// Which raw device a system is compared with: the raw device of the same
/// kind that ran the workload (raw ZNS where it can, else the conventional
/// namespace; null_blk systems with the non-zoned null_blk).
pub fn raw_base(system: &str, has: &dyn Fn(&str) -> bool) -> Option<&'static str> {
    if system.ends_with("nullb") {
        return (system != "raw-nullb" && has("raw-nullb")).then_some("raw-nullb");
    }
    if system != "raw-zns" && has("raw-zns") {
        return Some("raw-zns");
    }
    (system != "raw-conv" && system != "raw-zns" && has("raw-conv")).then_some("raw-conv")
}

/// The order of the systems in the tables (the run order differs: the peers
/// run first, so a zvpool failure cannot cost their numbers).
pub const ORDER: &[&str] = &[
    "zvpool-zns",
    "raw-zns",
    "raw-conv",
    "dm-zoned",
    "dm-thin",
    "zvpool-nullb",
    "raw-nullb",
    "zvpool-2nullb",
    "zvpool-mirror-nullb",
];

/// The systems in report order: those of `ORDER`, then any other in run order.
fn systems(r: &Results) -> Vec<String> {
    let mut v: Vec<String> = r.systems.iter().map(|s| s.name.clone()).collect();
    for run in &r.runs {
        if !v.contains(&run.system) {
            v.push(run.system.clone());
        }
    }
    let rank = |s: &String| ORDER.iter().position(|o| o == s).unwrap_or(ORDER.len());
    v.sort_by_key(rank); // stable: unknown systems keep their order
    v
}

pub fn rows(r: &Results, workload: &str, dirs: &[Dir]) -> Vec<Row> {
    let mut out = Vec::new();
    for s in systems(r) {
        let runs: Vec<&Run> = r.runs_of(&s, workload).collect();
        if runs.is_empty() {
            continue;
        }
        for &d in dirs {
            out.push(row_for(&s, d, &runs));
        }
    }
    let snapshot = out.clone();
    for row in out.iter_mut() {
        let has = |s: &str| snapshot.iter().any(|x| x.system == s && x.iops.is_some());
        if let Some(b) = raw_base(&row.system, &has) {
            let base = snapshot.iter().find(|x| x.system == b && x.dir == row.dir);
            row.base = Some(b.to_string());
            row.ratio = match (row.iops, base.and_then(|x| x.iops)) {
                (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
                _ => None,
            };
        }
    }
    out
}

pub fn title(r: &Results, template: &str) -> String {
    let mib = |k: &str| {
        r.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .map(fmt_mib)
            .unwrap_or_else(|| "?".into())
    };
    template
        .replace("{L}", &mib("ws_large_mib"))
        .replace("{S}", &mib("ws_small_mib"))
        .replace("{F}", r.get("ow_fill_pct").unwrap_or("80"))
}

// --- formatting -------------------------------------------------------------

pub fn fmt_mib(m: u64) -> String {
    if m >= 1024 && m.is_multiple_of(1024) {
        format!("{} GiB", m / 1024)
    } else if m >= 1024 {
        format!("{:.1} GiB", m as f64 / 1024.0)
    } else {
        format!("{m} MiB")
    }
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn fmt_lat(ns: Option<f64>) -> String {
    match ns {
        None => "-".into(),
        Some(n) if n < 1e3 => format!("{n:.0} ns"),
        Some(n) if n < 1e6 => format!("{} µs", sig3(n / 1e3)),
        Some(n) if n < 1e9 => format!("{} ms", sig3(n / 1e6)),
        Some(n) => format!("{} s", sig3(n / 1e9)),
    }
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

pub fn fmt_ratio(v: Option<f64>) -> String {
    fmt_opt(v, |x| {
        if x >= 10.0 {
            format!("{x:.1}x")
        } else {
            format!("{x:.3}x")
        }
    })
}

// --- goals --------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Meets,
    FallsShort,
    NotMeasured,
}

impl Status {
    pub fn text(self) -> &'static str {
        match self {
            Status::Meets => "meets",
            Status::FallsShort => "falls short",
            Status::NotMeasured => "not measured",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Goal {
    pub goal: &'static str,
    pub measured: String,
    pub status: Status,
}

fn find<'a>(rows: &'a [Row], sys: &str, dir: Dir) -> Option<&'a Row> {
    rows.iter()
        .find(|x| x.system == sys && x.dir == Some(dir) && x.iops.is_some())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    /// IOPS medians, a / b >= target.
    IopsAtLeast,
    /// p99 latencies, a / b <= target.
    P99AtMost,
}

/// Why a goal has no number: which systems did not run the workload, or
/// failed it (their first error).
fn missing(rows: &[Row], systems: &[&str]) -> String {
    let mut why = Vec::new();
    for &sys in systems {
        match rows.iter().find(|x| x.system == sys) {
            None => why.push(format!("{sys}: not run")),
            Some(x) if x.iops.is_none() => why.push(format!(
                "{sys}: {}",
                x.errors.first().map_or("no result", String::as_str)
            )),
            Some(_) => {}
        }
    }
    why.join("; ")
}

/// A ratio goal: `a` / `b` against `target`.
fn ratio_goal(
    goal: &'static str,
    rows: &[Row],
    a: &str,
    b: &str,
    dir: Dir,
    target: f64,
    cmp: Cmp,
) -> Goal {
    let (at_most, p99) = (cmp == Cmp::P99AtMost, cmp == Cmp::P99AtMost);
    let val = |x: &Row| {
        if p99 {
            x.p99_ns
        } else {
            x.iops.map(|s| s.median)
        }
    };
    match (
        find(rows, a, dir).and_then(val),
        find(rows, b, dir).and_then(val),
    ) {
        (Some(x), Some(y)) if y > 0.0 => {
            let q = x / y;
            let pass = if at_most { q <= target } else { q >= target };
            let what = if p99 {
                format!("p99 {} vs {} ({})", fmt_lat(Some(x)), fmt_lat(Some(y)), b)
            } else {
                format!("{x:.0} vs {y:.0} IOPS ({b})")
            };
            Goal {
                goal,
                measured: format!("{} — {what}", fmt_ratio(Some(q))),
                status: if pass {
                    Status::Meets
                } else {
                    Status::FallsShort
                },
            }
        }
        _ => Goal {
            goal,
            measured: missing(rows, &[a, b]),
            status: Status::NotMeasured,
        },
    }
}

pub fn goals(r: &Results) -> Vec<Goal> {
    let wl = |n: &str| {
        let dirs = WORKLOADS.iter().find(|w| w.0 == n).map_or(&[][..], |w| w.2);
        rows(r, n, dirs)
    };
    let ow = wl("overwrite-4k-4x32");
    let mut g = vec![
        ratio_goal(
            "zvpool 4 KiB randwrite 4x32, working set >= 1 GiB, GC active: >= 0.9x conventional raw",
            &ow,
            "zvpool-zns",
            "raw-conv",
            Dir::Write,
            0.9,
            Cmp::IopsAtLeast,
        ),
        ratio_goal(
            "... and >= 15x dm-zoned (same workload)",
            &ow,
            "zvpool-zns",
            "dm-zoned",
            Dir::Write,
            15.0,
            Cmp::IopsAtLeast,
        ),
        ratio_goal(
            "QD1 4 KiB randwrite p99 <= 2x conventional raw p99",
            &wl("randwrite-4k-qd1-large"),
            "zvpool-zns",
            "raw-conv",
            Dir::Write,
            2.0,
            Cmp::P99AtMost,
        ),
    ];
    // Was the GC really at work during the overwrite, on a large enough region?
    if let Some(o) = r.overwrite.get("zvpool-zns") {
        let gc = o.delta("gc_blocks_written");
        let _ = write!(
            g[0].measured,
            "; region {}, GC blocks written {}",
            o.region_mib.map_or("?".into(), fmt_mib),
            gc.map_or("?".into(), |v| format!("{v:.0}"))
        );
        if gc == Some(0.0) {
            g[0].measured.push_str(" (GC not active)");
        }
    }
    let max = find(&ow, "zvpool-zns", Dir::Write).and_then(|x| x.max_ns);
    g.push(Goal {
        goal: "no single write > 100 ms during sustained overwrite at 80 % fill",
        measured: match max {
            Some(m) => format!("max write latency {}", fmt_lat(Some(m))),
            None => missing(&ow, &["zvpool-zns"]),
        },
        status: match max {
            Some(m) if m <= 100e6 => Status::Meets,
            Some(_) => Status::FallsShort,
            None => Status::NotMeasured,
        },
    });
    g.push(ratio_goal(
        "128 KiB seq write QD8 >= 0.9x raw ZNS",
        &wl("seqwrite-128k-qd8"),
        "zvpool-zns",
        "raw-zns",
        Dir::Write,
        0.9,
        Cmp::IopsAtLeast,
    ));
    g.push(ratio_goal(
        "4 KiB randread QD1 >= 0.9x raw ZNS",
        &wl("randread-4k-qd1-large"),
        "zvpool-zns",
        "raw-zns",
        Dir::Read,
        0.9,
        Cmp::IopsAtLeast,
    ));
    g.push(ratio_goal(
        "4 KiB randread 4x32 >= 0.95x raw ZNS",
        &wl("randread-4k-4x32-large"),
        "zvpool-zns",
        "raw-zns",
        Dir::Read,
        0.95,
        Cmp::IopsAtLeast,
    ));
    g.push(ratio_goal(
        "null_blk: zvpool 4 KiB randwrite 4x32 >= 0.85x non-zoned null_blk raw",
        &wl("randwrite-4k-4x32-large"),
        "zvpool-nullb",
        "raw-nullb",
        Dir::Write,
        0.85,
        Cmp::IopsAtLeast,
    ));
    g.push(ratio_goal(
        "mirrored volume 4 KiB randwrite 4x32 >= 0.8x unmirrored (two null_blk members)",
        &wl("randwrite-4k-4x32-large"),
        "zvpool-mirror-nullb",
        "zvpool-2nullb",
        Dir::Write,
        0.8,
        Cmp::IopsAtLeast,
    ));
    g
}

pub const PEERS: &[&str] = &[
    "dm-zoned on ZNS, steady state, 4 KiB randwrite 4x32: 0.055x a conventional namespace, p99 1.17 s, max 1.85 s",
    "dm-thin while allocating: 0.41x",
    "dm-linear on null_blk: 0.89x",
];

// --- markdown -----------------------------------------------------------------

pub const SVG_NAME: &str = "benchmarks-overwrite.svg";

const HOW_TO_RUN: &str = r#"## How to run

    make bench                  # the full benchmark (long: see below); not part of `make check`
    BENCH_QUICK=1 make bench    # smoke test of the pipeline: tiny sizes, 1 rep, 4 workloads

On a machine shared with other heavy jobs, hold the machine's heavy-job lock
for the whole run, e.g. `flock /tmp/zvpool-heavy.lock make bench`.

`make bench` installs what it needs (as `make check` does), builds the module
and tools, boots the test VM once with extra bench-only NVMe namespaces
(`ZVPOOL_VM_BENCH=1`, `scripts/vm-devices.sh`) and `zvpool.run=bench`, runs
`scripts/guest/bench.sh` in the guest, and regenerates this page,
`benchmarks.json` and `benchmarks-overwrite.svg` with `tools/zvbench`. The
guest's static fio (built from Debian's fio source package) and `dmzadm`
(built from trixie's dm-zoned-tools source) come in a cached archive
(`$ZVPOOL_CACHE/bench/`) appended to the test initramfs for bench runs only.
Results travel back as a tar archive that the guest writes to a dedicated
raw namespace (`bres`), which the host extracts into `build/bench/results/`
(the raw fio JSON and logs stay there). Regenerate the report from kept
results: `target/release/zvbench report --results build/bench/results --out Documentation`.

Settings (environment variables; full-run defaults, quick-mode defaults in brackets):

| variable | meaning | default |
|---|---|---|
| `BENCH_QUICK` | `1`: smoke-test sizes and settings | `0` |
| `BENCH_REPS` | repetitions of each measurement (median and spread are reported) | `3` [`1`] |
| `BENCH_RUNTIME`, `BENCH_RAMP` | seconds per time-based run, and ramp before it | `15`, `3` [`3`, `1`] |
| `BENCH_WS_LARGE_MIB`, `BENCH_WS_SMALL_MIB` | working sets | `1024`, `64` [`64`, `16`] |
| `BENCH_OW_SECS` | seconds per rep of the sustained overwrite (the reps are consecutive) | `60` [`5`] |
| `BENCH_OW_FILL_PCT` | share of the capacity filled before the overwrite | `80` |
| `BENCH_SYSTEMS` | systems to run | all nine |
| `BENCH_WORKLOADS` | workloads to run | all [4] |
| `BENCH_TIMEOUT` | VM time limit, seconds | `10800` [`1800`] |
| `ZVPOOL_ACCEL` | `tcg` or `kvm` | `tcg` |

Duration (2-core machine, TCG, with the cache): the quick mode about 2
minutes. The full run is estimated at about 95 minutes (90-110): 213
time-based fio runs of about 20 s, 23 sequential passes over 1 GiB, and four
sustained overwrites (fill, then 3 x 60 s). The guest has 6 GiB (the
mirrored volume's pool is two memory-backed null_blk of 2 GiB). It writes up to about 13 GiB into
sparse namespace images under `build/bench/images`, deleted at the end.
"#;

/// A Markdown table; columns from `right` on are right-aligned (numbers).
fn md_table(s: &mut String, head: &[&str], rows: &[Vec<String>], right: usize) {
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(
        s,
        "|{}",
        head.iter()
            .enumerate()
            .map(|(i, _)| if i < right { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s.push('\n');
}

fn row_cells(x: &Row, dirs: usize) -> Vec<String> {
    let name = if dirs > 1 {
        format!("{} ({})", x.system, x.dir.map_or("", Dir::name))
    } else {
        x.system.clone()
    };
    let reps = if x.reps_ok == x.reps {
        format!("{}", x.reps)
    } else {
        format!("{}/{}", x.reps_ok, x.reps)
    };
    vec![
        name,
        fmt_opt(x.iops.map(|s| s.median), |v| format!("{v:.0}")),
        fmt_opt(x.mib_s, |v| format!("{v:.1}")),
        fmt_opt(x.iops.and_then(|s| s.spread_pct()), |v| format!("{v:.1} %")),
        fmt_lat(x.p50_ns),
        fmt_lat(x.p99_ns),
        fmt_lat(x.p999_ns),
        fmt_lat(x.max_ns),
        fmt_opt(x.cpu_us_per_io, |v| format!("{v:.0}")),
        match (&x.base, x.ratio) {
            (Some(b), Some(q)) => format!("{} ({b})", fmt_ratio(Some(q))),
            _ => "-".into(),
        },
        reps,
    ]
}

const HEAD: &[&str] = &[
    "system",
    "IOPS",
    "MiB/s",
    "spread",
    "p50",
    "p99",
    "p99.9",
    "max",
    "CPU µs/IO",
    "x raw",
    "reps",
];

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let quick = r.quick();
    s.push_str("# zvpool benchmarks\n\n");
    let _ = writeln!(
        s,
        "Generated by `make bench` (`tools/zvbench`) from the run of {} — do not edit by hand.\n",
        r.get("date_utc").unwrap_or("?")
    );
    if quick {
        s.push_str(
            "> **QUICK MODE RUN** (`BENCH_QUICK=1`): tiny working sets, one rep, a few seconds per \
             workload. These numbers only show that the pipeline works; they say nothing about \
             performance. Run `make bench` for real numbers.\n\n",
        );
    }
    s.push_str(HOW_TO_RUN);
    s.push('\n');

    // Goals.
    s.push_str("## Goals (issue 7), not asserted\n\n");
    if quick {
        s.push_str("Quick mode: the working sets are far below the goals' sizes, so the verdicts below are not meaningful.\n\n");
    }
    let goal_rows: Vec<Vec<String>> = goals(r)
        .into_iter()
        .map(|g| {
            vec![
                g.goal.to_string(),
                g.measured,
                format!("**{}**", g.status.text()),
            ]
        })
        .collect();
    md_table(
        &mut s,
        &["goal", "measured (median)", "status"],
        &goal_rows,
        3,
    );
    s.push_str(
        "Reference peer numbers measured before in this kind of VM (TCG, medians of 3):\n\n",
    );
    for p in PEERS {
        let _ = writeln!(s, "- {p}");
    }
    s.push('\n');

    // Setup.
    s.push_str("## Setup\n\n");
    let g = |k: &str| r.get(k).unwrap_or("?").to_string();
    let _ = writeln!(s, "- mode: {}, {} rep(s) per measurement, time-based runs of {} s after {} s ramp; working sets {} and {}",
        g("mode"), g("reps"), g("runtime_s"), g("ramp_s"),
        title(r, "{L}"), title(r, "{S}"));
    let _ = writeln!(s, "- guest kernel: {}", g("kernel_version"));
    let _ = writeln!(
        s,
        "- accelerator: {} (QEMU {}), guest: {} vCPU(s) ({}), {} MiB, clocksource {} (start) / {} (end), tsc_early_khz={}",
        g("accel"),
        g("qemu"),
        g("guest_cpus"),
        g("guest_cpu"),
        r.get("guest_mem_kib")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or("?".into(), |k| (k / 1024).to_string()),
        g("clocksource_start"),
        g("clocksource"),
        g("tsc_early_khz")
    );
    if [r.get("clocksource_start"), r.get("clocksource")]
        .iter()
        .any(|c| c.is_some_and(|c| c != "tsc" && c != "tsc-early"))
    {
        s.push_str(
            "- **warning: the guest did not keep the TSC clocksource: latencies may be \
             quantized to the jiffy (4 ms)**\n",
        );
    }
    let _ = writeln!(
        s,
        "- host: {} ({} cores), {}",
        g("host_cpu"),
        g("host_cores"),
        g("host_os")
    );
    let _ = writeln!(s, "- tree: {}", g("git"));
    for t in r.all("tool") {
        let _ = writeln!(s, "- {t}");
    }
    let _ = writeln!(
        s,
        "- duration: {} s (VM {} s)\n",
        g("duration_s"),
        g("vm_s")
    );

    s.push_str("Systems (the ratio column compares with the raw device named in brackets):\n\n");
    for sys in &r.systems {
        let _ = writeln!(s, "- `{}`: {}", sys.name, sys.description);
    }
    s.push('\n');
    s.push_str("Devices:\n\n");
    let dev_rows: Vec<Vec<String>> = r
        .devices
        .iter()
        .map(|d| {
            let b = |k: &str| d.attr(k).and_then(|v| v.parse::<u64>().ok());
            let mib = |k: &str| {
                b(k).filter(|&v| v > 0)
                    .map_or("-".into(), |v| fmt_mib(v / 1048576))
            };
            vec![
                d.name.clone(),
                d.node.clone(),
                d.attr("zoned").unwrap_or("?").into(),
                mib("size_bytes"),
                mib("zone_bytes"),
                mib("zone_cap_bytes"),
                d.attr("nr_zones").unwrap_or("-").into(),
                d.attr("max_open").unwrap_or("-").into(),
                d.attr("max_active").unwrap_or("-").into(),
                d.attr("max_sectors_kb").unwrap_or("-").into(),
            ]
        })
        .collect();
    md_table(
        &mut s,
        &[
            "name",
            "node",
            "zoned",
            "size",
            "zone",
            "zone cap",
            "zones",
            "max open",
            "max active",
            "max_sectors_kb",
        ],
        &dev_rows,
        3,
    );

    // Results.
    s.push_str("## Results\n\n");
    s.push_str(
        "IOPS and MiB/s: median of the reps; spread: (max - min) / median of the reps' IOPS; \
         p50/p99/p99.9: medians of the reps' total-latency percentiles (submission + completion); \
         max: the largest latency of all reps; CPU µs/IO: guest CPU time (all vCPUs, fio included) \
         per I/O; x raw: IOPS median over the raw device's. Rows whose reps failed show the error below the table.\n\n",
    );
    for (name, tmpl, dirs) in WORKLOADS {
        let rs = rows(r, name, dirs);
        if rs.is_empty() {
            continue;
        }
        let _ = writeln!(s, "### {}\n\n`{name}`\n", title(r, tmpl));
        let cells: Vec<Vec<String>> = rs.iter().map(|x| row_cells(x, dirs.len())).collect();
        md_table(&mut s, HEAD, &cells, 1);
        if rs.iter().any(|x| x.system == "dm-zoned") {
            let _ = writeln!(s, "- {}", dm_zoned_note(r));
        }
        for x in rs
            .iter()
            .filter(|x| !x.errors.is_empty() && x.dir == Some(dirs[0]))
        {
            let _ = writeln!(s, "- {}: {}", x.system, x.errors.join("; "));
        }
        if rs
            .iter()
            .any(|x| !x.errors.is_empty() || x.system == "dm-zoned")
        {
            s.push('\n');
        }
        if *name == "overwrite-4k-4x32" {
            overwrite_section(&mut s, r);
        }
    }

    if !r.setup_errors.is_empty() {
        s.push_str("## Setup failures\n\n");
        for (sys, e) in &r.setup_errors {
            let _ = writeln!(s, "- {sys}: {e}");
        }
        s.push('\n');
    }
    s
}

/// dm-zoned cannot run on the ZNS namespace the others use: say so next to
/// its numbers.
fn dm_zoned_note(r: &Results) -> String {
    let size = |n: &str| {
        r.devices
            .iter()
            .find(|d| d.name == n)
            .and_then(|d| d.attr("size_bytes")?.parse::<u64>().ok())
            .map_or("?".into(), |b| fmt_mib(b / 1048576))
    };
    format!(
        "dm-zoned runs on bzns1, a ZNS namespace with zone capacity == zone size (dm-zoned \
         refuses zones whose capacity is smaller, as on every real ZNS SSD), {} zoned + a {} \
         regular namespace (bdmzc) for its metadata and random-write cache.",
        size("bzns1"),
        size("bdmzc")
    )
}

fn overwrite_section(s: &mut String, r: &Results) {
    if r.overwrite.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "The reps are consecutive {}-second segments of one sustained run after a sequential fill \
         of the region. Throughput over time (fio IOPS log, 1 s averages, all jobs summed):\n\n![IOPS over time during the sustained overwrite]({SVG_NAME})\n",
        r.get("ow_secs").unwrap_or("?")
    );
    let rows: Vec<Vec<String>> = r
        .overwrite
        .iter()
        .map(|(sys, ow)| {
            let min_iops = ow.series.iter().map(|p| p.1).reduce(f64::min);
            vec![
                sys.clone(),
                ow.region_mib.map_or("-".into(), fmt_mib),
                fmt_opt(min_iops, |v| format!("{v:.0}")),
                fmt_opt(ow.write_amplification(), |v| format!("{v:.3}")),
                fmt_opt(ow.delta("gc_blocks_written"), |v| format!("{v:.0}")),
                fmt_opt(ow.delta("zones_reset"), |v| format!("{v:.0}")),
            ]
        })
        .collect();
    md_table(
        s,
        &[
            "system",
            "region",
            "lowest 1 s IOPS",
            "write amplification",
            "GC blocks written",
            "zones reset",
        ],
        &rows,
        1,
    );
    s.push_str(
        "Write amplification: (user + GC blocks written) / user blocks written over the overwrite, \
         from the pool's `status` counters (zvpool only).\n\n",
    );
}

// --- JSON ---------------------------------------------------------------------

fn row_json(x: &Row) -> Value {
    obj(vec![
        ("system", string(&x.system)),
        ("dir", x.dir.map_or(Value::Null, |d| string(d.name()))),
        ("reps", Value::Num(x.reps as f64)),
        ("reps_ok", Value::Num(x.reps_ok as f64)),
        ("iops_median", num(x.iops.map(|s| s.median))),
        ("iops_min", num(x.iops.map(|s| s.min))),
        ("iops_max", num(x.iops.map(|s| s.max))),
        ("spread_pct", num(x.iops.and_then(|s| s.spread_pct()))),
        ("mib_s_median", num(x.mib_s)),
        ("lat_p50_ns", num(x.p50_ns)),
        ("lat_p99_ns", num(x.p99_ns)),
        ("lat_p99_9_ns", num(x.p999_ns)),
        ("lat_max_ns", num(x.max_ns)),
        ("cpu_us_per_io", num(x.cpu_us_per_io)),
        ("ratio_base", x.base.as_ref().map_or(Value::Null, string)),
        ("ratio", num(x.ratio)),
        ("errors", Value::Arr(x.errors.iter().map(string).collect())),
    ])
}

/// `key=value` pairs as an object; a key that repeats (`tool=`) becomes an
/// array of its values, so that every key is unique.
fn key_values(v: &[(String, String)]) -> Value {
    let mut m: Vec<(String, Value)> = Vec::new();
    for (k, x) in v {
        match m.iter_mut().find(|(a, _)| a == k) {
            Some((_, Value::Arr(a))) => a.push(string(x)),
            Some((_, old)) => *old = Value::Arr(vec![old.clone(), string(x)]),
            None => m.push((k.clone(), string(x))),
        }
    }
    Value::Obj(m)
}

pub fn json(r: &Results) -> Value {
    let kv = |v: &[(String, String)]| key_values(v);
    let workloads = WORKLOADS
        .iter()
        .filter_map(|(name, tmpl, dirs)| {
            let rs = rows(r, name, dirs);
            (!rs.is_empty()).then(|| {
                obj(vec![
                    ("name", string(*name)),
                    ("title", string(title(r, tmpl))),
                    ("rows", Value::Arr(rs.iter().map(row_json).collect())),
                ])
            })
        })
        .collect();
    let overwrite = r
        .overwrite
        .iter()
        .map(|(sys, ow)| {
            obj(vec![
                ("system", string(sys)),
                ("region_mib", num(ow.region_mib.map(|v| v as f64))),
                ("write_amplification", num(ow.write_amplification())),
                ("gc_blocks_written", num(ow.delta("gc_blocks_written"))),
                ("user_blocks_written", num(ow.delta("user_blocks_written"))),
                (
                    "iops_per_second",
                    Value::Arr(
                        ow.series
                            .iter()
                            .map(|&(t, v)| Value::Arr(vec![Value::Num(t), Value::Num(v)]))
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    let goals = goals(r)
        .into_iter()
        .map(|g| {
            obj(vec![
                ("goal", string(g.goal)),
                ("measured", string(g.measured)),
                ("status", string(g.status.text())),
            ])
        })
        .collect();
    obj(vec![
        ("quick", Value::Bool(r.quick())),
        ("meta", kv(&r.meta)),
        ("host", kv(&r.host)),
        (
            "systems",
            Value::Arr(
                r.systems
                    .iter()
                    .map(|x| {
                        obj(vec![
                            ("name", string(&x.name)),
                            ("description", string(&x.description)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "devices",
            Value::Arr(
                r.devices
                    .iter()
                    .map(|d| {
                        obj(vec![
                            ("name", string(&d.name)),
                            ("node", string(&d.node)),
                            ("attrs", kv(&d.attrs)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("goals", Value::Arr(goals)),
        ("workloads", Value::Arr(workloads)),
        ("overwrite", Value::Arr(overwrite)),
        (
            "setup_errors",
            Value::Arr(
                r.setup_errors
                    .iter()
                    .map(|(s, e)| obj(vec![("system", string(s)), ("error", string(e))]))
                    .collect(),
            ),
        ),
    ])
}

pub fn overwrite_svg(r: &Results) -> String {
    let series: Vec<svg::Series> = r
        .overwrite
        .iter()
        .map(|(sys, ow)| svg::Series {
            name: sys,
            points: &ow.series,
        })
        .collect();
    let mut t = format!(
        "4 KiB random overwrite, 4 jobs x QD32, {} % fill",
        r.get("ow_fill_pct").unwrap_or("80")
    );
    if r.quick() {
        t.push_str(" (QUICK MODE)");
    }
    svg::line_chart(&t, "seconds", "write IOPS (log scale)", &series)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fio::{DirStats, FioRun};
    use crate::json;

    fn run(sys: &str, wl: &str, rep: u32, iops: f64, p99: f64) -> Run {
        let d = DirStats {
            iops,
            bw_bytes: iops * 4096.0,
            total_ios: iops * 10.0,
            lat_p99_ns: Some(p99),
            lat_max_ns: p99 * 2.0,
            ..DirStats::default()
        };
        Run {
            system: sys.into(),
            workload: wl.into(),
            rep,
            fio: Some(FioRun {
                write: Some(d.clone()),
                read: Some(d),
                ..FioRun::default()
            }),
            ..Run::default()
        }
    }

    #[test]
    fn medians_and_spread() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.spread_pct(), Some(100.0));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    #[test]
    fn rows_ratios_and_goals() {
        let mut r = Results {
            meta: vec![
                ("mode".into(), "full".into()),
                ("ws_large_mib".into(), "1024".into()),
            ],
            ..Results::default()
        };
        let wl = "randwrite-4k-qd1-large";
        for rep in 1..=3 {
            r.runs
                .push(run("raw-conv", wl, rep, 1000.0 + rep as f64, 100e3));
            r.runs
                .push(run("zvpool-zns", wl, rep, 900.0 + rep as f64 * 10.0, 250e3));
        }
        // A failed rep does not count, but is reported.
        let mut bad = run("zvpool-zns", wl, 4, 1.0, 1.0);
        bad.fio.as_mut().unwrap().error = 28;
        r.runs.push(bad);
        let rows = rows(&r, wl, &[Dir::Write]);
        assert_eq!(rows.len(), 2);
        // zvpool first in the tables, though raw-conv ran first.
        let z = &rows[0];
        assert_eq!(z.system, "zvpool-zns");
        assert_eq!((z.reps, z.reps_ok), (4, 3));
        assert_eq!(z.iops.unwrap().median, 920.0);
        assert_eq!(z.base.as_deref(), Some("raw-conv"));
        assert!((z.ratio.unwrap() - 920.0 / 1002.0).abs() < 1e-9);
        assert_eq!(z.errors, vec!["rep 4: fio error 28 (ENOSPC)".to_string()]);
        assert_eq!(rows[1].system, "raw-conv");
        assert_eq!(rows[1].ratio, None); // the raw device itself
        let g = goals(&r);
        let p99 = g.iter().find(|g| g.goal.starts_with("QD1")).unwrap();
        assert_eq!(p99.status, Status::FallsShort); // 250 µs > 2 x 100 µs
        assert!(p99.measured.starts_with("2.500x"));
        assert!(g
            .iter()
            .filter(|g| !g.goal.starts_with("QD1"))
            .all(|g| g.status == Status::NotMeasured));
        assert_eq!(g[0].measured, "zvpool-zns: not run; raw-conv: not run");
        let failed = vec![Row {
            system: "zvpool-zns".into(),
            errors: vec!["rep 1: fio error 28 (ENOSPC)".into()],
            ..Row::default()
        }];
        assert_eq!(
            missing(&failed, &["zvpool-zns", "dm-zoned"]),
            "zvpool-zns: rep 1: fio error 28 (ENOSPC); dm-zoned: not run"
        );
        let md = markdown(&r);
        assert!(md.contains("### 4 KiB random write, QD1, 1 GiB working set"));
        assert!(md.contains("| zvpool-zns | 920 |"));
        assert!(md.contains("0.918x (raw-conv)"));
        assert!(md.contains("**falls short**"));
        let j = json(&r);
        let text = j.to_pretty();
        assert_eq!(json::parse(&text).unwrap(), j);
    }

    #[test]
    fn repeated_keys_become_arrays() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let v = key_values(&[
            kv("tool", "fio"),
            kv("mode", "quick"),
            kv("tool", "dmzadm"),
            kv("tool", "x"),
        ]);
        assert_eq!(
            v.to_pretty(),
            "{\n  \"tool\": [\n    \"fio\",\n    \"dmzadm\",\n    \"x\"\n  ],\n  \"mode\": \"quick\"\n}\n"
        );
    }

    #[test]
    fn raw_bases() {
        let all = |_: &str| true;
        assert_eq!(raw_base("zvpool-zns", &all), Some("raw-zns"));
        assert_eq!(raw_base("raw-conv", &all), Some("raw-zns"));
        assert_eq!(raw_base("raw-zns", &all), None);
        assert_eq!(raw_base("zvpool-nullb", &all), Some("raw-nullb"));
        assert_eq!(raw_base("raw-nullb", &all), None);
        let no_zns = |s: &str| s != "raw-zns";
        assert_eq!(raw_base("dm-zoned", &no_zns), Some("raw-conv"));
        assert_eq!(raw_base("raw-conv", &no_zns), None);
        assert_eq!(fmt_lat(Some(1_234_567.0)), "1.23 ms");
        assert_eq!(fmt_lat(Some(999.0)), "999 ns");
        assert_eq!(fmt_lat(Some(2.5e9)), "2.50 s");
        assert_eq!(fmt_mib(1536), "1.5 GiB");
    }
}

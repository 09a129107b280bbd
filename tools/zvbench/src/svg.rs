// SPDX-License-Identifier: GPL-2.0
//! A small SVG line chart: series over time on a logarithmic y axis (the
//! systems differ by orders of magnitude).

use std::fmt::Write as _;

pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Round axis steps: 1, 2, 5 times a power of ten.
pub fn nice_step(range: f64, ticks: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / ticks;
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn fmt_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

/// A chart of `series` (x: seconds, y: values > 0; values <= 0 are drawn at
/// the bottom of the axis). Returns the SVG document.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h) = (860.0, 420.0);
    let (l, r, t, b) = (80.0, 170.0, 40.0, 50.0);
    let (pw, ph) = (w - l - r, h - t - b);
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let x_max = pts().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let y_pos = pts().map(|p| p.1).filter(|&y| y > 0.0);
    let y_hi = y_pos.clone().fold(1.0, f64::max);
    let y_lo = y_pos.fold(f64::INFINITY, f64::min).min(y_hi);
    let d_lo = if y_lo.is_finite() {
        y_lo.log10().floor()
    } else {
        0.0
    };
    let mut d_hi = y_hi.log10().ceil();
    if d_hi <= d_lo {
        d_hi = d_lo + 1.0;
    }
    let sx = |x: f64| l + x / x_max * pw;
    let sy = |y: f64| {
        let ly = if y > 0.0 {
            y.log10().clamp(d_lo, d_hi)
        } else {
            d_lo
        };
        t + ph - (ly - d_lo) / (d_hi - d_lo) * ph
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        l + pw / 2.0,
        esc(title)
    );
    // y grid: decades, with 2x and 5x minor lines.
    let mut dcd = d_lo;
    while dcd <= d_hi + 1e-9 {
        let v = 10f64.powf(dcd);
        let y = sy(v);
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ccc"/>"##,
            l + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            l - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
        for m in [2.0, 5.0] {
            if dcd + 1e-9 < d_hi {
                let y = sy(v * m);
                let _ = writeln!(
                    s,
                    r##"<line x1="{l}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##,
                    l + pw
                );
            }
        }
        dcd += 1.0;
    }
    // x ticks.
    let step = nice_step(x_max, 8.0);
    let mut x = 0.0;
    while x <= x_max + 1e-9 {
        let px = sx(x);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#999"/>"##,
            t + ph,
            t + ph + 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            t + ph + 17.0,
            fmt_tick(x)
        );
        x += step;
    }
    let _ = writeln!(
        s,
        r#"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        l + pw / 2.0,
        h - 12.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{0}" text-anchor="middle" transform="rotate(-90 18 {0})">{1}</text>"#,
        t + ph / 2.0,
        esc(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        if se.points.len() > 1 {
            let mut d = String::new();
            for (j, &(x, y)) in se.points.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if j == 0 { "M" } else { " L" },
                    sx(x),
                    sy(y)
                );
            }
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.5"/>"#
            );
        } else if let Some(&(x, y)) = se.points.first() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                sx(x),
                sy(y)
            );
        }
        let ly = t + 14.0 + 20.0 * i as f64;
        let lx = l + pw + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="3"/>"#,
            lx + 22.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 28.0,
            ly + 4.0,
            esc(se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_chart() {
        assert_eq!(nice_step(100.0, 8.0), 20.0);
        assert_eq!(nice_step(7.0, 8.0), 1.0);
        assert_eq!(nice_step(0.0, 8.0), 1.0);
        let a = [(0.0, 100.0), (1.0, 1000.0), (2.0, 0.0)];
        let b = [(1.0, 5.0)];
        let svg = line_chart(
            "t <1>",
            "s",
            "IOPS",
            &[
                Series {
                    name: "a&b",
                    points: &a,
                },
                Series {
                    name: "c",
                    points: &b,
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;1&gt;") && svg.contains("a&amp;b"));
        assert_eq!(svg.matches("<path").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        // Decades 1 .. 1000 are labelled.
        assert!(svg.contains(">1k</text>") && svg.contains(">1</text>"));
    }
}

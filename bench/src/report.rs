//! The Markdown report and the SVG chart, computed from the outcomes that
//! `run --out` collected. Every number in the report comes from those files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use plotters::prelude::*;
use serde::Deserialize;

use crate::scenario::Outcome;
use crate::wire::Target;

/// Report options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Outcomes, one JSON object per line (from `run --out`).
    #[arg(long)]
    results: PathBuf,
    /// Facts about the run: a JSON object of strings (machine, versions,
    /// command, commit), shown as given.
    #[arg(long)]
    meta: Option<PathBuf>,
    /// Outcomes of an earlier Switchboard build, for a before/after table.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Markdown files whose text is included as is (profiling notes).
    #[arg(long)]
    include: Vec<PathBuf>,
    /// The Markdown file to write.
    #[arg(long)]
    out: PathBuf,
    /// The SVG chart to write (linked from the report).
    #[arg(long)]
    chart: PathBuf,
}

/// One line of a results file.
#[derive(Clone, Debug, Deserialize)]
struct Line {
    #[serde(flatten)]
    outcome: Outcome,
    #[serde(default)]
    tag: String,
}

/// How a metric is shown.
#[derive(Clone, Copy)]
struct Metric {
    title: &'static str,
    get: fn(&Outcome) -> Option<f64>,
    /// Larger is better (for "vs" columns).
    higher_is_better: bool,
    format: fn(f64) -> String,
}

const DELIVERIES: Metric = Metric {
    title: "deliveries/s",
    get: |o| o.deliveries_per_sec,
    higher_is_better: true,
    format: thousands,
};
const CPU: Metric = Metric {
    title: "server CPU µs/delivery",
    get: |o| o.cpu_us_per_delivery,
    higher_is_better: false,
    format: |v| format!("{v:.2}"),
};
const P50: Metric = Metric {
    title: "p50 latency",
    get: |o| o.p50_us,
    higher_is_better: false,
    format: micros,
};
const P99: Metric = Metric {
    title: "p99 latency",
    get: |o| o.p99_us,
    higher_is_better: false,
    format: micros,
};
const P999: Metric = Metric {
    title: "p99.9 latency",
    get: |o| o.p999_us,
    higher_is_better: false,
    format: micros,
};
const RSS: Metric = Metric {
    title: "server RSS/connection",
    get: |o| o.rss_per_connection,
    higher_is_better: false,
    format: |v| format!("{:.1} KiB", v / 1024.0),
};
const CONNECTS: Metric = Metric {
    title: "connects/s",
    get: |o| o.connects_per_sec,
    higher_is_better: true,
    format: thousands,
};

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn micros(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// The metrics that matter for a scenario.
fn metrics_of(scenario: &str, rate: bool) -> &'static [Metric] {
    match (scenario, rate) {
        ("fanout", false) | ("rooms", false) => &[DELIVERIES, CPU, P50, P99],
        ("fanout", true) | ("rooms", true) => &[P50, P99, P999, CPU],
        ("idle", _) => &[RSS, CONNECTS],
        ("rtt", _) => &[P50, P99, P999],
        ("connect", _) => &[CONNECTS],
        _ => &[DELIVERIES],
    }
}

fn read_lines(path: &Path) -> Result<Vec<Line>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// Median, min and max.
#[derive(Clone, Copy, Debug)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn spread(mut values: Vec<f64>) -> Option<Spread> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: values[0],
        max: values[n - 1],
        n,
    })
}

fn cell(metric: &Metric, s: Option<Spread>) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if s.n == 1 || s.min == s.max => (metric.format)(s.median),
        Some(s) => format!(
            "{} ({}–{})",
            (metric.format)(s.median),
            (metric.format)(s.min),
            (metric.format)(s.max)
        ),
    }
}

/// A scenario and its parameters: the rows of one table.
type GroupKey = (String, String);

fn groups(lines: &[Line]) -> BTreeMap<GroupKey, BTreeMap<String, Vec<&Line>>> {
    let mut out: BTreeMap<GroupKey, BTreeMap<String, Vec<&Line>>> = BTreeMap::new();
    for line in lines {
        let o = &line.outcome;
        out.entry((o.scenario.clone(), o.label.clone()))
            .or_default()
            .entry(o.target.clone())
            .or_default()
            .push(line);
    }
    out
}

fn scenario_order(s: &str) -> usize {
    ["fanout", "rooms", "rtt", "idle", "connect"]
        .iter()
        .position(|x| *x == s)
        .unwrap_or(9)
}

fn target_order(t: &str) -> usize {
    Target::ALL.iter().position(|x| x.name() == t).unwrap_or(9)
}

/// Writes the report and the chart.
pub fn write(args: &Args) -> Result<()> {
    let lines = read_lines(&args.results)?;
    let meta: BTreeMap<String, String> = match &args.meta {
        Some(p) => serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => BTreeMap::new(),
    };
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "Generated by `switchboard-bench report` from the outcomes of `scripts/bench.sh`; \
         nothing here is typed in by hand. Re-run `scripts/bench.sh` to refresh it.\n\n",
    );
    md.push_str("## Setup\n\n");
    for (k, v) in &meta {
        let _ = writeln!(md, "- **{k}**: {v}");
    }
    md.push_str(
        "\nEvery target runs as its own process on 127.0.0.1; the load generator runs on the \
         same machine (and the same cores), opening connections from 127.0.0.2 onwards. \
         Server CPU comes from `/proc/<pid>/stat` (user + system time over the measured \
         phase), memory from `VmRSS`, latency from a send timestamp inside each payload \
         (one clock: publisher and subscribers are in the load generator). Each cell is the \
         median of the runs, with the minimum and maximum in brackets.\n\n",
    );
    let _ = writeln!(
        md,
        "![throughput and latency]({})\n",
        args.chart
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    );

    let mut ordered: Vec<_> = groups(&lines).into_iter().collect();
    ordered.sort_by_key(|((s, l), _)| (scenario_order(s), l.clone()));
    for ((scenario, label), by_target) in &ordered {
        let rate = label.contains("publishes/s");
        let metrics = metrics_of(scenario, rate);
        let _ = writeln!(md, "## {scenario}: {label}\n");
        let mut header = String::from("| target | runs |");
        let mut rule = String::from("| --- | --- |");
        for m in metrics {
            let _ = write!(header, " {} |", m.title);
            rule.push_str(" --- |");
        }
        header.push_str(" errors |");
        rule.push_str(" --- |");
        let _ = writeln!(md, "{header}\n{rule}");
        let mut targets: Vec<_> = by_target.keys().cloned().collect();
        targets.sort_by_key(|t| target_order(t));
        for t in &targets {
            let runs = &by_target[t];
            let mut row = format!("| {t} | {} |", runs.len());
            for m in metrics {
                let s = spread(runs.iter().filter_map(|l| (m.get)(&l.outcome)).collect());
                let _ = write!(row, " {} |", cell(m, s));
            }
            let errors: u64 = runs.iter().map(|l| l.outcome.errors).sum();
            let incomplete = runs
                .iter()
                .filter(|l| l.outcome.deliveries < l.outcome.expected)
                .count();
            let mut err = errors.to_string();
            if incomplete > 0 {
                let _ = write!(err, ", {incomplete} run(s) short of deliveries");
            }
            let _ = write!(row, " {err} |");
            let _ = writeln!(md, "{row}");
        }
        // Ratios of Switchboard's medians to everyone else's.
        if let Some(sb) = by_target.get("switchboard") {
            let mut notes = Vec::new();
            for m in metrics {
                let Some(mine) = spread(sb.iter().filter_map(|l| (m.get)(&l.outcome)).collect())
                else {
                    continue;
                };
                for t in targets.iter().filter(|t| *t != "switchboard") {
                    let Some(theirs) = spread(
                        by_target[t]
                            .iter()
                            .filter_map(|l| (m.get)(&l.outcome))
                            .collect(),
                    ) else {
                        continue;
                    };
                    if theirs.median <= 0.0 || mine.median <= 0.0 {
                        continue;
                    }
                    let ratio = mine.median / theirs.median;
                    let better = if m.higher_is_better {
                        ratio >= 1.0
                    } else {
                        ratio <= 1.0
                    };
                    notes.push(format!(
                        "{}: switchboard is {:.0}% of {t} ({})",
                        m.title,
                        ratio * 100.0,
                        if better { "better or equal" } else { "worse" }
                    ));
                }
            }
            if !notes.is_empty() {
                md.push('\n');
                for n in notes {
                    let _ = writeln!(md, "- {n}");
                }
            }
        }
        let errors: Vec<_> = by_target
            .values()
            .flatten()
            .filter_map(|l| {
                l.outcome
                    .first_error
                    .as_ref()
                    .map(|e| format!("{} ({}): {e}", l.outcome.target, l.tag))
            })
            .collect();
        if !errors.is_empty() {
            md.push_str("\nFirst error of each run that had one:\n\n");
            for e in errors {
                let _ = writeln!(md, "- {e}");
            }
        }
        md.push('\n');
    }

    if let Some(path) = &args.baseline {
        before_after(&mut md, &read_lines(path)?, &lines, path);
    }
    for path in &args.include {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        md.push_str(text.trim_end());
        md.push_str("\n\n");
    }
    std::fs::write(&args.out, md).with_context(|| format!("writing {}", args.out.display()))?;
    chart(&lines, &args.chart)?;
    Ok(())
}

/// Switchboard before and after: the baseline file's medians against these.
fn before_after(md: &mut String, baseline: &[Line], lines: &[Line], path: &Path) {
    let before = groups(baseline);
    let after = groups(lines);
    let _ = writeln!(
        md,
        "## Switchboard before and after the performance work\n\n\
         Before: `{}` (the same tool and scenarios, run on the build before the changes). \
         After: this run.\n",
        path.display()
    );
    md.push_str("| scenario | metric | before | after |\n| --- | --- | --- | --- |\n");
    let mut keys: Vec<_> = before.keys().filter(|k| after.contains_key(*k)).collect();
    keys.sort_by_key(|(s, l)| (scenario_order(s), l.clone()));
    for key in keys {
        let (Some(b), Some(a)) = (
            before[key].get("switchboard"),
            after[key].get("switchboard"),
        ) else {
            continue;
        };
        let rate = key.1.contains("publishes/s");
        for m in metrics_of(&key.0, rate) {
            let sb = spread(b.iter().filter_map(|l| (m.get)(&l.outcome)).collect());
            let sa = spread(a.iter().filter_map(|l| (m.get)(&l.outcome)).collect());
            if sb.is_none() && sa.is_none() {
                continue;
            }
            let _ = writeln!(
                md,
                "| {}: {} | {} | {} | {} |",
                key.0,
                key.1,
                m.title,
                cell(m, sb),
                cell(m, sa)
            );
        }
    }
    md.push('\n');
}

/// Two panels: fan-out throughput at saturation, and latency at a fixed rate.
fn chart(lines: &[Line], path: &Path) -> Result<()> {
    let all = groups(lines);
    let pick = |scenario: &str, rate: bool| {
        all.iter()
            .filter(|((s, l), _)| s == scenario && l.contains("publishes/s") == rate)
            .max_by_key(|(_, v)| v.values().map(Vec::len).sum::<usize>())
    };
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let color = |t: &str| match t {
        "switchboard" => RGBColor(0x1f, 0x77, 0xb4),
        "switchboard-redis" => RGBColor(0x17, 0xbe, 0xcf),
        "yardstick" => RGBColor(0x7f, 0x7f, 0x7f),
        "centrifugo" => RGBColor(0x2c, 0xa0, 0x2c),
        _ => RGBColor(0xd6, 0x27, 0x28),
    };

    if let Some(((_, label), by_target)) = pick("fanout", false) {
        let mut bars: Vec<(String, Spread)> = by_target
            .iter()
            .filter_map(|(t, runs)| {
                spread(
                    runs.iter()
                        .filter_map(|l| l.outcome.deliveries_per_sec)
                        .collect(),
                )
                .map(|s| (t.clone(), s))
            })
            .collect();
        bars.sort_by_key(|(t, _)| target_order(t));
        let top = bars.iter().map(|(_, s)| s.max).fold(1.0, f64::max) / 1e6 * 1.15;
        let mut c = ChartBuilder::on(&left)
            .caption(
                format!("fan-out at saturation ({label})"),
                ("sans-serif", 14),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(60)
            // A discrete range 0..n has n + 1 segments.
            .build_cartesian_2d((0..bars.len().saturating_sub(1)).into_segmented(), 0.0..top)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .y_desc("million deliveries/s (median, min–max)")
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        for (i, (t, s)) in bars.iter().enumerate() {
            let col = color(t);
            c.draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), s.median / 1e6),
                ],
                col.filled(),
            )))?;
            c.draw_series(std::iter::once(PathElement::new(
                vec![
                    (SegmentValue::CenterOf(i), s.min / 1e6),
                    (SegmentValue::CenterOf(i), s.max / 1e6),
                ],
                BLACK.stroke_width(2),
            )))?;
        }
    }

    if let Some(((_, label), by_target)) = pick("fanout", true) {
        let mut rows: Vec<(String, [f64; 3])> = by_target
            .iter()
            .filter_map(|(t, runs)| {
                let m = |f: fn(&Outcome) -> Option<f64>| {
                    spread(runs.iter().filter_map(|l| f(&l.outcome)).collect()).map(|s| s.median)
                };
                Some((
                    t.clone(),
                    [m(|o| o.p50_us)?, m(|o| o.p99_us)?, m(|o| o.p999_us)?],
                ))
            })
            .collect();
        rows.sort_by_key(|(t, _)| target_order(t));
        let top = rows
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(10.0, f64::max)
            * 2.0;
        let mut c = ChartBuilder::on(&right)
            .caption(format!("latency ({label})"), ("sans-serif", 14))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0..(rows.len() * 4).saturating_sub(1)).into_segmented(),
                (10.0..top).log_scale(),
            )?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len() * 4)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("µs (p50, p99, p99.9; log scale)")
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) if i % 4 == 1 => {
                    rows.get(i / 4).map(|r| r.0.clone()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .draw()?;
        for (i, (t, v)) in rows.iter().enumerate() {
            for (k, value) in v.iter().enumerate() {
                let shade = color(t).mix(1.0 - 0.3 * k as f64);
                c.draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(i * 4 + k), 10.0),
                        (SegmentValue::Exact(i * 4 + k + 1), *value),
                    ],
                    shade.filled(),
                )))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_format() {
        let s = spread(vec![3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(spread(vec![1.0, 4.0]).unwrap().median, 2.5);
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(micros(12.3), "12 µs");
        assert_eq!(micros(1234.0), "1.23 ms");
    }
}

//! `ringlet bench report`: many runs in, one table and one chart out.
//!
//! Reads the JSON lines `scripts/bench-vs-epoll.sh` writes (one per case,
//! server and round), and for every case gives each server's median and
//! min–max throughput, server and client CPU per million messages and p99
//! latency, the ratios against the baseline server, and a verdict that calls
//! a difference real only when every round points the same way.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;
use serde::Deserialize;

use super::stats::Latency;

/// One run of one case against one server, as the script records it.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub case: String,
    pub server: String,
    pub round: u32,
    /// Server CPU seconds (user + system) spent during the run.
    pub server_cpu_s: f64,
    /// Busy seconds of the client's CPUs during the run: the load generator
    /// and whatever the kernel did there on its behalf (on loopback, part of
    /// either side's TCP work runs on the CPU of whoever delivers a segment).
    /// Absent in records from before it was measured.
    #[serde(default)]
    pub client_cpu_s: Option<f64>,
    pub outcome: RecordOutcome,
}

/// The parts of a bench outcome the report uses.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordOutcome {
    pub messages: u64,
    pub per_second: f64,
    pub mb_per_second: f64,
    pub latency_us: Latency,
    pub errors: u64,
}

impl Record {
    /// CPU seconds per million messages (or requests).
    fn cpu_per_million(&self) -> f64 {
        self.server_cpu_s / (self.outcome.messages.max(1) as f64) * 1e6
    }

    /// Client CPU seconds per million messages, where measured.
    fn client_cpu_per_million(&self) -> Option<f64> {
        Some(self.client_cpu_s? / (self.outcome.messages.max(1) as f64) * 1e6)
    }
}

/// Median, min and max of some figures.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Parse a JSON-lines file of records; blank lines are skipped.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// In order of first appearance.
fn ordered<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for s in items {
        if !seen.iter().any(|x| x == s) {
            seen.push(s.to_string());
        }
    }
    seen
}

/// Does `a` beat `b` in every round (`Some(true)`), lose in every round
/// (`Some(false)`), or neither (`None`)? `higher_is_better` orients it.
fn verdict(pairs: &[(f64, f64)], higher_is_better: bool) -> Option<bool> {
    if pairs.is_empty() {
        return None;
    }
    let wins = pairs
        .iter()
        .filter(|(a, b)| if higher_is_better { a > b } else { a < b })
        .count();
    match wins {
        w if w == pairs.len() => Some(true),
        0 => Some(false),
        _ => None,
    }
}

/// Per-case figures for one server.
struct Figures {
    throughput: Spread,
    mb: Spread,
    cpu: Spread,
    /// `None` unless every run measured it.
    client_cpu: Option<Spread>,
    p99_ms: Spread,
    errors: u64,
}

fn figures(runs: &[&Record]) -> Option<Figures> {
    Some(Figures {
        throughput: Spread::of(runs.iter().map(|r| r.outcome.per_second).collect())?,
        mb: Spread::of(runs.iter().map(|r| r.outcome.mb_per_second).collect())?,
        cpu: Spread::of(runs.iter().map(|r| r.cpu_per_million()).collect())?,
        client_cpu: runs
            .iter()
            .map(|r| r.client_cpu_per_million())
            .collect::<Option<Vec<_>>>()
            .and_then(Spread::of),
        p99_ms: Spread::of(
            runs.iter()
                .map(|r| r.outcome.latency_us.p99 as f64 / 1000.0)
                .collect(),
        )?,
        errors: runs.iter().map(|r| r.outcome.errors).sum(),
    })
}

fn fmt_spread(s: &Spread, digits: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits)
}

fn fmt_big(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The ratio rows used by the table and the chart.
#[derive(Debug)]
pub struct Ratios {
    pub case: String,
    pub throughput: f64,
    pub cpu: f64,
    /// Client CPU per message, where both servers' runs measured it.
    pub client_cpu: Option<f64>,
    pub p99: f64,
}

/// The markdown table, and the ratios of `subject` against `baseline` per case.
/// A server named by `--subject` or `--baseline` that no record has is an
/// error that names the servers the records have.
pub fn table(
    records: &[Record],
    subject: &str,
    baseline: &str,
) -> anyhow::Result<(String, Vec<Ratios>)> {
    let cases = ordered(records.iter().map(|r| r.case.as_str()));
    let servers = ordered(records.iter().map(|r| r.server.as_str()));
    for (flag, name) in [("subject", subject), ("baseline", baseline)] {
        if !servers.iter().any(|s| s == name) {
            anyhow::bail!(
                "no record for {flag} {name}; the records have: {}",
                servers.join(", ")
            );
        }
    }
    let mut out = String::new();
    let mut ratios = Vec::new();
    let _ = writeln!(
        out,
        "| case | server | msgs or reqs/s median (min–max) | MB/s | server CPU s per M | client CPU s per M | p99 ms | errors |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for case in &cases {
        let by_server: BTreeMap<&str, Vec<&Record>> = servers
            .iter()
            .map(|s| {
                let runs = records
                    .iter()
                    .filter(|r| &r.case == case && &r.server == s)
                    .collect();
                (s.as_str(), runs)
            })
            .collect();
        for s in &servers {
            let Some(f) = figures(&by_server[s.as_str()]) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {case} | {s} | {} ({}–{}) | {:.1} | {} | {} | {} | {} |",
                fmt_big(f.throughput.median),
                fmt_big(f.throughput.min),
                fmt_big(f.throughput.max),
                f.mb.median,
                fmt_spread(&f.cpu, 2),
                f.client_cpu.map_or("–".to_string(), |c| fmt_spread(&c, 2)),
                fmt_spread(&f.p99_ms, 3),
                f.errors
            );
        }
        let (Some(a), Some(b)) = (figures(&by_server[subject]), figures(&by_server[baseline]))
        else {
            continue;
        };
        let paired = |get: fn(&Record) -> f64| -> Vec<(f64, f64)> {
            by_server[subject]
                .iter()
                .filter_map(|x| {
                    by_server[baseline]
                        .iter()
                        .find(|y| y.round == x.round)
                        .map(|y| (get(x), get(y)))
                })
                .collect()
        };
        let say = |v: Option<bool>| match v {
            Some(true) => format!("{subject} better in every round"),
            Some(false) => format!("{baseline} better in every round"),
            None => "no consistent difference".to_string(),
        };
        let r = Ratios {
            case: case.clone(),
            throughput: a.throughput.median / b.throughput.median,
            cpu: a.cpu.median / b.cpu.median,
            client_cpu: a
                .client_cpu
                .zip(b.client_cpu)
                .map(|(a, b)| a.median / b.median),
            p99: a.p99_ms.median / b.p99_ms.median.max(1e-9),
        };
        let _ = writeln!(
            out,
            "| {case} | **{subject}/{baseline}** | **{:.2}×** ({}) | | **{:.2}×** ({}) | {} | **{:.2}×** | |",
            r.throughput,
            say(verdict(&paired(|r| r.outcome.per_second), true)),
            r.cpu,
            say(verdict(&paired(|r| r.cpu_per_million()), false)),
            r.client_cpu.map_or(String::new(), |c| format!(
                "**{c:.2}×** ({})",
                say(verdict(
                    &paired(|r| r.client_cpu_per_million().unwrap_or(f64::NAN)),
                    false
                ))
            )),
            r.p99,
        );
        ratios.push(r);
    }
    Ok((out, ratios))
}

/// A bar chart of the ratios per case (1.0 = parity), as SVG.
pub fn chart(ratios: &[Ratios], subject: &str, baseline: &str, path: &Path) -> anyhow::Result<()> {
    let height = 140 + 60 * ratios.len() as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = ratios
        .iter()
        .flat_map(|r| [r.throughput, r.cpu])
        .filter(|v| v.is_finite())
        .fold(1.5f64, f64::max)
        * 1.1;
    let n = ratios.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{subject} / {baseline}: throughput (blue, higher is better); server CPU per message (orange) and p99 latency (green), lower is better"),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(330)
        .build_cartesian_2d(0f64..max, 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(0)
        .x_desc("ratio (1.0 = parity)")
        .draw()?;
    let orange = RGBColor(230, 120, 20);
    for (i, r) in ratios.iter().enumerate() {
        // Case i occupies the band from `top` down to `top - 1`.
        let top = (n - i) as f64;
        let bars = [
            (r.throughput, BLUE),
            (r.cpu, orange),
            (r.p99.min(max), GREEN),
        ];
        for (k, (value, color)) in bars.into_iter().enumerate() {
            let y = top - 0.1 - 0.28 * k as f64;
            chart.draw_series([Rectangle::new(
                [(0.0, y), (value, y - 0.24)],
                color.filled(),
            )])?;
            chart.draw_series([Text::new(
                format!("{value:.2}"),
                (value + 0.01, y - 0.02),
                ("sans-serif", 11),
            )])?;
        }
        // The case's name, left of the axis, in pixels of the whole picture.
        let (_, y) = chart.backend_coord(&(0.0, top - 0.45));
        root.draw(&Text::new(
            r.case.clone(),
            (12, y),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))?;
    }
    chart.draw_series(LineSeries::new(
        [(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests;

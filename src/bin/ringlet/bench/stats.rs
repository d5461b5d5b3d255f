//! Counters and latency histograms shared by a bench run's threads, and the
//! final report (human or JSON).

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded, in microseconds (longer ones are clamped).
const MAX_LATENCY_US: u64 = 60_000_000;
/// How many distinct error messages a report keeps.
const KEEP_ERRORS: usize = 5;

/// A new latency histogram in microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Record one latency.
pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
    h.saturating_record(us);
}

/// What all connections of a run add up to.
pub struct Totals {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    error_texts: Mutex<Vec<String>>,
    latency: Mutex<Histogram<u64>>,
    elapsed: Mutex<Duration>,
}

impl Totals {
    pub fn new() -> Totals {
        Totals {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            error_texts: Mutex::new(Vec::new()),
            latency: Mutex::new(histogram()),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Count `messages` verified messages of `bytes` bytes in all.
    pub fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Fold one connection's histogram in.
    pub fn merge(&self, h: &Histogram<u64>) {
        let mut all = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let _ = all.add(h);
    }

    /// Count an error, keeping the first few texts.
    pub fn error(&self, e: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut texts = self.error_texts.lock().unwrap_or_else(|p| p.into_inner());
        let text = format!("{e:#}");
        if texts.len() < KEEP_ERRORS && !texts.contains(&text) {
            texts.push(text);
        }
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub(crate) fn finish(&self, elapsed: Duration) {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner()) = elapsed;
    }

    /// The figures, with `config` (what was run) attached.
    pub fn outcome(&self, kind: &str, config: serde_json::Value) -> Outcome {
        let elapsed = *self.elapsed.lock().unwrap_or_else(|p| p.into_inner());
        let secs = elapsed.as_secs_f64().max(1e-9);
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let messages = self.messages();
        let bytes = self.bytes.load(Ordering::Relaxed);
        Outcome {
            kind: kind.to_string(),
            config,
            seconds: secs,
            messages,
            bytes,
            per_second: messages as f64 / secs,
            mb_per_second: bytes as f64 / secs / 1e6,
            latency_us: Latency {
                p50: h.value_at_quantile(0.50),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            },
            errors: self.errors.load(Ordering::Relaxed),
            error_samples: self
                .error_texts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

impl Default for Totals {
    fn default() -> Totals {
        Totals::new()
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// One run's result, as printed and as `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `echo` or `file`.
    pub kind: String,
    /// What was asked for.
    pub config: serde_json::Value,
    pub seconds: f64,
    /// Messages (echo) or files (file) verified.
    pub messages: u64,
    pub bytes: u64,
    /// Messages or requests per second.
    pub per_second: f64,
    pub mb_per_second: f64,
    pub latency_us: Latency,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.kind == "file" {
            "requests"
        } else {
            "messages"
        };
        writeln!(f, "{} {}", self.kind, self.config)?;
        writeln!(
            f,
            "  {:.0} {unit}/s, {:.1} MB/s ({} {unit}, {} bytes in {:.2} s)",
            self.per_second, self.mb_per_second, self.messages, self.bytes, self.seconds
        )?;
        let ms = |us: u64| us as f64 / 1000.0;
        writeln!(
            f,
            "  latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
            ms(self.latency_us.p50),
            ms(self.latency_us.p99),
            ms(self.latency_us.p999),
            ms(self.latency_us.max)
        )?;
        write!(f, "  errors: {}", self.errors)?;
        for e in &self.error_samples {
            write!(f, "\n    {e}")?;
        }
        Ok(())
    }
}

/// A live line on stderr once a second until `deadline` or `done()`.
pub(crate) fn progress_until(
    totals: &Totals,
    started: Instant,
    deadline: Instant,
    done: impl Fn() -> bool,
) {
    let mut last = (started, 0u64, 0u64);
    let mut err = std::io::stderr();
    while Instant::now() < deadline && !done() {
        std::thread::sleep(
            Duration::from_millis(1000).min(deadline.saturating_duration_since(Instant::now())),
        );
        let now = Instant::now();
        let (m, b) = (totals.messages(), totals.bytes.load(Ordering::Relaxed));
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-9);
        let _ = write!(
            err,
            "\r[{:>4.0}s] {:>10.0}/s {:>9.1} MB/s  errors {}   ",
            now.duration_since(started).as_secs_f64(),
            (m - last.1) as f64 / dt,
            (b - last.2) as f64 / dt / 1e6,
            totals.errors.load(Ordering::Relaxed)
        );
        last = (now, m, b);
    }
    let _ = writeln!(err);
}

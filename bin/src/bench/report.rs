//! A benchmark's result: latencies in an HDR histogram (microseconds, 3 significant digits),
//! errors by message, and the wall time; printed as text (summary, percentiles, a histogram
//! of response times, errors) or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to one hour.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub struct Report {
    pub name: String,
    pub hist: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
}

impl Report {
    pub fn new(name: String) -> Report {
        Report {
            name,
            hist: new_histogram(),
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn merge(&mut self, hist: &Histogram<u64>, errors: BTreeMap<String, u64>) {
        self.hist.add(hist).expect("histograms of equal bounds add");
        for (e, n) in errors {
            *self.errors.entry(e).or_default() += n;
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Answered requests per second of wall time.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.hist.len() as f64 / secs
        } else {
            0.0
        }
    }

    fn ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn json(&self) -> serde_json::Value {
        let empty = self.hist.is_empty();
        serde_json::json!({
            "op": self.name,
            "requests": self.hist.len(),
            "errors": self.error_count(),
            "error_messages": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests_per_s": self.rate(),
            "latency_ms": {
                "min": if empty { 0.0 } else { self.hist.min() as f64 / 1000.0 },
                "avg": if empty { 0.0 } else { self.hist.mean() / 1000.0 },
                "stddev": if empty { 0.0 } else { self.hist.stdev() / 1000.0 },
                "p50": self.ms(0.5),
                "p90": self.ms(0.9),
                "p99": self.ms(0.99),
                "p99.9": self.ms(0.999),
                "max": if empty { 0.0 } else { self.hist.max() as f64 / 1000.0 },
            },
        })
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let h = &self.hist;
        let _ = writeln!(s, "Summary ({}):", self.name);
        let _ = writeln!(s, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        let _ = writeln!(
            s,
            "  Requests:\t{} answered, {} errors",
            h.len(),
            self.error_count()
        );
        let _ = writeln!(s, "  Requests/sec:\t{:.1}", self.rate());
        if !h.is_empty() {
            let _ = writeln!(s, "  Fastest:\t{:.4} ms", h.min() as f64 / 1000.0);
            let _ = writeln!(s, "  Average:\t{:.4} ms", h.mean() / 1000.0);
            let _ = writeln!(s, "  Stddev:\t{:.4} ms", h.stdev() / 1000.0);
            let _ = writeln!(s, "  Slowest:\t{:.4} ms", h.max() as f64 / 1000.0);
            let _ = writeln!(s, "\nLatency distribution:");
            for (label, q) in [("50%", 0.5), ("90%", 0.9), ("99%", 0.99), ("99.9%", 0.999)] {
                let _ = writeln!(s, "  {label:>6} in {:.4} ms", self.ms(q));
            }
            let _ = writeln!(s, "\nResponse time histogram (ms):");
            s.push_str(&self.buckets(10));
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nErrors:");
            for (e, n) in &self.errors {
                let _ = writeln!(s, "  {n}\t{e}");
            }
        }
        s
    }

    /// `n` equal-width buckets from the fastest to the slowest answer, each with its count
    /// and a bar scaled to the fullest bucket (etcd's benchmark prints the same shape).
    fn buckets(&self, n: u64) -> String {
        let h = &self.hist;
        let (lo, hi) = (h.min(), h.max());
        let width = ((hi - lo) / n).max(1);
        let mut counts = vec![0u64; n as usize];
        for v in h.iter_recorded() {
            let i = ((v.value_iterated_to() - lo) / width).min(n - 1);
            counts[i as usize] += v.count_at_value();
        }
        let most = counts.iter().copied().max().unwrap_or(1).max(1);
        let mut s = String::new();
        for (i, c) in counts.iter().enumerate() {
            let upper = if i as u64 == n - 1 {
                hi
            } else {
                lo + width * (i as u64 + 1)
            };
            let bar = "∎".repeat((c * 40 / most) as usize);
            let _ = writeln!(s, "  {:>10.4} [{c}]\t|{bar}", upper as f64 / 1000.0);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_buckets_follow_the_recorded_latencies() {
        let mut r = Report::new("put".into());
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap();
        }
        r.merge(&h, BTreeMap::from([("timeout".to_string(), 2)]));
        r.elapsed = Duration::from_secs(2);
        assert_eq!(r.rate(), 500.0);
        let j = r.json();
        assert_eq!(j["requests"], 1000);
        assert_eq!(j["errors"], 2);
        let p50 = j["latency_ms"]["p50"].as_f64().unwrap();
        assert!((4.99..=5.01).contains(&p50), "{p50}");
        let p99 = j["latency_ms"]["p99"].as_f64().unwrap();
        assert!((9.89..=9.91).contains(&p99), "{p99}");
        let text = r.text();
        let counts: u64 = text
            .lines()
            .filter_map(|l| l.split_once('[').and_then(|(_, r)| r.split_once(']')))
            .map(|(c, _)| c.parse::<u64>().unwrap())
            .sum();
        assert_eq!(counts, 1000, "{text}");
        assert!(text.contains("  2\ttimeout"), "{text}");
    }
}

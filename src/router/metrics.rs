//! Prometheus metrics of the data plane and the autoscaler, per revision, in the text
//! exposition format (`GET /metrics` on the management API).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Revision;
use crate::reconcile::scaling::ScaleView;

/// Upper bounds (seconds) of the latency buckets: from a fast CPU model to a long generation.
const BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A Prometheus histogram with fixed buckets, updated without locks.
#[derive(Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// What the router counts for one revision.
#[derive(Default)]
pub struct RevisionMetrics {
    /// Answers by status class (1xx to 5xx), the router's own answers included.
    responses: [AtomicU64; 5],
    /// Arrival to the response's headers.
    pub latency: Histogram,
    /// How long requests that arrived while no replica was ready waited for one.
    pub cold_start: Histogram,
}

impl RevisionMetrics {
    pub fn answered(&self, status: u16, took: Duration) {
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            self.responses[class as usize].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(took);
    }
}

/// Escapes a label value.
pub(crate) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text for `revisions` and the autoscaler's last decisions.
pub fn render(revisions: &[Arc<Revision>], scale: &BTreeMap<String, ScaleView>) -> String {
    let mut revisions: Vec<&Arc<Revision>> = revisions.iter().collect();
    revisions.sort_by(|a, b| a.name.cmp(&b.name));
    let labels = |r: &Revision| {
        format!(
            "namespace=\"{}\",service=\"{}\",revision=\"{}\"",
            label(&r.namespace),
            label(&r.service),
            label(&r.name)
        )
    };
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, body: &dyn Fn(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        body(&mut out);
    };
    family(
        "gantry_requests_total",
        "counter",
        "Requests answered, by status class (the router's own 503 and 504 included).",
        &|out| {
            for r in &revisions {
                for (i, n) in r.metrics.responses.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "gantry_requests_total{{{},code=\"{}xx\"}} {}",
                        labels(r),
                        i + 1,
                        n.load(Ordering::Relaxed)
                    );
                }
            }
        },
    );
    family(
        "gantry_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response's headers, time held included.",
        &|out| {
            for r in &revisions {
                r.metrics
                    .latency
                    .render("gantry_request_duration_seconds", &labels(r), out);
            }
        },
    );
    family(
        "gantry_cold_start_seconds",
        "histogram",
        "How long a request that arrived with no replica ready waited for one.",
        &|out| {
            for r in &revisions {
                r.metrics
                    .cold_start
                    .render("gantry_cold_start_seconds", &labels(r), out);
            }
        },
    );
    let gauge = |out: &mut String, name: &str, r: &Revision, v: f64| {
        let _ = writeln!(out, "{name}{{{}}} {v}", labels(r));
    };
    family(
        "gantry_concurrency",
        "gauge",
        "Requests in the router: waiting for a replica or in flight.",
        &|out| {
            for r in &revisions {
                gauge(out, "gantry_concurrency", r, r.concurrency() as f64);
            }
        },
    );
    family(
        "gantry_queue_depth",
        "gauge",
        "Requests waiting for a free replica slot.",
        &|out| {
            for r in &revisions {
                gauge(out, "gantry_queue_depth", r, r.throttler.queued() as f64);
            }
        },
    );
    let decided: Vec<(&Arc<Revision>, &ScaleView)> = revisions
        .iter()
        .filter_map(|r| scale.get(&r.name).map(|s| (*r, s)))
        .collect();
    family(
        "gantry_replicas_desired",
        "gauge",
        "Replicas the autoscaler scales the revision to.",
        &|out| {
            for (r, s) in &decided {
                gauge(out, "gantry_replicas_desired", r, s.replicas as f64);
            }
        },
    );
    family(
        "gantry_replicas_ready",
        "gauge",
        "Ready replicas.",
        &|out| {
            for (r, s) in &decided {
                gauge(out, "gantry_replicas_ready", r, s.ready as f64);
            }
        },
    );
    family(
        "gantry_panic",
        "gauge",
        "1 while the autoscaler is in panic mode for the revision.",
        &|out| {
            for (r, s) in &decided {
                gauge(out, "gantry_panic", r, if s.panic { 1.0 } else { 0.0 });
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(40));
        h.observe(Duration::from_secs(1000));
        let mut out = String::new();
        h.render("x", "a=\"b\"", &mut out);
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"300\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{a=\"b\"} 1000.043\n"), "{out}");
    }

    #[test]
    fn answers_count_by_class() {
        let m = RevisionMetrics::default();
        m.answered(200, Duration::from_millis(1));
        m.answered(204, Duration::from_millis(1));
        m.answered(503, Duration::from_millis(1));
        let n = |i: usize| m.responses[i].load(Ordering::Relaxed);
        assert_eq!((n(1), n(4)), (2, 1));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

//! Knative's per-pod request statistics (`knative/networking` `pkg/http/stats/request.go`
//! `RequestStats`), kept per revision by the router and reported to the autoscaler every
//! second.
//!
//! Time is an argument (a [`Duration`] since an epoch the caller picks) so that the
//! arithmetic can be tested exactly and the caller decides which clock drives it.
//!
//! The average is time-weighted, not a count of requests seen: two requests of 500 ms in
//! one second average 1.0, not 2 (research note §11 point 4). Requests count from the
//! moment they arrive, so time spent queued for a slot counts as concurrency, as it does in
//! front of Knative's queue-proxy breaker; that is what lets the autoscaler see a backlog
//! and add replicas.

use std::time::Duration;

/// One reporting period's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Report {
    /// Time-weighted average number of requests in flight (queued ones included).
    pub average_concurrency: f64,
    /// Requests that arrived during the period; the caller divides by the period to get a
    /// rate, as queue-proxy does.
    pub requests: f64,
}

/// Live concurrency plus the accumulators for the current period.
#[derive(Debug, Clone, Default)]
pub struct RequestStats {
    concurrency: u32,
    /// The last time the accumulators were brought up to date; only moves forward, so a
    /// caller whose clock steps back does not subtract time.
    last_change: Duration,
    /// Σ concurrency × seconds over the period.
    computed_concurrency: f64,
    /// Seconds covered by the period so far; the divisor of the average, so a period that
    /// began recently is not diluted by time before it.
    seconds_in_use: f64,
    requests: f64,
}

impl RequestStats {
    pub fn new(now: Duration) -> RequestStats {
        RequestStats {
            last_change: now,
            ..RequestStats::default()
        }
    }

    /// A request arrived (counted from arrival, queued time included).
    pub fn request_in(&mut self, now: Duration) {
        self.compute(now);
        self.requests += 1.0;
        self.concurrency += 1;
    }

    /// A request ended (its response body finished, or it failed / was cancelled).
    pub fn request_out(&mut self, now: Duration) {
        self.compute(now);
        // An unmatched `out` is a caller bug; saturating keeps the figures sane rather
        // than wrapping to four billion requests in flight.
        self.concurrency = self.concurrency.saturating_sub(1);
    }

    /// The report for the period since the last report: time-weighted average concurrency
    /// and the number of requests that arrived; resets the accumulators (not the live
    /// concurrency).
    pub fn report(&mut self, now: Duration) -> Report {
        self.compute(now);
        let average_concurrency = if self.seconds_in_use > 0.0 {
            self.computed_concurrency / self.seconds_in_use
        } else {
            0.0
        };
        let report = Report {
            average_concurrency,
            requests: self.requests,
        };
        self.computed_concurrency = 0.0;
        self.seconds_in_use = 0.0;
        self.requests = 0.0;
        report
    }

    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Accumulates the concurrency held since the last change. Knative ignores a
    /// non-positive interval, which keeps `last_change` where it was when time steps back.
    fn compute(&mut self, now: Duration) {
        let Some(dt) = now.checked_sub(self.last_change) else {
            return;
        };
        if dt.is_zero() {
            return;
        }
        let secs = dt.as_secs_f64();
        self.seconds_in_use += secs;
        self.computed_concurrency += f64::from(self.concurrency) * secs;
        self.last_change = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn two_half_second_requests_in_one_second_average_one() {
        let mut s = RequestStats::new(ms(0));
        s.request_in(ms(0));
        s.request_out(ms(500));
        s.request_in(ms(500));
        s.request_out(ms(1000));
        let r = s.report(ms(1000));
        assert!(close(r.average_concurrency, 1.0), "{r:?}");
        assert_eq!(r.requests, 2.0);
    }

    #[test]
    fn overlapping_requests_are_weighted_by_time() {
        let mut s = RequestStats::new(ms(0));
        s.request_in(ms(0));
        s.request_in(ms(0));
        s.request_out(ms(250));
        s.request_out(ms(500));
        // 2 for 250 ms, 1 for 250 ms, 0 for 500 ms.
        let r = s.report(ms(1000));
        assert!(close(r.average_concurrency, 0.75), "{r:?}");
        assert_eq!(r.requests, 2.0);
    }

    #[test]
    fn a_request_held_across_a_report_counts_in_both_periods() {
        let mut s = RequestStats::new(ms(0));
        s.request_in(ms(500));
        let first = s.report(ms(1000));
        assert!(close(first.average_concurrency, 0.5), "{first:?}");
        assert_eq!(first.requests, 1.0);
        assert_eq!(
            s.concurrency(),
            1,
            "a report does not reset live concurrency"
        );

        s.request_out(ms(1500));
        let second = s.report(ms(2000));
        assert!(close(second.average_concurrency, 0.5), "{second:?}");
        assert_eq!(
            second.requests, 0.0,
            "counted in the period it arrived in only"
        );
    }

    #[test]
    fn requests_count_on_arrival_not_completion() {
        let mut s = RequestStats::new(ms(0));
        s.request_in(ms(100));
        s.request_in(ms(200));
        s.request_in(ms(300));
        let r = s.report(ms(1000));
        assert_eq!(r.requests, 3.0);
        assert_eq!(s.concurrency(), 3);
        // 1 for 100 ms, 2 for 100 ms, 3 for 700 ms, over the whole second.
        assert!(close(r.average_concurrency, 0.1 + 0.2 + 2.1), "{r:?}");
    }

    #[test]
    fn a_report_with_no_time_elapsed_is_zero_not_nan() {
        let mut s = RequestStats::new(ms(1000));
        s.request_in(ms(1000));
        let r = s.report(ms(1000));
        assert_eq!(r.average_concurrency, 0.0);
        assert_eq!(r.requests, 1.0);

        let again = s.report(ms(1000));
        assert_eq!(again, Report::default());
    }

    #[test]
    fn a_long_idle_period_reports_zero() {
        let mut s = RequestStats::new(ms(0));
        s.request_in(ms(0));
        s.request_out(ms(1000));
        s.report(ms(1000));
        let r = s.report(ms(3_600_000));
        assert_eq!(r, Report::default());
    }

    #[test]
    fn the_average_covers_only_the_time_in_the_period() {
        // Created half-way through a second: the half before creation does not dilute it.
        let mut s = RequestStats::new(ms(500));
        s.request_in(ms(500));
        let r = s.report(ms(1000));
        assert!(close(r.average_concurrency, 1.0), "{r:?}");
    }

    #[test]
    fn time_stepping_back_is_ignored() {
        let mut s = RequestStats::new(ms(1000));
        s.request_in(ms(1000));
        s.request_out(ms(900));
        // The 1000..1500 interval is measured from the last forward point, at concurrency 0.
        let r = s.report(ms(1500));
        assert_eq!(r.average_concurrency, 0.0);
        assert_eq!(s.concurrency(), 0);
    }

    #[test]
    fn an_unmatched_out_does_not_wrap() {
        let mut s = RequestStats::new(ms(0));
        s.request_out(ms(10));
        assert_eq!(s.concurrency(), 0);
    }
}

//! Knative's metric windows, exactly: one-second buckets in a ring, averaged linearly or with
//! exponential weights (`pkg/autoscaler/aggregation/bucketing.go`), and the max window that
//! delays scale-downs (`pkg/autoscaler/aggregation/max`).
//!
//! Times are [`Duration`]s since an arbitrary epoch (the daemon's start, or a scenario's 0s);
//! bucket boundaries are whole seconds of it, as Knative's are whole Unix seconds.

use std::collections::VecDeque;
use std::time::Duration;

/// How a window averages its buckets (`metric-aggregation-algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// The mean over the seconds that hold data (Knative's default).
    Linear,
    /// Newer seconds weigh more: weights `m·(1−m)^age`, not normalised.
    WeightedExponential,
}

/// The sum of weights a weighted window aims for, and the smallest decay it uses.
const WEIGHT_PRECISION: f64 = 0.9999;
const MIN_EXPONENT: f64 = 0.2;

/// A window of one-second buckets. Everything recorded within the same second is summed
/// (several sources reporting in one second add up); the average divides by a number of
/// seconds, not of samples.
#[derive(Debug, Clone)]
pub struct Window {
    buckets: Vec<f64>,
    /// Whole seconds of the first write since the window last emptied.
    first_write: Option<u64>,
    /// Whole seconds of the newest write.
    last_write: Option<u64>,
    window: Duration,
    /// The sum of every bucket, stale ones included (Knative's `windowTotal`).
    total: f64,
    aggregation: Aggregation,
    /// The weighted average's decay `m` (unused by the linear average).
    smoothing: f64,
}

/// The number of one-second buckets a window spans: `ceil(window / 1s)`, at least one.
fn bucket_count(window: Duration) -> usize {
    (window.as_nanos().div_ceil(1_000_000_000) as usize).max(1)
}

/// The weighted average's decay for `nb` buckets: enough that the weights sum to 0.9999
/// over the window, but never below 0.2 (so long windows still forget).
pub fn smoothing_coefficient(nb: usize) -> f64 {
    (1.0 - (1.0 - WEIGHT_PRECISION).powf(1.0 / nb as f64)).max(MIN_EXPONENT)
}

/// Knative's `roundToNDigits(6, x)`: truncates (floors) to six decimals, so floating-point
/// residue in the running total cannot keep `ceil(average / target)` at one forever.
fn floor6(x: f64) -> f64 {
    (x * 1e6).floor() / 1e6
}

impl Window {
    pub fn new(window: Duration, aggregation: Aggregation) -> Window {
        let nb = bucket_count(window);
        Window {
            buckets: vec![0.0; nb],
            first_write: None,
            last_write: None,
            window,
            total: 0.0,
            aggregation,
            smoothing: smoothing_coefficient(nb),
        }
    }

    /// The span this window averages over.
    pub fn span(&self) -> Duration {
        self.window
    }

    fn slot(&self, second: u64) -> usize {
        (second % self.buckets.len() as u64) as usize
    }

    /// Seconds between two whole-second times, as a duration.
    fn gap(later: u64, earlier: u64) -> Duration {
        Duration::from_secs(later.saturating_sub(earlier))
    }

    /// Adds `value` to the bucket of `now`. A record into a later second zeroes the seconds
    /// skipped since the last write (or the whole ring after a gap of a window or more); a
    /// late record still inside the window lands in its own bucket; an older one is dropped.
    pub fn record(&mut self, now: Duration, value: f64) {
        let second = now.as_secs();
        if self.last_write != Some(second) {
            if let Some(last) = self.last_write {
                if Duration::from_secs(second) + self.window <= Duration::from_secs(last) {
                    return; // older than one window
                }
            }
            if self.first_write.is_none_or(|first| first > second) {
                self.first_write = Some(second);
            }
            match self.last_write {
                Some(last) if second <= last => {} // late, inside the window
                Some(last) if Self::gap(second, last) < self.window => {
                    for s in last + 1..=second {
                        let slot = self.slot(s);
                        self.total -= self.buckets[slot];
                        self.buckets[slot] = 0.0;
                    }
                    self.last_write = Some(second);
                }
                _ => {
                    // First write, or nothing for a whole window: start afresh.
                    self.first_write = Some(second);
                    self.buckets.iter_mut().for_each(|b| *b = 0.0);
                    self.total = 0.0;
                    self.last_write = Some(second);
                }
            }
        }
        let slot = self.slot(second);
        self.buckets[slot] += value;
        self.total += value;
    }

    /// True when nothing was recorded for more than a window before `now`.
    pub fn is_empty(&self, now: Duration) -> bool {
        match self.last_write {
            None => true,
            Some(last) => Self::gap(now.as_secs(), last) > self.window,
        }
    }

    /// The window's average at `now`, by its aggregation.
    pub fn average(&self, now: Duration) -> f64 {
        match self.aggregation {
            Aggregation::Linear => self.linear_average(now),
            Aggregation::WeightedExponential => self.weighted_average(now),
        }
    }

    /// Knative's `TimedFloat64Buckets.WindowAverage`: the sum over the valid seconds divided
    /// by their number. Before the window has filled, that is the seconds since the first
    /// write; a trailing stretch without writes drops out of both sum and divisor; a whole
    /// window without writes is 0.
    fn linear_average(&self, now: Duration) -> f64 {
        let (Some(first), Some(last)) = (self.first_write, self.last_write) else {
            return 0.0;
        };
        let now = now.as_secs();
        let nb = self.buckets.len() as f64;
        let written = (last - first + 1) as f64;
        if now <= last {
            return floor6(self.total / written.min(nb));
        }
        if Self::gap(now, last) >= self.window {
            return 0.0;
        }
        let stale: f64 = (last + 1..=now).map(|s| self.buckets[self.slot(s)]).sum();
        let divisor = written.min(nb - (now - last) as f64);
        if divisor <= 0.0 {
            return 0.0;
        }
        floor6((self.total - stale) / divisor)
    }

    /// Knative's `WeightedFloat64Buckets.WindowAverage`: newest second first, weights
    /// `m·(1−m)^age`, the seconds since the last write counting as zeros; not normalised.
    fn weighted_average(&self, now: Duration) -> f64 {
        let Some(last) = self.last_write else {
            return 0.0;
        };
        if self.is_empty(now) {
            return 0.0;
        }
        let now = now.as_secs();
        let m = self.smoothing;
        let mut buckets = self.buckets.len() as i64;
        let mut multiplier = m;
        if now > last {
            let zeros = now - last;
            multiplier *= (1.0 - m).powf(zeros as f64);
            buckets -= zeros as i64;
        }
        let mut sum = 0.0;
        for age in 0..buckets.max(0) as u64 {
            sum += self.buckets[self.slot(last + self.buckets.len() as u64 - age)] * multiplier;
            multiplier *= 1.0 - m;
        }
        sum
    }
}

/// The maximum of the values recorded over the last `span`, in slots of `granularity`
/// (Knative's `max.TimeWindow`, a descending-maxima queue). The scale-down delay keeps the
/// highest decision of the last `scale-down-delay`, so a scale-down lands only after the
/// lower value has held that long while a scale-up is immediate.
#[derive(Debug, Clone)]
pub struct MaxWindow {
    slots: i64,
    granularity_secs: u64,
    /// (slot index, value), values strictly decreasing from front to back.
    queue: VecDeque<(i64, i32)>,
}

impl MaxWindow {
    pub fn new(span: Duration, granularity: Duration) -> MaxWindow {
        let granularity_secs = granularity.as_secs().max(1);
        let slots = span.as_nanos().div_ceil(granularity.as_nanos().max(1)) as i64;
        MaxWindow {
            slots: slots.max(1),
            granularity_secs,
            queue: VecDeque::new(),
        }
    }

    pub fn record(&mut self, now: Duration, value: i32) {
        let index = (now.as_secs() / self.granularity_secs) as i64;
        while self.queue.back().is_some_and(|&(_, v)| v <= value) {
            self.queue.pop_back();
        }
        while self
            .queue
            .front()
            .is_some_and(|&(i, _)| i <= index - self.slots)
        {
            self.queue.pop_front();
        }
        self.queue.push_back((index, value));
    }

    /// The maximum still inside the window (0 when nothing was recorded).
    pub fn current(&self) -> i32 {
        self.queue.front().map_or(0, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn linear(window: u64) -> Window {
        Window::new(Duration::from_secs(window), Aggregation::Linear)
    }

    /// knative-autoscaler.md §9.E, `TestTimedFloat64BucketsWindowAverage`: one table, one
    /// shared window, Knative's expected values. T is 60s after t0 = 1000s.
    #[test]
    fn knative_window_average_table() {
        let t0 = 1000.0;
        let t = t0 + 60.0;
        let mut w = linear(5);
        enum Step {
            Record(f64, f64),
            Check(f64, f64),
        }
        use Step::*;
        let steps = [
            Record(t0, 1.0),
            Check(t0, 1.0),
            Record(t0 + 1.0, 2.0),
            Record(t0 + 2.0, 3.0),
            Record(t0 + 3.0, 4.0),
            Record(t0 + 4.0, 5.0),
            Check(t0 + 4.0, 15.0 / 5.0),
            Check(t0 + 3.6, 3.0),
            Check(t0 + 6.0, (15.0 - 1.0 - 2.0) / 3.0),
            Check(t0 + 10.0, 0.0),
            Record(t0 + 6.0, 91.0),
            Check(t0 + 6.0, (15.0 - 1.0 - 2.0 + 91.0) / 5.0),
            Record(t, 1984.0),
            Check(t, 1984.0),
            Record(t - 3.0, 4.0),
            Check(t, (4.0 + 1984.0) / 4.0),
            Record(t + 1.0, 5.0),
            Check(t + 1.0, (4.0 + 1984.0 + 5.0) / 5.0),
            Record(t + 1.0 - 3.0, 10.0),
            Check(t + 1.0, (4.0 + 10.0 + 1984.0 + 5.0) / 5.0),
            Record(t + 1.0 - 6.0, 10.0),
            Record(t + 1.0 - 5.0, 10.0),
            Check(t + 1.0, (4.0 + 10.0 + 1984.0 + 5.0) / 5.0),
            Record(t + 1.0 + 5.0, 10.0),
            Check(t + 6.0, 10.0),
        ];
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Record(at, v) => w.record(s(at), v),
                Check(at, want) => {
                    let got = w.average(s(at));
                    assert!(
                        (got - want).abs() < 1e-5,
                        "step {i}: at {at} got {got}, want {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn descending_records_fill_the_window() {
        let mut w = linear(5);
        for at in (0..=8).rev() {
            w.record(s(100.0 + at as f64), 5.0);
        }
        assert_eq!(w.average(s(105.0)), 5.0);
    }

    #[test]
    fn holes_are_zeroed_when_writing_past_them() {
        let mut w = linear(5);
        for (i, v) in [1.0, 2.0, 3.0, 4.0, 5.0].into_iter().enumerate() {
            w.record(s(10.0 + i as f64), v);
        }
        assert_eq!(w.average(s(14.0)), 3.0);
        // Writing at t8 zeroes the slots of t5..=t8, which held t0..=t3: 5 + 2 remain.
        w.record(s(18.0), 2.0);
        assert_eq!(w.total, 7.0);
    }

    #[test]
    fn same_second_records_add_up() {
        let mut w = linear(5);
        w.record(s(3.0), 1.0);
        w.record(s(3.1), 10.0);
        assert_eq!(w.average(s(3.5)), 11.0);
    }

    /// `TestTimedFloat64BucketsWeightedAverage`, window 5s.
    #[test]
    fn knative_weighted_average() {
        let m = 1.0 - 10f64.powf(-0.8);
        let mut w = Window::new(Duration::from_secs(5), Aggregation::WeightedExponential);
        let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        w.record(s(0.0), 2.0);
        close(w.average(s(0.0)), 2.0 * m);
        close(w.average(s(1.0)), 2.0 * m * (1.0 - m));
        w.record(s(1.0), 2.0);
        close(w.average(s(1.0)), 2.0 * m * (1.0 - m) + 2.0 * m);
        for (i, v) in [2.0, 3.0, 4.0, 5.0, 6.0].into_iter().enumerate() {
            w.record(s(2.0 + i as f64), v);
        }
        let n = 1.0 - m;
        close(
            w.average(s(6.0)),
            6.0 * m + 5.0 * m * n + 4.0 * m * n * n + 3.0 * m * n.powi(3) + 2.0 * m * n.powi(4),
        );
        close(w.average(s(16.0)), 0.0);
    }

    #[test]
    fn knative_smoothing_coefficients() {
        for (nb, want) in [
            (100, 0.2),
            (60, 0.2),
            (40, 0.20567),
            (6, 0.78456),
            (5, 0.841511),
        ] {
            let got = smoothing_coefficient(nb);
            assert!((got - want).abs() < 1e-5, "nb {nb}: {got}");
        }
    }

    #[test]
    fn max_window_delays_the_lower_value() {
        // 10s delay in 2s slots: 5 slots.
        let mut w = MaxWindow::new(Duration::from_secs(10), Duration::from_secs(2));
        w.record(s(0.0), 5);
        assert_eq!(w.current(), 5);
        w.record(s(2.0), 1);
        assert_eq!(w.current(), 5);
        w.record(s(8.0), 1);
        assert_eq!(w.current(), 5, "slot 4 still sees slot 0");
        w.record(s(10.0), 1);
        assert_eq!(w.current(), 1, "slot 5: slot 0 fell out");
        w.record(s(11.0), 7);
        assert_eq!(w.current(), 7, "a higher value is immediate");
        w.record(s(11.5), 3);
        assert_eq!(w.current(), 7, "same slot keeps the max");
    }

    proptest! {
        /// The linear average of a constant signal is that constant, whatever the window,
        /// the start and how long it has run.
        #[test]
        fn linear_average_of_a_constant_is_the_constant(
            window in 1u64..400,
            start in 0u64..10_000,
            seconds in 1u64..900,
            value in 0.0f64..10_000.0,
        ) {
            let mut w = linear(window);
            for i in 0..seconds {
                w.record(s((start + i) as f64 + 0.25), value);
            }
            let got = w.average(s((start + seconds - 1) as f64 + 0.9));
            prop_assert!((got - value).abs() <= 1e-6 * value.max(1.0), "{} vs {}", got, value);
        }
    }
}

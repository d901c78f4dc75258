//! The autoscaler's cost on a busy box: 1,000 revisions, each with gantry's default 180 s
//! stable window (23 s panic window), each recording one report per second and deciding
//! every 2 s, as the daemon will. Measures the decisions (window averages + `Scale()` + the
//! KPA reconcile) and the recording separately.
//!
//! Both window averages are measured: the linear one (the default) is O(1) per decision, the
//! weighted-exponential one walks the whole window.
//!
//! Run: `cargo bench --bench autoscaler`. Prints figures; asserts nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gantry::autoscaler::{Collector, Decider, DeciderSpec, KpaSpec, PodAutoscaler, Stat};
use gantry::spec::autoscaling::{resolve, AutoscalingDefaults};

const REVISIONS: usize = 1_000;
/// Simulated seconds: long enough that every window is full and wraps around.
const SECONDS: u64 = 600;
const ROUNDS: usize = 5;

fn main() {
    for algorithm in ["linear", "weighted-exponential"] {
        let mut settings = resolve(&AutoscalingDefaults::default(), &Default::default(), 4);
        settings.metric_aggregation_algorithm = algorithm.to_string();
        println!("\n{algorithm} averages:");
        measure(&settings);
    }
}

fn measure(settings: &gantry::spec::autoscaling::Autoscaling) {
    let settings = settings.clone();
    let decider_spec = DeciderSpec::for_settings(&settings, true);
    let kpa_spec = KpaSpec::for_settings(&settings, true, Duration::from_secs(600));
    println!(
        "{REVISIONS} revisions, stable window {}, panic window {}, {SECONDS} s simulated",
        settings.stable_window, settings.panic_window
    );

    let mut decide_rates = Vec::new();
    let mut record_rates = Vec::new();
    for _ in 0..ROUNDS {
        let mut revisions: Vec<(Decider, PodAutoscaler)> = (0..REVISIONS)
            .map(|_| {
                let collector = Collector::for_settings(&settings);
                let decider = Decider::new(decider_spec.clone(), collector, 1, Duration::ZERO);
                (
                    decider,
                    PodAutoscaler::new(kpa_spec.clone(), Duration::ZERO),
                )
            })
            .collect();
        let (mut decide, mut record) = (Duration::ZERO, Duration::ZERO);
        let (mut decisions, mut records) = (0u64, 0u64);
        for second in 1..=SECONDS {
            let now = Duration::from_secs(second);
            let t = Instant::now();
            for (i, (decider, _)) in revisions.iter_mut().enumerate() {
                // Load differs per revision and over time, so decisions are not all equal.
                let load = ((i as u64 * 7 + second) % 50) as f64;
                let stat = Stat {
                    concurrency: load,
                    requests: load * 3.0,
                    ..Stat::default()
                };
                decider.record(now, &stat);
            }
            record += t.elapsed();
            records += REVISIONS as u64;
            if second % 2 == 0 {
                let t = Instant::now();
                for (decider, pa) in revisions.iter_mut() {
                    let ready = pa.replicas();
                    decider.tick(now, ready);
                    black_box(pa.reconcile(now, decider.status(), ready));
                }
                decide += t.elapsed();
                decisions += REVISIONS as u64;
            }
        }
        decide_rates.push(decisions as f64 / decide.as_secs_f64());
        record_rates.push(records as f64 / record.as_secs_f64());
    }
    let report = |name: &str, rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.0}/s (min {:.0}, max {:.0}) over {ROUNDS} rounds",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    };
    report("decisions", &mut decide_rates);
    report("reports recorded", &mut record_rates);
    let per_tick = REVISIONS as f64 / decide_rates[decide_rates.len() / 2];
    println!(
        "one 2 s tick for all {REVISIONS} revisions: {:.2} ms ({:.3}% of a core)",
        per_tick * 1e3,
        per_tick / 2.0 * 100.0
    );
}

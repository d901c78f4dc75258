//! `gantry simulate` end to end: the example scenarios behave as docs/autoscaling.md says,
//! their charts in the docs are current, and a bad scenario is refused with its reasons.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("simulate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("gantry runs")
}

/// The decisions of an example scenario.
fn decisions(name: &str) -> Vec<Value> {
    let out = simulate(&[&format!("examples/scenarios/{name}.yaml")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn int(d: &Value, key: &str) -> i64 {
    d[key].as_i64().unwrap_or_else(|| panic!("{key} in {d}"))
}

fn first(ds: &[Value], what: impl Fn(&Value) -> bool) -> &Value {
    ds.iter().find(|d| what(d)).expect("such a decision")
}

#[test]
fn a_burst_panics_holds_and_then_scales_down_gently() {
    let ds = decisions("burst");
    let panic_start = first(&ds, |d| d["panic"] == true);
    assert_eq!(
        panic_start["at"], "1m2s",
        "the panic window sees the burst at once"
    );
    let peak = ds.iter().map(|d| int(d, "replicas")).max().unwrap();
    assert_eq!(peak, 12, "40 in flight / 3.4 per replica");
    for pair in ds.windows(2) {
        if pair[0]["panic"] == true && pair[1]["panic"] == true {
            assert!(
                int(&pair[1], "replicas") >= int(&pair[0], "replicas"),
                "down in panic"
            );
        }
    }
    let calm = first(&ds, |d| {
        d["at"] != "0s" && d["panic"] == false && int(d, "replicas") > 1
    });
    assert_eq!(
        calm["at"], "4m32s",
        "panic ends a stable window after the burst's last tick"
    );
    // After panic, one replica a minute: the 1.1 scale-down rate under a 60s delay.
    let drops: Vec<(&str, i64)> = ds
        .windows(2)
        .filter(|p| int(&p[1], "replicas") < int(&p[0], "replicas"))
        .map(|p| (p[1]["at"].as_str().unwrap(), int(&p[1], "replicas")))
        .collect();
    assert_eq!(
        drops,
        [
            ("5m30s", 10),
            ("6m30s", 9),
            ("7m30s", 8),
            ("8m30s", 7),
            ("9m30s", 6)
        ]
    );
}

#[test]
fn slow_growth_adds_replicas_one_at_a_time() {
    let ds = decisions("slow-growth");
    for pair in ds.windows(2) {
        let (a, b) = (int(&pair[0], "replicas"), int(&pair[1], "replicas"));
        assert!(b == a || b == a + 1, "{a} → {b} at {}", pair[1]["at"]);
    }
    assert_eq!(
        int(ds.last().unwrap(), "replicas"),
        4,
        "280 in flight / 85 per replica"
    );
}

#[test]
fn traffic_stopping_scales_to_zero_after_the_retention_period() {
    let ds = decisions("scale-to-zero");
    let asks_zero = first(&ds, |d| int(d, "desired") == 0);
    assert_eq!(asks_zero["at"], "5m58s");
    assert_eq!(asks_zero["activity"], "inactive");
    assert_eq!(int(asks_zero, "replicas"), 1, "zero is not applied at once");
    assert_eq!(
        asks_zero["mode"], "proxy",
        "the router is in front before the last replica goes"
    );
    let gone = first(&ds, |d| int(d, "replicas") == 0);
    assert_eq!(
        gone["at"], "35m58s",
        "inactive for the 30m pod retention period"
    );
    assert_eq!(int(ds.last().unwrap(), "ready"), 0);
}

/// docs/autoscaling.md shows these charts; they must be what the command draws today.
#[test]
fn the_charts_in_the_docs_are_current() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["burst", "slow-growth", "scale-to-zero"] {
        let scenario = format!("examples/scenarios/{name}.yaml");
        let svg = dir.path().join(format!("{name}.svg"));
        let out = simulate(&[
            &scenario,
            "--svg",
            svg.to_str().unwrap(),
            "--title",
            &scenario,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let drawn = std::fs::read_to_string(&svg).unwrap();
        let docs =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/autoscaling/{name}.svg"));
        assert!(
            std::fs::read_to_string(&docs).unwrap() == drawn,
            "docs/autoscaling/{name}.svg is stale: run gantry simulate {scenario} --svg {} --title {scenario}",
            docs.display()
        );
        assert!(
            drawn.contains("class=\"panic\""),
            "{name} shows a panic period"
        );
    }
}

#[test]
fn a_bad_scenario_is_refused_with_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "settings:\n  max-scale-down-rate: 1\n  autoscaling.knative.dev/window: 1s\nsteps:\n  - every: 2s\n",
    )
    .unwrap();
    let out = simulate(&[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let f = file.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "{f}: settings: max-scale-down-rate = 1, must be greater than 1.0\n\
             {f}: settings: expected 6s <= 1s <= 1h0m0s: autoscaling.knative.dev/window\n\
             {f}: steps[0]: give either `at`, or `every` and `until`\n"
        )
    );
}

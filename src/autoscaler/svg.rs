//! The picture of one autoscaler simulation run (`gantry simulate FILE --svg out.svg`).
//!
//! Pure: decisions in, a self-contained SVG document out, no I/O and no dependencies, so the
//! same run always gives byte-identical output (numbers carry at most two decimals) and a
//! picture checked into the docs diffs cleanly.
//!
//! The picture has two panels over one time axis: the load the autoscaler saw (observed,
//! stable-window and panic-window averages) above, the replica counts (desired, scaled to,
//! ready) below as step lines, and translucent red bands over both wherever the decider was in
//! panic mode. Every series element carries a `class` naming it (`series stable`, `panic`, …)
//! so tests, and users restyling the file, can find it.

use std::fmt::Write;

/// One autoscaler decision, as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Seconds since the start of the run.
    pub at: f64,
    /// Concurrency (or requests per second) recorded for that second; None when the step recorded nothing.
    pub observed: Option<f64>,
    /// Stable-window average the decider used (None when the decider had no data).
    pub stable: Option<f64>,
    /// Panic-window average the decider used.
    pub panic_value: Option<f64>,
    /// The decider's desired replica count (-1 = no decision yet: draw nothing for it).
    pub desired: i32,
    /// Replicas the service is scaled to (after bounds and scale-to-zero).
    pub replicas: i32,
    /// Ready replicas at that decision.
    pub ready: i32,
    /// Whether the decider was in panic mode after this decision.
    pub panic: bool,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 560.0;
/// Plot area left and right edges; the left margin holds the y tick labels and axis names.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 936.0;
/// (top, bottom) of the upper (load) and lower (replicas) panels.
const UPPER: (f64, f64) = (72.0, 282.0);
const LOWER: (f64, f64) = (306.0, 500.0);
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/// How a series is stroked; one table so the legend swatch always matches the line.
struct Style {
    class: &'static str,
    label: &'static str,
    stroke: &'static str,
    width: f64,
    dash: Option<&'static str>,
}

const OBSERVED: Style = Style {
    class: "observed",
    label: "observed",
    stroke: "#9e9e9e",
    width: 1.0,
    dash: None,
};
const STABLE: Style = Style {
    class: "stable",
    label: "stable average",
    stroke: "#1f77b4",
    width: 2.0,
    dash: None,
};
const PANIC_AVERAGE: Style = Style {
    class: "panic-average",
    label: "panic average",
    stroke: "#ff7f0e",
    width: 1.5,
    dash: Some("6 4"),
};
const DESIRED: Style = Style {
    class: "desired",
    label: "desired",
    stroke: "#7b3fa0",
    width: 1.5,
    dash: Some("5 3"),
};
const REPLICAS: Style = Style {
    class: "replicas",
    label: "replicas",
    stroke: "#1b5e20",
    width: 3.5,
    dash: None,
};
const READY: Style = Style {
    class: "ready",
    label: "ready",
    stroke: "#81c784",
    width: 1.5,
    dash: None,
};
const PANIC_FILL: &str = r##"fill="#d62728" fill-opacity="0.15""##;

/// Renders the run as an SVG document. `title` is shown at the top; `metric` is the y-axis
/// label of the upper panel ("concurrency" or "requests per second").
pub fn render(title: &str, metric: &str, points: &[Point]) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" font-size="12" fill="#333">"##,
        w = WIDTH,
        h = HEIGHT
    );
    let _ = writeln!(svg, "<title>{}</title>", escape(title));
    let _ = writeln!(
        svg,
        r##"<rect class="background" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text class="title" x="{LEFT}" y="30" font-size="16" font-weight="600">{}</text>"#,
        escape(title)
    );

    // A point without a time cannot be placed; the rest are drawn in time order whatever
    // order the caller kept them in (the sort is stable, so equal times keep theirs).
    let mut points: Vec<&Point> = points.iter().filter(|p| p.at.is_finite()).collect();
    points.sort_by(|a, b| a.at.total_cmp(&b.at));
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        let _ = writeln!(
            svg,
            r##"<text class="note" x="{}" y="{}" text-anchor="middle" font-size="14" fill="#777">no decisions</text>"##,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        svg.push_str("</svg>\n");
        return svg;
    };

    // Time starts at 0 (the run's start) unless a point predates it, and spans at least a
    // second so a single point does not divide by zero.
    let t0 = first.at.min(0.0);
    let t1 = last.at.max(t0 + 1.0);
    let x = Scale::new((t0, t1), (LEFT, RIGHT));

    let load_max = points
        .iter()
        .flat_map(|p| [p.observed, p.stable, p.panic_value])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let (load_step, load_top) = value_axis(load_max);
    let y_load = Scale::new((0.0, load_top), (UPPER.1, UPPER.0));

    let count_max = points
        .iter()
        .flat_map(|p| [p.desired, p.replicas, p.ready])
        .max()
        .unwrap_or(0);
    let (count_step, count_top) = count_axis(count_max);
    let y_count = Scale::new((0.0, count_top), (LOWER.1, LOWER.0));

    legend(&mut svg);
    grid(
        &mut svg,
        x,
        (t0, t1),
        (y_load, load_step),
        (y_count, count_step),
    );
    axis_labels(&mut svg, metric);

    // Bands first, so the lines stay readable on top of them.
    svg.push_str("<g class=\"panic-periods\">\n");
    for (from, to) in panic_runs(&points, t1) {
        let _ = writeln!(
            svg,
            r#"<rect class="panic" x="{}" y="{}" width="{}" height="{}" {PANIC_FILL}/>"#,
            num(x.map(from)),
            num(UPPER.0),
            num(x.map(to) - x.map(from)),
            num(LOWER.1 - UPPER.0)
        );
    }
    svg.push_str("</g>\n");

    let load = |value: fn(&Point) -> Option<f64>| {
        line_path(points.iter().map(|p| {
            value(p)
                .filter(|v| v.is_finite())
                .map(|v| (x.map(p.at), y_load.map(v)))
        }))
    };
    series(&mut svg, &OBSERVED, &load(|p| p.observed));
    series(&mut svg, &STABLE, &load(|p| p.stable));
    series(&mut svg, &PANIC_AVERAGE, &load(|p| p.panic_value));

    // Replicas under ready under desired: when all three agree (the steady state) the thick
    // dark line shows a light core and the dashes on top, so none hides another.
    let count = |value: fn(&Point) -> Option<i32>| {
        step_path(
            points
                .iter()
                .map(|p| (x.map(p.at), value(p).map(|v| y_count.map(f64::from(v))))),
            x.map(t1),
        )
    };
    series(&mut svg, &REPLICAS, &count(|p| Some(p.replicas.max(0))));
    series(&mut svg, &READY, &count(|p| Some(p.ready.max(0))));
    series(
        &mut svg,
        &DESIRED,
        &count(|p| (p.desired >= 0).then_some(p.desired)),
    );

    svg.push_str("</svg>\n");
    svg
}

/// Linear map from a data interval onto a pixel interval; callers keep the data interval
/// non-empty, which is why the time axis spans at least a second and value axes reach 1.
#[derive(Debug, Clone, Copy)]
struct Scale {
    domain: (f64, f64),
    range: (f64, f64),
}

impl Scale {
    fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        Scale { domain, range }
    }

    fn map(self, v: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        r0 + (v - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `raw` (> 0): tick steps a
/// reader can add up in their head.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let factor = [1.0, 2.0, 5.0]
        .into_iter()
        .find(|&f| fraction <= f * (1.0 + 1e-9))
        .unwrap_or(10.0);
    factor * magnitude
}

/// (tick step, top) of a value axis from 0: about five intervals, top a whole number of steps
/// at or above `max`, and at least 1 so an idle run still has an axis.
fn value_axis(max: f64) -> (f64, f64) {
    let max = max.max(1.0);
    let step = nice_step(max / 5.0);
    (step, (max / step - 1e-9).ceil() * step)
}

/// Like [`value_axis`] for replica counts, whose ticks must be whole replicas.
fn count_axis(max: i32) -> (f64, f64) {
    let max = f64::from(max.max(1));
    let step = nice_step(max / 5.0).max(1.0);
    (step, (max / step - 1e-9).ceil() * step)
}

/// Step between time ticks, in seconds: the first step from the usual clock divisions that
/// keeps the axis at 10 ticks or fewer; past an hour, whole hours in 1-2-5 steps.
fn time_step(span: f64) -> f64 {
    const STEPS: [f64; 13] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ];
    STEPS
        .into_iter()
        .find(|&s| span / s <= 9.0)
        .unwrap_or_else(|| 3600.0 * nice_step(span / 9.0 / 3600.0))
}

/// Multiples of `step` within `[from, to]`, computed by index so they do not drift.
fn ticks(from: f64, to: f64, step: f64) -> Vec<f64> {
    let first = (from / step - 1e-9).ceil();
    let last = (to / step + 1e-9).floor();
    let count = (last - first + 1.0).max(0.0) as usize;
    (0..count).map(|i| (first + i as f64) * step).collect()
}

/// Whole seconds as Go's `time.Duration` prints them (`0s`, `45s`, `1m0s`, `1h0m0s`), the form
/// the rest of gantry and Knative's own logs use.
fn go_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, _) => format!("{sign}{m}m{s}s"),
        _ => format!("{sign}{h}h{m}m{s}s"),
    }
}

/// A number with at most two decimals and no trailing zeros (`12`, `3.5`, `0.33`), so the
/// output is deterministic and diffs stay small. Never `NaN`: a non-finite value (which the
/// callers already skip) is written as 0.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_string();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Text made safe for element content and attribute values. Control characters XML forbids
/// are dropped rather than left to make the whole document unreadable.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Path data joining the defined points with straight lines. `None` lifts the pen, so a
/// second without data shows as a gap instead of a line across it; a lone point gets a
/// zero-length stroke that the round caps turn into a dot.
fn line_path(points: impl IntoIterator<Item = Option<(f64, f64)>>) -> String {
    let mut d = String::new();
    let mut run = 0;
    for point in points {
        match point {
            Some((x, y)) if run > 0 => {
                let _ = write!(d, " L{},{}", num(x), num(y));
                run += 1;
            }
            Some((x, y)) => {
                let sep = if d.is_empty() { "" } else { " " };
                let _ = write!(d, "{sep}M{},{}", num(x), num(y));
                run = 1;
            }
            None => {
                if run == 1 {
                    d.push_str(" h0");
                }
                run = 0;
            }
        }
    }
    if run == 1 {
        d.push_str(" h0");
    }
    d
}

/// Path data for a count that holds its value until the next point: horizontal to the next
/// point's x, then vertical to its value. `None` ends the line at that point's x; the last
/// value holds to `end_x`, the right edge of the time axis.
fn step_path(points: impl IntoIterator<Item = (f64, Option<f64>)>, end_x: f64) -> String {
    let mut d = String::new();
    let mut current: Option<f64> = None;
    for (x, y) in points {
        match (current, y) {
            (None, Some(y)) => {
                let sep = if d.is_empty() { "" } else { " " };
                let _ = write!(d, "{sep}M{},{}", num(x), num(y));
            }
            (Some(held), Some(y)) if held != y => {
                let _ = write!(d, " H{} V{}", num(x), num(y));
            }
            (Some(_), None) => {
                let _ = write!(d, " H{}", num(x));
            }
            _ => {}
        }
        current = y;
    }
    if current.is_some() {
        let _ = write!(d, " H{}", num(end_x));
    }
    d
}

/// (from, to) times of every maximal run of panicking points: from the run's first point to
/// the point after it, or to `end` (the time axis' end) when the run lasts to the last point.
fn panic_runs(points: &[&Point], end: f64) -> Vec<(f64, f64)> {
    let mut runs = Vec::new();
    let mut start = None;
    for point in points {
        match (start, point.panic) {
            (None, true) => start = Some(point.at),
            (Some(from), false) => {
                runs.push((from, point.at));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        runs.push((from, end));
    }
    runs
}

/// Stroke attributes of a style.
fn stroke(style: &Style) -> String {
    let mut attrs = format!(
        r#"fill="none" stroke="{}" stroke-width="{}""#,
        style.stroke,
        num(style.width)
    );
    if let Some(dash) = style.dash {
        let _ = write!(attrs, r#" stroke-dasharray="{dash}""#);
    }
    attrs
}

/// One series line; nothing at all when the series has no drawable point.
fn series(svg: &mut String, style: &Style, d: &str) {
    if d.is_empty() {
        return;
    }
    let _ = writeln!(
        svg,
        r#"<path class="series {}" d="{d}" {} stroke-linecap="round" stroke-linejoin="round"/>"#,
        style.class,
        stroke(style)
    );
}

/// One row under the title naming every series and the panic band, each behind a swatch
/// drawn exactly like the thing it names.
fn legend(svg: &mut String) {
    svg.push_str("<g class=\"legend\">\n");
    let y = 50.0;
    let mut x = LEFT;
    for style in [
        &OBSERVED,
        &STABLE,
        &PANIC_AVERAGE,
        &DESIRED,
        &REPLICAS,
        &READY,
    ] {
        let _ = writeln!(
            svg,
            r#"<line class="legend-swatch {}" x1="{}" y1="{y}" x2="{}" y2="{y}" {}/>"#,
            style.class,
            num(x),
            num(x + 24.0),
            stroke(style)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{y}" dy="0.35em">{}</text>"#,
            num(x + 30.0),
            style.label
        );
        x += 30.0 + label_width(style.label) + 18.0;
    }
    let _ = writeln!(
        svg,
        r#"<rect class="legend-swatch panic-band" x="{}" y="{}" width="24" height="12" {PANIC_FILL}/>"#,
        num(x),
        num(y - 6.0)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{y}" dy="0.35em">panic</text>"#,
        num(x + 30.0)
    );
    svg.push_str("</g>\n");
}

/// Rough width of a 12px label, enough to space the legend without measuring text.
fn label_width(label: &str) -> f64 {
    label.chars().count() as f64 * 6.5
}

/// Panel frames, grid lines and tick labels: vertical lines at the time ticks through both
/// panels (labelled once, under the lower one) and horizontal lines at each panel's value
/// ticks.
fn grid(
    svg: &mut String,
    x: Scale,
    (t0, t1): (f64, f64),
    (y_load, load_step): (Scale, f64),
    (y_count, count_step): (Scale, f64),
) {
    svg.push_str("<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    let time_ticks = ticks(t0, t1, time_step(t1 - t0));
    for &t in &time_ticks {
        let px = num(x.map(t));
        for (top, bottom) in [UPPER, LOWER] {
            let _ = writeln!(
                svg,
                r#"<line x1="{px}" y1="{}" x2="{px}" y2="{}"/>"#,
                num(top),
                num(bottom)
            );
        }
    }
    let value_ticks = |scale: Scale, step: f64| ticks(scale.domain.0, scale.domain.1, step);
    let panels = [(y_load, load_step), (y_count, count_step)];
    for &(scale, step) in &panels {
        for v in value_ticks(scale, step) {
            let py = num(scale.map(v));
            let _ = writeln!(
                svg,
                r#"<line x1="{LEFT}" y1="{py}" x2="{RIGHT}" y2="{py}"/>"#
            );
        }
    }
    svg.push_str("</g>\n");

    svg.push_str("<g class=\"axes\" fill=\"none\" stroke=\"#999\" stroke-width=\"1\">\n");
    for (top, bottom) in [UPPER, LOWER] {
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{}" width="{}" height="{}"/>"#,
            num(top),
            num(RIGHT - LEFT),
            num(bottom - top)
        );
    }
    svg.push_str("</g>\n");

    svg.push_str("<g class=\"tick-labels\" fill=\"#555\" font-size=\"11\">\n");
    for &t in &time_ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            num(x.map(t)),
            num(LOWER.1 + 16.0),
            go_duration(t.round() as i64)
        );
    }
    for &(scale, step) in &panels {
        for v in value_ticks(scale, step) {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" dy="0.35em" text-anchor="end">{}</text>"#,
                num(LEFT - 6.0),
                num(scale.map(v)),
                num(v)
            );
        }
    }
    svg.push_str("</g>\n");
}

/// Axis names: the metric beside the upper panel, "replicas" beside the lower one, "time"
/// under the shared axis.
fn axis_labels(svg: &mut String, metric: &str) {
    for (class, label, (top, bottom)) in [
        ("y-label load", escape(metric), UPPER),
        ("y-label count", "replicas".to_string(), LOWER),
    ] {
        let _ = writeln!(
            svg,
            r#"<text class="{class}" transform="rotate(-90)" x="{}" y="18" text-anchor="middle">{label}</text>"#,
            num(-(top + bottom) / 2.0)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text class="x-label" x="{}" y="{}" text-anchor="middle">time</text>"#,
        num((LEFT + RIGHT) / 2.0),
        num(LOWER.1 + 40.0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: f64, observed: f64, desired: i32, replicas: i32, panic: bool) -> Point {
        Point {
            at,
            observed: Some(observed),
            stable: Some(observed),
            panic_value: Some(observed),
            desired,
            replicas,
            ready: replicas,
            panic,
        }
    }

    /// Checks the document is one `<svg>` element whose tags all nest and close.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            let end = after.find('>').expect("a tag is never left open");
            let tag = &after[..end];
            rest = &after[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name.trim()), "mismatched close of {name}");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().expect("a tag has a name"));
            }
            if open.is_empty() {
                assert!(rest.trim().is_empty(), "content after </svg>: {rest}");
            }
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
    }

    /// Every tag carrying exactly `class="{class}"`.
    fn elements<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let needle = format!(r#"class="{class}""#);
        svg.split('<')
            .filter(|tag| tag.contains(&needle))
            .map(|tag| tag.split('>').next().unwrap())
            .collect()
    }

    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let needle = format!(r#" {name}=""#);
        let start = tag
            .find(&needle)
            .unwrap_or_else(|| panic!("{name} in {tag}"))
            + needle.len();
        &tag[start..start + tag[start..].find('"').unwrap()]
    }

    fn x_at(at: f64, end: f64) -> f64 {
        LEFT + at / end * (RIGHT - LEFT)
    }

    fn y_count(count: f64, top: f64) -> f64 {
        LOWER.1 - count / top * (LOWER.1 - LOWER.0)
    }

    #[test]
    fn a_run_is_one_well_formed_svg_with_every_series_and_a_legend() {
        let points: Vec<Point> = (0..=60)
            .map(|s| point(f64::from(s), f64::from(s % 7), s / 10, s / 10, s > 40))
            .collect();
        let svg = render("ramp", "concurrency", &points);
        assert_well_formed(&svg);
        assert!(svg.ends_with("</svg>\n"));
        for class in [
            "observed",
            "stable",
            "panic-average",
            "desired",
            "replicas",
            "ready",
        ] {
            assert_eq!(
                elements(&svg, &format!("series {class}")).len(),
                1,
                "{class}"
            );
        }
        for label in [
            ">observed<",
            ">stable average<",
            ">panic average<",
            ">desired<",
            ">replicas<",
            ">ready<",
            ">panic<",
            ">concurrency<",
        ] {
            assert!(svg.contains(label), "{label}");
        }
        assert_eq!(svg, render("ramp", "concurrency", &points), "deterministic");
    }

    #[test]
    fn two_panic_periods_draw_two_bands_on_the_time_scale() {
        let points: Vec<Point> = (0..=10)
            .map(|s| point(f64::from(s), 1.0, 1, 1, matches!(s, 2 | 3 | 7)))
            .collect();
        let svg = render("t", "concurrency", &points);
        let bands = elements(&svg, "panic");
        assert_eq!(bands.len(), 2, "{svg}");
        // [2s, 4s): the run's first point to the point after it; [7s, 8s) likewise.
        for (band, (from, to)) in bands.iter().zip([(2.0, 4.0), (7.0, 8.0)]) {
            let x: f64 = attr(band, "x").parse().unwrap();
            let width: f64 = attr(band, "width").parse().unwrap();
            assert!((x - x_at(from, 10.0)).abs() < 0.01, "{band}");
            assert!(
                (width - (x_at(to, 10.0) - x_at(from, 10.0))).abs() < 0.02,
                "{band}"
            );
            assert_eq!(attr(band, "y"), num(UPPER.0), "spans both panels");
            assert_eq!(attr(band, "height"), num(LOWER.1 - UPPER.0));
        }
    }

    #[test]
    fn a_panic_period_lasting_to_the_end_stops_at_the_last_point() {
        let points: Vec<Point> = (0..=4)
            .map(|s| point(f64::from(s * 5), 1.0, 1, 1, s >= 3))
            .collect();
        let svg = render("t", "concurrency", &points);
        let bands = elements(&svg, "panic");
        assert_eq!(bands.len(), 1);
        assert_eq!(attr(bands[0], "x"), num(x_at(15.0, 20.0)));
        assert_eq!(attr(bands[0], "width"), num(RIGHT - x_at(15.0, 20.0)));
    }

    #[test]
    fn replicas_step_horizontally_then_vertically_where_they_change() {
        let points = [
            point(0.0, 1.0, 1, 1, false),
            point(2.0, 1.0, 3, 3, false),
            point(4.0, 1.0, 3, 3, false),
        ];
        let svg = render("t", "concurrency", &points);
        let path = elements(&svg, "series replicas");
        let d = attr(path[0], "d");
        let expected = format!(
            "M{},{} H{} V{} H{}",
            num(LEFT),
            num(y_count(1.0, 3.0)),
            num(x_at(2.0, 4.0)),
            num(y_count(3.0, 3.0)),
            num(RIGHT)
        );
        assert_eq!(d, expected);
    }

    #[test]
    fn the_title_and_metric_are_escaped() {
        let svg = render(r#"a<b & "c">"#, "<rps>", &[point(0.0, 1.0, 1, 1, false)]);
        assert_well_formed(&svg);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;&gt;"), "{svg}");
        assert!(svg.contains("&lt;rps&gt;"));
        assert!(!svg.contains("<b") && !svg.contains("<rps"));
    }

    #[test]
    fn non_finite_values_are_skipped_not_written() {
        let mut points: Vec<Point> = (0..5)
            .map(|s| point(f64::from(s), 2.0, 1, 1, false))
            .collect();
        points[1].observed = Some(f64::NAN);
        points[2].stable = Some(f64::INFINITY);
        points[3].panic_value = Some(f64::NEG_INFINITY);
        points.push(Point {
            at: f64::NAN,
            ..point(0.0, 1.0, 1, 1, true)
        });
        let svg = render("t", "concurrency", &points);
        assert_well_formed(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        // The gap lifts the pen: the observed line restarts after the NaN second.
        let observed = attr(elements(&svg, "series observed")[0], "d");
        assert_eq!(observed.matches('M').count(), 2, "{observed}");
        // The finite values still set the axis: 2 is the largest, so it is the top.
        assert!(svg.contains(">2</text>"));
        assert!(
            elements(&svg, "panic").is_empty(),
            "the NaN-time point is dropped"
        );
    }

    #[test]
    fn no_points_still_render_a_titled_document() {
        let svg = render("idle", "concurrency", &[]);
        assert_well_formed(&svg);
        assert!(svg.contains(">idle<"));
        assert!(svg.contains("no decisions"));
        assert!(!svg.contains("class=\"series"));
    }

    #[test]
    fn a_single_point_spans_one_second() {
        let svg = render("one", "concurrency", &[point(0.0, 0.0, 0, 0, true)]);
        assert_well_formed(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let d = attr(elements(&svg, "series replicas")[0], "d");
        assert_eq!(
            d,
            format!("M{},{} H{}", num(LEFT), num(LOWER.1), num(RIGHT))
        );
        assert_eq!(attr(elements(&svg, "panic")[0], "width"), num(RIGHT - LEFT));
        assert!(svg.contains(">1s<"));
    }

    #[test]
    fn a_five_minute_run_labels_minutes_go_style() {
        let points = [point(0.0, 1.0, 1, 1, false), point(300.0, 1.0, 1, 1, false)];
        let svg = render("t", "concurrency", &points);
        for label in [">0s<", ">1m0s<", ">2m0s<", ">5m0s<"] {
            assert!(svg.contains(label), "{label}");
        }
        let labels = svg.matches("text-anchor=\"middle\">").count();
        assert!((5..=12).contains(&labels), "{labels}");
    }

    #[test]
    fn desired_is_not_drawn_before_the_first_decision() {
        let mut points: Vec<Point> = (0..4)
            .map(|s| point(f64::from(s), 1.0, -1, 1, false))
            .collect();
        let svg = render("t", "concurrency", &points);
        assert!(elements(&svg, "series desired").is_empty());
        assert!(!elements(&svg, "series replicas").is_empty());

        points[2].desired = 2;
        points[3].desired = 2;
        let svg = render("t", "concurrency", &points);
        let d = attr(elements(&svg, "series desired")[0], "d");
        assert_eq!(
            d,
            format!("M{},{} H{}", num(x_at(2.0, 3.0)), num(LOWER.0), num(RIGHT))
        );
    }

    #[test]
    fn helpers_pick_readable_numbers() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(150), "2m30s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(num(1.0 / 3.0), "0.33");
        assert_eq!(num(2.50), "2.5");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(value_axis(0.0), (0.2, 1.0));
        assert_eq!(value_axis(7.3), (2.0, 8.0));
        assert_eq!(count_axis(3), (1.0, 3.0));
        assert_eq!(count_axis(7), (2.0, 8.0));
        assert_eq!(time_step(300.0), 60.0);
        assert_eq!(time_step(1.0), 1.0);
        assert_eq!(time_step(90.0), 10.0);
        assert_eq!(ticks(0.0, 1.0, 0.2).len(), 6);
        assert_eq!(
            line_path([Some((1.0, 2.0)), None, Some((3.0, 4.0)), Some((5.0, 6.0))]),
            "M1,2 h0 M3,4 L5,6"
        );
    }
}

//! `gantry simulate FILE`: what the autoscaler would do, decision by decision.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::autoscaler::simulate;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario: settings, optional decider parameters, and steps of load over time
    /// (format: docs/autoscaling.md).
    file: PathBuf,
    /// Also draw the run into this SVG file: load, stable and panic averages, desired, ready
    /// and scaled replicas, and panic periods.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// The chart's title (default: the scenario's file name).
    #[arg(long)]
    title: Option<String>,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {name}"))?;
    let plan = match simulate::parse(&text, &name).and_then(|s| s.plan(&name)) {
        Ok(plan) => plan,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let decisions = plan.run();
    let mut out = std::io::stdout().lock();
    out.write_all(simulate::json_lines(&decisions).as_bytes())?;
    if let Some(path) = &args.svg {
        let title = args.title.unwrap_or_else(|| {
            args.file
                .file_name()
                .map_or(name.clone(), |n| n.to_string_lossy().into_owned())
        });
        let chart = simulate::chart(&title, plan.decider.metric, &decisions);
        std::fs::write(path, chart).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

//! The command line: one file per command. `main.rs` parses and calls [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod config;
mod get;
mod gpus;
mod logs;
mod serve;
mod simulate;
mod validate;

#[derive(Debug, Parser)]
#[command(
    name = "gantry",
    version,
    about = "KServe + Knative Serving for one GPU machine: serves a folder of InferenceService YAML",
    long_about = "gantry watches a folder of KServe InferenceService YAML (the files you would \
                  `kubectl apply` to a KServe cluster), validates and normalises them exactly as \
                  KServe and Knative would, and runs each one as supervised Docker containers with \
                  Knative-style revisions.\n\n\
                  Start the daemon with `gantry serve --dir DIR`, then ask it with `gantry get isvc`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch a folder and serve the management API.
    Serve(serve::ServeArgs),
    /// List InferenceServices (`gantry get isvc [NAME]`) or the daemon's GPUs (`gantry get gpus`).
    Get(get::GetArgs),
    /// Show one InferenceService in detail (`gantry describe isvc NAME`).
    Describe(get::DescribeArgs),
    /// Print a service's container output (`gantry logs NAME [-f]`).
    Logs(logs::LogsArgs),
    /// Check files or folders offline, as the daemon would: `path:line:col: error: message`.
    /// Exits 0 when every document is valid, 1 otherwise.
    Validate(validate::ValidateArgs),
    /// The daemon's configuration.
    Config(config::ConfigArgs),
    /// The GPUs NVML (or `--gpus-file`) reports, with their classes; needs no daemon.
    Gpus(gpus::GpusArgs),
    /// What the autoscaler would decide for a scenario of load over time: one JSON line per
    /// decision (`--svg` also draws it). Needs no daemon.
    Simulate(simulate::SimulateArgs),
}

/// `-o` for commands that print objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Yaml,
}

/// Where the management API is, for the client commands.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The daemon's management API address.
    #[arg(long, env = "GANTRY_API", default_value = "127.0.0.1:8081")]
    pub api: SocketAddr,
}

/// The resource argument of `get` / `describe`: kubectl's names for InferenceServices, and
/// the machine's GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Resource {
    #[value(name = "isvc", alias = "inferenceservice", alias = "inferenceservices")]
    Isvc,
    /// The GPUs the daemon sees, with the replica holding each (`get` only).
    #[value(name = "gpus", alias = "gpu")]
    Gpus,
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Get(args) => get::run_get(args),
        Command::Describe(args) => get::run_describe(args),
        Command::Logs(args) => logs::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Config(args) => config::run(args),
        Command::Gpus(args) => gpus::run(args),
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Config-file location shared by the commands that read it.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFileArgs {
    /// The daemon's YAML config file (`gantry config defaults` prints one with every setting).
    #[arg(long, env = "GANTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

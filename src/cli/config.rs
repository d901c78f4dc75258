//! `gantry config defaults`: the configuration file with every setting and its default.

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the default configuration, every setting documented; save it and edit it.
    Defaults,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConfigCommand::Defaults => print!("{}", crate::config::defaults_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}

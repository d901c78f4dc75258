//! `gantry logs NAME [-f]`: a service's container output, per revision and replica.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::ApiArgs;
use crate::api::ApiError;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The InferenceService.
    name: String,
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Only this revision (`<name>-predictor-00002`).
    #[arg(long)]
    revision: Option<String>,
    /// Only this replica index.
    #[arg(long)]
    replica: Option<u32>,
    /// Keep printing new output.
    #[arg(short, long)]
    follow: bool,
    /// Lines of past output per replica.
    #[arg(long, default_value_t = 100)]
    tail: usize,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let mut url = format!(
        "http://{}/api/v1/namespaces/{}/inferenceservices/{}/logs?tail={}&follow={}",
        args.api.api, args.namespace, args.name, args.tail, args.follow
    );
    if let Some(r) = &args.revision {
        url.push_str(&format!("&revision={r}"));
    }
    if let Some(n) = args.replica {
        url.push_str(&format!("&replica={n}"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut response = reqwest::get(&url).await.with_context(|| {
            format!(
                "cannot reach the gantry daemon at {} (is `gantry serve` running?)",
                args.api.api
            )
        })?;
        if !response.status().is_success() {
            let body = response.bytes().await?;
            let message = serde_json::from_slice::<ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            bail!("{message}");
        }
        let mut out = std::io::stdout();
        while let Some(chunk) = response.chunk().await? {
            out.write_all(&chunk)?;
            out.flush()?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

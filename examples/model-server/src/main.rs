//! `gantry-model-server`: reads its settings, loads the model, waits the start-up delay,
//! listens, and serves until SIGTERM or SIGINT, then drains and exits 0.
//!
//! Exit codes: 0 after a clean shutdown, 1 when the model or the port cannot be had, 2 for a
//! wrong command line.

use std::process::ExitCode;

use gantry_model_server::model::Model;
use gantry_model_server::server::{self, App, Behaviour};
use gantry_model_server::settings::{self, Command, Settings};

const NAME: &str = "gantry-model-server";

fn main() -> ExitCode {
    let settings = match settings::parse(std::env::args().skip(1), |name| std::env::var(name).ok())
    {
        Ok(Command::Serve(settings)) => settings,
        Ok(Command::Help) => {
            println!("{}", settings::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("{NAME}: {error}");
            return ExitCode::from(2);
        }
    };
    let model = match Model::load(&settings.model_dir) {
        Ok(model) => model,
        Err(error) => {
            eprintln!("{NAME}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{NAME}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings, model)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{NAME}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, model: Model) -> Result<(), String> {
    // Signals are caught from the start, so a stop during the start-up delay is clean too.
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let stop = async {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    };
    tokio::pin!(stop);

    tokio::select! {
        () = tokio::time::sleep(settings.startup_delay) => {}
        signal = &mut stop => {
            eprintln!("{NAME}: {signal} during the start-up delay; exiting");
            return Ok(());
        }
    }
    let listener = server::bind(&settings.host, settings.http_port)
        .await
        .map_err(|error| {
            format!(
                "cannot listen on {}:{}: {error}",
                settings.host, settings.http_port
            )
        })?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the listening address: {error}"))?;
    eprintln!(
        "{NAME} {}: serving model {:?} ({} classes: {}) from {} on http://{address} \
         (version {}, latency {}, start-up delay {}, streaming {})",
        env!("CARGO_PKG_VERSION"),
        settings.model_name,
        model.classes.len(),
        model.classes.join(", "),
        model.path.display(),
        settings.version.as_deref().unwrap_or("unset"),
        Seconds(settings.latency),
        Seconds(settings.startup_delay),
        if settings.stream { "on" } else { "off" },
    );
    let app = App::new(
        Behaviour {
            model_name: settings.model_name,
            version: settings.version,
            latency: settings.latency,
            stream: settings.stream,
        },
        model,
    );
    let drain = async {
        let signal = stop.await;
        let in_flight = app.stats().in_flight;
        eprintln!(
            "{NAME}: {signal}: no longer accepting; finishing {in_flight} in-flight requests"
        );
    };
    server::serve(listener, app.clone(), drain)
        .await
        .map_err(|error| format!("serving failed: {error}"))?;
    eprintln!(
        "{NAME}: stopped after {} inference requests",
        app.stats().requests
    );
    Ok(())
}

/// A duration as people write it: `0s`, `250ms`, `1.5s`.
struct Seconds(std::time::Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_zero() {
            f.write_str("0s")
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|error| format!("cannot handle signals: {error}"))
}

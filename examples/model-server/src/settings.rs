//! Command-line flags and the environment variables behind them.
//!
//! Flags accept `--flag value` and `--flag=value`, and `_` for `-` (`--model_name`), because
//! KServe's runtimes pass `--model_name=<name>` and `--http_port=<port>`. A flag wins over its
//! environment variable, which wins over the default.

use std::path::PathBuf;
use std::time::Duration;

use crate::duration;

/// Everything the server is told at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model_name: String,
    pub host: String,
    pub http_port: u16,
    pub model_dir: PathBuf,
    pub startup_delay: Duration,
    pub latency: Duration,
    pub version: Option<String>,
    pub stream: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Serve(Settings),
    Help,
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_HOST: &str = "0.0.0.0";
pub const DEFAULT_MODEL_DIR: &str = "/mnt/models";

pub const USAGE: &str = "\
Usage: gantry-model-server --model-name NAME [options]

Serves the classifier in MODEL_DIR/model.json over KServe's V1 and V2 (Open Inference
Protocol) REST APIs. Every flag also takes the form --flag=value, and `_` for `-`.

Options (environment variable in brackets):
  --model-name NAME         the name the model answers to; required [MODEL_NAME]
  --http-port PORT          port to listen on; 0 picks a free one [PORT, default 8080]
  --host ADDRESS            address to listen on [HOST, default 0.0.0.0]
  --model-dir PATH          directory holding model.json, or the file itself
                            [MODEL_DIR, default /mnt/models]
  --startup-delay DURATION  wait this long before listening, as if loading a big model
                            [STARTUP_DELAY, default 0s]
  --latency DURATION        added to every :predict and /infer request; between events
                            when streaming [LATENCY, default 0s]
  --version STRING          echoed as header x-model-version and as model_version in V2
                            bodies, to tell revisions apart [MODEL_VERSION]
  --stream[=BOOL]           answer :predict with Server-Sent Events, one per instance,
                            when the request accepts text/event-stream [STREAM]
  -h, --help                print this help

Durations are a number and a unit (ns, us, ms, s, m, h), like 250ms, 2s or 1m30s; a bare
number counts seconds.";

/// Reads the command line (without the program name) and the environment (`env` looks a
/// variable up). Errors say which flag or variable is wrong and what was expected.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let mut model_name = None;
    let mut host = None;
    let mut http_port = None;
    let mut model_dir = None;
    let mut startup_delay = None;
    let mut latency = None;
    let mut version = None;
    let mut stream = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}; flags start with --"));
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((name, value)) => (name.replace('_', "-"), Some(value.to_owned())),
            None => (flag.replace('_', "-"), None),
        };
        if name == "stream" {
            stream = Some(boolean(&arg, inline_value.as_deref().unwrap_or("true"))?);
            continue;
        }
        let slot = match name.as_str() {
            "model-name" => &mut model_name,
            "host" => &mut host,
            "http-port" => &mut http_port,
            "model-dir" => &mut model_dir,
            "startup-delay" => &mut startup_delay,
            "latency" => &mut latency,
            "version" => &mut version,
            _ => return Err(format!("unknown flag --{name}; see --help")),
        };
        let value = match inline_value {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("flag --{name} expects a value"))?,
        };
        *slot = Some((format!("--{name}"), value));
    }

    let from_env = |name: &str| env(name).map(|value| (name.to_owned(), value));
    let model_name = model_name.or_else(|| from_env("MODEL_NAME"));
    let model_name = match model_name {
        Some((_, name)) if !name.is_empty() => name,
        Some((source, _)) => return Err(format!("{source} must not be empty")),
        None => return Err("the model name is required: pass --model-name NAME".to_owned()),
    };
    let host = host
        .or_else(|| from_env("HOST"))
        .map_or(DEFAULT_HOST.to_owned(), |(_, host)| host);
    let http_port = match http_port.or_else(|| from_env("PORT")) {
        Some((source, port)) => port.parse().map_err(|_| {
            format!("{source}: expected a port number (0 to 65535), found {port:?}")
        })?,
        None => DEFAULT_PORT,
    };
    let model_dir = model_dir
        .or_else(|| from_env("MODEL_DIR"))
        .map_or(PathBuf::from(DEFAULT_MODEL_DIR), |(_, dir)| dir.into());
    let duration_of = |value: Option<(String, String)>| match value {
        Some((source, text)) => {
            duration::parse(&text).map_err(|error| format!("{source}: {error}"))
        }
        None => Ok(Duration::ZERO),
    };
    let startup_delay = duration_of(startup_delay.or_else(|| from_env("STARTUP_DELAY")))?;
    let latency = duration_of(latency.or_else(|| from_env("LATENCY")))?;
    let version = match version.or_else(|| from_env("MODEL_VERSION")) {
        // It travels in a header: printable ASCII only.
        Some((source, version)) if !version.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) => {
            return Err(format!(
                "{source}: expected printable ASCII (it is sent as header x-model-version), found {version:?}"
            ))
        }
        Some((_, version)) if !version.is_empty() => Some(version),
        _ => None,
    };
    let stream = match stream {
        Some(stream) => stream,
        None => match env("STREAM") {
            Some(value) => boolean("STREAM", &value)?,
            None => false,
        },
    };
    Ok(Command::Serve(Settings {
        model_name,
        host,
        http_port,
        model_dir,
        startup_delay,
        latency,
        version,
        stream,
    }))
}

fn boolean(source: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{source}: expected true or false, found {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match parse(args.iter().map(|a| a.to_string()), lookup)? {
            Command::Serve(settings) => Ok(settings),
            Command::Help => Err("help".to_owned()),
        }
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        settings(args, env).unwrap_err()
    }

    #[test]
    fn defaults() {
        assert_eq!(
            settings(&["--model-name", "iris"], &[]).unwrap(),
            Settings {
                model_name: "iris".into(),
                host: "0.0.0.0".into(),
                http_port: 8080,
                model_dir: "/mnt/models".into(),
                startup_delay: Duration::ZERO,
                latency: Duration::ZERO,
                version: None,
                stream: false,
            }
        );
    }

    #[test]
    fn every_flag_in_both_spellings_and_forms() {
        let expected = Settings {
            model_name: "iris".into(),
            host: "127.0.0.1".into(),
            http_port: 9000,
            model_dir: "/models/iris".into(),
            startup_delay: Duration::from_secs(2),
            latency: Duration::from_millis(50),
            version: Some("v2".into()),
            stream: true,
        };
        let dashes = [
            "--model-name",
            "iris",
            "--host",
            "127.0.0.1",
            "--http-port",
            "9000",
            "--model-dir",
            "/models/iris",
            "--startup-delay",
            "2s",
            "--latency",
            "50ms",
            "--version",
            "v2",
            "--stream",
        ];
        assert_eq!(settings(&dashes, &[]).unwrap(), expected);
        let kserve = [
            "--model_name=iris",
            "--host=127.0.0.1",
            "--http_port=9000",
            "--model_dir=/models/iris",
            "--startup_delay=2s",
            "--latency=50ms",
            "--version=v2",
            "--stream=true",
        ];
        assert_eq!(settings(&kserve, &[]).unwrap(), expected);
    }

    #[test]
    fn environment_fills_in_and_flags_win() {
        let env = [
            ("MODEL_NAME", "from-env"),
            ("PORT", "9090"),
            ("HOST", "::"),
            ("MODEL_DIR", "/env/models"),
            ("STARTUP_DELAY", "1s"),
            ("LATENCY", "5ms"),
            ("MODEL_VERSION", "env-version"),
            ("STREAM", "1"),
        ];
        let from_env = settings(&[], &env).unwrap();
        assert_eq!(from_env.model_name, "from-env");
        assert_eq!(from_env.http_port, 9090);
        assert_eq!(from_env.host, "::");
        assert_eq!(from_env.model_dir, PathBuf::from("/env/models"));
        assert_eq!(from_env.startup_delay, Duration::from_secs(1));
        assert_eq!(from_env.latency, Duration::from_millis(5));
        assert_eq!(from_env.version.as_deref(), Some("env-version"));
        assert!(from_env.stream);

        let flags = settings(
            &[
                "--model-name=iris",
                "--http-port=1234",
                "--stream=false",
                "--latency=0",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(flags.model_name, "iris");
        assert_eq!(flags.http_port, 1234);
        assert!(!flags.stream);
        assert_eq!(flags.latency, Duration::ZERO);
    }

    #[test]
    fn errors_name_the_flag_and_what_was_expected() {
        assert!(error(&[], &[]).contains("--model-name NAME"));
        assert!(error(&["--model-name="], &[]).contains("--model-name must not be empty"));
        assert!(error(&["--model-name"], &[]).contains("--model-name expects a value"));
        assert!(error(&["--model-name=a", "--grpc-port=9000"], &[])
            .contains("unknown flag --grpc-port"));
        assert!(error(&["--model-name=a", "extra"], &[]).contains("unexpected argument \"extra\""));
        let port = error(&["--model-name=a", "--http-port=http"], &[]);
        assert!(
            port.contains("--http-port: expected a port number"),
            "{port}"
        );
        let port = error(&["--model-name=a"], &[("PORT", "70000")]);
        assert!(port.starts_with("PORT: expected a port number"), "{port}");
        let latency = error(&["--model-name=a", "--latency=fast"], &[]);
        assert!(
            latency.starts_with("--latency: invalid duration \"fast\""),
            "{latency}"
        );
        let version = error(&["--model-name=a", "--version=v\u{e9}"], &[]);
        assert!(
            version.starts_with("--version: expected printable ASCII"),
            "{version}"
        );
        let stream = error(&["--model-name=a"], &[("STREAM", "maybe")]);
        assert!(
            stream.starts_with("STREAM: expected true or false"),
            "{stream}"
        );
    }

    #[test]
    fn help() {
        let parsed = parse(["--model-name=a".to_owned(), "--help".to_owned()], |_| None);
        assert_eq!(parsed, Ok(Command::Help));
    }
}

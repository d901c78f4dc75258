//! `gantry validate PATH...`: offline validation for a user's own CI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::config::Config;
use crate::spec::catalog::{
    next_catalog, unreadable_file, Catalog, LoadOptions, ParseCache, ParsedFile,
};
use crate::spec::diagnostic::Diagnostic;
use crate::watch::{parse_scan, read_bounded, scan, FoundFile};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or folders (folders are read like the daemon reads its folder).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// `text` (default): `path:line:col: error: message` lines; `json`: one JSON document.
    #[arg(short, long, value_enum, default_value = "text")]
    output: Format,
    /// Report unknown fields as warnings instead of errors.
    #[arg(long)]
    allow_unknown_fields: bool,
    #[command(flatten)]
    config: super::ConfigFileArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    valid: bool,
    files: usize,
    services: usize,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<Diagnostic>,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.config.as_deref())?;
    let mut opts = LoadOptions {
        unknown_fields: config.unknown_fields,
        default_namespace: config.default_namespace.clone(),
        autoscaling: config.autoscaling.clone(),
    };
    if args.allow_unknown_fields {
        opts.unknown_fields = crate::spec::yaml::UnknownFields::Warn;
    }
    let (files, catalog) = load_paths(&args.paths, config.max_file_bytes, &opts);
    let diagnostics = catalog.all_diagnostics();
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let report = Report {
        valid: errors == 0,
        files,
        services: catalog.services.len(),
        errors,
        warnings: diagnostics.len() - errors,
        diagnostics,
    };
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => {
            for d in &report.diagnostics {
                println!("{d}");
            }
            eprintln!(
                "{} file{}, {} InferenceService{}: {} error{}, {} warning{}",
                report.files,
                plural(report.files),
                report.services,
                plural(report.services),
                report.errors,
                plural(report.errors),
                report.warnings,
                plural(report.warnings)
            );
        }
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Reads the named files and folders into one catalog, as one folder.
pub fn load_paths(
    paths: &[PathBuf],
    max_file_bytes: usize,
    opts: &LoadOptions,
) -> (usize, Catalog) {
    let mut cache = ParseCache::default();
    let mut parsed: Vec<Arc<ParsedFile>> = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = scan(path, max_file_bytes).unwrap_or_default();
            parsed.extend(parse_scan(found, &mut cache, opts));
        } else if path.exists() {
            let found = scan_one(path, max_file_bytes);
            parsed.extend(parse_scan(vec![found], &mut cache, opts));
        } else {
            let shown = path.display().to_string();
            parsed.push(Arc::new(unreadable_file(
                &shown,
                "no such file or directory".into(),
            )));
        }
    }
    let count = parsed.len();
    (count, next_catalog(&Catalog::default(), &parsed, opts))
}

fn scan_one(path: &Path, max_file_bytes: usize) -> FoundFile {
    FoundFile {
        path: path.display().to_string(),
        text: read_bounded(path, max_file_bytes),
    }
}

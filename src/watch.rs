//! The folder watcher: file events only mark the folder dirty; the folder is then rescanned,
//! changed files re-parsed, and the whole catalog rebuilt (level-triggered, like a
//! controller). A periodic resync covers lost events; a deleted folder is polled for and
//! watched again when it comes back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::spec::catalog::{
    next_catalog, unreadable_file, Catalog, LoadOptions, ParseCache, ParsedFile,
};

/// How often a missing folder is looked for.
const MISSING_FOLDER_POLL: Duration = Duration::from_millis(250);

/// True for files gantry reads: `*.yaml` / `*.yml`, not hidden, not an editor's temporary
/// file. `relative` is the path under the watched folder.
pub fn is_spec_file(relative: &Path) -> bool {
    let hidden = relative.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with('.') && s != "." && s != "..")
    });
    let Some(name) = relative.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let temporary = name.ends_with('~')
        || name.starts_with('#')
        || name.contains("___jb_tmp___")
        || name.contains("___jb_old___");
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    yaml && !hidden && !temporary
}

/// One file found by a scan: its path as shown to users, and its text or why it could not be
/// read.
pub struct FoundFile {
    pub path: String,
    pub text: Result<String, String>,
}

/// Reads every spec file under `dir` (recursively), in path order. `None` when `dir` does not
/// exist.
pub fn scan(dir: &Path, max_file_bytes: usize) -> Option<Vec<FoundFile>> {
    if !dir.is_dir() {
        return None;
    }
    let mut paths = Vec::new();
    collect(dir, dir, &mut paths);
    paths.sort();
    Some(
        paths
            .into_iter()
            .map(|p| FoundFile {
                path: p.display().to_string(),
                text: read_bounded(&p, max_file_bytes),
            })
            .collect(),
    )
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let is_dir = kind.is_dir() || (kind.is_symlink() && path.is_dir());
        if is_dir {
            let hidden = relative
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect(root, &path, out);
            }
        } else if is_spec_file(relative) {
            out.push(path);
        }
    }
}

/// Reads a file, refusing it (without reading it all) when it is larger than the limit.
pub fn read_bounded(path: &Path, limit: usize) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() > limit {
        return Err(format!(
            "the file is larger than {limit} bytes (max-file-bytes); it was not read"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the file is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Turns a scan into parsed files, re-parsing only what changed.
pub fn parse_scan(
    found: Vec<FoundFile>,
    cache: &mut ParseCache,
    opts: &LoadOptions,
) -> Vec<Arc<ParsedFile>> {
    let paths: Vec<String> = found.iter().map(|f| f.path.clone()).collect();
    cache.retain(&paths);
    found
        .into_iter()
        .map(|f| match f.text {
            Ok(text) => cache.parse(&f.path, &text, opts),
            Err(message) => Arc::new(unreadable_file(&f.path, message)),
        })
        .collect()
}

/// Loads a folder once: what `gantry validate` and the daemon's start-up do.
pub fn load_once(dir: &Path, max_file_bytes: usize, opts: &LoadOptions) -> Option<Catalog> {
    let found = scan(dir, max_file_bytes)?;
    let parsed = parse_scan(found, &mut ParseCache::default(), opts);
    Some(next_catalog(&Catalog::default(), &parsed, opts))
}

/// The watcher's settings.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub dir: PathBuf,
    pub max_file_bytes: usize,
    pub debounce: Duration,
    pub resync_interval: Duration,
    pub load: LoadOptions,
}

/// What the watcher publishes after every rebuild.
#[derive(Debug, Clone, Default)]
pub struct FolderState {
    pub catalog: Arc<Catalog>,
    /// False while the watched folder does not exist (the last catalog is kept).
    pub folder_present: bool,
    /// How many times the folder has been loaded.
    pub loads: u64,
}

/// Watches the folder until `shutdown` fires, publishing every new catalog on `publish`.
/// The first load happens before this returns control to the caller's runtime loop.
pub async fn run(
    settings: WatchSettings,
    publish: watch::Sender<FolderState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut cache = ParseCache::default();
    let mut state = FolderState::default();
    let mut armed: Option<(Debouncer, Option<u64>)> = None;
    let mut last_resync = Instant::now();
    loop {
        // (Re-)arm the watch when the folder is there and is not the one being watched.
        let identity = folder_identity(&settings.dir);
        let stale = match &armed {
            Some((_, id)) => *id != identity || identity.is_none(),
            None => identity.is_some(),
        };
        if stale {
            armed = None;
            if identity.is_some() {
                match arm(&settings, tx.clone()) {
                    Ok(d) => armed = Some((d, identity)),
                    Err(e) => {
                        warn!(dir = %settings.dir.display(), error = %e, "cannot watch the folder; relying on periodic resync")
                    }
                }
            }
        }

        reload(&settings, &mut cache, &mut state, &publish);

        let wait = if state.folder_present {
            settings
                .resync_interval
                .saturating_sub(last_resync.elapsed())
        } else {
            MISSING_FOLDER_POLL
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            event = rx.recv() => {
                if event.is_none() { return; }
                // Drain a burst: one rescan covers them all.
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(wait) => {
                last_resync = Instant::now();
            }
        }
    }
}

fn reload(
    settings: &WatchSettings,
    cache: &mut ParseCache,
    state: &mut FolderState,
    publish: &watch::Sender<FolderState>,
) {
    let started = Instant::now();
    match scan(&settings.dir, settings.max_file_bytes) {
        None => {
            if state.folder_present || state.loads == 0 {
                warn!(dir = %settings.dir.display(), "the watched folder does not exist; keeping the last desired state until it comes back");
                state.folder_present = false;
                state.loads += 1;
                publish.send_replace(state.clone());
            }
        }
        Some(found) => {
            let parsed = parse_scan(found, cache, &settings.load);
            let catalog = next_catalog(&state.catalog, &parsed, &settings.load);
            let changed = !state.folder_present
                || state.loads == 0
                || catalog_changed(&state.catalog, &catalog);
            if changed {
                let errors = catalog
                    .all_diagnostics()
                    .iter()
                    .filter(|d| d.is_error())
                    .count();
                info!(
                    services = catalog.services.len(),
                    errors,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "folder loaded"
                );
                for d in catalog.all_diagnostics() {
                    if d.is_error() {
                        warn!("{d}");
                    }
                }
                state.catalog = Arc::new(catalog);
                state.folder_present = true;
                state.loads += 1;
                publish.send_replace(state.clone());
            }
        }
    }
}

fn catalog_changed(a: &Catalog, b: &Catalog) -> bool {
    a.all_diagnostics() != b.all_diagnostics()
        || a.services.len() != b.services.len()
        || a.services
            .iter()
            .zip(b.services.iter())
            .any(|((ka, ea), (kb, eb))| {
                ka != kb
                    || ea.generation != eb.generation
                    || ea.file != eb.file
                    || ea.stale != eb.stale
            })
        || a.objects.len() != b.objects.len()
        || a.objects != b.objects
        || a.runtimes != b.runtimes
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

fn arm(settings: &WatchSettings, tx: mpsc::UnboundedSender<()>) -> notify::Result<Debouncer> {
    let mut debouncer = new_debouncer(
        settings.debounce,
        None,
        move |result: DebounceEventResult| match result {
            Ok(events) if events.is_empty() => {}
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(errors) => {
                for e in errors {
                    warn!(error = %e, "file watch error; rescanning");
                }
                let _ = tx.send(());
            }
        },
    )?;
    debouncer.watch(&settings.dir, RecursiveMode::Recursive)?;
    Ok(debouncer)
}

/// The folder's inode, to notice it was deleted and recreated under the same name.
fn folder_identity(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_files_are_read() {
        let check = |path: &str, expected: bool| {
            assert_eq!(is_spec_file(Path::new(path)), expected, "{path}");
        };
        check("iris.yaml", true);
        check("team/iris.yml", true);
        check("iris.json", false);
        check(".iris.yaml", false);
        check(".hidden/iris.yaml", false);
        check("iris.yaml~", false);
        check(".iris.yaml.swp", false);
        check("#iris.yaml#", false);
        check("iris.yaml___jb_tmp___", false);
        check("4913", false);
    }
}

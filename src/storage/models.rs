//! The models the reconciler asks for: each remote source fetched once into the cache (two
//! replicas asking together share one download), its progress reported, failures retried
//! with backoff, and what is in use kept from eviction.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::cache::{self, Cache, EntryMeta};
use super::credentials::Access;
use super::fetch::{FetchError, Listing, Progress, Remote};
use super::unpack::{self, archive_kind};
use super::uri::ModelSource;
use super::ModelSettings;

/// Where a model stands for the replicas that need it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    /// In the cache: mount this folder.
    Ready(PathBuf),
    Fetching(ProgressView),
    /// The reason, KServe's `ModelLoadFailed`; tried again after a backoff.
    Failed(String),
}

/// A download's progress as shown in status, logs and `describe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressView {
    pub bytes_done: u64,
    /// 0 while unknown (the listing has not come back).
    pub bytes_total: u64,
    pub files_done: u64,
    pub files_total: u64,
    /// Bytes per second since the download started.
    pub rate: u64,
    /// Seconds left at that rate, when known.
    pub eta_seconds: Option<u64>,
}

impl ProgressView {
    /// The view of `done` of `total` bytes after `elapsed`.
    pub fn new(done: u64, total: u64, files: (u64, u64), elapsed: Duration) -> ProgressView {
        let rate = if elapsed.as_secs_f64() > 0.0 {
            (done as f64 / elapsed.as_secs_f64()) as u64
        } else {
            0
        };
        let eta_seconds =
            (rate > 0 && total >= done && total > 0).then(|| (total - done).div_ceil(rate));
        ProgressView {
            bytes_done: done,
            bytes_total: total,
            files_done: files.0,
            files_total: files.1,
            rate,
            eta_seconds,
        }
    }
}

impl std::fmt::Display for ProgressView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", bytes(self.bytes_done))?;
        if let Some(percent) = self
            .bytes_done
            .saturating_mul(100)
            .checked_div(self.bytes_total)
        {
            write!(f, " of {} ({percent}%)", bytes(self.bytes_total))?;
        }
        if self.files_total > 1 {
            write!(f, ", {} of {} files", self.files_done, self.files_total)?;
        }
        write!(f, ", {}/s", bytes(self.rate))?;
        if let Some(eta) = self.eta_seconds {
            write!(f, ", {eta} s left")?;
        }
        Ok(())
    }
}

/// `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One model as the API and `describe` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    pub source: String,
    /// `Loading`, `Loaded` or `FailedToLoad` (KServe's model states).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bytes this daemon downloaded for it (0 when it came from the cache).
    pub downloaded: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

enum Phase {
    Fetching {
        progress: Arc<Progress>,
        started: Instant,
    },
    Ready {
        id: String,
        dir: PathBuf,
        version: String,
        downloaded: u64,
        note: Option<String>,
    },
    Failed {
        reason: String,
        retry_at: Instant,
    },
}

struct Slot {
    shown: String,
    access: Access,
    phase: Phase,
    failures: u32,
}

/// The first retry after a failure, doubling up to [`MAX_BACKOFF`] (the kubelet's image-pull
/// backoff).
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How often a running download is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The fetched models of this daemon.
pub struct Models {
    cache: Cache,
    settings: ModelSettings,
    slots: Mutex<HashMap<String, Slot>>,
    /// Entry ids that replicas (or wanted replicas) use: never evicted.
    in_use: Mutex<HashSet<String>>,
    changed: watch::Sender<u64>,
    downloaded: AtomicU64,
}

impl Models {
    pub fn open(settings: ModelSettings) -> std::io::Result<Arc<Models>> {
        let cache = Cache::open(&settings.cache_dir)?;
        Ok(Arc::new(Models {
            cache,
            settings,
            slots: Mutex::new(HashMap::new()),
            in_use: Mutex::new(HashSet::new()),
            changed: watch::channel(0).0,
            downloaded: AtomicU64::new(0),
        }))
    }

    /// Where `source` stands; starts fetching it (once) when it is not in hand. Never waits.
    pub fn request(self: &Arc<Self>, source: &ModelSource, access: &Access) -> ModelState {
        let key = source_key(source, access);
        let mut slots = self.slots.lock().unwrap();
        if let Some(slot) = slots.get(&key) {
            match &slot.phase {
                // (Unless its folder went: evicted once nothing named it, or removed by hand.)
                Phase::Ready { dir, .. } if dir.is_dir() => return ModelState::Ready(dir.clone()),
                Phase::Ready { .. } => {}
                Phase::Fetching { progress, started } => {
                    return ModelState::Fetching(view(progress, *started));
                }
                Phase::Failed { reason, retry_at } => {
                    // New credentials are worth trying at once.
                    if Instant::now() < *retry_at && slot.access == *access {
                        return ModelState::Failed(reason.clone());
                    }
                }
            }
        }
        let progress = Arc::new(Progress::default());
        let started = Instant::now();
        let failures = slots.get(&key).map_or(0, |s| s.failures);
        slots.insert(
            key.clone(),
            Slot {
                shown: source.display(),
                access: access.clone(),
                phase: Phase::Fetching {
                    progress: progress.clone(),
                    started,
                },
                failures,
            },
        );
        drop(slots);
        let models = self.clone();
        let (source, access) = (source.clone(), access.clone());
        tokio::spawn(async move { models.fetch(key, source, access, progress).await });
        ModelState::Fetching(ProgressView::default())
    }

    /// The models that desired components and running replicas name: their cache entries
    /// are kept.
    pub fn keep(&self, sources: &[(ModelSource, Access)]) {
        let slots = self.slots.lock().unwrap();
        let ids = sources
            .iter()
            .filter_map(|(s, a)| slots.get(&source_key(s, a)))
            .filter_map(|slot| match &slot.phase {
                Phase::Ready { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        *self.in_use.lock().unwrap() = ids;
    }

    /// One model as status shows it, once it has been asked for.
    pub fn view_of(&self, source: &ModelSource, access: &Access) -> Option<ModelView> {
        let slots = self.slots.lock().unwrap();
        slots.get(&source_key(source, access)).map(slot_view)
    }

    /// Whether some download is running (status then refreshes often, for its progress).
    pub fn loading(&self) -> bool {
        let slots = self.slots.lock().unwrap();
        slots
            .values()
            .any(|s| matches!(s.phase, Phase::Fetching { .. }))
    }

    /// Every model this daemon has been asked for.
    pub fn views(&self) -> Vec<ModelView> {
        let slots = self.slots.lock().unwrap();
        let mut out: Vec<ModelView> = slots.values().map(slot_view).collect();
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }

    /// Bumped whenever a model becomes ready or fails.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Bytes downloaded by this daemon so far, all models together.
    pub fn downloaded_bytes(&self) -> u64 {
        self.downloaded.load(Ordering::Relaxed)
    }

    async fn fetch(
        self: Arc<Self>,
        key: String,
        source: ModelSource,
        access: Access,
        progress: Arc<Progress>,
    ) {
        let shown = source.display();
        let started = Instant::now();
        let logger = {
            let (progress, shown) = (progress.clone(), shown.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(LOG_EVERY);
                every.tick().await;
                loop {
                    every.tick().await;
                    info!(model = %shown, "downloading: {}", view(&progress, started));
                }
            })
        };
        let outcome = self
            .fetch_into_cache(&key, &source, &access, &progress)
            .await;
        logger.abort();
        let downloaded = progress.bytes_done.load(Ordering::Relaxed);
        self.downloaded.fetch_add(downloaded, Ordering::Relaxed);
        let mut slots = self.slots.lock().unwrap();
        let Some(slot) = slots.get_mut(&key) else {
            return;
        };
        slot.phase = match outcome {
            Ok((meta, note)) => {
                slot.failures = 0;
                if downloaded > 0 {
                    info!(model = %shown, bytes = downloaded, seconds = started.elapsed().as_secs_f64(), "model downloaded");
                }
                if let Some(n) = &note {
                    warn!(model = %shown, "{n}");
                }
                Phase::Ready {
                    dir: self.cache.model_dir(&meta.id),
                    id: meta.id,
                    version: meta.version,
                    downloaded,
                    note,
                }
            }
            Err(e) => {
                slot.failures += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << (slot.failures - 1).min(10))
                    .min(MAX_BACKOFF);
                warn!(model = %shown, error = %e, retry_in_s = backoff.as_secs(), "model fetch failed");
                Phase::Failed {
                    reason: e.0,
                    retry_at: Instant::now() + backoff,
                }
            }
        };
        drop(slots);
        self.changed.send_modify(|g| *g += 1);
    }

    /// Lists the source, and downloads it unless the cache has that version. A source that
    /// cannot be reached but has a cached copy serves that copy (with a note).
    async fn fetch_into_cache(
        &self,
        key: &str,
        source: &ModelSource,
        access: &Access,
        progress: &Progress,
    ) -> Result<(EntryMeta, Option<String>), FetchError> {
        let remote = Remote::new(
            source,
            access,
            self.settings.parallel,
            self.settings.verify_checksums,
        )?;
        let cached = self.cache.latest_for(key);
        let listing = match remote
            .list_since(cached.as_ref().map(|m| m.version.as_str()))
            .await
        {
            Ok(Some(l)) => l,
            // The cached version is current (the server said so without sending it again).
            Ok(None) => {
                let meta = cached.expect("a cached version was given");
                self.cache.touch(&meta.id, unix_now());
                return Ok((meta, None));
            }
            Err(e) => {
                return match cached {
                    Some(meta) => {
                        let note =
                            format!("serving the cached copy (version {}): {e}", meta.version);
                        Ok((meta, Some(note)))
                    }
                    None => Err(e),
                }
            }
        };
        let id = cache::entry_id(key, &listing.version);
        let now = unix_now();
        if let Some(meta) = self.cache.lookup(&id) {
            self.cache.touch(&id, now);
            return Ok((meta, None));
        }
        self.make_room(listing.bytes());
        let temp = self
            .cache
            .temp_dir(&id)
            .map_err(|e| FetchError(format!("cannot write to the cache: {e}")))?;
        let result = self.download(&remote, &listing, &temp, progress).await;
        let model = match result {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&temp);
                return Err(e);
            }
        };
        let (bytes, files) = cache::folder_size(&model).unwrap_or((0, 0));
        let meta = EntryMeta {
            id: id.clone(),
            source: source.display(),
            source_key: key.to_string(),
            version: listing.version.clone(),
            bytes,
            files,
            fetched_unix: now,
            used_unix: now,
        };
        let committed = self.cache.commit(&model, &meta);
        let _ = std::fs::remove_dir_all(&temp);
        committed.map_err(|e| FetchError(format!("cannot write to the cache: {e}")))?;
        // An unpacked archive can be larger than its listed size.
        self.make_room(0);
        Ok((meta, None))
    }

    /// Downloads into `temp`; the folder that holds the model (an archive unpacked).
    async fn download(
        &self,
        remote: &Remote,
        listing: &Listing,
        temp: &Path,
        progress: &Progress,
    ) -> Result<PathBuf, FetchError> {
        let files = temp.join("files");
        std::fs::create_dir_all(&files)
            .map_err(|e| FetchError(format!("cannot write to the cache: {e}")))?;
        remote.download(listing, &files, progress).await?;
        let archive = match (listing.single, listing.files.first()) {
            (true, Some(f)) => archive_kind(&f.path).map(|kind| (files.join(&f.path), kind)),
            _ => None,
        };
        let Some((archive, kind)) = archive else {
            return Ok(files);
        };
        let model = temp.join("model");
        std::fs::create_dir_all(&model)
            .map_err(|e| FetchError(format!("cannot write to the cache: {e}")))?;
        let limit = self.settings.max_unpacked;
        let target = model.clone();
        tokio::task::spawn_blocking(move || unpack::unpack(&archive, kind, &target, limit))
            .await
            .map_err(|e| FetchError(format!("unpacking stopped: {e}")))?
            .map_err(|e| FetchError(e.to_string()))?;
        Ok(model)
    }

    /// Removes least recently used entries that nothing uses, to fit `incoming` bytes.
    fn make_room(&self, incoming: u64) {
        let entries = self.cache.entries();
        let in_use = self.in_use.lock().unwrap().clone();
        let limit = self.settings.cache_limit;
        let evicted = cache::evict(&entries, &in_use, limit, incoming);
        let left: u64 = entries
            .iter()
            .filter(|e| !evicted.contains(&e.id))
            .map(|e| e.bytes)
            .sum::<u64>()
            + incoming;
        if limit > 0 && left > limit {
            warn!(
                cache_size = limit,
                needed = left,
                "the model cache goes over cache-size: the models over it are in use"
            );
        }
        for id in evicted {
            let shown = entries
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.source.clone());
            match self.cache.remove(&id) {
                Ok(()) => info!(
                    model = shown.as_deref().unwrap_or(&id),
                    "removed from the model cache to make room"
                ),
                Err(e) => {
                    warn!(model = shown.as_deref().unwrap_or(&id), error = %e, "cannot remove from the model cache")
                }
            }
        }
    }
}

/// A source's key in the cache and among the slots: the source exactly as written. Its `Debug`
/// leaves out a URL's user-info and query string (`?version=2`, a signature), which can name
/// another file: two such URLs must not share a download.
fn source_key(source: &ModelSource, access: &Access) -> String {
    // The same bucket and key on two servers are two models.
    let server = match source {
        ModelSource::S3 { .. } => access.s3.endpoint.as_deref(),
        ModelSource::Gcs { .. } => access.gcs_endpoint.as_deref(),
        ModelSource::HuggingFace { .. } => Some(access.hf_endpoint.as_str()),
        _ => None,
    };
    let exact = match source {
        ModelSource::Http(url) => format!("Http({url:?})"),
        ModelSource::S3 { bucket, key } => format!("S3 {{ bucket: {bucket:?}, key: {key:?} }}"),
        ModelSource::Gcs { bucket, key } => format!("Gcs {{ bucket: {bucket:?}, key: {key:?} }}"),
        other => format!("{other:?}"),
    };
    match server {
        Some(server) => cache::source_key(&format!("{exact} at {server}")),
        None => cache::source_key(&exact),
    }
}

fn slot_view(slot: &Slot) -> ModelView {
    match &slot.phase {
        Phase::Fetching { progress, started } => ModelView {
            source: slot.shown.clone(),
            state: "Loading".into(),
            progress: Some(view(progress, *started)),
            message: None,
            downloaded: progress.bytes_done.load(Ordering::Relaxed),
            version: None,
        },
        Phase::Ready {
            version,
            downloaded,
            note,
            ..
        } => ModelView {
            source: slot.shown.clone(),
            state: "Loaded".into(),
            progress: None,
            message: note.clone(),
            downloaded: *downloaded,
            version: Some(version.clone()),
        },
        Phase::Failed { reason, .. } => ModelView {
            source: slot.shown.clone(),
            state: "FailedToLoad".into(),
            progress: None,
            message: Some(reason.clone()),
            downloaded: 0,
            version: None,
        },
    }
}

fn view(progress: &Progress, started: Instant) -> ProgressView {
    ProgressView::new(
        progress.bytes_done.load(Ordering::Relaxed),
        progress.bytes_total.load(Ordering::Relaxed),
        (
            progress.files_done.load(Ordering::Relaxed),
            progress.files_total.load(Ordering::Relaxed),
        ),
        started.elapsed(),
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_people_expect() {
        let v = ProgressView::new(512 << 20, 2 << 30, (1, 4), Duration::from_secs(4));
        assert_eq!(v.rate, 128 << 20);
        assert_eq!(v.eta_seconds, Some(12));
        assert_eq!(
            v.to_string(),
            "512.0 MiB of 2.0 GiB (25%), 1 of 4 files, 128.0 MiB/s, 12 s left"
        );
        let unknown = ProgressView::new(10, 0, (0, 0), Duration::ZERO);
        assert_eq!(unknown.eta_seconds, None);
        assert_eq!(unknown.to_string(), "10 B, 0 B/s");
    }
}

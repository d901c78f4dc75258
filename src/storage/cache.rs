//! The model cache on disk: one folder per source and version, and what decides which go when
//! it is full.
//!
//! ```text
//! <cache-dir>/entries/<id>/       the model, mounted read-only at /mnt/models
//! <cache-dir>/entries/<id>.json   what it is (written last: an entry without it is unfinished)
//! <cache-dir>/tmp/<id>-<n>/       downloads in progress; emptied at start
//! ```
//!
//! A download is written under `tmp/`, verified, then renamed into `entries/`, and only then
//! described by its `.json`: a crash at any point leaves either no entry or a whole one.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the cache knows of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryMeta {
    pub id: String,
    /// The source as shown to people (no credentials, no query string).
    pub source: String,
    /// Identifies the source among entries (a hash: the key itself may hold a signed URL).
    pub source_key: String,
    /// The source's version: an ETag, a commit, a hash of a listing.
    pub version: String,
    pub bytes: u64,
    pub files: u64,
    pub fetched_unix: i64,
    pub used_unix: i64,
}

/// The cache folder.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    temp_seq: AtomicU64,
}

/// A source's key in the cache: a hash of what names it exactly.
pub fn source_key(exact: &str) -> String {
    hex(&Sha256::digest(exact.as_bytes())[..16])
}

/// An entry's id: a hash of its source key and version.
pub fn entry_id(source_key: &str, version: &str) -> String {
    hex(&Sha256::digest(format!("{source_key}\n{version}").as_bytes())[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// Opens (creating) the cache at `root`: unfinished downloads and entries without their
    /// description are removed.
    pub fn open(root: &Path) -> io::Result<Cache> {
        let cache = Cache {
            root: root.to_path_buf(),
            temp_seq: AtomicU64::new(0),
        };
        let tmp = cache.root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(cache.entries_dir())?;
        for item in std::fs::read_dir(cache.entries_dir())? {
            let path = item?.path();
            if path.is_dir() && !path.with_extension("json").exists() {
                std::fs::remove_dir_all(&path)?;
            }
        }
        Ok(cache)
    }

    fn entries_dir(&self) -> PathBuf {
        self.root.join("entries")
    }

    /// The folder an entry's model is in.
    pub fn model_dir(&self, id: &str) -> PathBuf {
        self.entries_dir().join(id)
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.entries_dir().join(format!("{id}.json"))
    }

    /// A whole entry, if there is one.
    pub fn lookup(&self, id: &str) -> Option<EntryMeta> {
        let text = std::fs::read(self.meta_path(id)).ok()?;
        let meta: EntryMeta = serde_json::from_slice(&text).ok()?;
        self.model_dir(id).is_dir().then_some(meta)
    }

    /// Every whole entry.
    pub fn entries(&self) -> Vec<EntryMeta> {
        let Ok(items) = std::fs::read_dir(self.entries_dir()) else {
            return Vec::new();
        };
        items
            .filter_map(|i| i.ok())
            .filter_map(|i| {
                let name = i.file_name().into_string().ok()?;
                self.lookup(name.strip_suffix(".json")?)
            })
            .collect()
    }

    /// The most recently fetched entry of a source, whatever its version: what serves when
    /// the source cannot be reached.
    pub fn latest_for(&self, source_key: &str) -> Option<EntryMeta> {
        self.entries()
            .into_iter()
            .filter(|e| e.source_key == source_key)
            .max_by_key(|e| e.fetched_unix)
    }

    /// A new, empty folder for a download.
    pub fn temp_dir(&self, id: &str) -> io::Result<PathBuf> {
        let n = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join("tmp").join(format!("{id}-{n}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Moves a finished download into place and describes it; the entry exists from here on.
    pub fn commit(&self, temp: &Path, meta: &EntryMeta) -> io::Result<PathBuf> {
        let dir = self.model_dir(&meta.id);
        if dir.exists() {
            // A leftover without description (or a lost race): the new one replaces it.
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(temp, &dir)?;
        self.write_meta(meta)?;
        Ok(dir)
    }

    fn write_meta(&self, meta: &EntryMeta) -> io::Result<()> {
        let path = self.meta_path(&meta.id);
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec_pretty(meta)?)?;
        std::fs::rename(partial, path)
    }

    /// Records that an entry was used now.
    pub fn touch(&self, id: &str, now_unix: i64) {
        if let Some(mut meta) = self.lookup(id) {
            if meta.used_unix != now_unix {
                meta.used_unix = now_unix;
                let _ = self.write_meta(&meta);
            }
        }
    }

    /// Removes an entry: its description first, so a crash midway leaves no entry.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.meta_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::remove_dir_all(self.model_dir(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The entries to remove so that `incoming` more bytes fit within `limit` (0: no limit):
/// least recently used first, never one in `in_use`. It may not be enough; the download then
/// goes ahead over the limit (a model that runs beats a cache that obeys) and says so.
pub fn evict(
    entries: &[EntryMeta],
    in_use: &HashSet<String>,
    limit: u64,
    incoming: u64,
) -> Vec<String> {
    if limit == 0 {
        return Vec::new();
    }
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum::<u64>() + incoming;
    let mut candidates: Vec<&EntryMeta> =
        entries.iter().filter(|e| !in_use.contains(&e.id)).collect();
    candidates.sort_by_key(|e| (e.used_unix, e.fetched_unix));
    let mut out = Vec::new();
    for e in candidates {
        if total <= limit {
            break;
        }
        total -= e.bytes;
        out.push(e.id.clone());
    }
    out
}

/// Bytes in a folder, and files.
pub fn folder_size(dir: &Path) -> io::Result<(u64, u64)> {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d)? {
            let item = item?;
            let kind = item.file_type()?;
            if kind.is_dir() {
                stack.push(item.path());
            } else if kind.is_file() {
                bytes += item.metadata()?.len();
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, bytes: u64, used: i64) -> EntryMeta {
        EntryMeta {
            id: id.into(),
            source: format!("s3://b/{id}"),
            source_key: source_key(id),
            version: "v".into(),
            bytes,
            files: 1,
            fetched_unix: 0,
            used_unix: used,
        }
    }

    #[test]
    fn eviction_takes_the_least_recently_used_that_no_replica_uses() {
        let entries = [meta("a", 40, 10), meta("b", 40, 5), meta("c", 40, 1)];
        let check = |in_use: &[&str], limit, incoming, expected: &[&str]| {
            let in_use = in_use.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                evict(&entries, &in_use, limit, incoming),
                expected,
                "limit {limit} + {incoming} with {in_use:?}"
            );
        };
        check(&[], 0, 1000, &[]);
        check(&[], 200, 40, &[]);
        check(&[], 150, 40, &["c"]);
        check(&[], 100, 40, &["c", "b"]);
        check(&["c"], 100, 40, &["b", "a"]);
        check(&["a", "b", "c"], 100, 40, &[]);
    }

    #[test]
    fn an_entry_exists_only_once_committed_and_a_restart_clears_the_unfinished() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::open(root.path()).unwrap();
        let m = meta("e1", 3, 0);
        let tmp = cache.temp_dir(&m.id).unwrap();
        std::fs::write(tmp.join("model.bin"), b"abc").unwrap();
        assert!(cache.lookup(&m.id).is_none());
        let dir = cache.commit(&tmp, &m).unwrap();
        assert_eq!(std::fs::read(dir.join("model.bin")).unwrap(), b"abc");
        assert_eq!(cache.lookup(&m.id), Some(m.clone()));
        assert_eq!(folder_size(&dir).unwrap(), (3, 1));

        // A download killed midway, and an entry renamed but never described.
        let unfinished = cache.temp_dir("e2").unwrap();
        std::fs::write(unfinished.join("half"), b"x").unwrap();
        std::fs::create_dir_all(cache.model_dir("e3")).unwrap();
        let cache = Cache::open(root.path()).unwrap();
        assert!(!unfinished.exists());
        assert!(!cache.model_dir("e3").exists());
        assert_eq!(cache.entries(), vec![m.clone()]);
        assert_eq!(
            cache.latest_for(&m.source_key).map(|e| e.id),
            Some("e1".into())
        );

        cache.touch("e1", 42);
        assert_eq!(cache.lookup("e1").unwrap().used_unix, 42);
        cache.remove("e1").unwrap();
        assert!(cache.lookup("e1").is_none() && !dir.exists());
    }
}

//! Models: a `storageUri` (or `STORAGE_URI` on a custom container) made into a folder on this
//! machine, mounted read-only at `/mnt/models` in every replica that uses it.
//!
//! KServe runs a storage-initializer container per pod that downloads the model into an
//! `emptyDir`; on one machine that is one download per replica and revision. gantry instead
//! keeps one cache: a model is fetched once per source and version, shared by every replica
//! and revision that names it, fetched as soon as its YAML appears, and mounted from there.
//! Local paths and `pvc://` volumes are mounted as they are, with no copy.
//!
//! - [`uri`]: what a storage URI names (pure), with KServe's error texts.
//! - [`credentials`]: where access to it comes from: a Secret found through the service
//!   account or `serving.kserve.io/storageSecretName`, the daemon config, the environment.
//! - [`unpack`]: archives (`.tar`, `.tar.gz`, `.tgz`, `.zip`, `.gz`) with guards.
//! - [`cache`]: the cache's layout, entries, and least-recently-used eviction.
//! - [`fetch`]: the downloads (S3, GCS, HTTP, Hugging Face) into a temporary folder.
//! - [`models`]: the service the reconciler asks: is this model ready, and where.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod cache;
pub mod credentials;
pub mod fetch;
pub mod models;
pub mod unpack;
pub mod uri;

/// The `storage` section of the daemon config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where downloaded models are kept; default `<state-dir>/models`.
    pub cache_dir: Option<PathBuf>,
    /// The most the cache may hold (a Kubernetes quantity, `200Gi`); `0`: no bound. Beyond
    /// it, the least recently used models that no replica uses are removed.
    pub cache_size: String,
    /// Requests in flight for one model: files and ranges of large objects together.
    pub parallel_downloads: usize,
    /// The most an archive may unpack to (a Kubernetes quantity): a guard against archive
    /// bombs.
    pub max_unpacked_size: String,
    /// `pvc://<claim>/<path>`: each claim name's host folder.
    pub volumes: BTreeMap<String, PathBuf>,
    /// S3 access used when no Secret gives one (the environment's `AWS_*` come after).
    pub s3: S3Config,
    /// The Hugging Face hub (`hf://`); `HF_ENDPOINT` in the environment overrides it.
    pub hf_endpoint: String,
    /// Whether each file is checked against the checksum its source gives (the MD5 of a
    /// single-part S3 object, the SHA-256 of a Hugging Face LFS file). Sizes are always
    /// checked.
    pub verify_checksums: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            cache_dir: None,
            cache_size: "0".into(),
            parallel_downloads: 8,
            max_unpacked_size: "1Ti".into(),
            volumes: BTreeMap::new(),
            s3: S3Config::default(),
            hf_endpoint: "https://huggingface.co".into(),
            verify_checksums: true,
        }
    }
}

/// S3 settings in the daemon config, named as KServe's `serving.kserve.io/s3-*` annotations.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct S3Config {
    /// `host:port` or a URL (`http://127.0.0.1:5000`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// `false`: plain HTTP to an endpoint given as `host:port`.
    pub use_https: Option<bool>,
    pub verify_ssl: Option<bool>,
    /// Unsigned requests (public buckets).
    pub anonymous: Option<bool>,
    /// Virtual-hosted-style addressing (`bucket.host`) instead of path-style.
    pub virtual_bucket: Option<bool>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<set>"),
            )
            .field("use_https", &self.use_https)
            .field("verify_ssl", &self.verify_ssl)
            .field("anonymous", &self.anonymous)
            .field("virtual_bucket", &self.virtual_bucket)
            .finish()
    }
}

/// How the models are fetched and kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    pub cache_dir: PathBuf,
    /// Bytes the cache may hold; 0: no bound.
    pub cache_limit: u64,
    pub parallel: usize,
    pub max_unpacked: u64,
    /// Whether files are checked against the checksums their source gives.
    pub verify_checksums: bool,
}

//! Downloads: what a remote source holds (its files and version), and each file into a
//! folder, counted, verified (size always; MD5 from an S3 ETag, SHA-256 from the Hugging Face
//! hub, where the source gives one).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use md5::Md5;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use sha2::{Digest, Sha256};

use super::credentials::Access;
use super::uri::ModelSource;

/// Why a model could not be fetched. Messages are KServe's where it has one and never hold a
/// credential or a signed query string.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FetchError(pub String);

impl FetchError {
    fn io(what: &str, e: std::io::Error) -> FetchError {
        FetchError(format!("{what}: {e}"))
    }
}

/// Bytes and files, counted as they arrive.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes_total: AtomicU64,
    pub bytes_done: AtomicU64,
    pub files_total: AtomicU64,
    pub files_done: AtomicU64,
}

/// One file of a model.
#[derive(Debug)]
pub struct RemoteFile {
    /// Its path inside the model folder.
    pub path: String,
    pub size: Option<u64>,
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
    locator: Locator,
}

#[derive(Debug)]
enum Locator {
    Object(ObjectPath),
    /// A URL, with the answer already received when listing it (an HTTP source: its headers
    /// say its version, its body is the file).
    Url(String, Mutex<Option<reqwest::Response>>),
}

/// What a source holds now.
#[derive(Debug)]
pub struct Listing {
    pub version: String,
    pub files: Vec<RemoteFile>,
    /// The source named one file (rather than a folder): an archive is then unpacked.
    pub single: bool,
}

impl Listing {
    pub fn bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }
}

/// The version of an HTTP source with neither ETag nor Last-Modified.
const UNVERSIONED: &str = "unversioned";

/// A download that receives nothing for this long has stalled: it fails (and is tried
/// again after the backoff) rather than showing the same progress forever.
const STALLED_AFTER: Duration = Duration::from_secs(60);
/// One 16 MiB range must arrive within this (about 17 KiB/s at the least).
const RANGE_DEADLINE: Duration = Duration::from_secs(960);

fn stalled() -> FetchError {
    FetchError(format!(
        "the download stalled: nothing arrived for {} s",
        STALLED_AFTER.as_secs()
    ))
}

/// Chunks queued between receiving a file and writing it.
const SINK_QUEUE: usize = 16;

/// Objects larger than this are fetched as ranges in parallel.
const RANGED_ABOVE: u64 = 64 * 1024 * 1024;
/// The size of one range.
const RANGE_BYTES: u64 = 16 * 1024 * 1024;

/// A connection to a remote source.
pub struct Remote {
    source: ModelSource,
    store: Option<Arc<dyn ObjectStore>>,
    http: reqwest::Client,
    headers: reqwest::header::HeaderMap,
    hf_token: Option<String>,
    hf_endpoint: String,
    parallel: usize,
    /// Whether checksums the source gives are checked.
    verify: bool,
    /// Requests in flight, files and ranges together, at most `parallel`.
    permits: tokio::sync::Semaphore,
}

impl Remote {
    pub fn new(
        source: &ModelSource,
        access: &Access,
        parallel: usize,
        verify: bool,
    ) -> Result<Remote, FetchError> {
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let built = |r: object_store::Result<Arc<dyn ObjectStore>>| {
            r.map_err(|e| FetchError(format!("cannot set up access to {}: {e}", source.display())))
        };
        let store: Option<Arc<dyn ObjectStore>> = match source {
            ModelSource::S3 { bucket, .. } => {
                let s3 = &access.s3;
                let mut options = ClientOptions::new().with_timeout_disabled();
                if !s3.verify_tls {
                    options = options.with_allow_invalid_certificates(true);
                }
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".into()))
                    .with_retry(retry)
                    .with_client_options(options)
                    .with_virtual_hosted_style_request(s3.virtual_hosted)
                    .with_skip_signature(s3.anonymous);
                if let Some(endpoint) = &s3.endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                }
                if let Some(token) = &s3.session_token {
                    b = b.with_token(token);
                }
                Some(built(
                    b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
                )?)
            }
            ModelSource::Gcs { bucket, .. } => {
                let mut b = GoogleCloudStorageBuilder::new()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .with_client_options(ClientOptions::new().with_timeout_disabled());
                if let Some(endpoint) = &access.gcs_endpoint {
                    b = b.with_base_url(endpoint).with_client_options(
                        ClientOptions::new()
                            .with_timeout_disabled()
                            .with_allow_http(endpoint.starts_with("http://")),
                    );
                }
                match (
                    &access.gcs_service_account_json,
                    &access.gcs_credentials_path,
                ) {
                    // An emulator takes unsigned requests.
                    _ if access.gcs_endpoint.is_some() => b = b.with_skip_signature(true),
                    (Some(json), _) => b = b.with_service_account_key(json),
                    (None, Some(path)) => {
                        b = b.with_service_account_path(path.display().to_string())
                    }
                    // KServe uses an anonymous client when there are no credentials.
                    (None, None) => b = b.with_skip_signature(true),
                }
                Some(built(
                    b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
                )?)
            }
            _ => None,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let ModelSource::Http(url) = source {
            let host = reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string));
            if let Some(list) = host.and_then(|h| access.http_headers.get(&h)) {
                for (name, value) in list {
                    if let (Ok(n), Ok(v)) = (
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                        reqwest::header::HeaderValue::from_str(value),
                    ) {
                        headers.insert(n, v);
                    }
                }
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| FetchError(format!("cannot make an HTTP client: {e}")))?;
        Ok(Remote {
            source: source.clone(),
            store,
            http,
            headers,
            hf_token: access.hf_token.clone(),
            hf_endpoint: access.hf_endpoint.trim_end_matches('/').to_string(),
            parallel: parallel.max(1),
            verify,
            permits: tokio::sync::Semaphore::new(parallel.max(1)),
        })
    }

    /// The source's files and version, without downloading them.
    pub async fn list(&self) -> Result<Listing, FetchError> {
        self.list_since(None)
            .await?
            .ok_or_else(|| FetchError("nothing was listed".into()))
    }

    /// [`Remote::list`] for a source the cache holds at version `cached`: `None` when that
    /// version is still current. An HTTP source is asked conditionally (`If-None-Match`,
    /// `If-Modified-Since`), so that a restart does not make the server send the file again.
    pub async fn list_since(&self, cached: Option<&str>) -> Result<Option<Listing>, FetchError> {
        let listing = match &self.source {
            ModelSource::S3 { key, .. } | ModelSource::Gcs { key, .. } => {
                self.list_objects(key).await
            }
            ModelSource::Http(url) => return self.list_http(url, cached).await,
            ModelSource::HuggingFace { repo, revision } => {
                self.list_hf(repo, revision.as_deref()).await
            }
            ModelSource::Local(_) | ModelSource::Pvc { .. } => {
                Err(FetchError("a local model is not downloaded".into()))
            }
        };
        listing.map(Some)
    }

    async fn list_objects(&self, key: &str) -> Result<Listing, FetchError> {
        let store = self.store.as_ref().expect("object sources have a store");
        let shown = self.source.display();
        let key = key.trim_end_matches('/');
        // One object, when the key names one exactly; otherwise everything under it.
        if !key.is_empty() {
            match store.head(&ObjectPath::from(key)).await {
                Ok(meta) => {
                    let name = key.rsplit('/').next().unwrap_or(key).to_string();
                    let version = object_version(&[&meta]);
                    return Ok(Listing {
                        version,
                        files: vec![object_file(name, &meta)],
                        single: true,
                    });
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(object_error(&shown, e)),
            }
        }
        let prefix = (!key.is_empty()).then(|| ObjectPath::from(key));
        let mut metas: Vec<object_store::ObjectMeta> = store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| object_error(&shown, e))?;
        metas.retain(|m| !m.location.as_ref().ends_with('/'));
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        if metas.is_empty() {
            return Err(FetchError(format!(
                "Failed to fetch model. No model found in {shown}."
            )));
        }
        let version = object_version(&metas.iter().collect::<Vec<_>>());
        let files = metas
            .iter()
            .map(|m| {
                let full = m.location.as_ref();
                let relative = match &prefix {
                    Some(p) => full[p.as_ref().len()..].trim_start_matches('/'),
                    None => full,
                };
                // A key is a name, not a path: one that would land outside the model folder
                // (`a/../../x`) is refused, as an archive entry would be.
                if !safe_relative(relative) {
                    return Err(FetchError(format!(
                        "{shown}: the object {full:?} does not name a file inside the model folder"
                    )));
                }
                Ok(object_file(relative.to_string(), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Listing {
            version,
            files,
            single: false,
        })
    }

    async fn list_http(
        &self,
        url: &str,
        cached: Option<&str>,
    ) -> Result<Option<Listing>, FetchError> {
        let shown = self.source.display();
        let mut request = self.http.get(url).headers(self.headers.clone());
        match cached {
            // See `version` below: the cached copy is the copy.
            Some(UNVERSIONED) => return Ok(None),
            Some(date) if date.ends_with(" GMT") => {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, date)
            }
            Some(etag) => request = request.header(reqwest::header::IF_NONE_MATCH, etag),
            None => {}
        }
        let response = request.send().await.map_err(|e| {
            FetchError(format!(
                "URI: {shown} could not be fetched: {}",
                without_url(&e)
            ))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && cached.is_some() {
            return Ok(None);
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError(format!(
                "URI: {shown} returned a {} response code.",
                status.as_u16()
            )));
        }
        let name = file_name_of(url)
            .ok_or_else(|| FetchError(format!("No filename contained in URI: {shown}")))?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        check_content_type(&name, &content_type, &shown)?;
        let header = |h| {
            response
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // Without an ETag or Last-Modified the version is the URL itself: it is fetched once
        // per daemon, and a restart fetches it again only if the cache has no copy.
        let version = header(reqwest::header::ETAG)
            .or_else(|| header(reqwest::header::LAST_MODIFIED))
            .unwrap_or_else(|| UNVERSIONED.into());
        let size = response.content_length();
        Ok(Some(Listing {
            version,
            files: vec![RemoteFile {
                path: name,
                size,
                md5: None,
                sha256: None,
                locator: Locator::Url(url.to_string(), Mutex::new(Some(response))),
            }],
            single: true,
        }))
    }

    async fn list_hf(&self, repo: &str, revision: Option<&str>) -> Result<Listing, FetchError> {
        let shown = self.source.display();
        let revision = revision.unwrap_or("main");
        let url = format!(
            "{}/api/models/{repo}/revision/{revision}?blobs=true",
            self.hf_endpoint
        );
        let mut request = self.http.get(&url);
        if let Some(token) = &self.hf_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            FetchError(format!(
                "{shown}: cannot reach the Hugging Face hub: {}",
                without_url(&e)
            ))
        })?;
        let status = response.status();
        if !status.is_success() {
            let why = match status.as_u16() {
                401 | 403 => "access denied (a gated or private repository needs HF_TOKEN)",
                404 => "no such repository or revision",
                _ => "the hub refused the request",
            };
            return Err(FetchError(format!(
                "{shown}: {why} (HTTP {})",
                status.as_u16()
            )));
        }
        let info: HfModelInfo = response.json().await.map_err(|e| {
            FetchError(format!(
                "{shown}: unexpected answer from the hub: {}",
                without_url(&e)
            ))
        })?;
        let files = info
            .siblings
            .into_iter()
            .filter(|s| safe_relative(&s.rfilename))
            .map(|s| RemoteFile {
                locator: Locator::Url(
                    format!(
                        "{}/{repo}/resolve/{}/{}",
                        self.hf_endpoint, info.sha, s.rfilename
                    ),
                    Mutex::new(None),
                ),
                size: s.lfs.as_ref().map(|l| l.size).or(s.size),
                sha256: s.lfs.as_ref().and_then(|l| parse_hex::<32>(&l.sha256)),
                md5: None,
                path: s.rfilename,
            })
            .collect::<Vec<_>>();
        if files.is_empty() {
            return Err(FetchError(format!(
                "Failed to fetch model. No model found in {shown}."
            )));
        }
        Ok(Listing {
            version: info.sha,
            files,
            single: false,
        })
    }

    /// Downloads every file of `listing` into `dir`, `parallel` at a time.
    pub async fn download(
        &self,
        listing: &Listing,
        dir: &Path,
        progress: &Progress,
    ) -> Result<(), FetchError> {
        progress
            .files_total
            .store(listing.files.len() as u64, Ordering::Relaxed);
        progress
            .bytes_total
            .store(listing.bytes(), Ordering::Relaxed);
        let each: Vec<BoxFuture<'_, Result<(), FetchError>>> = listing
            .files
            .iter()
            .map(|f| {
                async move {
                    let target = dir.join(&f.path);
                    if let Some(parent) = target.parent() {
                        tokio::fs::create_dir_all(parent).await.map_err(|e| {
                            FetchError::io("cannot create a folder in the cache", e)
                        })?;
                    }
                    self.download_file(f, &target, progress).await?;
                    progress.files_done.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                .boxed()
            })
            .collect();
        futures_util::stream::iter(each)
            .buffer_unordered(self.parallel)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn download_file(
        &self,
        file: &RemoteFile,
        target: &Path,
        progress: &Progress,
    ) -> Result<(), FetchError> {
        let shown = self.source.display();
        let mut hasher = Hashers::for_file(file).filter(|_| self.verify);
        let written = match &file.locator {
            Locator::Object(location) => {
                let store = self.store.as_ref().expect("object sources have a store");
                match file.size {
                    // Large objects come as ranges in parallel (one connection is the limit
                    // over a network); their checksum is computed from the file afterwards.
                    Some(size) if size > RANGED_ABOVE => {
                        let written = self.ranged(store, location, size, target, progress).await?;
                        if let Some(h) = hasher.take() {
                            let (file_path, target) = (file.path.clone(), target.to_path_buf());
                            let h = tokio::task::spawn_blocking(move || h.of_file(&target))
                                .await
                                .map_err(|e| FetchError(format!("checksum stopped: {e}")))?
                                .map_err(|e| {
                                    FetchError::io(&format!("cannot read back {file_path}"), e)
                                })?;
                            h.verify(file, &shown)?;
                        }
                        written
                    }
                    _ => {
                        let _permit = self.permits.acquire().await;
                        let got = store
                            .get(location)
                            .await
                            .map_err(|e| object_error(&shown, e))?;
                        let stream = got
                            .into_stream()
                            .map_err(|e| FetchError(format!("{shown}: {e}")));
                        write_stream(stream, target, progress, &mut hasher).await?
                    }
                }
            }
            Locator::Url(url, answered) => {
                let _permit = self.permits.acquire().await;
                let response = answered.lock().unwrap().take();
                let response = match response {
                    Some(r) => r,
                    None => {
                        let mut request = self.http.get(url).headers(self.headers.clone());
                        if let (Some(token), ModelSource::HuggingFace { .. }) =
                            (&self.hf_token, &self.source)
                        {
                            request = request.bearer_auth(token);
                        }
                        let r = request.send().await.map_err(|e| {
                            FetchError(format!("{shown}: {}: {}", file.path, without_url(&e)))
                        })?;
                        if !r.status().is_success() {
                            return Err(FetchError(format!(
                                "{shown}: {} returned a {} response code.",
                                file.path,
                                r.status().as_u16()
                            )));
                        }
                        r
                    }
                };
                let stream = response.bytes_stream().map_err(|e| {
                    FetchError(format!(
                        "{shown}: the download broke off: {}",
                        without_url(&e)
                    ))
                });
                write_stream(stream, target, progress, &mut hasher).await?
            }
        };
        if let Some(size) = file.size {
            if written != size {
                return Err(FetchError(format!(
                    "{shown}: {} is {written} bytes, expected {size}: the download is incomplete",
                    file.path
                )));
            }
        }
        if let Some(h) = hasher {
            h.verify(file, &shown)?;
        }
        Ok(())
    }

    async fn ranged(
        &self,
        store: &Arc<dyn ObjectStore>,
        location: &ObjectPath,
        size: u64,
        target: &Path,
        progress: &Progress,
    ) -> Result<u64, FetchError> {
        let shown = self.source.display();
        let file = std::fs::File::create(target)
            .map_err(|e| FetchError::io("cannot write to the cache", e))?;
        file.set_len(size)
            .map_err(|e| FetchError::io("cannot write to the cache", e))?;
        let file = Arc::new(file);
        let ranges: Vec<(u64, u64)> = (0..size.div_ceil(RANGE_BYTES))
            .map(|i| (i * RANGE_BYTES, ((i + 1) * RANGE_BYTES).min(size)))
            .collect();
        let each: Vec<BoxFuture<'_, Result<(), FetchError>>> = ranges
            .into_iter()
            .map(|(start, end)| {
                let file = file.clone();
                let shown = &shown;
                async move {
                    let _permit = self.permits.acquire().await;
                    let bytes =
                        tokio::time::timeout(RANGE_DEADLINE, store.get_range(location, start..end))
                            .await
                            .map_err(|_| stalled())?
                            .map_err(|e| object_error(shown, e))?;
                    if bytes.len() as u64 != end - start {
                        return Err(FetchError(format!("{shown}: a range came back short")));
                    }
                    tokio::task::spawn_blocking(move || file.write_all_at(&bytes, start))
                        .await
                        .map_err(|e| FetchError(format!("cannot write to the cache: {e}")))?
                        .map_err(|e| FetchError::io("cannot write to the cache", e))?;
                    progress
                        .bytes_done
                        .fetch_add(end - start, Ordering::Relaxed);
                    Ok::<(), FetchError>(())
                }
                .boxed()
            })
            .collect();
        futures_util::stream::iter(each)
            .buffer_unordered(self.parallel)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(size)
    }
}

/// Writes a stream of chunks to `target`, counting and hashing; the bytes written. The file
/// is written and hashed on a blocking thread, fed through a short queue: the async workers
/// only receive, and hashing a file overlaps with receiving it.
async fn write_stream(
    mut stream: impl futures_util::Stream<Item = Result<bytes::Bytes, FetchError>> + Unpin,
    target: &Path,
    progress: &Progress,
    hasher: &mut Option<Hashers>,
) -> Result<u64, FetchError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(SINK_QUEUE);
    let path = target.to_path_buf();
    let mut hash = hasher.take();
    let sink = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Option<Hashers>)> {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            if let Some(h) = hash.as_mut() {
                h.update(&chunk);
            }
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        out.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?
            .sync_all()?;
        Ok((written, hash))
    });
    let received = async {
        loop {
            let next = tokio::time::timeout(STALLED_AFTER, stream.next())
                .await
                .map_err(|_| stalled())?;
            let Some(chunk) = next else { return Ok(()) };
            let chunk = chunk?;
            let n = chunk.len() as u64;
            // The sink is gone only when it failed: its error is the one to report.
            if tx.send(chunk).await.is_err() {
                return Ok(());
            }
            progress.bytes_done.fetch_add(n, Ordering::Relaxed);
        }
    }
    .await;
    drop(tx);
    // The sink finishes (or fails) before anything is reported, so nothing writes into the
    // download's folder once the caller has removed it.
    let sunk = sink
        .await
        .map_err(|e| FetchError(format!("writing to the cache stopped: {e}")))?;
    received?;
    let (written, hash) = sunk.map_err(|e| FetchError::io("cannot write to the cache", e))?;
    *hasher = hash;
    Ok(written)
}

/// The checksums a file comes with, computed while it is written.
enum Hashers {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hashers {
    fn for_file(file: &RemoteFile) -> Option<Hashers> {
        if file.sha256.is_some() {
            Some(Hashers::Sha256(Sha256::new()))
        } else if file.md5.is_some() {
            Some(Hashers::Md5(Md5::new()))
        } else {
            None
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hashers::Md5(h) => h.update(bytes),
            Hashers::Sha256(h) => h.update(bytes),
        }
    }

    /// The hash of a whole file, read back from disk (blocking).
    fn of_file(mut self, path: &Path) -> std::io::Result<Hashers> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                return Ok(self);
            }
            self.update(&buffer[..n]);
        }
    }

    fn verify(self, file: &RemoteFile, shown: &str) -> Result<(), FetchError> {
        let ok = match self {
            Hashers::Md5(h) => file.md5.is_some_and(|want| h.finalize().as_slice() == want),
            Hashers::Sha256(h) => file
                .sha256
                .is_some_and(|want| h.finalize().as_slice() == want),
        };
        if ok {
            Ok(())
        } else {
            Err(FetchError(format!(
                "{shown}: {} does not match its checksum: the download is corrupt",
                file.path
            )))
        }
    }
}

fn object_file(path: String, meta: &object_store::ObjectMeta) -> RemoteFile {
    // A single-part upload's ETag is the object's MD5; a multipart one's has a `-N` suffix.
    let md5 = meta
        .e_tag
        .as_deref()
        .map(|t| t.trim_matches('"'))
        .and_then(parse_hex::<16>);
    RemoteFile {
        path,
        size: Some(meta.size),
        md5,
        sha256: None,
        locator: Locator::Object(meta.location.clone()),
    }
}

/// A listing's version: every object's name, size, ETag and time, hashed.
fn object_version(metas: &[&object_store::ObjectMeta]) -> String {
    let mut h = Sha256::new();
    for m in metas {
        h.update(format!(
            "{}\n{}\n{}\n{}\n",
            m.location,
            m.size,
            m.e_tag.as_deref().unwrap_or(""),
            m.last_modified.timestamp()
        ));
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn object_error(shown: &str, e: object_store::Error) -> FetchError {
    match e {
        object_store::Error::NotFound { .. } => {
            FetchError(format!("Failed to fetch model. No model found in {shown}."))
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => FetchError(format!(
            "{shown}: access denied: check the storage credentials"
        )),
        other => {
            // A failed listing comes as a `Generic` error whatever its status: read it.
            let text = other.to_string();
            let status = |code: &str| text.contains(&format!("non-2xx status code: {code} "));
            if status("401") || status("403") {
                FetchError(format!(
                    "{shown}: access denied: check the storage credentials"
                ))
            } else if status("404") {
                FetchError(format!("Failed to fetch model. No model found in {shown}."))
            } else {
                FetchError(format!("{shown}: {}", redact_query(&text)))
            }
        }
    }
}

fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The last segment of a URL's path.
fn file_name_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let name = parsed.path_segments()?.next_back()?.to_string();
    (!name.is_empty()).then_some(name)
}

/// KServe's Content-Type rule for an HTTP model file.
pub fn check_content_type(name: &str, content_type: &str, shown: &str) -> Result<(), FetchError> {
    let lower = name.to_ascii_lowercase();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let allowed: &[&str] = if lower.ends_with(".zip") {
        &[
            "application/zip",
            "application/x-zip-compressed",
            "application/zip-compressed",
        ]
    } else if lower.ends_with(".tar") || lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        &[
            "application/x-tar",
            "application/x-gtar",
            "application/x-gzip",
            "application/gzip",
        ]
    } else {
        &["application/octet-stream"]
    };
    if allowed.contains(&mime.as_str()) {
        Ok(())
    } else if allowed.len() == 1 {
        Err(FetchError(format!(
            "URI: {shown} did not respond with 'Content-Type': 'application/octet-stream'"
        )))
    } else {
        Err(FetchError(format!(
            "URI: {shown} did not respond with any of the following 'Content-Type': {}",
            allowed.join(", ")
        )))
    }
}

/// A repository path that stays inside the model folder.
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    redact_query(&text)
}

fn redact_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for c in text.chars() {
        match c {
            '?' => {
                in_query = true;
                out.push_str("?…");
            }
            ' ' | '"' | '\'' | ')' | ',' => {
                in_query = false;
                out.push(c);
            }
            _ if in_query => {}
            _ => out.push(c),
        }
    }
    out
}

/// The Hugging Face hub's `/api/models/{repo}/revision/{rev}` answer, as much as is used.
#[derive(serde::Deserialize)]
struct HfModelInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<HfSibling>,
}

#[derive(serde::Deserialize)]
struct HfSibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<HfLfs>,
}

#[derive(serde::Deserialize)]
struct HfLfs {
    sha256: String,
    size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_kserve() {
        let check = |name: &str, ct: &str, ok: bool| {
            assert_eq!(
                check_content_type(name, ct, "http://h/x").is_ok(),
                ok,
                "{name} {ct}"
            );
        };
        check("model.joblib", "application/octet-stream", true);
        check(
            "model.joblib",
            "application/octet-stream; charset=binary",
            true,
        );
        check("model.joblib", "text/html", false);
        check("m.zip", "application/zip", true);
        check("m.zip", "application/x-zip-compressed", true);
        check("m.zip", "application/octet-stream", false);
        check("m.tar.gz", "application/gzip", true);
        check("m.tgz", "application/x-gtar", true);
        check("m.tar", "application/x-tar", true);
        check("m.tar", "text/plain", false);
        assert_eq!(
            check_content_type("m.bin", "text/html", "http://h/m.bin")
                .unwrap_err()
                .0,
            "URI: http://h/m.bin did not respond with 'Content-Type': 'application/octet-stream'"
        );
    }

    #[test]
    fn etags_give_md5_only_for_single_part_uploads() {
        assert_eq!(
            parse_hex::<16>("0123456789abcdef0123456789abcdef").map(|b| b[0]),
            Some(0x01)
        );
        assert_eq!(parse_hex::<16>("0123456789abcdef0123456789abcdef-3"), None);
        assert_eq!(parse_hex::<16>("xyz"), None);
    }

    #[test]
    fn file_names_and_paths() {
        assert_eq!(
            file_name_of("https://h/a/model.bin?sig=1").as_deref(),
            Some("model.bin")
        );
        assert_eq!(file_name_of("https://h/a/"), None);
        assert!(safe_relative("a/b.bin"));
        assert!(!safe_relative("../b.bin"));
        assert!(!safe_relative("/etc/passwd"));
        assert_eq!(
            redact_query("GET http://h/x?sig=secret failed"),
            "GET http://h/x?… failed"
        );
    }
}

//! What a storage URI names. Pure: no file system, no network.
//!
//! The schemes and their error texts are KServe v0.15.2's (`storage.py`, `utils.go`):
//! `s3://`, `gs://`, `http(s)://` (one file; Azure blob URLs are plain HTTPS here),
//! `pvc://`, `hf://`, `file://` and local paths. KServe's `hdfs://`, `webhdfs://` and
//! `oci://` are refused with a reason. A URL may carry credentials (`user:token@`, a signed
//! query string), so nothing here ever shows them: errors and [`ModelSource::display`] go
//! through [`redact`].

use std::path::{Component, Path, PathBuf};

/// Where a model comes from.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelSource {
    /// `file://PATH`, an absolute path, or a path relative to the YAML file's folder (cleaned
    /// lexically, absolute): mounted as it is.
    Local(PathBuf),
    /// `pvc://<claim>[/<path>]`: a host folder the daemon config names; mounted as it is.
    Pvc { claim: String, path: String },
    /// `s3://<bucket>[/<key or prefix>]`.
    S3 { bucket: String, key: String },
    /// `gs://<bucket>[/<key or prefix>]`.
    Gcs { bucket: String, key: String },
    /// `http://…` or `https://…`: one file.
    Http(String),
    /// `hf://<org>/<model>[:<revision>]`.
    HuggingFace {
        repo: String,
        revision: Option<String>,
    },
}

/// KServe's schemes that gantry does not fetch, with what to do instead.
const UNSUPPORTED: [(&str, &str); 3] = [
    (
        "hdfs",
        "copy the model to S3, GCS, an HTTP server or a local folder and point storageUri there",
    ),
    (
        "webhdfs",
        "copy the model to S3, GCS, an HTTP server or a local folder and point storageUri there",
    ),
    (
        "oci",
        "KServe's modelcar images are not run; point storageUri at the model files themselves \
         (s3://, gs://, hf://, http(s)://, pvc:// or a local path)",
    ),
];

/// Parses a storage URI. `source_dir` is the YAML file's folder (for relative paths).
/// Errors are KServe's texts where it has one; they never show a URL's user-info or query.
pub fn parse(uri: &str, source_dir: &Path) -> Result<ModelSource, String> {
    let Some(scheme) = uri_scheme(uri) else {
        return local(uri, uri, source_dir);
    };
    let rest = &uri[scheme.len() + 3..];
    match scheme {
        "file" => local(uri, rest, source_dir),
        "s3" => {
            let (bucket, key) = bucket_and_key(uri, scheme, rest)?;
            Ok(ModelSource::S3 { bucket, key })
        }
        "gs" => {
            let (bucket, key) = bucket_and_key(uri, scheme, rest)?;
            Ok(ModelSource::Gcs { bucket, key })
        }
        "http" | "https" => http(uri),
        "pvc" => pvc(uri, rest),
        "hf" => hugging_face(rest),
        _ => {
            let family = scheme.split('+').next().unwrap_or(scheme);
            if let Some((_, instead)) = UNSUPPORTED.iter().find(|(s, _)| *s == family) {
                return Err(format!(
                    "the {scheme}:// scheme is not supported by gantry; {instead}"
                ));
            }
            Err(format!(
                "Cannot recognize storage type for {}: 's3://', 'gs://', 'hf://', 'pvc://', \
                 'http(s)://', 'file://' and local paths are the storage types gantry reads",
                redact(uri)
            ))
        }
    }
}

impl ModelSource {
    /// Whether it is downloaded into the cache (rather than mounted where it is).
    pub fn is_remote(&self) -> bool {
        !matches!(self, ModelSource::Local(_) | ModelSource::Pvc { .. })
    }

    /// The URI scheme it was written with (`file` for every local path).
    pub fn scheme(&self) -> &'static str {
        match self {
            ModelSource::Local(_) => "file",
            ModelSource::Pvc { .. } => "pvc",
            ModelSource::S3 { .. } => "s3",
            ModelSource::Gcs { .. } => "gs",
            ModelSource::Http(url) if url.starts_with("http://") => "http",
            ModelSource::Http(_) => "https",
            ModelSource::HuggingFace { .. } => "hf",
        }
    }

    /// The source as logs, status and errors show it: no user-info, no query string.
    pub fn display(&self) -> String {
        match self {
            ModelSource::Local(path) => path.display().to_string(),
            ModelSource::Pvc { claim, path } => with_path(&format!("pvc://{claim}"), path),
            ModelSource::S3 { bucket, key } => redact(&with_path(&format!("s3://{bucket}"), key)),
            ModelSource::Gcs { bucket, key } => redact(&with_path(&format!("gs://{bucket}"), key)),
            ModelSource::Http(url) => redact(url),
            ModelSource::HuggingFace { repo, revision } => match revision {
                Some(revision) => format!("hf://{repo}:{revision}"),
                None => format!("hf://{repo}"),
            },
        }
    }
}

/// Derived `Debug` would print a URL's credentials; this prints what [`display`] shows.
///
/// [`display`]: ModelSource::display
impl std::fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Local(path) => f.debug_tuple("Local").field(path).finish(),
            ModelSource::Pvc { claim, path } => f
                .debug_struct("Pvc")
                .field("claim", claim)
                .field("path", path)
                .finish(),
            ModelSource::S3 { bucket, key } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("key", &redact(key))
                .finish(),
            ModelSource::Gcs { bucket, key } => f
                .debug_struct("Gcs")
                .field("bucket", bucket)
                .field("key", &redact(key))
                .finish(),
            ModelSource::Http(url) => f.debug_tuple("Http").field(&redact(url)).finish(),
            ModelSource::HuggingFace { repo, revision } => f
                .debug_struct("HuggingFace")
                .field("repo", repo)
                .field("revision", revision)
                .finish(),
        }
    }
}

/// A URI as it may be shown: the user-info (`user:pass@`) dropped, a query string replaced
/// by `?…`, a fragment dropped. Text without `://` only loses its query.
pub fn redact(uri: &str) -> String {
    // User-info first: a password may hold `?` or `#`, which must not be read as a query.
    let without_user = match uri.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => uri.to_string(),
    };
    match without_user.find(['?', '#']) {
        Some(at) if without_user[at..].starts_with('?') => {
            format!("{}?…", &without_user[..at])
        }
        Some(at) => without_user[..at].to_string(),
        None => without_user,
    }
}

fn with_path(base: &str, path: &str) -> String {
    if path.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{path}")
    }
}

/// `s3` for `s3://bucket/x`: an RFC 3986 scheme followed by `://`.
fn uri_scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// The host path a local model URI names: `file://PATH`, an absolute path, or a path
/// relative to `source_dir` (KServe's `file://` handling strips the prefix and takes the
/// rest as a path, so `file://models/x` is relative too).
fn local(uri: &str, path: &str, source_dir: &Path) -> Result<ModelSource, String> {
    if path.is_empty() {
        return Err(if uri.is_empty() {
            "Invalid value: \"\": expected a storage URI or a path".to_string()
        } else {
            "Invalid value: \"file://\": expected a path after file://".to_string()
        });
    }
    let path = Path::new(path);
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else if source_dir.is_absolute() {
        source_dir.join(path)
    } else {
        return Err(format!(
            "Invalid value: \"{uri}\": a relative model path needs the YAML file's folder as an \
             absolute path, found \"{}\"",
            source_dir.display()
        ));
    };
    Ok(ModelSource::Local(PathBuf::from(clean(&full))))
}

/// `s3://bucket/key` and `gs://bucket/key`, split as KServe does (`split("/", 1)`): the key
/// is kept as written, a trailing `/` included (it is a listing prefix).
fn bucket_and_key(uri: &str, scheme: &str, rest: &str) -> Result<(String, String), String> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "Invalid value: \"{}\": expected a bucket name after {scheme}://",
            redact(uri)
        ));
    }
    if bucket.contains('@') {
        // Not shown: what comes before `@` is most likely a key.
        return Err(format!(
            "a {scheme}:// URI cannot carry credentials (`user:key@bucket`): put them in a \
             Secret (through the service account or serving.kserve.io/storageSecretName) or in \
             the daemon config"
        ));
    }
    Ok((bucket.to_string(), key.to_string()))
}

/// One file over HTTP(S): KServe takes the last segment of the URL's path as the file name.
fn http(uri: &str) -> Result<ModelSource, String> {
    let url = reqwest::Url::parse(uri)
        .map_err(|e| format!("Invalid value: \"{}\": not a valid URL: {e}", redact(uri)))?;
    let filename = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or("");
    if filename.is_empty() {
        return Err(format!("No filename contained in URI: {}", redact(uri)));
    }
    Ok(ModelSource::Http(uri.to_string()))
}

/// `pvc://<claim>[/<path>]` (KServe's `ParsePvcURI`). The path becomes a volume sub-path,
/// so it is cleaned and may not climb out of the volume, as Kubernetes checks `subPath`.
fn pvc(uri: &str, rest: &str) -> Result<ModelSource, String> {
    let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
    let shown = redact(uri);
    if claim.is_empty() {
        return Err(format!(
            "Invalid URI must be pvc://<pvcname>/[path]: {shown}"
        ));
    }
    if let Some(problem) = claim_name_problem(claim) {
        return Err(format!(
            "Invalid URI must be pvc://<pvcname>/[path]: {shown}: {problem}"
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "Invalid value: \"{shown}\": the path of a pvc:// URI must not contain '..'"
                ))
            }
            name => parts.push(name),
        }
    }
    Ok(ModelSource::Pvc {
        claim: claim.to_string(),
        path: parts.join("/"),
    })
}

/// A PersistentVolumeClaim's name is a DNS-1123 subdomain; a template placeholder left in
/// the URI (`pvc://${PVC_NAME}/x`) is the usual way to get it wrong.
fn claim_name_problem(claim: &str) -> Option<String> {
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    let valid = claim.len() <= 253 && claim.split('.').all(label_ok);
    (!valid).then(|| {
        format!(
            "Invalid value: \"{claim}\": a lowercase RFC 1123 subdomain must consist of lower \
             case alphanumeric characters, '-' or '.', and must start and end with an \
             alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    })
}

/// `hf://<org>/<model>[:<revision>]` as KServe's `_download_hf` splits it, with the
/// repository id checked as `huggingface_hub` checks it before any download.
fn hugging_face(rest: &str) -> Result<ModelSource, String> {
    let parts: Vec<&str> = rest.split('/').collect();
    let [org, model_part] = parts[..] else {
        return Err(
            "URI must contain exactly one '/' separating the repo and model name".to_string(),
        );
    };
    if org.is_empty() {
        return Err("Repository name cannot be empty".to_string());
    }
    let (model, revision) = model_part.split_once(':').unwrap_or((model_part, ""));
    if model.is_empty() {
        return Err("Model name cannot be empty".to_string());
    }
    let repo = format!("{org}/{model}");
    if repo.contains("--") || repo.contains("..") {
        return Err(format!("Cannot have -- or .. in repo_id: '{repo}'."));
    }
    let name_ok = |name: &str, max: usize| {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        name.len() <= max
            && name.chars().all(|c| word(c) || matches!(c, '-' | '.'))
            && name.starts_with(word)
            && name.ends_with(word)
    };
    if !name_ok(org, usize::MAX) || !name_ok(model, 96) {
        return Err(format!(
            "Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, \
             '-' and '.' cannot start or end the name, max length is 96: '{repo}'."
        ));
    }
    Ok(ModelSource::HuggingFace {
        repo,
        revision: (!revision.is_empty()).then(|| revision.to_string()),
    })
}

/// A path cleaned lexically, as Go's `filepath.Clean`: no `.`, no `..` after a name, no
/// doubled or trailing slash. Symbolic links are not followed (no file system here).
pub fn clean(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    let absolute = path.is_absolute();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.last().is_some_and(|p| p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..".into());
                }
            }
            Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/srv/gantry/services";

    fn local_at(path: &str) -> ModelSource {
        ModelSource::Local(PathBuf::from(path))
    }

    fn s3(bucket: &str, key: &str) -> ModelSource {
        ModelSource::S3 {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    fn gcs(bucket: &str, key: &str) -> ModelSource {
        ModelSource::Gcs {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    fn pvc_at(claim: &str, path: &str) -> ModelSource {
        ModelSource::Pvc {
            claim: claim.into(),
            path: path.into(),
        }
    }

    fn hf(repo: &str, revision: Option<&str>) -> ModelSource {
        ModelSource::HuggingFace {
            repo: repo.into(),
            revision: revision.map(String::from),
        }
    }

    fn url(u: &str) -> ModelSource {
        ModelSource::Http(u.into())
    }

    /// Parses `input` from a YAML file in [`DIR`]; on success, also checks what is shown.
    fn check(input: &str, expected: Result<(ModelSource, &str), &str>) {
        check_in(input, DIR, expected);
    }

    fn check_in(input: &str, dir: &str, expected: Result<(ModelSource, &str), &str>) {
        let got = parse(input, Path::new(dir));
        match expected {
            Ok((source, shown)) => {
                let got = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(got, source, "{input}");
                assert_eq!(got.display(), shown, "{input}");
            }
            Err(message) => assert_eq!(got, Err(message.to_string()), "{input}"),
        }
    }

    #[test]
    fn local_paths() {
        fn ok(p: &str) -> Result<(ModelSource, &str), &str> {
            Ok((local_at(p), p))
        }
        check("file:///models/iris", ok("/models/iris"));
        check("file:///models/iris/", ok("/models/iris"));
        check("/models/./iris//v1/..", ok("/models/iris"));
        check("../models/iris", ok("/srv/gantry/models/iris"));
        check("models/iris", ok("/srv/gantry/services/models/iris"));
        check("./iris", ok("/srv/gantry/services/iris"));
        check("file://models/iris", ok("/srv/gantry/services/models/iris"));
        check("../../../../../x", ok("/x"));
        check("./a://b", ok("/srv/gantry/services/a:/b"));
        check_in(
            "../models/iris",
            "services",
            Err("Invalid value: \"../models/iris\": a relative model path needs the YAML file's folder as an absolute path, found \"services\""),
        );
        check(
            "file://",
            Err("Invalid value: \"file://\": expected a path after file://"),
        );
        check(
            "",
            Err("Invalid value: \"\": expected a storage URI or a path"),
        );
    }

    #[test]
    fn object_stores() {
        check(
            "s3://bucket/models/iris",
            Ok((s3("bucket", "models/iris"), "s3://bucket/models/iris")),
        );
        check("s3://bucket", Ok((s3("bucket", ""), "s3://bucket")));
        check("s3://bucket/", Ok((s3("bucket", ""), "s3://bucket")));
        check(
            "gs://bucket/a/b/",
            Ok((gcs("bucket", "a/b/"), "gs://bucket/a/b/")),
        );
        check(
            "s3://",
            Err("Invalid value: \"s3://\": expected a bucket name after s3://"),
        );
        check(
            "gs:///key",
            Err("Invalid value: \"gs:///key\": expected a bucket name after gs://"),
        );
        check(
            "s3://AKIAEXAMPLE:hunter2@bucket/key",
            Err("a s3:// URI cannot carry credentials (`user:key@bucket`): put them in a Secret (through the service account or serving.kserve.io/storageSecretName) or in the daemon config"),
        );
        check(
            "s3://bucket/key?versionId=1",
            Ok((s3("bucket", "key?versionId=1"), "s3://bucket/key?…")),
        );
    }

    #[test]
    fn http_files() {
        check(
            "https://example.com/model.tar.gz",
            Ok((
                url("https://example.com/model.tar.gz"),
                "https://example.com/model.tar.gz",
            )),
        );
        check(
            "https://user:token@example.com:8443/m/model.joblib?sig=secret#frag",
            Ok((
                url("https://user:token@example.com:8443/m/model.joblib?sig=secret#frag"),
                "https://example.com:8443/m/model.joblib?…",
            )),
        );
        check(
            "http://example.com/model.bin#part",
            Ok((
                url("http://example.com/model.bin#part"),
                "http://example.com/model.bin",
            )),
        );
        check(
            "https://user:token@example.com/models/?sig=secret",
            Err("No filename contained in URI: https://example.com/models/?…"),
        );
        check(
            "http://example.com",
            Err("No filename contained in URI: http://example.com"),
        );
        check(
            "https://user:token@example.com:99999/x?sig=secret",
            Err("Invalid value: \"https://example.com:99999/x?…\": not a valid URL: invalid port number"),
        );
        check(
            "https://",
            Err("Invalid value: \"https://\": not a valid URL: empty host"),
        );
    }

    #[test]
    fn volumes() {
        check(
            "pvc://model-storage/124M/",
            Ok((pvc_at("model-storage", "124M"), "pvc://model-storage/124M")),
        );
        check(
            "pvc://claim/./a//b/",
            Ok((pvc_at("claim", "a/b"), "pvc://claim/a/b")),
        );
        check("pvc://claim", Ok((pvc_at("claim", ""), "pvc://claim")));
        check("pvc://claim/", Ok((pvc_at("claim", ""), "pvc://claim")));
        check(
            "pvc://",
            Err("Invalid URI must be pvc://<pvcname>/[path]: pvc://"),
        );
        check(
            "pvc:///path",
            Err("Invalid URI must be pvc://<pvcname>/[path]: pvc:///path"),
        );
        check(
            "pvc://claim/a/../../etc",
            Err("Invalid value: \"pvc://claim/a/../../etc\": the path of a pvc:// URI must not contain '..'"),
        );
        check(
            "pvc://Claim_1/x",
            Err("Invalid URI must be pvc://<pvcname>/[path]: pvc://Claim_1/x: Invalid value: \"Claim_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        );
    }

    #[test]
    fn hugging_face_repositories() {
        check(
            "hf://meta-llama/Llama-3.1-8B",
            Ok((
                hf("meta-llama/Llama-3.1-8B", None),
                "hf://meta-llama/Llama-3.1-8B",
            )),
        );
        check(
            "hf://org/model:0a1b2c",
            Ok((hf("org/model", Some("0a1b2c")), "hf://org/model:0a1b2c")),
        );
        check(
            "hf://org/model:",
            Ok((hf("org/model", None), "hf://org/model")),
        );
        let one_slash = "URI must contain exactly one '/' separating the repo and model name";
        check("hf://model", Err(one_slash));
        check("hf://org/model/", Err(one_slash));
        check("hf://org/model/sub", Err(one_slash));
        check("hf:///model", Err("Repository name cannot be empty"));
        check("hf://org/:rev", Err("Model name cannot be empty"));
        check(
            "hf://org/a--b",
            Err("Cannot have -- or .. in repo_id: 'org/a--b'."),
        );
        check(
            "hf://org/-model",
            Err("Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, '-' and '.' cannot start or end the name, max length is 96: 'org/-model'."),
        );
    }

    #[test]
    fn other_schemes() {
        let hdfs = "copy the model to S3, GCS, an HTTP server or a local folder and point storageUri there";
        check(
            "hdfs://namenode/models",
            Err(&format!(
                "the hdfs:// scheme is not supported by gantry; {hdfs}"
            )),
        );
        check(
            "webhdfs://namenode/models",
            Err(&format!(
                "the webhdfs:// scheme is not supported by gantry; {hdfs}"
            )),
        );
        let oci = "KServe's modelcar images are not run; point storageUri at the model files themselves (s3://, gs://, hf://, http(s)://, pvc:// or a local path)";
        check(
            "oci://registry/model:1",
            Err(&format!(
                "the oci:// scheme is not supported by gantry; {oci}"
            )),
        );
        check(
            "oci+native://registry/model:1",
            Err(&format!(
                "the oci+native:// scheme is not supported by gantry; {oci}"
            )),
        );
        check(
            "ftp://user:pass@host/model.bin?x=1",
            Err("Cannot recognize storage type for ftp://host/model.bin?…: 's3://', 'gs://', 'hf://', 'pvc://', 'http(s)://', 'file://' and local paths are the storage types gantry reads"),
        );
        // Schemes are case-sensitive, as KServe's prefix checks are.
        check(
            "S3://bucket/key",
            Err("Cannot recognize storage type for S3://bucket/key: 's3://', 'gs://', 'hf://', 'pvc://', 'http(s)://', 'file://' and local paths are the storage types gantry reads"),
        );
    }

    /// Every `storageUri` of the corpus (`grep -rhoE "storageUri: *[^ ]+" corpus | sort -u`).
    #[test]
    fn corpus_storage_uris() {
        let gs = |key: &str, bucket: &str| {
            let shown = format!("gs://{bucket}/{key}");
            (gcs(bucket, key), shown)
        };
        for (input, bucket, key) in [
            (
                "gs://kfserving-examples/models/mlflow/wine",
                "kfserving-examples",
                "models/mlflow/wine",
            ),
            (
                "gs://kfserving-examples/models/onnx",
                "kfserving-examples",
                "models/onnx",
            ),
            (
                "gs://kfserving-examples/models/sklearn/1.0/model",
                "kfserving-examples",
                "models/sklearn/1.0/model",
            ),
            (
                "gs://kfserving-examples/models/sklearn/1.3/income/explainer",
                "kfserving-examples",
                "models/sklearn/1.3/income/explainer",
            ),
            (
                "gs://kfserving-examples/models/sklearn/iris",
                "kfserving-examples",
                "models/sklearn/iris",
            ),
            (
                "gs://kfserving-examples/models/tensorflow/flowers",
                "kfserving-examples",
                "models/tensorflow/flowers",
            ),
            (
                "gs://kfserving-examples/models/tensorflow/flowers-2",
                "kfserving-examples",
                "models/tensorflow/flowers-2",
            ),
            (
                "gs://kfserving-examples/models/torchserve/image_classifier/v1",
                "kfserving-examples",
                "models/torchserve/image_classifier/v1",
            ),
            (
                "gs://kfserving-examples/models/triton/bert",
                "kfserving-examples",
                "models/triton/bert",
            ),
            (
                "gs://kfserving-examples/models/xgboost/iris",
                "kfserving-examples",
                "models/xgboost/iris",
            ),
            (
                "gs://kfserving-samples/models/pytorch/cifar10/",
                "kfserving-samples",
                "models/pytorch/cifar10/",
            ),
            (
                "gs://kfserving-samples/models/tensorflow/flowers",
                "kfserving-samples",
                "models/tensorflow/flowers",
            ),
            (
                "gs://kfserving-samples/models/tensorflow/flowers-2",
                "kfserving-samples",
                "models/tensorflow/flowers-2",
            ),
            (
                "gs://seldon-models/sklearn/income/model",
                "seldon-models",
                "sklearn/income/model",
            ),
            (
                "gs://seldon-models/sklearn/iris",
                "seldon-models",
                "sklearn/iris",
            ),
            (
                "gs://seldon-models/tfserving/imagenet/explainer-py36-0.5.2",
                "seldon-models",
                "tfserving/imagenet/explainer-py36-0.5.2",
            ),
            (
                "gs://seldon-models/tfserving/imagenet/model",
                "seldon-models",
                "tfserving/imagenet/model",
            ),
            (
                "gs://kfserving-examples/models/sklearn/mnist/art",
                "kfserving-examples",
                "models/sklearn/mnist/art",
            ),
            (
                "gs://kfserving-examples/models/torchscript",
                "kfserving-examples",
                "models/torchscript",
            ),
            (
                "gs://kfserving-examples/models/torchserve/image_classifier",
                "kfserving-examples",
                "models/torchserve/image_classifier",
            ),
            (
                "gs://kfserving-examples/models/torchserve/image_classifier/v2",
                "kfserving-examples",
                "models/torchserve/image_classifier/v2",
            ),
            (
                "gs://kfserving-examples/models/triton/huggingface/model_repository",
                "kfserving-examples",
                "models/triton/huggingface/model_repository",
            ),
            (
                "gs://kfserving-samples/models/pytorch/cifar10",
                "kfserving-samples",
                "models/pytorch/cifar10",
            ),
        ] {
            let (source, shown) = gs(key, bucket);
            check(input, Ok((source, &shown)));
        }
        for (input, bucket, key) in [
            (
                "s3://kfserving-examples/mnist",
                "kfserving-examples",
                "mnist",
            ),
            ("s3://mnist/v1/export", "mnist", "v1/export"),
            ("s3://my-bucket/llm-model", "my-bucket", "llm-model"),
            ("s3://my-bucket/model", "my-bucket", "model"),
            ("s3://coreweave/gpt-2/124M/", "coreweave", "gpt-2/124M/"),
            (
                "s3://modelmesh-example-models/sklearn/mnist-svm.joblib",
                "modelmesh-example-models",
                "sklearn/mnist-svm.joblib",
            ),
        ] {
            check(input, Ok((s3(bucket, key), input)));
        }
        for (input, shown) in [
            (
                "https://github.com/kserve/modelmesh-minio-examples/blob/main/sklearn/mnist-svm.joblib?raw=true",
                "https://github.com/kserve/modelmesh-minio-examples/blob/main/sklearn/mnist-svm.joblib?…",
            ),
            // Azure blob storage: a public blob read as one HTTPS file.
            (
                "https://modelstoreaccount.blob.core.windows.net/model-store/model.joblib",
                "https://modelstoreaccount.blob.core.windows.net/model-store/model.joblib",
            ),
            (
                "https://github.com/Xilinx/inference-server/blob/main/tests/assets/mnist.zip",
                "https://github.com/Xilinx/inference-server/blob/main/tests/assets/mnist.zip",
            ),
            (
                "https://github.com/tduffy000/kfserving-uri-examples/blob/master/sklearn/frozen/model.joblib?raw=true",
                "https://github.com/tduffy000/kfserving-uri-examples/blob/master/sklearn/frozen/model.joblib?…",
            ),
            (
                "https://github.com/trustyai-explainability/model-collection/raw/main/housing-data/model.joblib",
                "https://github.com/trustyai-explainability/model-collection/raw/main/housing-data/model.joblib",
            ),
            (
                "https://raw.githubusercontent.com/tduffy000/kfserving-uri-examples/master/tensorflow/frozen/model_artifacts.tar.gz",
                "https://raw.githubusercontent.com/tduffy000/kfserving-uri-examples/master/tensorflow/frozen/model_artifacts.tar.gz",
            ),
        ] {
            check(input, Ok((url(input), shown)));
        }
        for (input, claim, path, shown) in [
            ("pvc://model-cache", "model-cache", "", "pvc://model-cache"),
            (
                "pvc://model-pv-claim",
                "model-pv-claim",
                "",
                "pvc://model-pv-claim",
            ),
            (
                "pvc://model-storage/124M/",
                "model-storage",
                "124M",
                "pvc://model-storage/124M",
            ),
            (
                "pvc://model-storage/1558M/",
                "model-storage",
                "1558M",
                "pvc://model-storage/1558M",
            ),
            (
                "pvc://model-storage/inception/",
                "model-storage",
                "inception",
                "pvc://model-storage/inception",
            ),
            (
                "pvc://models-pvc-1/sklearn/mnist-svm.joblib",
                "models-pvc-1",
                "sklearn/mnist-svm.joblib",
                "pvc://models-pvc-1/sklearn/mnist-svm.joblib",
            ),
        ] {
            check(input, Ok((pvc_at(claim, path), shown)));
        }
        check(
            "hf://meta-llama/Llama-2-7b-chat-hf",
            Ok((
                hf("meta-llama/Llama-2-7b-chat-hf", None),
                "hf://meta-llama/Llama-2-7b-chat-hf",
            )),
        );
        // `STORAGE_URI` values of custom containers in the corpus.
        for (input, expected, shown) in [
            (
                "gs://kfserving-samples/models/triton/bert-transformer",
                gcs("kfserving-samples", "models/triton/bert-transformer"),
                "gs://kfserving-samples/models/triton/bert-transformer",
            ),
            (
                "gs://kfserving-examples/models/huggingface/llama",
                gcs("kfserving-examples", "models/huggingface/llama"),
                "gs://kfserving-examples/models/huggingface/llama",
            ),
            (
                "pvc://dalle-mini-model-cache/",
                pvc_at("dalle-mini-model-cache", ""),
                "pvc://dalle-mini-model-cache",
            ),
            (
                "pvc://gpt-j-6b-model-cache/",
                pvc_at("gpt-j-6b-model-cache", ""),
                "pvc://gpt-j-6b-model-cache",
            ),
            (
                "pvc://microsoft-bloom-deepspeed-inference-fp16/",
                pvc_at("microsoft-bloom-deepspeed-inference-fp16", ""),
                "pvc://microsoft-bloom-deepspeed-inference-fp16",
            ),
            (
                "pvc://model-storage/sentiment",
                pvc_at("model-storage", "sentiment"),
                "pvc://model-storage/sentiment",
            ),
        ] {
            check(input, Ok((expected, shown)));
        }
        // Documentation templates with an unfilled placeholder: no claim can have that name.
        for (input, path) in [
            ("pvc://${PVC_NAME}/export", "export"),
            ("pvc://${PVC_NAME}/sklearn-pvc", "sklearn-pvc"),
        ] {
            let message = format!(
                "Invalid URI must be pvc://<pvcname>/[path]: pvc://${{PVC_NAME}}/{path}: Invalid value: \"${{PVC_NAME}}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            );
            check(input, Err(&message));
        }
    }

    #[test]
    fn remote_or_mounted() {
        for (input, remote, scheme) in [
            ("/models/iris", false, "file"),
            ("file:///models/iris", false, "file"),
            ("pvc://claim/x", false, "pvc"),
            ("s3://b/k", true, "s3"),
            ("gs://b/k", true, "gs"),
            ("http://h/f.bin", true, "http"),
            ("https://h/f.bin", true, "https"),
            ("hf://o/m", true, "hf"),
        ] {
            let source = parse(input, Path::new(DIR)).unwrap();
            assert_eq!(source.is_remote(), remote, "{input}");
            assert_eq!(source.scheme(), scheme, "{input}");
        }
    }

    #[test]
    fn nothing_shown_holds_credentials() {
        for input in [
            "https://user:hunter2@example.com/model.bin?X-Amz-Signature=hunter2",
            "https://user:hunter2@example.com/dir/?token=hunter2",
            "s3://bucket/key?token=hunter2",
            "s3://AKIA:hunter2@bucket/key",
            "ftp://user:hunter2@host/x",
            "https://user:hunter2@exa mple.com/x",
            "http://user:hunter2@example.com:99999/x",
            "https://user:hun?ter2@example.com/x",
            "https://example.com?sig=hunter2",
        ] {
            let shown = match parse(input, Path::new(DIR)) {
                Ok(source) => format!("{} {source:?}", source.display()),
                Err(message) => message,
            };
            assert!(!shown.contains("hunter2"), "{input}: {shown}");
        }
        assert_eq!(redact("a/b?c"), "a/b?…");
        assert_eq!(redact("https://u@h"), "https://h");
    }

    #[test]
    fn path_cleaning() {
        for (input, expected) in [
            ("/", "/"),
            ("/a/b/", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("a/../../b", "../b"),
            ("", "."),
        ] {
            assert_eq!(clean(Path::new(input)), expected, "{input}");
        }
    }
}

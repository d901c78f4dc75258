//! Access to a model's storage: from a Secret (found through the component's service account,
//! or named by `serving.kserve.io/storageSecretName`), the daemon config, then the
//! environment. Values never reach logs, status or the API: every type here redacts them.
//!
//! The Secret rules are KServe v0.15.2's (`pkg/credentials/service_account_credentials.go`):
//! every secret the service account lists is inspected, and its keys decide what it is for,
//! in KServe's order: S3 (an S3 secret key), GCS (`gcloud-application-credentials.json`),
//! Azure and HDFS (recognised, not used: gantry reads neither), Hugging Face (`HF_TOKEN`),
//! HTTP headers (`https-host` + `headers`). When several secrets give the same thing, the
//! last one wins, as the last of duplicate environment variables does in a pod.
//!
//! Pure: the environment comes in as a map.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_yaml::Value;

use super::uri::redact;
use super::S3Config;
use crate::spec::catalog::{ObjectKey, OtherObject};
use crate::spec::objects::{describe, object_data, yaml_kind, Source};

/// The service account a pod runs as when it names none; Kubernetes creates it in every
/// namespace, so it may be absent from the folder.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The Hugging Face hub, when neither the config nor `HF_ENDPOINT` names one.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

/// Secret annotations are read under KServe's prefix, then KFServing's.
const ANNOTATION_PREFIXES: [&str; 2] = ["serving.kserve.io/", "serving.kubeflow.org/"];
/// The S3 key names: KServe's shipped configmap (`AWS_*`), then its code default (CoreWeave's
/// `s3-secret`).
const S3_KEY_NAMES: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("awsAccessKeyID", "awsSecretAccessKey"),
];
const GCS_CREDENTIALS_KEY: &str = "gcloud-application-credentials.json";
const AZURE_KEYS: [&str; 3] = [
    "AZ_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_ACCESS_KEY",
];
const HDFS_KEY: &str = "HDFS_NAMENODE";
const HF_TOKEN_KEY: &str = "HF_TOKEN";
const HTTPS_HOST_KEY: &str = "https-host";
const HEADERS_KEY: &str = "headers";

/// Where access for one component is looked up.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// The folder's Secrets, ServiceAccounts, ... (`Catalog::objects`).
    pub objects: &'a BTreeMap<ObjectKey, OtherObject>,
    /// The InferenceService's namespace.
    pub namespace: &'a str,
    /// `RevisionTemplate::service_account_name`; `None` or empty: `default`.
    pub service_account: Option<&'a str>,
    /// The `serving.kserve.io/storageSecretName` annotation (`RevisionTemplate::
    /// storage_secret_name`): the one secret to read instead of the service account's.
    /// `None` or empty: not set.
    pub storage_secret: Option<&'a str>,
    /// The daemon config's `storage.s3`.
    pub s3: &'a S3Config,
    /// The daemon config's `storage.hf-endpoint`.
    pub hf_endpoint: &'a str,
    /// The daemon's environment.
    pub env: &'a BTreeMap<String, String>,
}

/// What a fetcher may use to read a component's model.
#[derive(Clone, PartialEq)]
pub struct Access {
    pub s3: S3Access,
    /// A GCS service account key (JSON) from a Secret.
    pub gcs_service_account_json: Option<String>,
    /// `GOOGLE_APPLICATION_CREDENTIALS` from the environment, as given (not read here); only
    /// when no Secret gives a key.
    pub gcs_credentials_path: Option<PathBuf>,
    /// A GCS emulator (`STORAGE_EMULATOR_HOST`, as Google's clients read it): requests go
    /// there, unsigned.
    pub gcs_endpoint: Option<String>,
    /// Request headers per host (lower case, as written in `https-host`).
    pub http_headers: BTreeMap<String, Vec<(String, String)>>,
    pub hf_token: Option<String>,
    /// The Hugging Face hub's URL, with no trailing `/`.
    pub hf_endpoint: String,
}

/// S3 access. The key pair (and session token) comes whole from one source: a key id from
/// one place and a secret key from another could never sign a request.
#[derive(Clone, PartialEq)]
pub struct S3Access {
    /// A full URL with its scheme; `None`: AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Unsigned requests (public buckets).
    pub anonymous: bool,
    /// `bucket.host` addressing instead of `host/bucket`.
    pub virtual_hosted: bool,
    pub verify_tls: bool,
}

impl Default for S3Access {
    fn default() -> Self {
        S3Access {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            anonymous: false,
            virtual_hosted: false,
            verify_tls: true,
        }
    }
}

fn set<T>(value: &Option<T>) -> Option<&'static str> {
    value.as_ref().map(|_| "<set>")
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("endpoint", &self.endpoint.as_deref().map(redact))
            .field("region", &self.region)
            .field("access_key_id", &set(&self.access_key_id))
            .field("secret_access_key", &set(&self.secret_access_key))
            .field("session_token", &set(&self.session_token))
            .field("anonymous", &self.anonymous)
            .field("virtual_hosted", &self.virtual_hosted)
            .field("verify_tls", &self.verify_tls)
            .finish()
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: BTreeMap<&str, Vec<(&str, &str)>> = self
            .http_headers
            .iter()
            .map(|(host, headers)| {
                let names = headers.iter().map(|(n, _)| (n.as_str(), "<set>")).collect();
                (host.as_str(), names)
            })
            .collect();
        f.debug_struct("Access")
            .field("s3", &self.s3)
            .field(
                "gcs_service_account_json",
                &set(&self.gcs_service_account_json),
            )
            .field("gcs_credentials_path", &self.gcs_credentials_path)
            .field("gcs_endpoint", &self.gcs_endpoint.as_deref().map(redact))
            .field("http_headers", &headers)
            .field("hf_token", &set(&self.hf_token))
            .field("hf_endpoint", &redact(&self.hf_endpoint))
            .finish()
    }
}

/// The access a component has: each field from its Secrets first, then the daemon config,
/// then the environment. Errors name objects and keys, never values.
pub fn resolve(sources: &Sources<'_>) -> Result<Access, String> {
    let mut found = FromSecrets::default();
    for name in secret_names(sources)? {
        found.inspect(sources, &name)?;
    }
    let config = sources.s3;
    let env = |key: &str| {
        sources
            .env
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let owned = |v: Option<&str>| v.map(String::from);

    let config_keys =
        match (
            config.access_key_id.as_deref().filter(|v| !v.is_empty()),
            config
                .secret_access_key
                .as_deref()
                .filter(|v| !v.is_empty()),
        ) {
            (Some(id), Some(secret)) => Some(Keys {
                id: id.into(),
                secret: secret.into(),
                session_token: None,
            }),
            (None, None) => None,
            _ => return Err(
                "storage.s3: access-key-id and secret-access-key go together, but only one is set"
                    .to_string(),
            ),
        };
    // As the AWS SDKs: environment keys count only as a pair.
    let env_keys = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some(Keys {
            id: id.into(),
            secret: secret.into(),
            session_token: owned(env("AWS_SESSION_TOKEN")),
        }),
        _ => None,
    };
    let keys = found.keys.take().or(config_keys).or(env_keys);

    let config_endpoint = config
        .endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(|e| endpoint_url(e, config.use_https != Some(false)));
    let env_endpoint = env("AWS_ENDPOINT_URL_S3")
        .or(env("AWS_ENDPOINT_URL"))
        .map(|e| endpoint_url(e, true))
        .or_else(|| {
            let plain =
                env("S3_USE_HTTPS").is_some_and(|v| v == "0" || v.eq_ignore_ascii_case("false"));
            env("S3_ENDPOINT").map(|e| endpoint_url(e, !plain))
        });

    let s3 = S3Access {
        endpoint: found.endpoint.take().or(config_endpoint).or(env_endpoint),
        region: found
            .region
            .take()
            .or_else(|| owned(config.region.as_deref().filter(|r| !r.is_empty())))
            .or_else(|| owned(env("AWS_REGION").or(env("AWS_DEFAULT_REGION")))),
        access_key_id: keys.as_ref().map(|k| k.id.clone()),
        secret_access_key: keys.as_ref().map(|k| k.secret.clone()),
        session_token: keys.and_then(|k| k.session_token),
        anonymous: found.anonymous.or(config.anonymous).unwrap_or(false),
        virtual_hosted: found
            .virtual_hosted
            .or(config.virtual_bucket)
            .unwrap_or(false),
        verify_tls: found.verify_tls.or(config.verify_ssl).unwrap_or(true),
    };
    let gcs_credentials_path = match found.gcs_json {
        Some(_) => None,
        None => env("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
    };
    // `HF_ENDPOINT` overrides the config, whose default is always set.
    let hf_endpoint = env("HF_ENDPOINT")
        .or(Some(sources.hf_endpoint).filter(|e| !e.is_empty()))
        .unwrap_or(DEFAULT_HF_ENDPOINT)
        .trim_end_matches('/')
        .to_string();
    Ok(Access {
        s3,
        gcs_service_account_json: found.gcs_json,
        gcs_credentials_path,
        gcs_endpoint: env("STORAGE_EMULATOR_HOST").map(|h| {
            if h.contains("://") {
                h.to_string()
            } else {
                format!("http://{h}")
            }
        }),
        http_headers: found.http_headers,
        hf_token: found.hf_token.or_else(|| owned(env("HF_TOKEN"))),
        hf_endpoint,
    })
}

struct Keys {
    id: String,
    secret: String,
    session_token: Option<String>,
}

/// What the inspected Secrets give, each field set by the last Secret that has it.
#[derive(Default)]
struct FromSecrets {
    keys: Option<Keys>,
    endpoint: Option<String>,
    region: Option<String>,
    anonymous: Option<bool>,
    virtual_hosted: Option<bool>,
    verify_tls: Option<bool>,
    gcs_json: Option<String>,
    http_headers: BTreeMap<String, Vec<(String, String)>>,
    hf_token: Option<String>,
}

/// The secrets to inspect: the annotation's one, or every one the service account lists.
fn secret_names(sources: &Sources<'_>) -> Result<Vec<String>, String> {
    if let Some(name) = sources.storage_secret.filter(|n| !n.is_empty()) {
        return Ok(vec![name.to_string()]);
    }
    let account = sources
        .service_account
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT);
    let key = ObjectKey {
        kind: "ServiceAccount".into(),
        namespace: sources.namespace.into(),
        name: account.into(),
    };
    let Some(object) = sources.objects.get(&key) else {
        if account == DEFAULT_SERVICE_ACCOUNT {
            return Ok(Vec::new());
        }
        return Err(format!("serviceaccount \"{account}\" not found"));
    };
    let what = format!("ServiceAccount {}/{account}", sources.namespace);
    let entries = match object.value.get("secrets") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(entries)) => entries,
        Some(other) => {
            return Err(format!(
                "{what}: secrets: expected a list of {{name: <secret>}}, found {}",
                yaml_kind(other)
            ))
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| match entry.get("name") {
            Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
            _ => Err(format!(
                "{what}: secrets[{i}]: expected {{name: <secret>}}, found {}",
                match entry.get("name") {
                    Some(name) => yaml_kind(name),
                    None => yaml_kind(entry),
                }
            )),
        })
        .collect()
}

impl FromSecrets {
    fn inspect(&mut self, sources: &Sources<'_>, name: &str) -> Result<(), String> {
        let namespace = sources.namespace;
        let data = object_data(sources.objects, Source::Secret, namespace, name)
            .map_err(|problem| problem.0)?
            .ok_or_else(|| format!("secret \"{name}\" not found"))?;
        let what = describe(Source::Secret, namespace, name);
        let has = |key: &str| data.contains_key(key);

        if let Some((id_name, secret_name)) = S3_KEY_NAMES.iter().find(|(_, s)| has(s)) {
            let id = data
                .get(*id_name)
                .or_else(|| S3_KEY_NAMES.iter().find_map(|(id, _)| data.get(*id)))
                .ok_or_else(|| {
                    format!("couldn't find key {id_name} in Secret {namespace}/{name}")
                })?;
            self.keys = Some(Keys {
                id: id.clone(),
                secret: data[*secret_name].clone(),
                session_token: None,
            });
            self.s3_annotations(sources, name, &what)?;
        } else if let Some(json) = data.get(GCS_CREDENTIALS_KEY) {
            self.gcs_json = Some(json.clone());
        } else if AZURE_KEYS.iter().any(|k| has(k)) || has(HDFS_KEY) {
            // KServe's Azure and HDFS credentials: gantry fetches neither.
        } else if let Some(token) = data.get(HF_TOKEN_KEY) {
            self.hf_token = Some(token.clone());
        } else if let Some(host) = data.get(HTTPS_HOST_KEY) {
            let headers = data.get(HEADERS_KEY).ok_or_else(|| {
                format!("couldn't find key {HEADERS_KEY} in Secret {namespace}/{name}")
            })?;
            let headers =
                parse_headers(headers).map_err(|why| format!("{what}: {HEADERS_KEY}: {why}"))?;
            self.http_headers
                .insert(host.trim().to_ascii_lowercase(), headers);
        }
        Ok(())
    }

    /// `serving.kserve.io/s3-*` on the Secret (KServe's `BuildS3EnvVars`).
    fn s3_annotations(
        &mut self,
        sources: &Sources<'_>,
        name: &str,
        what: &str,
    ) -> Result<(), String> {
        let key = ObjectKey {
            kind: "Secret".into(),
            namespace: sources.namespace.into(),
            name: name.into(),
        };
        let annotations = sources
            .objects
            .get(&key)
            .and_then(|o| o.value.get("metadata"))
            .and_then(|m| m.get("annotations"));
        let get = |suffix: &str| -> Result<Option<&str>, String> {
            for prefix in ANNOTATION_PREFIXES {
                let full = format!("{prefix}{suffix}");
                match annotations.and_then(|a| a.get(full.as_str())) {
                    None | Some(Value::Null) => continue,
                    Some(Value::String(v)) => return Ok(Some(v.as_str())),
                    Some(other) => {
                        return Err(format!(
                            "{what}: metadata.annotations.{full}: expected a string, found {} \
                             (quote it)",
                            yaml_kind(other)
                        ))
                    }
                }
            }
            Ok(None)
        };
        if let Some(endpoint) = get("s3-endpoint")?.filter(|e| !e.is_empty()) {
            // KServe: `http://` only for exactly "0".
            let https = get("s3-usehttps")? != Some("0");
            self.endpoint = Some(endpoint_url(endpoint, https));
        }
        if let Some(region) = get("s3-region")?.filter(|r| !r.is_empty()) {
            self.region = Some(region.to_string());
        }
        // The storage initializer's readings of the variables these become.
        if let Some(v) = get("s3-verifyssl")? {
            self.verify_tls = Some(!matches!(v.to_ascii_lowercase().as_str(), "0" | "false"));
        }
        if let Some(v) = get("s3-useanoncredential")? {
            self.anonymous = Some(v.eq_ignore_ascii_case("true"));
        }
        if let Some(v) = get("s3-usevirtualbucket")? {
            self.virtual_hosted = Some(v.eq_ignore_ascii_case("true"));
        }
        Ok(())
    }
}

/// An endpoint as a URL: `host:port` gets `https://` (or `http://`); a URL stays as it is.
fn endpoint_url(endpoint: &str, https: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else if https {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    }
}

/// A `headers` value: a JSON object of header names to values. The reasons never quote the
/// text (it holds tokens).
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| {
            format!(
                "expected a JSON object of header names to values (invalid at line {}, \
                 column {})",
                e.line(),
                e.column()
            )
        })?;
    object
        .into_iter()
        .map(|(name, value)| {
            let serde_json::Value::String(value) = value else {
                return Err(format!("{name}: expected a string value"));
            };
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("\"{name}\" is not a valid HTTP header name"));
            }
            if reqwest::header::HeaderValue::from_str(&value).is_err() {
                return Err(format!(
                    "{name}: the value is not a valid HTTP header value"
                ));
            }
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::spec::catalog::{next_catalog, parse_file, Catalog, LoadOptions};

    const ID: &str = "AKIAEXAMPLEID";
    const KEY: &str = "hunter2-secret-key";

    /// The folder's objects from YAML documents.
    fn objects(yaml: &str) -> BTreeMap<ObjectKey, OtherObject> {
        let opts = LoadOptions::default();
        let file = Arc::new(parse_file("/srv/gantry/services/objects.yaml", yaml, &opts));
        assert!(
            file.diagnostics.is_empty() && file.documents.iter().all(|d| d.diagnostics.is_empty()),
            "{:?}",
            file.diagnostics
        );
        next_catalog(&Catalog::default(), &[file], &opts).objects
    }

    struct Case<'a> {
        yaml: &'a str,
        service_account: Option<&'a str>,
        storage_secret: Option<&'a str>,
        config: S3Config,
        hf_endpoint: &'a str,
        env: &'a [(&'a str, &'a str)],
    }

    impl Default for Case<'_> {
        fn default() -> Self {
            Case {
                yaml: "",
                service_account: None,
                storage_secret: None,
                config: S3Config::default(),
                hf_endpoint: DEFAULT_HF_ENDPOINT,
                env: &[],
            }
        }
    }

    fn run(case: &Case<'_>) -> Result<Access, String> {
        let objects = objects(case.yaml);
        let env: BTreeMap<String, String> = case
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&Sources {
            objects: &objects,
            namespace: "default",
            service_account: case.service_account,
            storage_secret: case.storage_secret,
            s3: &case.config,
            hf_endpoint: case.hf_endpoint,
            env: &env,
        })
    }

    fn check(case: Case<'_>, expected: Result<Access, &str>) {
        let got = run(&case);
        assert_eq!(got, expected.map_err(String::from), "{}", case.yaml);
    }

    /// No credentials at all.
    fn none() -> Access {
        Access {
            s3: S3Access::default(),
            gcs_service_account_json: None,
            gcs_credentials_path: None,
            gcs_endpoint: None,
            http_headers: BTreeMap::new(),
            hf_token: None,
            hf_endpoint: DEFAULT_HF_ENDPOINT.into(),
        }
    }

    fn with_keys(id: &str, secret: &str) -> Access {
        let mut a = none();
        a.s3.access_key_id = Some(id.into());
        a.s3.secret_access_key = Some(secret.into());
        a
    }

    /// A Secret with S3 keys under KServe's configmap names, and the default service
    /// account listing it.
    const S3_SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: s3creds
  annotations:
    serving.kserve.io/s3-endpoint: minio.local:9000
    serving.kserve.io/s3-usehttps: \"0\"
    serving.kserve.io/s3-region: us-west-1
    serving.kserve.io/s3-verifyssl: \"0\"
    serving.kserve.io/s3-useanoncredential: \"false\"
    serving.kserve.io/s3-usevirtualbucket: \"true\"
type: Opaque
stringData:
  AWS_ACCESS_KEY_ID: AKIAEXAMPLEID
  AWS_SECRET_ACCESS_KEY: hunter2-secret-key
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: default
secrets:
  - name: s3creds
";

    fn minio() -> Access {
        let mut a = with_keys(ID, KEY);
        a.s3.endpoint = Some("http://minio.local:9000".into());
        a.s3.region = Some("us-west-1".into());
        a.s3.verify_tls = false;
        a.s3.virtual_hosted = true;
        a
    }

    #[test]
    fn nothing_configured() {
        check(Case::default(), Ok(none()));
        check(
            Case {
                service_account: Some("default"),
                ..Case::default()
            },
            Ok(none()),
        );
    }

    #[test]
    fn s3_secrets() {
        check(
            Case {
                yaml: S3_SECRET,
                ..Case::default()
            },
            Ok(minio()),
        );
        // CoreWeave's s3-secret: KServe's code-default key names, base64 data, the
        // KFServing annotation prefix, https by default.
        let coreweave = "\
apiVersion: v1
kind: Secret
metadata:
  name: s3-secret
  annotations:
    serving.kubeflow.org/s3-endpoint: object.las1.coreweave.com
data:
  awsAccessKeyID: QUtJQUVYQU1QTEVJRA==
  awsSecretAccessKey: aHVudGVyMi1zZWNyZXQta2V5
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: s3-sa}
secrets: [{name: s3-secret}]
";
        let mut expected = with_keys(ID, KEY);
        expected.s3.endpoint = Some("https://object.las1.coreweave.com".into());
        check(
            Case {
                yaml: coreweave,
                service_account: Some("s3-sa"),
                ..Case::default()
            },
            Ok(expected),
        );
        // A URL endpoint is kept; anonymous; kserve.io wins over kubeflow.org.
        let anonymous = "\
apiVersion: v1
kind: Secret
metadata:
  name: public
  annotations:
    serving.kserve.io/s3-endpoint: http://127.0.0.1:5000
    serving.kubeflow.org/s3-endpoint: ignored:1
    serving.kserve.io/s3-useanoncredential: \"True\"
stringData: {AWS_ACCESS_KEY_ID: \"\", AWS_SECRET_ACCESS_KEY: \"\"}
";
        let mut expected = with_keys("", "");
        expected.s3.endpoint = Some("http://127.0.0.1:5000".into());
        expected.s3.anonymous = true;
        check(
            Case {
                yaml: anonymous,
                storage_secret: Some("public"),
                ..Case::default()
            },
            Ok(expected),
        );
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata: {name: half}\nstringData: {AWS_SECRET_ACCESS_KEY: hunter2-secret-key}\n",
                storage_secret: Some("half"),
                ..Case::default()
            },
            Err("couldn't find key AWS_ACCESS_KEY_ID in Secret default/half"),
        );
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: odd\n  annotations: {serving.kserve.io/s3-usehttps: 0, serving.kserve.io/s3-endpoint: h:1}\nstringData: {awsAccessKeyID: a, awsSecretAccessKey: hunter2-secret-key}\n",
                storage_secret: Some("odd"),
                ..Case::default()
            },
            Err("Secret default/odd: metadata.annotations.serving.kserve.io/s3-usehttps: expected a string, found a number (quote it)"),
        );
    }

    #[test]
    fn which_secrets_are_read() {
        let other = "\
---
apiVersion: v1
kind: Secret
metadata: {name: other}
stringData: {AWS_ACCESS_KEY_ID: other-id, AWS_SECRET_ACCESS_KEY: other-key}
";
        let both = format!("{S3_SECRET}{other}");
        // The annotation overrides the service account.
        check(
            Case {
                yaml: &both,
                storage_secret: Some("other"),
                ..Case::default()
            },
            Ok(with_keys("other-id", "other-key")),
        );
        // Empty values are not set.
        check(
            Case {
                yaml: &both,
                storage_secret: Some(""),
                service_account: Some(""),
                ..Case::default()
            },
            Ok(minio()),
        );
        // Several secrets: the last one's fields win, the others' remain.
        let listing_both = format!(
            "{both}---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: two}}\nsecrets: [{{name: s3creds}}, {{name: other}}]\n"
        );
        let mut expected = minio();
        expected.s3.access_key_id = Some("other-id".into());
        expected.s3.secret_access_key = Some("other-key".into());
        check(
            Case {
                yaml: &listing_both,
                service_account: Some("two"),
                ..Case::default()
            },
            Ok(expected),
        );
        // A service account in another namespace is not this one's.
        check(
            Case {
                yaml:
                    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: other}\n",
                service_account: Some("sa"),
                ..Case::default()
            },
            Err("serviceaccount \"sa\" not found"),
        );
        check(
            Case {
                storage_secret: Some("nope"),
                ..Case::default()
            },
            Err("secret \"nope\" not found"),
        );
        check(
            Case {
                yaml: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\nsecrets: [{name: missing}]\n",
                ..Case::default()
            },
            Err("secret \"missing\" not found"),
        );
        check(
            Case {
                yaml: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\nsecrets: [missing]\n",
                ..Case::default()
            },
            Err("ServiceAccount default/default: secrets[0]: expected {name: <secret>}, found a string"),
        );
        check(
            Case {
                yaml: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\nsecrets: {name: x}\n",
                ..Case::default()
            },
            Err("ServiceAccount default/default: secrets: expected a list of {name: <secret>}, found a mapping"),
        );
        // A service account with no secrets, and secrets of no storage kind.
        check(
            Case {
                yaml: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: plain}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {password: hunter2}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\nsecrets: [{name: x}]\n",
                service_account: Some("plain"),
                ..Case::default()
            },
            Ok(none()),
        );
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {AWS_SECRET_ACCESS_KEY: \"not base64!\"}\n",
                storage_secret: Some("bad"),
                ..Case::default()
            },
            Err("Secret default/bad: data.AWS_SECRET_ACCESS_KEY: expected base64 data (use stringData for plain text)"),
        );
    }

    #[test]
    fn other_secret_kinds() {
        let mut gcs = none();
        gcs.gcs_service_account_json = Some("{\"private_key\": \"hunter2\"}".into());
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata: {name: g}\nstringData:\n  gcloud-application-credentials.json: '{\"private_key\": \"hunter2\"}'\n",
                storage_secret: Some("g"),
                env: &[("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcs.json")],
                ..Case::default()
            },
            Ok(gcs),
        );
        let mut hf = none();
        hf.hf_token = Some("hf_hunter2".into());
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata: {name: h}\nstringData: {HF_TOKEN: hf_hunter2}\n",
                storage_secret: Some("h"),
                env: &[("HF_TOKEN", "hf_from_env")],
                ..Case::default()
            },
            Ok(hf),
        );
        let mut http = none();
        http.http_headers.insert(
            "models.example.com".into(),
            vec![
                ("Authorization".into(), "Bearer hunter2".into()),
                ("X-Extra".into(), "1".into()),
            ],
        );
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata: {name: w}\nstringData:\n  https-host: Models.Example.com\n  headers: '{\"Authorization\": \"Bearer hunter2\", \"X-Extra\": \"1\"}'\n",
                storage_secret: Some("w"),
                ..Case::default()
            },
            Ok(http),
        );
        for (headers, why) in [
            (
                "'{\"Authorization\": hunter2}'",
                "expected a JSON object of header names to values (invalid at line 1, column 19)",
            ),
            (
                "'[\"hunter2\"]'",
                "expected a JSON object of header names to values (invalid at line 1, column 0)",
            ),
            (
                "'{\"Authorization\": 7}'",
                "Authorization: expected a string value",
            ),
            (
                "'{\"Bad Name\": \"hunter2\"}'",
                "\"Bad Name\" is not a valid HTTP header name",
            ),
            (
                "'{\"A\": \"hunter2\\n\"}'",
                "A: the value is not a valid HTTP header value",
            ),
        ] {
            check(
                Case {
                    yaml: &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: w}}\nstringData:\n  https-host: h\n  headers: {headers}\n"),
                    storage_secret: Some("w"),
                    ..Case::default()
                },
                Err(&format!("Secret default/w: headers: {why}")),
            );
        }
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata: {name: w}\nstringData: {https-host: h}\n",
                storage_secret: Some("w"),
                ..Case::default()
            },
            Err("couldn't find key headers in Secret default/w"),
        );
        // An Azure secret is recognised (so its HF_TOKEN is not read, as in KServe) and unused.
        check(
            Case {
                yaml: "apiVersion: v1\nkind: Secret\nmetadata: {name: az}\nstringData: {AZURE_STORAGE_ACCESS_KEY: hunter2, HF_TOKEN: hunter2}\n",
                storage_secret: Some("az"),
                ..Case::default()
            },
            Ok(none()),
        );
    }

    #[test]
    fn precedence_secret_config_environment() {
        let config = S3Config {
            endpoint: Some("s3.config:9000".into()),
            region: Some("config-region".into()),
            access_key_id: Some("config-id".into()),
            secret_access_key: Some("config-key".into()),
            use_https: Some(false),
            verify_ssl: Some(false),
            anonymous: Some(true),
            virtual_bucket: Some(true),
        };
        let env: &[(&str, &str)] = &[
            ("AWS_ACCESS_KEY_ID", "env-id"),
            ("AWS_SECRET_ACCESS_KEY", "env-key"),
            ("AWS_SESSION_TOKEN", "env-token"),
            ("AWS_REGION", "env-region"),
            ("AWS_DEFAULT_REGION", "env-default-region"),
            ("AWS_ENDPOINT_URL", "https://env.endpoint"),
            ("S3_ENDPOINT", "s3.env:1"),
            ("HF_TOKEN", "hf_env"),
            ("HF_ENDPOINT", "https://hf.mirror/"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcs.json"),
        ];
        // The secret over everything it sets; the config over the environment.
        let mut expected = minio();
        expected.s3.anonymous = false;
        expected.hf_token = Some("hf_env".into());
        expected.hf_endpoint = "https://hf.mirror".into();
        expected.gcs_credentials_path = Some("/etc/gcs.json".into());
        check(
            Case {
                yaml: S3_SECRET,
                config: config.clone(),
                env,
                ..Case::default()
            },
            Ok(expected),
        );
        // No secret: the config.
        let mut expected = with_keys("config-id", "config-key");
        expected.s3.endpoint = Some("http://s3.config:9000".into());
        expected.s3.region = Some("config-region".into());
        expected.s3.verify_tls = false;
        expected.s3.anonymous = true;
        expected.s3.virtual_hosted = true;
        expected.hf_token = Some("hf_env".into());
        expected.hf_endpoint = "https://hf.mirror".into();
        expected.gcs_credentials_path = Some("/etc/gcs.json".into());
        check(
            Case {
                config: config.clone(),
                env,
                ..Case::default()
            },
            Ok(expected),
        );
        // No secret, no config: the environment, session token included.
        let mut expected = with_keys("env-id", "env-key");
        expected.s3.session_token = Some("env-token".into());
        expected.s3.endpoint = Some("https://env.endpoint".into());
        expected.s3.region = Some("env-region".into());
        expected.hf_token = Some("hf_env".into());
        expected.hf_endpoint = "https://hf.mirror".into();
        expected.gcs_credentials_path = Some("/etc/gcs.json".into());
        check(
            Case {
                env,
                hf_endpoint: "https://config.hf",
                ..Case::default()
            },
            Ok(expected),
        );
        // The environment's other names.
        let mut expected = none();
        expected.s3.endpoint = Some("https://s3-specific:1".into());
        expected.s3.region = Some("env-default-region".into());
        check(
            Case {
                env: &[
                    ("AWS_ENDPOINT_URL_S3", "s3-specific:1"),
                    ("AWS_ENDPOINT_URL", "https://general"),
                    ("AWS_DEFAULT_REGION", "env-default-region"),
                    ("AWS_REGION", ""),
                    ("AWS_ACCESS_KEY_ID", "half-a-pair"),
                ],
                ..Case::default()
            },
            Ok(expected),
        );
        let mut expected = none();
        expected.s3.endpoint = Some("http://minio:9000".into());
        expected.hf_endpoint = "https://config.hf".into();
        check(
            Case {
                env: &[("S3_ENDPOINT", "minio:9000"), ("S3_USE_HTTPS", "0")],
                hf_endpoint: "https://config.hf/",
                ..Case::default()
            },
            Ok(expected),
        );
        // The config's endpoint with https by default; its keys come as a pair.
        let mut expected = none();
        expected.s3.endpoint = Some("https://s3.config:9000".into());
        check(
            Case {
                config: S3Config {
                    endpoint: Some("s3.config:9000".into()),
                    ..S3Config::default()
                },
                ..Case::default()
            },
            Ok(expected),
        );
        check(
            Case {
                config: S3Config {
                    secret_access_key: Some(KEY.into()),
                    ..S3Config::default()
                },
                ..Case::default()
            },
            Err("storage.s3: access-key-id and secret-access-key go together, but only one is set"),
        );
    }

    #[test]
    fn secret_values_are_never_shown() {
        let secrets = "\
apiVersion: v1
kind: Secret
metadata: {name: all}
stringData:
  AWS_ACCESS_KEY_ID: AKIAEXAMPLEID
  AWS_SECRET_ACCESS_KEY: hunter2-secret-key
---
apiVersion: v1
kind: Secret
metadata: {name: gcs}
stringData: {gcloud-application-credentials.json: hunter2-gcs}
---
apiVersion: v1
kind: Secret
metadata: {name: web}
stringData: {https-host: h, headers: '{\"Authorization\": \"hunter2-header\"}'}
---
apiVersion: v1
kind: Secret
metadata: {name: hf}
stringData: {HF_TOKEN: hunter2-hf}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default}
secrets: [{name: all}, {name: gcs}, {name: web}, {name: hf}]
";
        let access = run(&Case {
            yaml: secrets,
            env: &[("AWS_SESSION_TOKEN", "hunter2-token")],
            ..Case::default()
        })
        .unwrap();
        assert_eq!(access.s3.secret_access_key.as_deref(), Some(KEY));
        assert_eq!(access.hf_token.as_deref(), Some("hunter2-hf"));
        let mut with_token = access.clone();
        with_token.s3.session_token = Some("hunter2-token".into());
        with_token.s3.endpoint = Some("https://user:hunter2-url@host:1".into());
        let shown = format!("{access:?} {with_token:?}");
        for value in [ID, "hunter2"] {
            assert!(!shown.contains(value), "{shown}");
        }
        assert!(shown.contains("Authorization"), "{shown}");

        let bad = "\
apiVersion: v1
kind: Secret
metadata: {name: half}
stringData: {awsSecretAccessKey: hunter2-secret-key}
---
apiVersion: v1
kind: Secret
metadata: {name: web}
stringData: {https-host: h, headers: '{\"Authorization\": hunter2-header}'}
---
apiVersion: v1
kind: Secret
metadata: {name: name}
stringData: {https-host: h, headers: '{\"hunter2 header\": \"x\"}'}
---
apiVersion: v1
kind: Secret
metadata: {name: value}
stringData: {https-host: h, headers: '{\"A\": \"hunter2\\r\\n\"}'}
---
apiVersion: v1
kind: Secret
metadata: {name: b64}
data: {AWS_SECRET_ACCESS_KEY: hunter2}
";
        for name in ["half", "web", "value", "b64"] {
            let error = run(&Case {
                yaml: bad,
                storage_secret: Some(name),
                ..Case::default()
            })
            .unwrap_err();
            assert!(!error.contains("hunter2"), "{error}");
        }
        let error = run(&Case {
            config: S3Config {
                access_key_id: Some(ID.into()),
                ..S3Config::default()
            },
            ..Case::default()
        })
        .unwrap_err();
        assert!(!error.contains(ID), "{error}");
    }
}

//! A real S3 server on loopback for the model download tests: moto (PyPI's `moto[server]`).
//!
//! Each [`Moto`] is a `moto_server` process of its own on a free loopback port, killed when the
//! value is dropped. Found through `GANTRY_MOTO_SERVER` (which `.ci/run` exports), else the
//! PATH, else `/opt/gantry-test-moto/bin/moto_server` (where `.ci/run` installs it as root).
//! Policy, as for Docker: with `CI=true` a missing moto fails the test; elsewhere the test
//! prints a loud skip message and returns.
//!
//! moto accepts any credentials unless told otherwise. [`start_with_auth`] makes one that
//! checks them: it creates an IAM user with an access key and an `s3:*` policy while checking
//! is still off, then turns checking on through moto's `/moto-api/reset-auth` (the runtime form
//! of its `INITIAL_NO_AUTH_ACTION_COUNT` setting, set to 0). From then on every S3 request is
//! verified like AWS does: an unknown key id gets 403 InvalidAccessKeyId, a wrong secret 403
//! SignatureDoesNotMatch, a key whose user may not do the action 403 AccessDenied.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::ObjectStoreExt;

/// Where `.ci/run` installs moto when none is on the PATH.
pub const MOTO_VENV_SERVER: &str = "/opt/gantry-test-moto/bin/moto_server";
/// The environment variable that names the `moto_server` to run.
pub const MOTO_ENV: &str = "GANTRY_MOTO_SERVER";
/// The region every store and request here uses.
pub const REGION: &str = "us-east-1";
/// Credentials for a moto that does not check them (any would do).
pub const ANY_KEY_ID: &str = "testing";
pub const ANY_SECRET: &str = "testing";

const START_WITHIN: Duration = Duration::from_secs(60);

pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Ok("true" | "1")
    )
}

/// A running `moto_server`, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub endpoint: String,
    pub port: u16,
    child: Child,
    /// moto's stdout and stderr (its request log).
    log: tempfile::NamedTempFile,
    /// The credentials [`Moto::put`] and [`Moto::own_store`] use.
    key_id: String,
    secret: String,
    /// Whether moto checks credentials (see [`start_with_auth`]).
    auth: bool,
    http: reqwest::Client,
}

/// The `moto_server` to run: `$GANTRY_MOTO_SERVER`, else one on the PATH, else the one `.ci/run`
/// installs; `Err` lists where it looked.
pub fn moto_server_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(MOTO_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{MOTO_ENV}={} is not an executable file",
                path.display()
            ))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("moto_server"))
        .find(|p| is_executable(p));
    if let Some(path) = on_path {
        return Ok(path);
    }
    let venv = PathBuf::from(MOTO_VENV_SERVER);
    if is_executable(&venv) {
        return Ok(venv);
    }
    Err(format!(
        "no moto_server: {MOTO_ENV} is unset, none is on the PATH, and {MOTO_VENV_SERVER} does \
         not exist"
    ))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn missing(why: &str) -> Option<Moto> {
    let how = "Install it: run `bash .ci/run` as root once (it puts moto[server] into \
               /opt/gantry-test-moto and exports GANTRY_MOTO_SERVER), or \
               `python3 -m pip install 'moto[server]'` so moto_server is on the PATH.";
    if in_ci() {
        panic!("CI=true, so the S3 tests must run, but: {why}. {how}");
    }
    static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
    SKIP_NOTICE.call_once(|| {
        use std::io::Write;
        // Straight to the terminal: the harness hides what a passing test prints.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SKIPPING the S3 tests: {why}.\n\
             !! {how}\n\
             !! On CI (CI=true) these tests fail instead of skipping.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    });
    None
}

/// A port nobody listens on now (moto binds it a moment later; [`start`] retries on a clash).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts a moto that accepts any credentials; `None` (after a loud message) when moto is not
/// installed and this is not CI.
pub async fn start() -> Option<Moto> {
    let program = match moto_server_path() {
        Ok(path) => path,
        Err(why) => return missing(&why),
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let mut last_failure = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file for moto_server");
        let append = || {
            std::fs::OpenOptions::new()
                .append(true)
                .open(log.path())
                .expect("moto_server's log file")
        };
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .stdin(Stdio::null())
            .stdout(append())
            .stderr(append())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child,
            log,
            key_id: ANY_KEY_ID.to_string(),
            secret: ANY_SECRET.to_string(),
            auth: false,
            http: http.clone(),
        };
        let deadline = Instant::now() + START_WITHIN;
        loop {
            // Any HTTP answer at all means it is serving.
            if moto
                .http
                .get(format!("{}/moto-api/data.json", moto.endpoint))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok()
            {
                return Some(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                last_failure = format!(
                    "{} -p {port} exited at start ({status}):\n{}",
                    program.display(),
                    moto.log()
                );
                break; // perhaps the port was taken meanwhile: try another
            }
            assert!(
                Instant::now() < deadline,
                "{} -p {port} did not answer within {START_WITHIN:?}:\n{}",
                program.display(),
                moto.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("moto_server would not start: {last_failure}");
}

/// Starts a moto that checks credentials, with one IAM user that may do anything on S3; gives
/// that user's access key id and secret. Every other key is refused.
pub async fn start_with_auth() -> Option<(Moto, String, String)> {
    let mut moto = start().await?;
    let user = "gantry-test";
    moto.iam(&[("Action", "CreateUser"), ("UserName", user)])
        .await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    moto.iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", user),
        ("PolicyName", "s3-all"),
        ("PolicyDocument", policy),
    ])
    .await;
    let created = moto
        .iam(&[("Action", "CreateAccessKey"), ("UserName", user)])
        .await;
    let key_id = xml_text(&created, "AccessKeyId")
        .unwrap_or_else(|| panic!("no AccessKeyId in moto's CreateAccessKey reply: {created}"));
    let secret = xml_text(&created, "SecretAccessKey")
        .unwrap_or_else(|| panic!("no SecretAccessKey in moto's CreateAccessKey reply: {created}"));
    moto.set_auth(true).await;
    moto.key_id = key_id.clone();
    moto.secret = secret.clone();
    Some((moto, key_id, secret))
}

/// The text of the first `<tag>...</tag>` in an XML reply.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + len].trim().to_string())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Moto {
    /// Whether this moto checks credentials.
    pub fn checks_credentials(&self) -> bool {
        self.auth
    }

    /// The credentials [`Moto::put`] uses: the IAM user's with [`start_with_auth`], else any.
    pub fn credentials(&self) -> (&str, &str) {
        (&self.key_id, &self.secret)
    }

    /// One call to moto's IAM query API, sent while moto does not check credentials: the
    /// Authorization header only tells moto's dispatcher which service it is for. Panics unless
    /// moto answers 200; gives the XML reply.
    async fn iam(&self, params: &[(&str, &str)]) -> String {
        assert!(
            !self.auth,
            "IAM calls are made before credentials are checked"
        );
        let mut body = String::from("Version=2010-05-08");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", form_encode(v)));
        }
        let reply = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={ANY_KEY_ID}/20240101/{REGION}/iam/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto IAM {params:?}: {e}"));
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        assert!(status.is_success(), "moto IAM {params:?}: {status}: {text}");
        text
    }

    /// Turns moto's credential checks on or off for every later request (resets its count of
    /// unauthenticated requests to 0 and sets `INITIAL_NO_AUTH_ACTION_COUNT` to 0 or infinity).
    async fn set_auth(&mut self, on: bool) {
        let reply = self
            .http
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body(if on { "0" } else { "inf" })
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto /moto-api/reset-auth: {e}"));
        assert!(
            reply.status().is_success(),
            "moto /moto-api/reset-auth: {}",
            reply.status()
        );
        self.auth = on;
    }

    /// Creates a bucket (a plain unsigned `PUT /{bucket}`; with credential checks on, they are
    /// turned off for that one request).
    pub async fn create_bucket(&mut self, name: &str) {
        let auth = self.auth;
        if auth {
            self.set_auth(false).await;
        }
        let reply = self
            .http
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating bucket {name} on moto: {e}"));
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        if auth {
            self.set_auth(true).await;
        }
        assert!(
            status.is_success(),
            "creating bucket {name} on moto: {status}: {text}"
        );
    }

    /// An `object_store` client for `bucket` on this moto: path-style, plain HTTP, us-east-1,
    /// the given credentials, and nothing read from the environment.
    pub fn store(&self, bucket: &str, key_id: &str, secret: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(bucket)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_region(REGION)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap_or_else(|e| panic!("an S3 store for {bucket} on {}: {e}", self.endpoint))
    }

    /// [`Moto::store`] with [`Moto::credentials`].
    pub fn own_store(&self, bucket: &str) -> AmazonS3 {
        self.store(bucket, &self.key_id, &self.secret)
    }

    /// Uploads one object (with [`Moto::credentials`]).
    pub async fn put(&self, bucket: &str, key: &str, bytes: impl Into<bytes::Bytes>) {
        self.own_store(bucket)
            .put(&Path::from(key), bytes.into().into())
            .await
            .unwrap_or_else(|e| panic!("putting s3://{bucket}/{key} on moto: {e}"));
    }

    /// The `moto_server` process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What moto has printed so far (its request log), for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

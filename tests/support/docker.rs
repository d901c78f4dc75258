//! Helpers for tests that run against the real Docker engine.
//!
//! Policy: with `CI=true` a missing engine fails the test; elsewhere the test prints a loud
//! skip message and returns. Every container a test creates carries a label unique to that
//! test run, and [`Scope`] removes them all when it is dropped, even when the test panics.
//! Nothing here sleeps to wait: [`wait_for`] polls a condition until a deadline.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use gantry::runtime::docker::Docker;
use gantry::runtime::{labels, ContainerSpec, DockerResources};

/// The test image: Debian's static busybox in an image built `FROM scratch`, with busybox as
/// its entrypoint. No registry is needed.
pub const TEST_IMAGE: &str = "gantry-test-busybox:latest";
/// Where Debian's `busybox-static` puts the static binary.
pub const BUSYBOX: &str = "/bin/busybox";
/// The label that scopes a test's containers.
pub const TEST_LABEL: &str = "gantry.dev/test";

pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Ok("true" | "1")
    )
}

/// The engine, or `None` (after a loud message) when there is none and this is not CI.
pub async fn engine() -> Option<Docker> {
    match Docker::connect(None).await {
        Ok(docker) => Some(docker),
        Err(e) if in_ci() => panic!("CI=true, so the Docker tests must run, but: {e}"),
        Err(e) => {
            // Straight to the terminal: the test harness hides what eprintln! prints in a test
            // that passes. Once per test binary.
            static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
            SKIP_NOTICE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !! SKIPPING the Docker tests: no Docker engine.\n\
                     !! {e}\n\
                     !! Run `bash .ci/run` (or ./install.sh) to install and start one; on CI\n\
                     !! (CI=true) these tests fail instead of skipping.\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
                );
            });
            None
        }
    }
}

/// For tests that drive a daemon from plain threads: the engine is there and
/// [`TEST_IMAGE`] is built; false (after [`engine`]'s loud message) when there is no engine
/// and this is not CI.
pub fn test_image_ready() -> bool {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(engine) = runtime.block_on(engine()) else {
        return false;
    };
    runtime.block_on(ensure_test_image(&engine));
    true
}

static IMAGE_BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Builds [`TEST_IMAGE`] once per test binary (the classic builder's cache makes a rebuild of
/// an unchanged context cheap).
pub async fn ensure_test_image(docker: &Docker) {
    IMAGE_BUILT
        .get_or_init(|| async { build_test_image(docker).await })
        .await;
}

async fn build_test_image(docker: &Docker) {
    let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!("{BUSYBOX}: {e}; install Debian's busybox-static (`bash .ci/run` does)")
    });
    assert!(
        is_static_elf(&busybox),
        "{BUSYBOX} is dynamically linked and cannot run in a FROM scratch image; install \
         Debian's busybox-static instead of busybox"
    );
    let dockerfile = b"FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n";
    let context = tar_archive(&[
        ("Dockerfile", &dockerfile[..], 0o644),
        ("busybox", &busybox[..], 0o755),
    ]);
    let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(TEST_IMAGE)
        .rm(true)
        .forcerm(true)
        .build();
    let mut build =
        docker
            .client()
            .build_image(options, None, Some(bollard::body_full(context.into())));
    let mut output = String::new();
    while let Some(msg) = build.next().await {
        match msg {
            Ok(info) => output.push_str(info.stream.as_deref().unwrap_or_default()),
            Err(e) => panic!("building {TEST_IMAGE} failed: {e}\n{output}"),
        }
    }
}

/// True when the ELF file has no program interpreter (statically linked).
pub fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false;
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .map(|t| u32::from_le_bytes(t.try_into().unwrap()) != PT_INTERP)
            .unwrap_or(false)
    })
}

/// A ustar archive of regular files (name, content, mode).
pub fn tar_archive(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content, mode) in files {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{:0width$o}\0", value, width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut header[100..108], u64::from(*mode));
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], content.len() as u64);
        octal(&mut header[136..148], 0);
        header[148..156].copy_from_slice(b"        ");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

static SCOPES: AtomicUsize = AtomicUsize::new(0);

/// One test's containers: unique names and a unique label, all removed on drop.
pub struct Scope {
    pub docker: Docker,
    /// The value of [`TEST_LABEL`] on this test's containers.
    pub id: String,
    made: AtomicUsize,
}

impl Scope {
    /// Connects, builds the test image, and opens a scope; `None` when the test must skip.
    pub async fn start(test: &str) -> Option<Scope> {
        let docker = engine().await?;
        ensure_test_image(&docker).await;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let id = format!(
            "{test}-{}-{}-{nanos:x}",
            std::process::id(),
            SCOPES.fetch_add(1, Ordering::Relaxed)
        )
        .replace('_', "-");
        Some(Scope {
            docker,
            id,
            made: AtomicUsize::new(0),
        })
    }

    /// A spec running busybox with `args` (`["sh", "-c", "..."]`), with nothing but what any
    /// gantry container carries; tests change what they need.
    pub fn spec(&self, args: &[&str]) -> ContainerSpec {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        ContainerSpec {
            name: format!("gantry-test-{}-{n}", self.id),
            image: TEST_IMAGE.to_string(),
            entrypoint: vec![BUSYBOX.to_string()],
            cmd: args.iter().map(|a| a.to_string()).collect(),
            env: vec![],
            working_dir: None,
            labels: BTreeMap::from([
                (labels::MANAGED_BY.to_string(), "true".to_string()),
                (TEST_LABEL.to_string(), self.id.clone()),
            ]),
            port: 8080,
            resources: DockerResources::default(),
            mounts: vec![],
            gpu_uuids: vec![],
            shm_size_bytes: 0,
            user: None,
            read_only_root_fs: false,
            cap_add: vec![],
            cap_drop: vec![],
            privileged: false,
            host_network: false,
            host_ipc: false,
            stop_timeout_seconds: 10,
            always_pull: false,
            extra_hosts: vec![],
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: clean up on a thread
        // of its own with its own runtime.
        let label = format!("{TEST_LABEL}={}", self.id);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the cleanup");
            runtime.block_on(remove_labelled(&label));
        });
        let _ = cleanup.join();
    }
}

/// Force-removes every container (running or not) with the `key=value` label.
pub async fn remove_labelled(label: &str) {
    let Ok(docker) = bollard::Docker::connect_with_defaults() else {
        return;
    };
    let filters = HashMap::from([("label", vec![label.to_string()])]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(containers) = docker.list_containers(Some(options)).await else {
        return;
    };
    for id in containers.into_iter().filter_map(|c| c.id) {
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = docker.remove_container(&id, Some(options)).await {
            eprintln!("cleanup: could not remove {id}: {e}");
        }
    }
}

/// Polls `check` until it gives a value or `within` has passed (then panics, naming `what`).
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One HTTP/1.0 GET to 127.0.0.1:`port`; the status line, if anything answered.
pub async fn http_status_line(port: u16, path: &str) -> Option<String> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let text = String::from_utf8_lossy(&response);
        let line = text.lines().next()?.to_string();
        line.starts_with("HTTP/").then_some(line)
    })
    .await
    .ok()
    .flatten()
}

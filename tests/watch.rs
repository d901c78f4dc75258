//! The folder watcher on a real temporary folder: every change is observed by waiting for
//! the published state to satisfy a condition, with a deadline (never a sleep).

use std::path::Path;
use std::time::Duration;

use gantry::spec::catalog::{Catalog, LoadOptions, ServiceEntry, ServiceKey};
use gantry::watch::{run, FolderState, WatchSettings};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(10);

fn isvc(name: &str, image: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    containers:
    - name: kserve-container
      image: {image}
      resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
"
    )
}

struct Daemon {
    state: watch::Receiver<FolderState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let settings = WatchSettings {
            dir: dir.to_path_buf(),
            max_file_bytes: 64 * 1024,
            debounce: Duration::from_millis(20),
            resync_interval: Duration::from_secs(30),
            load: LoadOptions::default(),
        };
        let (publish, state) = watch::channel(FolderState::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(settings, publish, stopped));
        Daemon { state, stop, task }
    }

    /// Waits until the catalog satisfies `condition`, failing with what it last saw.
    async fn until(&mut self, what: &str, condition: impl Fn(&FolderState) -> bool) -> FolderState {
        let result = tokio::time::timeout(
            DEADLINE,
            self.state.wait_for(|s| s.loads > 0 && condition(s)),
        )
        .await
        .map(|r| r.map(|state| state.clone()));
        match result {
            Ok(Ok(state)) => state,
            _ => panic!(
                "timed out waiting for: {what}; last state: {:#?}",
                summary(&self.state.borrow().catalog)
            ),
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

fn summary(c: &Catalog) -> Vec<String> {
    let mut out: Vec<String> = c
        .services
        .values()
        .map(|s| {
            format!(
                "{}/{} from {} stale={} desired={}",
                s.namespace,
                s.name,
                s.file,
                s.stale,
                s.desired.is_some()
            )
        })
        .collect();
    out.extend(c.all_diagnostics().iter().map(|d| d.to_string()));
    out
}

fn service<'a>(s: &'a FolderState, name: &str) -> Option<&'a ServiceEntry> {
    s.catalog.services.get(&ServiceKey {
        namespace: "default".into(),
        name: name.into(),
    })
}

fn image(s: &FolderState, name: &str) -> Option<String> {
    service(s, name)
        .and_then(|e| e.desired.as_ref())
        .map(|d| d.components[0].template.container.image.clone())
}

#[tokio::test]
async fn edits_renames_deletes_and_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("iris.yaml"), isvc("iris", "img:1")).unwrap();
    let mut d = Daemon::start(dir.path());
    d.until("iris served", |s| {
        image(s, "iris").as_deref() == Some("img:1")
    })
    .await;

    // An editor's atomic save: write a temporary file, rename it over the original.
    let tmp = dir.path().join(".iris.yaml.swp");
    std::fs::write(&tmp, isvc("iris", "img:2")).unwrap();
    std::fs::rename(&tmp, dir.path().join("iris.yaml")).unwrap();
    d.until("atomic save picked up", |s| {
        image(s, "iris").as_deref() == Some("img:2")
    })
    .await;

    // Hidden and temporary files are never read.
    std::fs::write(dir.path().join(".hidden.yaml"), isvc("hidden", "img:1")).unwrap();
    std::fs::write(dir.path().join("backup.yaml~"), isvc("backup", "img:1")).unwrap();
    std::fs::write(dir.path().join("other.yaml"), isvc("other", "img:1")).unwrap();
    let s = d
        .until("other served", |s| service(s, "other").is_some())
        .await;
    assert!(service(&s, "hidden").is_none());
    assert!(service(&s, "backup").is_none());

    // A rename moves the definition; the service stays.
    std::fs::rename(
        dir.path().join("other.yaml"),
        dir.path().join("renamed.yaml"),
    )
    .unwrap();
    d.until("rename followed", |s| {
        service(s, "other").is_some_and(|e| e.file.ends_with("renamed.yaml"))
    })
    .await;

    // Subfolders are watched too.
    std::fs::create_dir(dir.path().join("team")).unwrap();
    std::fs::write(dir.path().join("team/deep.yml"), isvc("deep", "img:1")).unwrap();
    d.until("subfolder file served", |s| service(s, "deep").is_some())
        .await;

    // Deleting the file removes the service.
    std::fs::remove_file(dir.path().join("renamed.yaml")).unwrap();
    d.until("deleted service gone", |s| service(s, "other").is_none())
        .await;
    d.stop().await;
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_good_spec() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("iris.yaml");
    std::fs::write(&file, isvc("iris", "img:1")).unwrap();
    let mut d = Daemon::start(dir.path());
    d.until("iris served", |s| {
        image(s, "iris").as_deref() == Some("img:1")
    })
    .await;

    // A semantic error: the last good spec stays desired and the error is reported.
    std::fs::write(
        &file,
        isvc("iris", "img:2").replace("containers:", "minReplicas: -1\n    containers:"),
    )
    .unwrap();
    let s = d
        .until("stale with the error", |s| {
            service(s, "iris").is_some_and(|e| e.stale)
        })
        .await;
    let entry = service(&s, "iris").unwrap();
    assert_eq!(image(&s, "iris").as_deref(), Some("img:1"));
    assert!(
        entry
            .diagnostics
            .iter()
            .any(|d| d.message == "'MinReplicas' cannot be less than 0"),
        "{:?}",
        entry.diagnostics
    );

    // A file read while half-written (a YAML syntax error): still the last good spec.
    let full = isvc("iris", "img:3");
    std::fs::write(&file, full[..full.len() / 2].replace("spec:", "spec: [")).unwrap();
    let s = d
        .until("still stale after a syntax error", |s| {
            service(s, "iris").is_some_and(|e| {
                e.stale
                    && e.diagnostics
                        .iter()
                        .any(|d| d.message.starts_with("invalid YAML"))
            })
        })
        .await;
    assert_eq!(image(&s, "iris").as_deref(), Some("img:1"));

    // A file caught empty (truncated before it is written): still the last good spec.
    std::fs::write(&file, "").unwrap();
    let s = d
        .until("still stale while empty", |s| {
            service(s, "iris").is_some_and(|e| {
                e.stale
                    && e.diagnostics
                        .iter()
                        .any(|d| d.message == gantry::spec::catalog::EMPTY_FILE_KEEPS)
            })
        })
        .await;
    assert_eq!(image(&s, "iris").as_deref(), Some("img:1"));

    // The finished write takes over.
    std::fs::write(&file, &full).unwrap();
    d.until("fixed", |s| {
        image(s, "iris").as_deref() == Some("img:3") && !service(s, "iris").unwrap().stale
    })
    .await;
    d.stop().await;
}

#[tokio::test]
async fn the_file_that_defines_a_name_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.yaml"), isvc("iris", "from-b")).unwrap();
    let mut d = Daemon::start(dir.path());
    d.until("iris from b", |s| {
        image(s, "iris").as_deref() == Some("from-b")
    })
    .await;

    // a.yaml sorts first, but b.yaml already defines iris while the daemon runs.
    std::fs::write(dir.path().join("a.yaml"), isvc("iris", "from-a")).unwrap();
    let s = d
        .until("duplicate reported", |s| {
            !s.catalog.file_diagnostics.is_empty()
        })
        .await;
    assert_eq!(image(&s, "iris").as_deref(), Some("from-b"));
    let dup = &s
        .catalog
        .file_diagnostics
        .values()
        .flatten()
        .next()
        .unwrap();
    assert!(dup.file.ends_with("a.yaml"), "{dup}");
    assert!(dup.message.contains("b.yaml"), "{dup}");
    d.stop().await;

    // At start-up the first in path order wins.
    let mut d = Daemon::start(dir.path());
    let s = d.until("loaded", |s| service(s, "iris").is_some()).await;
    assert_eq!(image(&s, "iris").as_deref(), Some("from-a"));
    d.stop().await;
}

#[tokio::test]
async fn the_folder_deleted_and_recreated() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("iris.yaml"), isvc("iris", "img:1")).unwrap();
    let mut d = Daemon::start(&dir);
    d.until("iris served", |s| service(s, "iris").is_some())
        .await;

    std::fs::remove_dir_all(&dir).unwrap();
    let s = d
        .until("folder reported missing", |s| !s.folder_present)
        .await;
    assert!(
        service(&s, "iris").is_some(),
        "a missing folder keeps the last desired state"
    );

    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("new.yaml"), isvc("fresh", "img:1")).unwrap();
    let s = d
        .until("recreated folder loaded", |s| {
            s.folder_present && service(s, "fresh").is_some()
        })
        .await;
    assert!(service(&s, "iris").is_none());

    // And it is watched again: a later change is seen.
    std::fs::write(dir.join("later.yaml"), isvc("later", "img:1")).unwrap();
    d.until("change after recreation", |s| service(s, "later").is_some())
        .await;
    d.stop().await;
}

#[test]
fn files_over_the_size_limit_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("{}# {}\n", isvc("big", "img:1"), "x".repeat(4096));
    std::fs::write(dir.path().join("big.yaml"), big).unwrap();
    std::fs::write(dir.path().join("small.yaml"), isvc("small", "img:1")).unwrap();
    let catalog = gantry::watch::load_once(dir.path(), 2048, &LoadOptions::default()).unwrap();
    assert!(catalog.services.keys().any(|k| k.name == "small"));
    assert!(!catalog.services.keys().any(|k| k.name == "big"));
    let errors = catalog.all_diagnostics();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].file.ends_with("big.yaml"));
    assert_eq!(
        errors[0].message,
        "the file is larger than 2048 bytes (max-file-bytes); it was not read"
    );
}

//! The folder as a whole: files parsed into documents (phase 1, per file, cached by
//! content), InferenceServices validated and normalised against the folder's runtimes
//! (phase 2), and the catalog of desired services, which keeps the rules a running daemon
//! needs: the file that already defines a name keeps it, and an invalid edit of a working
//! service leaves its last good spec desired.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::autoscaling::AutoscalingDefaults;
use super::diagnostic::{Diagnostic, Position, Severity};
use super::normalize::{normalize, Context, DesiredService};
use super::runtime::{self, ServingRuntime};
use super::types::{InferenceService, InferenceServiceSpec};
use super::v1alpha2::InferenceServiceV1alpha2;
use super::validate::{validate, Finding, Layout};
use super::yaml::{self, decode, Document, FieldPath, UnknownFields};

/// The InferenceService apiVersions gantry serves.
pub const SERVED_VERSIONS: [&str; 3] = [
    "serving.kserve.io/v1beta1",
    "serving.kubeflow.org/v1beta1",
    "serving.kubeflow.org/v1alpha2",
];

/// Kinds that may share the folder with InferenceServices, kept for later use.
const KNOWN_KINDS: [&str; 9] = [
    "Secret",
    "ConfigMap",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "Namespace",
    "StorageContainer",
    "ClusterStorageContainer",
    "InferenceGraph",
];

/// Settings that change how documents are read.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    pub unknown_fields: UnknownFields,
    pub default_namespace: String,
    pub autoscaling: AutoscalingDefaults,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            unknown_fields: UnknownFields::Error,
            default_namespace: "default".into(),
            autoscaling: AutoscalingDefaults::default(),
        }
    }
}

/// `(kind, namespace, name)`; cluster-scoped kinds have an empty namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// `(namespace, name)` of an InferenceService.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Kubernetes object gantry keeps but does not serve (Secret, ConfigMap, ...).
#[derive(Clone, PartialEq)]
pub struct OtherObject {
    pub key: ObjectKey,
    pub api_version: String,
    /// The whole document. A Secret's holds credentials: never log or serve it.
    pub value: Value,
}

impl std::fmt::Debug for OtherObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtherObject")
            .field("key", &self.key)
            .field("api_version", &self.api_version)
            .field("value", &"<not shown>")
            .finish()
    }
}

/// What one document turned out to be.
#[derive(Debug, Clone)]
pub enum Body {
    InferenceService {
        isvc: Box<InferenceService>,
        legacy_canary: Option<Box<InferenceServiceSpec>>,
        layout: Layout,
        canary_layout: Layout,
    },
    ServingRuntime(Box<ServingRuntime>),
    Other(OtherObject),
    /// Unreadable; its diagnostics say why.
    Invalid,
}

#[derive(Debug, Clone)]
pub struct ParsedDocument {
    pub doc: Document,
    /// Known when the document says what it is, even if it is invalid.
    pub key: Option<ObjectKey>,
    pub body: Body,
    pub diagnostics: Vec<Diagnostic>,
}

/// A file read and parsed into documents (phase 1).
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: String,
    pub documents: Vec<ParsedDocument>,
    /// Problems of the file as a whole: unreadable, too large, a YAML syntax error.
    pub diagnostics: Vec<Diagnostic>,
    /// A syntax error stopped parsing, or the file is empty (a writer that truncates before
    /// it writes, caught in between): what it defines is unknown.
    pub truncated: bool,
    pub content_hash: [u8; 32],
}

/// Parses one file's text.
pub fn parse_file(path: &str, text: &str, opts: &LoadOptions) -> ParsedFile {
    let content_hash = Sha256::digest(text.as_bytes()).into();
    let (docs, syntax) = yaml::documents(text);
    let truncated = syntax.is_some() || text.is_empty();
    let documents = docs
        .into_iter()
        .map(|doc| parse_document(path, doc, opts))
        .collect();
    ParsedFile {
        path: path.to_string(),
        documents,
        diagnostics: syntax.into_iter().map(|d| d.in_file(path)).collect(),
        truncated,
        content_hash,
    }
}

/// A file that could not be read (or is too large to): nothing but the reason.
pub fn unreadable_file(path: &str, message: String) -> ParsedFile {
    ParsedFile {
        path: path.to_string(),
        documents: Vec::new(),
        diagnostics: vec![Diagnostic::error(message).in_file(path)],
        truncated: true,
        content_hash: [0; 32],
    }
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn parse_document(path: &str, doc: Document, opts: &LoadOptions) -> ParsedDocument {
    let mut diagnostics = Vec::new();
    let api_version = str_field(&doc.value, "apiVersion")
        .unwrap_or_default()
        .to_string();
    let kind = str_field(&doc.value, "kind")
        .unwrap_or_default()
        .to_string();
    let meta = doc.value.get("metadata");
    let name = meta
        .and_then(|m| str_field(m, "name"))
        .unwrap_or_default()
        .to_string();
    let cluster_scoped = kind == "ClusterServingRuntime" || kind.starts_with("Cluster");
    let namespace = if cluster_scoped {
        String::new()
    } else {
        meta.and_then(|m| str_field(m, "namespace"))
            .unwrap_or(&opts.default_namespace)
            .to_string()
    };
    let key = (!kind.is_empty()).then(|| ObjectKey {
        kind: kind.clone(),
        namespace,
        name,
    });

    let mut missing = Vec::new();
    if !doc.value.is_mapping() {
        diagnostics.push(doc.diagnostic(
            Severity::Error,
            &FieldPath::root(),
            "expected a Kubernetes object (a mapping with apiVersion and kind)".into(),
        ));
    } else {
        if api_version.is_empty() {
            missing.push("apiVersion not set");
        }
        if kind.is_empty() {
            missing.push("kind not set");
        }
    }
    if !missing.is_empty() {
        diagnostics.push(doc.diagnostic(
            Severity::Error,
            &FieldPath::root(),
            format!("error validating data: [{}]", missing.join(", ")),
        ));
    }
    let finish = |body, mut diagnostics: Vec<Diagnostic>, doc: Document, key| {
        for d in &mut diagnostics {
            d.file = path.to_string();
        }
        ParsedDocument {
            doc,
            key,
            body,
            diagnostics,
        }
    };
    if !diagnostics.is_empty() {
        return finish(Body::Invalid, diagnostics, doc, key);
    }

    let body = match (kind.as_str(), api_version.as_str()) {
        ("InferenceService", "serving.kserve.io/v1beta1" | "serving.kubeflow.org/v1beta1") => {
            let (isvc, diags) = decode::<InferenceService>(&doc, opts.unknown_fields);
            diagnostics.extend(diags);
            match isvc {
                Some(isvc) => Body::InferenceService {
                    isvc: Box::new(isvc),
                    legacy_canary: None,
                    layout: Layout::v1beta1(),
                    canary_layout: Layout::v1beta1(),
                },
                None => Body::Invalid,
            }
        }
        ("InferenceService", "serving.kubeflow.org/v1alpha2") => {
            let (old, diags) = decode::<InferenceServiceV1alpha2>(&doc, opts.unknown_fields);
            diagnostics.extend(diags);
            match old.map(|o| o.convert()) {
                Some(Ok(converted)) => Body::InferenceService {
                    isvc: Box::new(converted.isvc),
                    legacy_canary: converted.canary.map(Box::new),
                    layout: Layout::v1alpha2("spec.default"),
                    canary_layout: Layout::v1alpha2("spec.canary"),
                },
                Some(Err(errors)) => {
                    for e in errors {
                        diagnostics.push(doc.diagnostic(
                            Severity::Error,
                            &FieldPath::parse(&e.field),
                            e.message,
                        ));
                    }
                    Body::Invalid
                }
                None => Body::Invalid,
            }
        }
        ("InferenceService", other) => {
            diagnostics.push(doc.diagnostic(
                Severity::Error,
                &FieldPath::parse("apiVersion"),
                format!(
                    "no matches for kind \"InferenceService\" in version \"{other}\" (served \
                     versions: {})",
                    SERVED_VERSIONS.join(", ")
                ),
            ));
            Body::Invalid
        }
        ("ServingRuntime" | "ClusterServingRuntime", "serving.kserve.io/v1alpha1") => {
            let (rt, diags) = decode::<ServingRuntime>(&doc, opts.unknown_fields);
            diagnostics.extend(diags);
            rt.map_or(Body::Invalid, |mut r| {
                if !r.is_cluster_scoped() && r.metadata.namespace.is_none() {
                    r.metadata.namespace = Some(opts.default_namespace.clone());
                }
                Body::ServingRuntime(Box::new(r))
            })
        }
        ("ServingRuntime" | "ClusterServingRuntime", other) => {
            diagnostics.push(doc.diagnostic(
                Severity::Error,
                &FieldPath::parse("apiVersion"),
                format!(
                    "no matches for kind \"{kind}\" in version \"{other}\" (served versions: \
                     serving.kserve.io/v1alpha1)"
                ),
            ));
            Body::Invalid
        }
        (kind_name, _) => {
            if !KNOWN_KINDS.contains(&kind_name) {
                diagnostics.push(doc.diagnostic(
                    Severity::Warning,
                    &FieldPath::parse("kind"),
                    format!(
                        "{kind_name} ({api_version}) is kept but not used: gantry serves \
                         InferenceServices"
                    ),
                ));
            }
            Body::Other(OtherObject {
                key: key.clone().expect("kind is set"),
                api_version: api_version.clone(),
                value: doc.value.clone(),
            })
        }
    };
    finish(body, diagnostics, doc, key)
}

/// One InferenceService definition after phase 2.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub key: ServiceKey,
    pub file: String,
    pub document: usize,
    pub position: Option<Position>,
    pub desired: Option<Arc<DesiredService>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Validates and normalises every InferenceService of the folder against its runtimes, and
/// checks the runtimes. Returns the services in path order, plus per-file diagnostics about
/// runtimes.
pub fn evaluate(
    files: &[Arc<ParsedFile>],
    opts: &LoadOptions,
) -> (Vec<Evaluated>, Vec<Diagnostic>) {
    let mut runtime_refs: Vec<(&ParsedFile, &ParsedDocument, &ServingRuntime)> = Vec::new();
    for file in files {
        for pd in &file.documents {
            if let Body::ServingRuntime(rt) = &pd.body {
                runtime_refs.push((file, pd, rt));
            }
        }
    }
    let all_runtimes: Vec<&ServingRuntime> = runtime_refs.iter().map(|(_, _, r)| *r).collect();
    let mut runtime_diagnostics = Vec::new();
    let mut rejected = Vec::new();
    for (index, message) in runtime::validate_runtimes(&all_runtimes) {
        rejected.push(index);
        let (file, pd, _) = runtime_refs[index];
        runtime_diagnostics.push(
            pd.doc
                .diagnostic(Severity::Error, &FieldPath::parse("spec"), message)
                .in_file(&file.path),
        );
    }

    // A runtime the cluster would refuse is not there to be selected.
    let runtimes: Vec<&ServingRuntime> = all_runtimes
        .iter()
        .enumerate()
        .filter(|(i, _)| !rejected.contains(i))
        .map(|(_, r)| *r)
        .collect();
    let mut out = Vec::new();
    for file in files {
        for pd in &file.documents {
            let Body::InferenceService {
                isvc,
                legacy_canary,
                layout,
                canary_layout,
            } = &pd.body
            else {
                continue;
            };
            let key = pd.key.clone().expect("an InferenceService has a key");
            let ctx = Context {
                namespace: &key.namespace,
                autoscaling: &opts.autoscaling,
                runtimes: &runtimes,
            };
            let mut diagnostics = pd.diagnostics.clone();
            let position = |f: &Finding| {
                pd.doc
                    .diagnostic(f.severity, &f.path, f.message.clone())
                    .in_file(&file.path)
            };
            let findings = validate(isvc, layout, &opts.autoscaling);
            let failed = findings.iter().any(|f| f.severity == Severity::Error);
            diagnostics.extend(findings.iter().map(position));
            let desired = if failed {
                None
            } else {
                match normalize(isvc, legacy_canary.as_deref(), layout, canary_layout, &ctx) {
                    Ok(d) => Some(Arc::new(d)),
                    Err(findings) => {
                        diagnostics.extend(findings.iter().map(position));
                        None
                    }
                }
            };
            out.push(Evaluated {
                key: ServiceKey {
                    namespace: key.namespace,
                    name: key.name,
                },
                file: file.path.clone(),
                document: pd.doc.index,
                position: pd.doc.position(&FieldPath::root()),
                desired,
                diagnostics,
            });
        }
    }
    (out, runtime_diagnostics)
}

/// A service as the daemon sees it.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    /// The file that defines it.
    pub file: String,
    pub document: usize,
    /// The desired state: the current spec, or the last good one when the current is invalid.
    pub desired: Option<Arc<DesiredService>>,
    /// True when `desired` is a last good spec kept because the file's current content is
    /// invalid.
    pub stale: bool,
    /// Errors and warnings about the current content.
    pub diagnostics: Vec<Diagnostic>,
    /// Bumped each time `desired` changes.
    pub generation: u64,
}

/// The whole desired state, rebuilt from the folder on every change.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub services: BTreeMap<ServiceKey, ServiceEntry>,
    /// Diagnostics that belong to no service (syntax errors, runtimes, unknown kinds), by file.
    pub file_diagnostics: BTreeMap<String, Vec<Diagnostic>>,
    /// Secrets, ConfigMaps and other kinds, kept for later use.
    pub objects: BTreeMap<ObjectKey, OtherObject>,
    pub runtimes: BTreeMap<ObjectKey, ServingRuntime>,
}

impl Catalog {
    /// Every diagnostic, by file then position: what `gantry validate` prints.
    pub fn all_diagnostics(&self) -> Vec<Diagnostic> {
        let mut all: Vec<Diagnostic> = self
            .file_diagnostics
            .values()
            .flatten()
            .chain(self.services.values().flat_map(|s| s.diagnostics.iter()))
            .cloned()
            .collect();
        all.sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
        all.dedup();
        all
    }
}

/// Why a service stays desired while its file is empty.
pub const EMPTY_FILE_KEEPS: &str =
    "the file is empty: its services stay as they were until it has content again or is removed";

/// Builds the next catalog from freshly parsed files (in path order) and the previous one.
pub fn next_catalog(previous: &Catalog, files: &[Arc<ParsedFile>], opts: &LoadOptions) -> Catalog {
    let (evaluated, runtime_diagnostics) = evaluate(files, opts);
    let mut catalog = Catalog::default();
    for d in runtime_diagnostics {
        catalog
            .file_diagnostics
            .entry(d.file.clone())
            .or_default()
            .push(d);
    }
    for file in files {
        let mut diags = file.diagnostics.clone();
        for pd in &file.documents {
            match &pd.body {
                Body::InferenceService { .. } => {}
                Body::Invalid if is_isvc(pd) => {}
                Body::Other(o) => {
                    catalog.objects.insert(o.key.clone(), o.clone());
                    diags.extend(pd.diagnostics.iter().cloned());
                }
                Body::ServingRuntime(rt) => {
                    if let Some(k) = &pd.key {
                        catalog.runtimes.insert(k.clone(), (**rt).clone());
                    }
                    diags.extend(pd.diagnostics.iter().cloned());
                }
                Body::Invalid => diags.extend(pd.diagnostics.iter().cloned()),
            }
        }
        if !diags.is_empty() {
            catalog
                .file_diagnostics
                .entry(file.path.clone())
                .or_default()
                .extend(diags);
        }
    }

    // InferenceServices that failed to parse still claim their name when it is known.
    let mut candidates: BTreeMap<ServiceKey, Vec<Evaluated>> = BTreeMap::new();
    for e in evaluated {
        candidates.entry(e.key.clone()).or_default().push(e);
    }
    for file in files {
        for pd in &file.documents {
            if matches!(pd.body, Body::Invalid) && is_isvc(pd) {
                let Some(k) = &pd.key else { continue };
                if k.name.is_empty() {
                    catalog
                        .file_diagnostics
                        .entry(file.path.clone())
                        .or_default()
                        .extend(pd.diagnostics.iter().cloned());
                    continue;
                }
                let key = ServiceKey {
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                };
                let e = Evaluated {
                    key: key.clone(),
                    file: file.path.clone(),
                    document: pd.doc.index,
                    position: pd.doc.position(&FieldPath::root()),
                    desired: None,
                    diagnostics: pd.diagnostics.clone(),
                };
                let list = candidates.entry(key).or_default();
                let at = list.partition_point(|c| (&c.file, c.document) < (&e.file, e.document));
                list.insert(at, e);
            }
        }
    }

    for (key, mut list) in candidates {
        let previous_entry = previous.services.get(&key);
        let owner_index = previous_entry
            .and_then(|p| list.iter().position(|c| c.file == p.file))
            .unwrap_or(0);
        let owner = list.remove(owner_index);
        for loser in list {
            let message = format!(
                "duplicate InferenceService \"{key}\": already defined in {}{}; this definition is ignored",
                owner.file,
                owner.position.map(|p| format!(":{}", p.line)).unwrap_or_default()
            );
            let d = Diagnostic::error(message)
                .at(loser.position)
                .in_file(&loser.file);
            catalog
                .file_diagnostics
                .entry(loser.file.clone())
                .or_default()
                .push(d);
        }
        let entry = entry_for(&key, owner, previous_entry);
        catalog.services.insert(key, entry);
    }

    // A file cut short by a syntax error, or empty, keeps the services it defined before (last
    // good): editors and `>` redirections truncate a file before they write it, and a scan in
    // between must not take its services down. Removing the file removes them.
    for (key, prev) in &previous.services {
        if catalog.services.contains_key(key) {
            continue;
        }
        let Some(file) = files.iter().find(|f| f.path == prev.file) else {
            continue; // the file is gone: so is the service
        };
        if file.truncated && prev.desired.is_some() {
            let mut kept = prev.clone();
            kept.stale = true;
            kept.diagnostics = if file.diagnostics.is_empty() {
                vec![Diagnostic::warning(EMPTY_FILE_KEEPS).in_file(&file.path)]
            } else {
                file.diagnostics.clone()
            };
            catalog.services.insert(key.clone(), kept);
        }
    }
    catalog
}

fn is_isvc(pd: &ParsedDocument) -> bool {
    pd.key
        .as_ref()
        .is_some_and(|k| k.kind == "InferenceService")
}

fn entry_for(
    key: &ServiceKey,
    current: Evaluated,
    previous: Option<&ServiceEntry>,
) -> ServiceEntry {
    let same_file = previous.filter(|p| p.file == current.file);
    let (desired, stale) = match (&current.desired, same_file) {
        (Some(d), _) => (Some(d.clone()), false),
        (None, Some(p)) if p.desired.is_some() => (p.desired.clone(), true),
        (None, _) => (None, false),
    };
    let generation = match previous {
        Some(p) if p.desired == desired => p.generation,
        Some(p) => p.generation + 1,
        None => 1,
    };
    ServiceEntry {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        file: current.file,
        document: current.document,
        desired,
        stale,
        diagnostics: current.diagnostics,
        generation,
    }
}

/// Caches phase 1 by path and content, so that a change re-parses only the files that
/// changed.
#[derive(Debug, Default)]
pub struct ParseCache {
    files: HashMap<String, Arc<ParsedFile>>,
}

impl ParseCache {
    /// The parsed file for `text`, parsing only when the content changed.
    pub fn parse(&mut self, path: &str, text: &str, opts: &LoadOptions) -> Arc<ParsedFile> {
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(cached) = self.files.get(path) {
            if cached.content_hash == hash {
                return cached.clone();
            }
        }
        let parsed = Arc::new(parse_file(path, text, opts));
        self.files.insert(path.to_string(), parsed.clone());
        parsed
    }

    /// Forgets files that are no longer there.
    pub fn retain(&mut self, present: &[String]) {
        self.files.retain(|p, _| present.contains(p));
    }
}

//! The one YAML module: every YAML gantry reads (specs, the daemon config, GPU inventory
//! files, simulator scenarios) goes through here.
//!
//! `serde_yaml` does the reading. It knows where a syntax error is, but a value it hands back
//! no longer knows where it came from, so a second, event-level pass (`saphyr-parser`) records
//! the line and column of every key and sequence item. Semantic checks then name a field path
//! and this module turns it into a position.
//!
//! Decoding collects every structural problem of a document, not only the first: an unknown
//! field or a value of the wrong type is recorded, removed from the document, and decoding is
//! tried again (a bounded number of times).

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::Value;

use super::diagnostic::{Diagnostic, Position, Severity};

/// Files larger than this are refused before they are parsed (`max-file-bytes` in the config).
pub const DEFAULT_MAX_FILE_BYTES: usize = 1024 * 1024;

/// How many structural problems of one document are reported before giving up.
const MAX_STRUCTURAL_DIAGNOSTICS: usize = 50;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into a document, printed as Kubernetes prints field paths:
/// `spec.predictor.containers[0].image`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath::default()
    }

    /// Parses the printed form back (`a.b[0].c`). Keys that contain dots cannot round-trip;
    /// use [`FieldPath::key`] to build such paths.
    pub fn parse(text: &str) -> FieldPath {
        let mut path = FieldPath::root();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                path.0.push(Segment::Key(key.to_string()));
            }
            for index in rest.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    path.0.push(Segment::Index(i));
                }
            }
        }
        path
    }

    pub fn key(&self, key: impl Into<String>) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.into()));
        path
    }

    pub fn index(&self, index: usize) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    fn from_serde(path: &serde_path_to_error::Path) -> FieldPath {
        use serde_path_to_error::Segment as S;
        let mut out = FieldPath::root();
        for segment in path.iter() {
            match segment {
                S::Seq { index } => out.0.push(Segment::Index(*index)),
                S::Map { key } => out.0.push(Segment::Key(key.clone())),
                S::Enum { variant } => out.0.push(Segment::Key(variant.clone())),
                S::Unknown => break,
            }
        }
        out
    }

    fn parent(&self) -> Option<FieldPath> {
        let mut path = self.clone();
        path.0.pop().map(|_| path)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where each key and sequence item of one document starts.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    start: Option<Position>,
    nodes: HashMap<FieldPath, Position>,
}

impl Positions {
    /// The position of `path`, or of its nearest ancestor that has one (a missing field is
    /// reported where its parent is).
    pub fn find(&self, path: &FieldPath) -> Option<Position> {
        let mut path = path.clone();
        loop {
            if let Some(p) = self.nodes.get(&path) {
                return Some(*p);
            }
            match path.parent() {
                Some(parent) => path = parent,
                None => return self.start,
            }
        }
    }
}

/// One document of a YAML stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based index in the file.
    pub index: usize,
    pub value: Value,
    pub positions: Positions,
}

impl Document {
    pub fn position(&self, path: &FieldPath) -> Option<Position> {
        self.positions.find(path)
    }

    /// A diagnostic about `path` of this document, positioned.
    pub fn diagnostic(&self, severity: Severity, path: &FieldPath, message: String) -> Diagnostic {
        Diagnostic {
            severity,
            file: String::new(),
            position: self.position(path),
            field: Some(path.to_string()).filter(|p| !p.is_empty()),
            message,
        }
    }
}

/// What to do with a field no type knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownFields {
    /// Reject the document, as `kubectl apply` does by default.
    #[default]
    Error,
    /// Accept it and warn.
    Warn,
}

/// Splits a YAML stream into documents. Stops at the first syntax error, which is returned
/// with its position; the documents before it are kept. Empty documents are dropped.
pub fn documents(text: &str) -> (Vec<Document>, Option<Diagnostic>) {
    let mut positions = index_positions(text).into_iter();
    let mut out = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let positions = positions.next().unwrap_or_default();
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(value) => out.push(Document {
                index,
                value,
                positions,
            }),
            // serde_yaml repeats a syntax error forever; the first one is the one to report.
            Err(err) => return (out, Some(syntax_diagnostic(&err, text))),
        }
    }
    (out, None)
}

fn syntax_diagnostic(err: &serde_yaml::Error, text: &str) -> Diagnostic {
    let position = err.location().map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    // Show the line itself: placeholders like `{username}` are easy to spot there.
    let excerpt = position
        .and_then(|p| text.lines().nth(p.line.saturating_sub(1)))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!(" (in `{}`)", l.chars().take(80).collect::<String>()))
        .unwrap_or_default();
    let mut message = err.to_string();
    // serde_yaml appends " at line L column C"; the position is printed in front already.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    let message = match message.as_str() {
        "repetition limit exceeded" | "recursion limit exceeded" => format!(
            "{message}: the document's aliases expand beyond the bound gantry accepts \
             (a \"billion laughs\" document?)"
        ),
        _ => format!("invalid YAML: {message}{excerpt}"),
    };
    Diagnostic::error(message).at(position)
}

/// Decodes a document into `T`, collecting every structural problem (unknown fields, wrong
/// types, missing required fields). Returns `None` when any of them is an error.
pub fn decode<T: DeserializeOwned>(
    doc: &Document,
    unknown: UnknownFields,
) -> (Option<T>, Vec<Diagnostic>) {
    decode_at(doc, &FieldPath::root(), &doc.value, unknown)
}

/// Like [`decode`], for the value found at `base` inside `doc` (positions stay right).
pub fn decode_at<T: DeserializeOwned>(
    doc: &Document,
    base: &FieldPath,
    value: &Value,
    unknown: UnknownFields,
) -> (Option<T>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut pruned: Option<Value> = None;
    loop {
        let current = pruned.as_ref().unwrap_or(value);
        let err = match serde_path_to_error::deserialize::<_, T>(current) {
            Ok(t) => {
                let failed = diagnostics.iter().any(Diagnostic::is_error);
                diagnostics.sort_by_key(|d| d.position);
                return ((!failed).then_some(t), diagnostics);
            }
            Err(err) => err,
        };
        let relative = FieldPath::from_serde(err.path());
        let mut path = base.clone();
        path.0.extend(relative.0.iter().cloned());
        let (severity, message) = describe(&path, &err.inner().to_string(), unknown);
        diagnostics.push(doc.diagnostic(severity, &path, message));
        let next = pruned.get_or_insert_with(|| value.clone());
        if diagnostics.len() >= MAX_STRUCTURAL_DIAGNOSTICS || !remove(next, &relative.0) {
            if severity == Severity::Warning {
                diagnostics.push(doc.diagnostic(
                    Severity::Error,
                    &path,
                    "too many problems in this document".into(),
                ));
            }
            diagnostics.sort_by_key(|d| d.position);
            return (None, diagnostics);
        }
    }
}

/// Decodes a whole single-document file (the daemon config, inventories, scenarios):
/// the value, or every diagnostic with the file name filled in.
pub fn from_str_strict<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Vec<Diagnostic>> {
    let (docs, syntax) = documents(text);
    let named = |diags: Vec<Diagnostic>| diags.into_iter().map(|d| d.in_file(file)).collect();
    if let Some(err) = syntax {
        return Err(named(vec![err]));
    }
    let empty = Document {
        index: 0,
        value: Value::Mapping(Default::default()),
        positions: Positions::default(),
    };
    let doc = match docs.len() {
        0 => &empty,
        1 => &docs[0],
        n => {
            return Err(named(vec![Diagnostic::error(format!(
                "expected one YAML document, found {n}"
            ))]))
        }
    };
    match decode::<T>(doc, UnknownFields::Error) {
        (Some(t), _) => Ok(t),
        (None, diags) => Err(named(diags)),
    }
}

/// Turns a serde message into gantry's: Kubernetes' wording for unknown fields, with a
/// did-you-mean, and plain words for Rust type names.
fn describe(path: &FieldPath, message: &str, unknown: UnknownFields) -> (Severity, String) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let mut text = format!("unknown field \"{path}\"");
        if let Some(hint) = did_you_mean(field, &expected_names(rest)) {
            text.push_str(&format!("; did you mean \"{hint}\"?"));
        }
        let severity = match unknown {
            UnknownFields::Error => Severity::Error,
            UnknownFields::Warn => Severity::Warning,
        };
        return (severity, text);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let variant = rest.split('`').next().unwrap_or_default();
        let expected = expected_names(rest);
        let mut text = format!(
            "Unsupported value: \"{variant}\": supported values: {}",
            expected
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(hint) = did_you_mean(variant, &expected) {
            text.push_str(&format!("; did you mean \"{hint}\"?"));
        }
        return (Severity::Error, text);
    }
    let mut text = message.to_string();
    for (rust, words) in [
        ("expected i32", "expected an integer"),
        ("expected i64", "expected an integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u16", "expected a port number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        if text.ends_with(rust) {
            text = format!("{}{words}", &text[..text.len() - rust.len()]);
        }
    }
    (Severity::Error, text)
}

/// The names serde lists after "expected" (`` expected `a`, `b` or `c` ``).
fn expected_names(message: &str) -> Vec<String> {
    let Some((_, expected)) = message.split_once("expected") else {
        return Vec::new();
    };
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The closest known name, if one is close enough to be what the user meant.
pub fn did_you_mean(wrong: &str, candidates: &[String]) -> Option<String> {
    let lower = wrong.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(wrong.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Removes the value at `path` from `value` (its key from the parent mapping, or its item from
/// the parent sequence). False when there is nothing to remove.
fn remove(value: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match (segment, node) {
            (Segment::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str()),
            (Segment::Index(i), Value::Sequence(s)) => s.get_mut(*i),
            (_, Value::Tagged(t)) => Some(&mut t.value),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Segment::Key(k), Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        (Segment::Index(i), Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    }
}

/// Walks the event stream and records where every key and sequence item starts, one
/// [`Positions`] per document. Stops quietly at a syntax error (serde_yaml reports it).
fn index_positions(text: &str) -> Vec<Positions> {
    enum Frame {
        Map { key: Option<String> },
        Seq { next: usize },
    }
    let mut out = Vec::new();
    let mut current = Positions::default();
    let mut frames: Vec<(FieldPath, Frame)> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let here = Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        // The path of the node this event starts, when it starts one.
        let mut node_path = |frames: &mut Vec<(FieldPath, Frame)>, scalar: Option<&str>| {
            let Some((path, frame)) = frames.last_mut() else {
                return Some(FieldPath::root());
            };
            match frame {
                Frame::Seq { next } => {
                    let p = path.index(*next);
                    *next += 1;
                    current.nodes.entry(p.clone()).or_insert(here);
                    Some(p)
                }
                Frame::Map { key } => match key.take() {
                    Some(k) => Some(path.key(k)),
                    None => {
                        // This node is a key; complex keys get a name nobody asks for.
                        let k = scalar.unwrap_or("?complex").to_string();
                        current.nodes.entry(path.key(k.clone())).or_insert(here);
                        *key = Some(k);
                        None
                    }
                },
            }
        };
        match event {
            Event::DocumentStart(_) => {
                current = Positions {
                    start: Some(here),
                    nodes: HashMap::new(),
                };
                frames.clear();
            }
            Event::DocumentEnd => out.push(std::mem::take(&mut current)),
            Event::Scalar(text, ..) => {
                node_path(&mut frames, Some(&text));
            }
            Event::Alias(_) => {
                node_path(&mut frames, Some("*alias"));
            }
            Event::MappingStart(..) => {
                if let Some(p) = node_path(&mut frames, None) {
                    frames.push((p, Frame::Map { key: None }));
                } else {
                    frames.push((
                        FieldPath::key(&FieldPath::root(), "?complex"),
                        Frame::Map { key: None },
                    ));
                }
            }
            Event::SequenceStart(..) => {
                if let Some(p) = node_path(&mut frames, None) {
                    frames.push((p, Frame::Seq { next: 0 }));
                } else {
                    frames.push((
                        FieldPath::key(&FieldPath::root(), "?complex"),
                        Frame::Seq { next: 0 },
                    ));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Spec {
        spec: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        min_replicas: Option<i32>,
        #[serde(default)]
        containers: Vec<Container>,
        resources: Option<Value>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Container {
        name: Option<String>,
        image: Option<String>,
    }

    fn one(text: &str) -> Document {
        let (mut docs, err) = documents(text);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    fn pos(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn positions_of_keys_and_items() {
        let doc = one(
            "spec:\n  minReplicas: 1\n  containers:\n  - name: a\n    image: b\n  - {name: c}\n",
        );
        let check = |path: &str, expected: Option<Position>| {
            assert_eq!(doc.position(&FieldPath::parse(path)), expected, "{path}");
        };
        check("spec", pos(1, 1));
        check("spec.minReplicas", pos(2, 3));
        check("spec.containers[0]", pos(4, 5));
        check("spec.containers[0].image", pos(5, 5));
        check("spec.containers[1].name", pos(6, 6));
        // A field that is not there is reported where its parent is.
        check("spec.containers[0].ports[3]", pos(4, 5));
    }

    #[test]
    fn positions_per_document() {
        let (docs, err) = documents("a: 1\n---\n\nb:\n  c: 2\n---\n");
        assert!(err.is_none());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].position(&FieldPath::parse("b.c")), pos(5, 3));
    }

    #[test]
    fn syntax_error_keeps_earlier_documents() {
        let (docs, err) = documents("a: 1\n---\nb: [\n");
        assert_eq!(docs.len(), 1);
        let err = err.unwrap();
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert_eq!(err.position.unwrap().line, 4);
    }

    #[test]
    fn not_yaml_placeholder_is_a_syntax_error() {
        let (_, err) = documents("image: {username}/custom-sample\n");
        let err = err.unwrap();
        assert_eq!(err.position.unwrap().line, 1);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let (_, err) = documents(&text);
        let err = err.expect("an alias bomb must be refused");
        assert!(err.message.contains("repetition limit"), "{}", err.message);
    }

    #[test]
    fn every_unknown_field_with_did_you_mean() {
        let doc = one(
            "spec:\n  minReplica: 1\n  containers:\n  - name: a\n    imag: b\n  resouces: {}\n",
        );
        let (value, diags) = decode::<Spec>(&doc, UnknownFields::Error);
        assert!(value.is_none());
        let texts: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{}", d.position.unwrap().line, d.text()))
            .collect();
        assert_eq!(
            texts,
            [
                "2:unknown field \"spec.minReplica\"; did you mean \"minReplicas\"?",
                "5:unknown field \"spec.containers[0].imag\"; did you mean \"image\"?",
                "6:unknown field \"spec.resouces\"; did you mean \"resources\"?",
            ]
        );
    }

    #[test]
    fn unknown_fields_as_warnings_keep_the_document() {
        let doc = one("spec:\n  minReplicas: 2\n  flavour: x\n");
        let (value, diags) = decode::<Spec>(&doc, UnknownFields::Warn);
        assert_eq!(value.unwrap().spec.min_replicas, Some(2));
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Warning);
        assert_eq!(diags[0].text(), "unknown field \"spec.flavour\"");
    }

    #[test]
    fn wrong_types_are_all_reported() {
        let doc = one("spec:\n  minReplicas: lots\n  containers:\n  - name: [a]\n");
        let (value, diags) = decode::<Spec>(&doc, UnknownFields::Error);
        assert!(value.is_none());
        let texts: Vec<String> = diags.iter().map(Diagnostic::text).collect();
        assert_eq!(
            texts,
            [
                "spec.minReplicas: invalid type: string \"lots\", expected an integer",
                "spec.containers[0].name: invalid type: sequence, expected a string",
            ]
        );
        assert_eq!(diags[1].position, pos(4, 5));
    }

    #[test]
    fn strict_single_document() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Config {
            listen: Option<String>,
        }
        assert_eq!(
            from_str_strict::<Config>("", "c.yaml").unwrap(),
            Config { listen: None }
        );
        let errs = from_str_strict::<Config>("listn: x\n", "c.yaml").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "c.yaml:1:1: error: unknown field \"listn\"; did you mean \"listen\"?"
        );
        let errs = from_str_strict::<Config>("a: 1\n---\nb: 2\n", "c.yaml").unwrap_err();
        assert_eq!(errs[0].message, "expected one YAML document, found 2");
    }

    #[test]
    fn did_you_mean_only_when_close() {
        let names: Vec<String> = ["resources", "readinessProbe", "image"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            did_you_mean("resouces", &names).as_deref(),
            Some("resources")
        );
        assert_eq!(did_you_mean("Image", &names).as_deref(), Some("image"));
        assert_eq!(did_you_mean("flavour", &names), None);
    }
}

//! The Secrets and ConfigMaps of the folder, read as the API server and the kubelet read
//! them: what environment variables (`valueFrom`, `envFrom`) and storage credentials are
//! made of. A Secret's values never appear in an error.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_yaml::Value;

use super::catalog::{ObjectKey, OtherObject};

/// The two kinds of object a variable can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Secret,
    ConfigMap,
}

impl Source {
    pub fn kind(self) -> &'static str {
        match self {
            Source::Secret => "Secret",
            Source::ConfigMap => "ConfigMap",
        }
    }

    /// The resource name the kubelet's "not found" error uses.
    pub fn resource(self) -> &'static str {
        match self {
            Source::Secret => "secret",
            Source::ConfigMap => "configmap",
        }
    }
}

/// A problem of a Secret or ConfigMap itself (the API server would have refused it).
pub struct ObjectProblem(pub String);

/// The keys and values of a Secret (`data` base64-decoded, `stringData` over it, as the
/// API server merges them) or a ConfigMap (`data`; `binaryData` is never an environment
/// variable). `None` when there is no such object in the namespace.
pub fn object_data(
    objects: &BTreeMap<ObjectKey, OtherObject>,
    kind: Source,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, ObjectProblem> {
    let key = ObjectKey {
        kind: kind.kind().to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    let Some(object) = objects.get(&key) else {
        return Ok(None);
    };
    let what = describe(kind, namespace, name);
    let mut out = BTreeMap::new();
    let sections: &[(&str, bool)] = match kind {
        Source::Secret => &[("data", true), ("stringData", false)],
        Source::ConfigMap => &[("data", false)],
    };
    for (section, base64) in sections {
        let Some(entries) = object.value.get(*section) else {
            continue;
        };
        let entries = match entries {
            Value::Null => continue,
            Value::Mapping(m) => m,
            other => {
                return Err(ObjectProblem(format!(
                    "{what}: {section}: expected a mapping of keys to strings, found {}",
                    yaml_kind(other)
                )))
            }
        };
        for (k, v) in entries {
            let Some(k) = k.as_str() else {
                return Err(ObjectProblem(format!(
                    "{what}: {section}: expected string keys, found {}",
                    yaml_kind(k)
                )));
            };
            let text = match v {
                Value::String(s) => s.as_str(),
                Value::Null => "",
                other => {
                    return Err(ObjectProblem(format!(
                        "{what}: {section}.{k}: expected a string, found {} (quote it)",
                        yaml_kind(other)
                    )))
                }
            };
            let value = if *base64 {
                decode_secret_value(text)
                    .map_err(|reason| ObjectProblem(format!("{what}: {section}.{k}: {reason}")))?
            } else {
                text.to_string()
            };
            out.insert(k.to_string(), value);
        }
    }
    Ok(Some(out))
}

/// `Secret default/s3`, as the kubelet names objects in its errors.
pub fn describe(kind: Source, namespace: &str, name: &str) -> String {
    format!("{} {namespace}/{name}", kind.kind())
}

/// A Secret's `data` value: standard base64 with padding, as the API server decodes it.
/// The error never shows the value, not even the offending byte.
pub fn decode_secret_value(text: &str) -> Result<String, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| "expected base64 data (use stringData for plain text)".to_string())?;
    String::from_utf8(bytes).map_err(|_| {
        "the decoded value is not UTF-8 text, which an environment variable must be".to_string()
    })
}

pub fn yaml_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

//! The classifier: a multinomial logistic regression stored as JSON (`model.json`), written
//! by `examples/model-server/train.py` from Fisher's Iris data. A prediction is
//! `argmax(weights · features + bias)`, the index of the most likely class.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The name of the model file inside a model directory.
pub const MODEL_FILE: &str = "model.json";

/// The only file format this server reads (the `format` field of the file).
pub const FORMAT: &str = "gantry-model-server/logistic-regression/v1";

/// A loaded classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Input feature names, in order; a prediction takes this many numbers.
    pub features: Vec<String>,
    /// Class names; a prediction is an index into this list.
    pub classes: Vec<String>,
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
}

impl Model {
    /// Loads `model.json` from `location`, a model directory (as mounted at `/mnt/models`)
    /// or the file itself.
    pub fn load(location: &Path) -> Result<Model, String> {
        let path = if location.is_dir() {
            location.join(MODEL_FILE)
        } else {
            location.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|error| {
            format!(
                "cannot read the model {}: {error} (expected a directory holding {MODEL_FILE}, \
                 written by examples/model-server/train.py; set it with --model-dir)",
                path.display()
            )
        })?;
        Model::from_json(&text, path.clone())
            .map_err(|error| format!("invalid model {}: {error}", path.display()))
    }

    /// Reads a model from the text of its file; `path` only labels it.
    pub fn from_json(text: &str, path: PathBuf) -> Result<Model, String> {
        let file: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
        let format = file.get("format").and_then(Value::as_str);
        if format != Some(FORMAT) {
            return Err(format!(
                "expected \"format\": {FORMAT:?}, found {}",
                file.get("format")
                    .map_or("nothing".to_owned(), Value::to_string)
            ));
        }
        let features = strings(&file, "features")?;
        let classes = strings(&file, "classes")?;
        let bias = numbers(file.get("bias"), "bias")?;
        let weights = match file.get("weights") {
            Some(Value::Array(rows)) => rows
                .iter()
                .enumerate()
                .map(|(i, row)| numbers(Some(row), &format!("weights[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("expected \"weights\": a list of lists of numbers".to_owned()),
        };
        if features.is_empty() || classes.is_empty() {
            return Err("expected at least one feature and one class".to_owned());
        }
        if weights.len() != classes.len() || bias.len() != classes.len() {
            return Err(format!(
                "expected one weight row and one bias per class ({} classes), found {} rows and {} biases",
                classes.len(),
                weights.len(),
                bias.len()
            ));
        }
        if let Some((i, row)) = weights
            .iter()
            .enumerate()
            .find(|(_, row)| row.len() != features.len())
        {
            return Err(format!(
                "expected weights[{i}] to hold {} numbers (one per feature), found {}",
                features.len(),
                row.len()
            ));
        }
        Ok(Model {
            path,
            features,
            classes,
            weights,
            bias,
        })
    }

    /// The index of the most likely class for one instance; `features` must hold
    /// `self.features.len()` numbers (the protocol layer checks this).
    pub fn predict(&self, features: &[f64]) -> usize {
        debug_assert_eq!(features.len(), self.features.len());
        let scores =
            self.weights.iter().zip(&self.bias).map(|(row, bias)| {
                row.iter().zip(features).map(|(w, x)| w * x).sum::<f64>() + bias
            });
        let mut best = (0, f64::NEG_INFINITY);
        for (class, score) in scores.enumerate() {
            if score > best.1 {
                best = (class, score);
            }
        }
        best.0
    }
}

fn strings(file: &Value, field: &str) -> Result<Vec<String>, String> {
    let expected = || format!("expected {field:?}: a list of strings");
    match file.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(expected))
            .collect(),
        _ => Err(expected()),
    }
}

fn numbers(value: Option<&Value>, field: &str) -> Result<Vec<f64>, String> {
    let expected = || format!("expected {field:?}: a list of numbers");
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_f64().ok_or_else(expected))
            .collect(),
        _ => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris() -> Model {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/iris");
        Model::load(&dir).expect("the committed Iris model loads")
    }

    #[test]
    fn classic_iris_examples() {
        let model = iris();
        assert_eq!(model.classes, ["setosa", "versicolor", "virginica"]);
        assert_eq!(model.features.len(), 4);
        for (features, class) in [
            ([5.1, 3.5, 1.4, 0.2], 0),
            ([4.9, 3.0, 1.4, 0.2], 0),
            ([5.9, 3.0, 4.2, 1.5], 1),
            ([7.0, 3.2, 4.7, 1.4], 1),
            ([6.7, 3.0, 5.2, 2.3], 2),
            ([6.3, 3.3, 6.0, 2.5], 2),
        ] {
            assert_eq!(model.predict(&features), class, "{features:?}");
        }
    }

    #[test]
    fn loads_a_file_as_well_as_a_directory() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/iris/model.json");
        assert_eq!(Model::load(&file).unwrap().classes.len(), 3);
    }

    #[test]
    fn load_errors_name_the_file_and_the_problem() {
        let missing = Model::load(Path::new("/nonexistent/models")).unwrap_err();
        assert!(missing.contains("/nonexistent/models"), "{missing}");
        assert!(missing.contains("--model-dir"), "{missing}");

        let check = |text: &str, expected: &str| {
            let error = Model::from_json(text, PathBuf::from("m.json")).unwrap_err();
            assert!(
                error.contains(expected),
                "{error:?} should contain {expected:?}"
            );
        };
        let good = r#""format": "gantry-model-server/logistic-regression/v1", "features": ["a", "b"], "classes": ["x", "y"]"#;
        check("{", "EOF");
        check(r#"{"format": "onnx"}"#, r#"found "onnx""#);
        check(
            &format!(r#"{{{good}, "weights": [[1, 2]], "bias": [0, 0]}}"#),
            "one weight row and one bias per class",
        );
        check(
            &format!(r#"{{{good}, "weights": [[1, 2], [3]], "bias": [0, 0]}}"#),
            "weights[1] to hold 2 numbers",
        );
        check(
            &format!(r#"{{{good}, "weights": [[1, 2], [3, "4"]], "bias": [0, 0]}}"#),
            "\"weights[1]\": a list of numbers",
        );
        let ok = Model::from_json(
            &format!(r#"{{{good}, "weights": [[1, 0], [0, 1]], "bias": [0, 0]}}"#),
            PathBuf::from("m.json"),
        )
        .unwrap();
        assert_eq!(ok.predict(&[0.0, 1.0]), 1);
    }
}

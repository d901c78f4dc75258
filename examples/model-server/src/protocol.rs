//! KServe's REST protocols: V1 (`/v1/models/{name}:predict`) and V2, the Open Inference
//! Protocol (`/v2/models/{name}/infer`), with the status codes and error bodies of KServe's
//! own Python server (`{"error": "..."}`; unknown routes answer as FastAPI does,
//! `{"detail": "Not Found"}`).

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::event_stream::EventStream;
use crate::server::{App, InFlight};

pub(crate) type ResponseBody = BoxBody<Bytes, Infallible>;

/// The largest request body read; a bigger one is answered 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The header that carries `--version`.
pub const VERSION_HEADER: &str = "x-model-version";

const INPUT_NAME: &str = "input-0";
const OUTPUT_NAME: &str = "output-0";

/// V2 datatypes whose JSON data are numbers: all accepted, since JSON carries them alike.
const NUMERIC_DATATYPES: [&str; 11] = [
    "FP32", "FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
    "UINT64",
];

/// Answers one request; never fails (errors are answers too).
pub(crate) async fn handle(app: Arc<App>, request: Request<Incoming>) -> Response<ResponseBody> {
    let mut response = route(&app, request)
        .await
        .unwrap_or_else(Failure::into_response);
    if let Some(version) = &app.behaviour.version {
        if let Ok(value) = HeaderValue::from_str(version) {
            response.headers_mut().insert(VERSION_HEADER, value);
        }
    }
    response
}

async fn route(
    app: &Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Failure> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let name = &app.behaviour.model_name;
    match segments.as_slice() {
        // V1
        [""] => {
            only(&method, "GET")?;
            Ok(json(StatusCode::OK, json!({"status": "alive"})))
        }
        ["v1", "models"] => {
            only(&method, "GET")?;
            Ok(json(StatusCode::OK, json!({"models": [name]})))
        }
        ["v1", "models", target] => {
            if let Some(model) = target.strip_suffix(":predict") {
                only(&method, "POST")?;
                ready_model(app, model)?;
                predict(app, request).await
            } else if let Some(model) = target.strip_suffix(":explain") {
                only(&method, "POST")?;
                ready_model(app, model)?;
                Err(Failure::error(
                    StatusCode::NOT_IMPLEMENTED,
                    format!("Model with name {model} has no explainer."),
                ))
            } else {
                only(&method, "GET")?;
                ready_model(app, target)?;
                Ok(json(StatusCode::OK, json!({"name": target, "ready": true})))
            }
        }

        // V2
        ["v2"] => {
            only(&method, "GET")?;
            Ok(json(
                StatusCode::OK,
                json!({"name": "gantry-model-server", "version": env!("CARGO_PKG_VERSION"), "extensions": []}),
            ))
        }
        ["v2", "health", "live"] => {
            only(&method, "GET")?;
            Ok(json(StatusCode::OK, json!({"live": true})))
        }
        ["v2", "health", "ready"] => {
            only(&method, "GET")?;
            if !app.is_ready() {
                return Err(Failure::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Server is not ready.".to_owned(),
                ));
            }
            Ok(json(StatusCode::OK, json!({"ready": true})))
        }
        ["v2", "models"] => {
            only(&method, "GET")?;
            Ok(json(StatusCode::OK, json!({"models": [name]})))
        }
        ["v2", "models", model] => {
            only(&method, "GET")?;
            known_model(app, model)?;
            Ok(json(StatusCode::OK, v2_metadata(app)))
        }
        ["v2", "models", model, "ready"] => {
            only(&method, "GET")?;
            ready_model(app, model)?;
            Ok(json(
                StatusCode::OK,
                v2_body(app, json!({"name": model, "ready": true})),
            ))
        }
        ["v2", "models", model, "infer"] => {
            only(&method, "POST")?;
            ready_model(app, model)?;
            infer(app, request).await
        }
        ["v2", "models", _, "versions", _] | ["v2", "models", _, "versions", _, "ready"] => {
            only(&method, "GET")?;
            Err(versioning_not_supported())
        }
        ["v2", "models", _, "versions", _, "infer"] => {
            only(&method, "POST")?;
            Err(versioning_not_supported())
        }

        // For tests of routers and autoscalers: the concurrency this server has seen.
        ["stats"] => match method {
            Method::GET => Ok(stats(app)),
            Method::DELETE => {
                app.stats.reset();
                Ok(stats(app))
            }
            _ => Err(Failure::method_not_allowed("GET, DELETE")),
        },
        _ => Err(Failure::detail(StatusCode::NOT_FOUND, "Not Found")),
    }
}

/// `POST /v1/models/{name}:predict`: `{"instances": [[f, f, f, f], ...]}` (or `"inputs"`)
/// → `{"predictions": [class, ...]}`, or one SSE event per instance when streaming.
async fn predict(
    app: &Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Failure> {
    let in_flight = app.enter_inference();
    let wants_events = app.behaviour.stream
        && request.headers().get_all(ACCEPT).iter().any(|accept| {
            accept
                .to_str()
                .is_ok_and(|a| a.contains("text/event-stream"))
        });
    let body = read_json(request).await?;
    let instances = match body.get("instances").or_else(|| body.get("inputs")) {
        Some(Value::Array(instances)) => instances,
        _ => {
            return Err(bad_request(
                r#"Expected "instances" to be a list"#.to_owned(),
            ))
        }
    };
    let width = app.model.features.len();
    let mut predictions = Vec::with_capacity(instances.len());
    for (i, instance) in instances.iter().enumerate() {
        let features = instance
            .as_array()
            .filter(|values| values.len() == width)
            .and_then(|values| {
                values
                    .iter()
                    .map(Value::as_f64)
                    .collect::<Option<Vec<f64>>>()
            })
            .ok_or_else(|| {
                bad_request(format!(
                    "Expected instance {i} to be a list of {width} numbers ({}), found {}",
                    app.model.features.join(", "),
                    excerpt(instance)
                ))
            })?;
        predictions.push(app.model.predict(&features));
    }
    if wants_events {
        return Ok(stream_predictions(app, predictions, in_flight));
    }
    tokio::time::sleep(app.behaviour.latency).await;
    Ok(json(StatusCode::OK, json!({"predictions": predictions})))
}

/// Server-Sent Events, `data: {"index": i, "prediction": class}`, one per instance: the
/// first at once, the next ones `--latency` apart.
fn stream_predictions(
    app: &Arc<App>,
    predictions: Vec<usize>,
    in_flight: InFlight,
) -> Response<ResponseBody> {
    let (events, body) = EventStream::channel();
    let latency = app.behaviour.latency;
    tokio::spawn(async move {
        let _in_flight = in_flight;
        for (index, prediction) in predictions.into_iter().enumerate() {
            if index > 0 {
                tokio::time::sleep(latency).await;
            }
            let event = format!(
                "data: {}\n\n",
                json!({"index": index, "prediction": prediction})
            );
            if events.send(Bytes::from(event)).await.is_err() {
                break; // the client went away
            }
        }
    });
    let mut response = Response::new(body.boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /v2/models/{name}/infer`: one FP32 tensor of shape `[N, 4]` in, one INT64 tensor of
/// shape `[N]` (class indices) out.
async fn infer(
    app: &Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Failure> {
    let _in_flight = app.enter_inference();
    let body = read_json(request).await?;
    let inputs = match body.get("inputs") {
        Some(Value::Array(inputs)) => inputs,
        _ => {
            return Err(bad_request(
                r#"Expected "inputs" to be a list of tensors"#.to_owned(),
            ))
        }
    };
    let [input] = inputs.as_slice() else {
        return Err(bad_request(format!(
            "Expected 1 input tensor ({INPUT_NAME}), found {}",
            inputs.len()
        )));
    };
    let width = app.model.features.len();
    let rows = tensor_rows(input, width)?;
    if let Some(outputs) = body.get("outputs") {
        let requested = outputs.as_array().ok_or_else(|| {
            bad_request(r#"Expected "outputs" to be a list of {"name": ...}"#.to_owned())
        })?;
        for output in requested {
            let output_name = output.get("name").and_then(Value::as_str);
            if output_name != Some(OUTPUT_NAME) {
                return Err(bad_request(format!(
                    "Unknown output {}; this model has one output, {OUTPUT_NAME}",
                    output
                        .get("name")
                        .map_or("without a name".to_owned(), excerpt)
                )));
            }
        }
    }
    let id = match body.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => {
            return Err(bad_request(format!(
                r#"Expected "id" to be a string, found {}"#,
                excerpt(other)
            )))
        }
        None => request_id(),
    };
    let classes: Vec<usize> = rows.iter().map(|row| app.model.predict(row)).collect();
    tokio::time::sleep(app.behaviour.latency).await;
    let answer = json!({
        "model_name": app.behaviour.model_name,
        "id": id,
        "outputs": [{
            "name": OUTPUT_NAME,
            "shape": [classes.len()],
            "datatype": "INT64",
            "data": classes,
        }],
    });
    Ok(json(StatusCode::OK, v2_body(app, answer)))
}

/// The rows of a V2 input tensor `{"name", "shape": [N, width], "datatype", "data"}`; data may
/// be flat (row-major) or nested, as the protocol allows.
fn tensor_rows(input: &Value, width: usize) -> Result<Vec<Vec<f64>>, Failure> {
    let name = match input.get("name") {
        Some(Value::String(name)) => name.as_str(),
        _ => {
            return Err(bad_request(
                r#"Expected each input to have a "name" string"#.to_owned(),
            ))
        }
    };
    let datatype = input.get("datatype").and_then(Value::as_str);
    if !datatype.is_some_and(|datatype| NUMERIC_DATATYPES.contains(&datatype)) {
        return Err(bad_request(format!(
            "Input {name}: expected datatype FP32 (or another numeric datatype), found {}",
            input.get("datatype").map_or("nothing".to_owned(), excerpt)
        )));
    }
    let shape: Option<Vec<u64>> = input
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|dims| dims.iter().map(Value::as_u64).collect());
    let rows = match shape.as_deref() {
        Some(&[rows, columns]) if columns == width as u64 => rows as usize,
        _ => {
            return Err(bad_request(format!(
                "Input {name}: expected shape [N, {width}], found {}",
                input.get("shape").map_or("nothing".to_owned(), excerpt)
            )))
        }
    };
    let mut data = Vec::new();
    let numeric = match input.get("data") {
        Some(value @ Value::Array(_)) => flatten(value, &mut data),
        _ => false,
    };
    if !numeric {
        return Err(bad_request(format!(
            "Input {name}: expected \"data\" to be a list of numbers, found {}",
            input.get("data").map_or("nothing".to_owned(), excerpt)
        )));
    }
    if data.len() != rows.saturating_mul(width) {
        return Err(bad_request(format!(
            "Input {name}: shape [{rows}, {width}] needs {} values, found {}",
            rows.saturating_mul(width),
            data.len()
        )));
    }
    Ok(data.chunks(width).map(<[f64]>::to_vec).collect())
}

/// Appends the numbers of a (possibly nested) JSON array; false if something is not a number.
fn flatten(value: &Value, out: &mut Vec<f64>) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|item| flatten(item, out)),
        Value::Number(number) => number.as_f64().map(|x| out.push(x)).is_some(),
        _ => false,
    }
}

fn v2_metadata(app: &App) -> Value {
    let width = app.model.features.len();
    let versions: Vec<&String> = app.behaviour.version.iter().collect();
    v2_body(
        app,
        json!({
            "name": app.behaviour.model_name,
            "versions": versions,
            "platform": "gantry-model-server",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, width]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "INT64", "shape": [-1]}],
        }),
    )
}

/// Adds `model_version` to a V2 model body when the server has a version.
fn v2_body(app: &App, mut body: Value) -> Value {
    if let (Some(version), Value::Object(fields)) = (&app.behaviour.version, &mut body) {
        fields.insert("model_version".to_owned(), Value::String(version.clone()));
    }
    body
}

fn stats(app: &App) -> Response<ResponseBody> {
    let stats = app.stats();
    json(
        StatusCode::OK,
        json!({
            "in_flight": stats.in_flight,
            "max_in_flight": stats.max_in_flight,
            "requests": stats.requests,
        }),
    )
}

/// 404 for a name this server does not serve.
fn known_model(app: &App, model: &str) -> Result<(), Failure> {
    if model == app.behaviour.model_name {
        Ok(())
    } else {
        Err(Failure::error(
            StatusCode::NOT_FOUND,
            format!("Model with name {model} does not exist."),
        ))
    }
}

/// 404 for a name this server does not serve, 503 while the model is not ready.
fn ready_model(app: &App, model: &str) -> Result<(), Failure> {
    known_model(app, model)?;
    if app.is_ready() {
        Ok(())
    } else {
        Err(Failure::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Model with name {model} is not ready."),
        ))
    }
}

fn versioning_not_supported() -> Failure {
    Failure::error(
        StatusCode::NOT_IMPLEMENTED,
        "Model versioning not supported yet.".to_owned(),
    )
}

async fn read_json(request: Request<Incoming>) -> Result<Value, Failure> {
    let bytes = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(Failure::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than the limit of {MAX_BODY_BYTES} bytes."),
            ))
        }
        Err(error) => {
            return Err(bad_request(format!(
                "Cannot read the request body: {error}"
            )))
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|error| bad_request(format!("Unrecognized request format: {error}")))
}

/// A short rendering of a JSON value for an error message.
fn excerpt(value: &Value) -> String {
    const LIMIT: usize = 80;
    let text = value.to_string();
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// A fresh id for a V2 response whose request carried none (KServe uses a UUID; so do we,
/// version 4 in form, from the standard library's randomly seeded hasher).
fn request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new();
    let high = random.hash_one(count);
    let low = random.hash_one(!count);
    let bits = (u128::from(high) << 64 | u128::from(low)) & !(0xf000 << 64) & !(0xc << 60)
        | (0x4000 << 64)
        | (0x8 << 60);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn json(status: StatusCode, body: Value) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn only(method: &Method, allowed: &'static str) -> Result<(), Failure> {
    if method.as_str() == allowed {
        Ok(())
    } else {
        Err(Failure::method_not_allowed(allowed))
    }
}

fn bad_request(text: String) -> Failure {
    Failure::error(StatusCode::BAD_REQUEST, text)
}

/// An error answer.
struct Failure {
    status: StatusCode,
    body: Value,
    allow: Option<&'static str>,
}

impl Failure {
    /// KServe's shape: `{"error": "..."}`.
    fn error(status: StatusCode, text: String) -> Failure {
        Failure {
            status,
            body: json!({ "error": text }),
            allow: None,
        }
    }

    /// FastAPI's shape for routing errors: `{"detail": "..."}`.
    fn detail(status: StatusCode, text: &str) -> Failure {
        Failure {
            status,
            body: json!({ "detail": text }),
            allow: None,
        }
    }

    fn method_not_allowed(allow: &'static str) -> Failure {
        Failure {
            allow: Some(allow),
            ..Failure::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
    }

    fn into_response(self) -> Response<ResponseBody> {
        let mut response = json(self.status, self.body);
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_version_4_uuids() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(
                matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
        }
    }

    #[test]
    fn tensors_flat_or_nested() {
        let flat =
            json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4.5]});
        assert_eq!(
            tensor_rows(&flat, 2).ok(),
            Some(vec![vec![1.0, 2.0], vec![3.0, 4.5]])
        );
        let nested =
            json!({"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4.5]]});
        assert_eq!(
            tensor_rows(&nested, 2).ok(),
            Some(vec![vec![1.0, 2.0], vec![3.0, 4.5]])
        );
        let empty = json!({"name": "x", "shape": [0, 2], "datatype": "FP32", "data": []});
        assert_eq!(tensor_rows(&empty, 2).ok(), Some(vec![]));
    }

    #[test]
    fn excerpts_are_short() {
        let long = Value::String("x".repeat(200));
        assert_eq!(excerpt(&long).chars().count(), 83);
        assert_eq!(excerpt(&json!([1, 2])), "[1,2]");
    }
}

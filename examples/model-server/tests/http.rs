//! The server in-process on 127.0.0.1:0, exercised over real HTTP: every endpoint of both
//! protocols, their error shapes, streaming, the concurrency statistics and graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_model_server::model::Model;
use gantry_model_server::server::{self, App, Behaviour};
use gantry_model_server::MAX_BODY_BYTES;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

const SETOSA: [f64; 4] = [5.1, 3.5, 1.4, 0.2];
const VIRGINICA: [f64; 4] = [6.7, 3.0, 5.2, 2.3];
const VERSICOLOR: [f64; 4] = [5.9, 3.0, 4.2, 1.5];

struct TestServer {
    address: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start(behaviour: Behaviour) -> TestServer {
        let model = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/iris"))
            .expect("the committed Iris model loads");
        let listener = server::bind("127.0.0.1", 0).await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = App::new(behaviour, model);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, Arc::clone(&app), async {
            let _ = stopped.await;
        }));
        TestServer {
            address,
            app,
            stop: Some(stop),
            task,
        }
    }

    async fn iris() -> TestServer {
        TestServer::start(iris()).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], None).await
    }

    async fn post(&self, path: &str, body: &str) -> Answer {
        self.send("POST", path, &[], Some(body)).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let response = open(self.address, method, path, headers, body).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    fn shutdown(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
    }
}

fn iris() -> Behaviour {
    Behaviour {
        model_name: "iris".into(),
        ..Behaviour::default()
    }
}

/// Sends one request on a fresh connection and returns the response as it starts.
async fn open(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response<Incoming> {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Asserts the status and the body in one go, showing both when they differ.
    fn check(&self, status: StatusCode, body: Value) {
        assert_eq!((self.status, self.json()), (status, body));
    }

    fn check_error(&self, status: StatusCode, text: &str) {
        self.check(status, json!({ "error": text }));
    }

    fn check_error_containing(&self, status: StatusCode, text: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let error = self.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(text), "{error:?} should contain {text:?}");
    }
}

fn predict_body(instances: &[[f64; 4]]) -> String {
    json!({ "instances": instances }).to_string()
}

fn infer_body(instances: &[[f64; 4]]) -> String {
    let data: Vec<f64> = instances.iter().flatten().copied().collect();
    json!({"inputs": [{"name": "input-0", "shape": [instances.len(), 4], "datatype": "FP32", "data": data}]})
        .to_string()
}

#[tokio::test]
async fn v1_endpoints() {
    let server = TestServer::iris().await;
    server
        .get("/")
        .await
        .check(StatusCode::OK, json!({"status": "alive"}));
    server
        .get("/v1/models")
        .await
        .check(StatusCode::OK, json!({"models": ["iris"]}));
    server
        .get("/v1/models/iris")
        .await
        .check(StatusCode::OK, json!({"name": "iris", "ready": true}));
    server
        .post(
            "/v1/models/iris:predict",
            &predict_body(&[SETOSA, VIRGINICA, VERSICOLOR]),
        )
        .await
        .check(StatusCode::OK, json!({"predictions": [0, 2, 1]}));
    // KServe also takes "inputs" in place of "instances"; an empty batch is a valid batch.
    server
        .post(
            "/v1/models/iris:predict",
            r#"{"inputs": [[6.3, 3.3, 6.0, 2.5]]}"#,
        )
        .await
        .check(StatusCode::OK, json!({"predictions": [2]}));
    server
        .post("/v1/models/iris:predict", r#"{"instances": []}"#)
        .await
        .check(StatusCode::OK, json!({"predictions": []}));
    server
        .post("/v1/models/iris:explain", &predict_body(&[SETOSA]))
        .await
        .check_error(
            StatusCode::NOT_IMPLEMENTED,
            "Model with name iris has no explainer.",
        );
}

#[tokio::test]
async fn v1_errors() {
    let server = TestServer::iris().await;
    let missing = "Model with name flowers does not exist.";
    server
        .get("/v1/models/flowers")
        .await
        .check_error(StatusCode::NOT_FOUND, missing);
    server
        .post("/v1/models/flowers:predict", &predict_body(&[SETOSA]))
        .await
        .check_error(StatusCode::NOT_FOUND, missing);

    let bad = |body: &'static str, text: &'static str| {
        let server = &server;
        async move {
            server
                .post("/v1/models/iris:predict", body)
                .await
                .check_error_containing(StatusCode::BAD_REQUEST, text);
        }
    };
    bad("{not json", "Unrecognized request format: ").await;
    bad(
        r#"{"rows": [[1, 2, 3, 4]]}"#,
        r#"Expected "instances" to be a list"#,
    )
    .await;
    bad(
        r#"{"instances": {"a": 1}}"#,
        r#"Expected "instances" to be a list"#,
    )
    .await;
    bad(r#"[[1, 2, 3, 4]]"#, r#"Expected "instances" to be a list"#).await;
    bad(
        r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [1, 2, 3]]}"#,
        "Expected instance 1 to be a list of 4 numbers (sepal_length_cm, sepal_width_cm, \
         petal_length_cm, petal_width_cm), found [1,2,3]",
    )
    .await;
    bad(r#"{"instances": [[1, 2, 3, "4"]]}"#, r#"found [1,2,3,"4"]"#).await;

    // Routing errors answer as KServe's FastAPI does.
    server.get("/v1/models/iris:predict").await.check(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"detail": "Method Not Allowed"}),
    );
    let wrong_method = server.post("/v1/models", "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers["allow"], "GET");
    server
        .get("/v3/models")
        .await
        .check(StatusCode::NOT_FOUND, json!({"detail": "Not Found"}));
}

#[tokio::test]
async fn v2_endpoints() {
    let server = TestServer::iris().await;
    server
        .get("/v2/health/live")
        .await
        .check(StatusCode::OK, json!({"live": true}));
    server
        .get("/v2/health/ready")
        .await
        .check(StatusCode::OK, json!({"ready": true}));
    server.get("/v2").await.check(
        StatusCode::OK,
        json!({"name": "gantry-model-server", "version": env!("CARGO_PKG_VERSION"), "extensions": []}),
    );
    server
        .get("/v2/models")
        .await
        .check(StatusCode::OK, json!({"models": ["iris"]}));
    server.get("/v2/models/iris").await.check(
        StatusCode::OK,
        json!({
            "name": "iris",
            "versions": [],
            "platform": "gantry-model-server",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
        }),
    );
    server
        .get("/v2/models/iris/ready")
        .await
        .check(StatusCode::OK, json!({"name": "iris", "ready": true}));

    let answer = server
        .post(
            "/v2/models/iris/infer",
            &infer_body(&[SETOSA, VIRGINICA, VERSICOLOR]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut body = answer.json();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    body.as_object_mut().unwrap().remove("id");
    assert_eq!(
        body,
        json!({
            "model_name": "iris",
            "outputs": [{"name": "output-0", "shape": [3], "datatype": "INT64", "data": [0, 2, 1]}],
        })
    );

    // The request's id comes back; nested data, other numeric types and a named output work.
    let nested = json!({
        "id": "request-7",
        "inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP64", "data": [SETOSA, VERSICOLOR]}],
        "outputs": [{"name": "output-0"}],
    });
    server.post("/v2/models/iris/infer", &nested.to_string()).await.check(
        StatusCode::OK,
        json!({
            "model_name": "iris",
            "id": "request-7",
            "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [0, 1]}],
        }),
    );
}

#[tokio::test]
async fn v2_errors() {
    let server = TestServer::iris().await;
    let missing = "Model with name flowers does not exist.";
    server
        .get("/v2/models/flowers")
        .await
        .check_error(StatusCode::NOT_FOUND, missing);
    server
        .get("/v2/models/flowers/ready")
        .await
        .check_error(StatusCode::NOT_FOUND, missing);
    server
        .post("/v2/models/flowers/infer", &infer_body(&[SETOSA]))
        .await
        .check_error(StatusCode::NOT_FOUND, missing);

    let versioning = "Model versioning not supported yet.";
    server
        .get("/v2/models/iris/versions/1")
        .await
        .check_error(StatusCode::NOT_IMPLEMENTED, versioning);
    server
        .get("/v2/models/iris/versions/1/ready")
        .await
        .check_error(StatusCode::NOT_IMPLEMENTED, versioning);
    server
        .post("/v2/models/iris/versions/1/infer", &infer_body(&[SETOSA]))
        .await
        .check_error(StatusCode::NOT_IMPLEMENTED, versioning);

    let tensor = |fields: Value| {
        let mut input =
            json!({"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": SETOSA});
        for (key, value) in fields.as_object().unwrap() {
            input[key] = value.clone();
        }
        json!({ "inputs": [input] }).to_string()
    };
    let cases = [
        ("{".to_owned(), "Unrecognized request format: "),
        (
            r#"{"instances": [[1, 2, 3, 4]]}"#.to_owned(),
            r#"Expected "inputs" to be a list of tensors"#,
        ),
        (
            r#"{"inputs": []}"#.to_owned(),
            "Expected 1 input tensor (input-0), found 0",
        ),
        (
            tensor(json!({"name": 7})),
            r#"Expected each input to have a "name" string"#,
        ),
        (
            tensor(json!({"datatype": "BYTES"})),
            r#"Input input-0: expected datatype FP32 (or another numeric datatype), found "BYTES""#,
        ),
        (
            tensor(json!({"shape": [4]})),
            "Input input-0: expected shape [N, 4], found [4]",
        ),
        (
            tensor(json!({"shape": [1, 3]})),
            "Input input-0: expected shape [N, 4], found [1,3]",
        ),
        (
            tensor(json!({"shape": [2, 4]})),
            "Input input-0: shape [2, 4] needs 8 values, found 4",
        ),
        (
            tensor(json!({"data": [1, 2, "3", 4]})),
            r#"Input input-0: expected "data" to be a list of numbers, found [1,2,"3",4]"#,
        ),
        (
            tensor(json!({"data": null})),
            r#"Input input-0: expected "data" to be a list of numbers, found null"#,
        ),
    ];
    for (body, text) in cases {
        server
            .post("/v2/models/iris/infer", &body)
            .await
            .check_error_containing(StatusCode::BAD_REQUEST, text);
    }
    let mut two_inputs: Value = serde_json::from_str(&infer_body(&[SETOSA])).unwrap();
    let first = two_inputs["inputs"][0].clone();
    two_inputs["inputs"].as_array_mut().unwrap().push(first);
    server
        .post("/v2/models/iris/infer", &two_inputs.to_string())
        .await
        .check_error(
            StatusCode::BAD_REQUEST,
            "Expected 1 input tensor (input-0), found 2",
        );
    let mut wrong_output: Value = serde_json::from_str(&infer_body(&[SETOSA])).unwrap();
    wrong_output["outputs"] = json!([{"name": "probabilities"}]);
    server
        .post("/v2/models/iris/infer", &wrong_output.to_string())
        .await
        .check_error(
            StatusCode::BAD_REQUEST,
            r#"Unknown output "probabilities"; this model has one output, output-0"#,
        );
}

#[tokio::test]
async fn a_model_that_is_not_ready_answers_503() {
    let server = TestServer::iris().await;
    server.app.set_ready(false);
    let not_ready = "Model with name iris is not ready.";
    server
        .get("/v1/models/iris")
        .await
        .check_error(StatusCode::SERVICE_UNAVAILABLE, not_ready);
    server
        .post("/v1/models/iris:predict", &predict_body(&[SETOSA]))
        .await
        .check_error(StatusCode::SERVICE_UNAVAILABLE, not_ready);
    server
        .get("/v2/models/iris/ready")
        .await
        .check_error(StatusCode::SERVICE_UNAVAILABLE, not_ready);
    server
        .post("/v2/models/iris/infer", &infer_body(&[SETOSA]))
        .await
        .check_error(StatusCode::SERVICE_UNAVAILABLE, not_ready);
    server
        .get("/v2/health/ready")
        .await
        .check_error(StatusCode::SERVICE_UNAVAILABLE, "Server is not ready.");
    // Still alive, still described, and an unknown name is still unknown.
    server
        .get("/v2/health/live")
        .await
        .check(StatusCode::OK, json!({"live": true}));
    server
        .get("/")
        .await
        .check(StatusCode::OK, json!({"status": "alive"}));
    assert_eq!(server.get("/v2/models/iris").await.status, StatusCode::OK);
    server.get("/v2/models/other/ready").await.check_error(
        StatusCode::NOT_FOUND,
        "Model with name other does not exist.",
    );

    server.app.set_ready(true);
    server
        .get("/v2/health/ready")
        .await
        .check(StatusCode::OK, json!({"ready": true}));
}

#[tokio::test]
async fn the_version_is_echoed_everywhere() {
    let server = TestServer::start(Behaviour {
        version: Some("rev-2".into()),
        ..iris()
    })
    .await;
    for answer in [
        server.get("/").await,
        server.get("/v2/health/ready").await,
        server.get("/v1/models/nope").await,
        server.get("/nowhere").await,
        server.get("/stats").await,
        server
            .post("/v1/models/iris:predict", &predict_body(&[SETOSA]))
            .await,
    ] {
        assert_eq!(answer.headers["x-model-version"], "rev-2");
    }
    let infer = server
        .post("/v2/models/iris/infer", &infer_body(&[SETOSA]))
        .await
        .json();
    assert_eq!(infer["model_version"], "rev-2");
    let metadata = server.get("/v2/models/iris").await.json();
    assert_eq!(
        (&metadata["versions"], &metadata["model_version"]),
        (&json!(["rev-2"]), &json!("rev-2"))
    );
    let ready = server.get("/v2/models/iris/ready").await.json();
    assert_eq!(
        ready,
        json!({"name": "iris", "ready": true, "model_version": "rev-2"})
    );

    // Without a version: no header, no field.
    let plain = TestServer::iris().await;
    let answer = plain
        .post("/v2/models/iris/infer", &infer_body(&[SETOSA]))
        .await;
    assert!(!answer.headers.contains_key("x-model-version"));
    assert!(answer.json().get("model_version").is_none());
}

#[tokio::test]
async fn latency_delays_inference_but_not_probes() {
    let server = TestServer::start(Behaviour {
        latency: Duration::from_millis(200),
        ..iris()
    })
    .await;
    let started = Instant::now();
    server.get("/v2/health/ready").await;
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    for (path, body) in [
        ("/v1/models/iris:predict", predict_body(&[SETOSA])),
        ("/v2/models/iris/infer", infer_body(&[SETOSA])),
    ] {
        let started = Instant::now();
        let answer = server.post(path, &body).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{path}: {:?}",
            started.elapsed()
        );
    }
}

/// Waits (a few seconds at most) until `count` inference requests are in flight.
async fn wait_for_in_flight(app: &App, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.stats().in_flight != count {
        assert!(
            Instant::now() < deadline,
            "in flight: {:?}, expected {count}",
            app.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads a streamed body, noting when each chunk arrives.
async fn timed_chunks(response: Response<Incoming>) -> Vec<(Duration, String)> {
    let started = Instant::now();
    let mut body = response.into_body();
    let mut chunks = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            chunks.push((started.elapsed(), String::from_utf8(data.to_vec()).unwrap()));
        }
    }
    chunks
}

#[tokio::test]
async fn streaming_sends_one_event_per_prediction_as_it_is_made() {
    let latency = Duration::from_millis(300);
    let server = TestServer::start(Behaviour {
        stream: true,
        latency,
        ..iris()
    })
    .await;
    let sse = [("accept", "text/event-stream")];
    let body = predict_body(&[SETOSA, VIRGINICA, VERSICOLOR]);
    let response = open(
        server.address,
        "POST",
        "/v1/models/iris:predict",
        &sse,
        Some(&body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let chunks = timed_chunks(response).await;
    let events: Vec<&str> = chunks.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(
        events,
        [
            "data: {\"index\":0,\"prediction\":0}\n\n",
            "data: {\"index\":1,\"prediction\":2}\n\n",
            "data: {\"index\":2,\"prediction\":1}\n\n",
        ]
    );
    // The first at once, then one latency apart: nothing is buffered.
    assert!(chunks[0].0 < latency, "{chunks:?}");
    for pair in chunks.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= latency.mul_f64(0.9), "{chunks:?}");
    }
    assert_eq!(server.app.stats().in_flight, 0);

    // A client that does not accept events gets JSON, after the latency.
    server
        .post("/v1/models/iris:predict", &body)
        .await
        .check(StatusCode::OK, json!({"predictions": [0, 2, 1]}));
    // Errors are JSON even when events are accepted.
    server
        .send("POST", "/v1/models/iris:predict", &sse, Some("{}"))
        .await
        .check_error(
            StatusCode::BAD_REQUEST,
            r#"Expected "instances" to be a list"#,
        );

    // Without --stream, an event-stream request gets JSON.
    let plain = TestServer::iris().await;
    plain
        .send("POST", "/v1/models/iris:predict", &sse, Some(&body))
        .await
        .check(StatusCode::OK, json!({"predictions": [0, 2, 1]}));
}

#[tokio::test]
async fn stats_report_the_highest_concurrency_seen() {
    let server = TestServer::start(Behaviour {
        latency: Duration::from_secs(1),
        ..iris()
    })
    .await;
    server.get("/stats").await.check(
        StatusCode::OK,
        json!({"in_flight": 0, "max_in_flight": 0, "requests": 0}),
    );

    let mut requests = JoinSet::new();
    for i in 0..6 {
        let address = server.address;
        requests.spawn(async move {
            let (path, body) = if i % 2 == 0 {
                ("/v1/models/iris:predict", predict_body(&[SETOSA]))
            } else {
                ("/v2/models/iris/infer", infer_body(&[SETOSA]))
            };
            open(address, "POST", path, &[], Some(&body)).await.status()
        });
    }
    wait_for_in_flight(&server.app, 6).await;
    server.get("/stats").await.check(
        StatusCode::OK,
        json!({"in_flight": 6, "max_in_flight": 6, "requests": 6}),
    );
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    // Probes and metadata do not count.
    server.get("/v2/health/ready").await;
    server.get("/v1/models/iris").await;
    server.get("/stats").await.check(
        StatusCode::OK,
        json!({"in_flight": 0, "max_in_flight": 6, "requests": 6}),
    );

    // DELETE starts afresh.
    server.send("DELETE", "/stats", &[], None).await.check(
        StatusCode::OK,
        json!({"in_flight": 0, "max_in_flight": 0, "requests": 0}),
    );
    server
        .post("/v1/models/iris:predict", &predict_body(&[SETOSA]))
        .await;
    server.get("/stats").await.check(
        StatusCode::OK,
        json!({"in_flight": 0, "max_in_flight": 1, "requests": 1}),
    );
    let wrong = server.post("/stats", "").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.headers["allow"], "GET, DELETE");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_what_is_in_flight() {
    let latency = Duration::from_secs(1);
    let mut server = TestServer::start(Behaviour {
        latency,
        stream: true,
        ..iris()
    })
    .await;
    // An idle keep-alive connection must not hold the shutdown up.
    let idle = TcpStream::connect(server.address).await.unwrap();
    let (_idle_sender, idle_connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(idle))
            .await
            .unwrap();
    let idle_connection = tokio::spawn(idle_connection);

    let address = server.address;
    let slow = tokio::spawn(async move {
        let response = open(
            address,
            "POST",
            "/v1/models/iris:predict",
            &[],
            Some(&predict_body(&[VIRGINICA])),
        )
        .await;
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    });
    let stream = tokio::spawn(async move {
        let sse = [("accept", "text/event-stream")];
        let body = predict_body(&[SETOSA, VERSICOLOR]);
        timed_chunks(
            open(
                address,
                "POST",
                "/v1/models/iris:predict",
                &sse,
                Some(&body),
            )
            .await,
        )
        .await
    });
    wait_for_in_flight(&server.app, 2).await;

    server.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "still accepting"
    );
    assert!(!server.app.is_ready());
    assert!(
        !server.task.is_finished(),
        "returned before the in-flight requests finished"
    );

    let (status, body) = slow.await.unwrap();
    assert_eq!(
        (status, body),
        (StatusCode::OK, Bytes::from_static(b"{\"predictions\":[2]}"))
    );
    let chunks = stream.await.unwrap();
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert_eq!(chunks[1].1, "data: {\"index\":1,\"prediction\":1}\n\n");
    tokio::time::timeout(Duration::from_secs(2), &mut server.task)
        .await
        .expect("serve returns once drained")
        .unwrap()
        .unwrap();
    // The server closed it (the client sees an incomplete message: it had sent none).
    let _ = tokio::time::timeout(Duration::from_secs(2), idle_connection)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert_eq!(server.app.stats().in_flight, 0);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let server = TestServer::iris().await;
    let huge = format!(
        "{{\"instances\": [{}]}}",
        "[5.1,3.5,1.4,0.2],".repeat(MAX_BODY_BYTES / 18 + 1)
    );
    server
        .post("/v1/models/iris:predict", &huge)
        .await
        .check_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body is larger than the limit of 16777216 bytes.",
        );
}

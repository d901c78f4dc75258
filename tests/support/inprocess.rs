//! gantry's data plane in the test's own process, routing one service to a server the test
//! runs itself: for what needs no container (upgrades, cancellations) and for benchmarks.

use std::collections::BTreeMap;
use std::sync::Arc;

use gantry::reconcile::executor::{ReplicaView, RuntimeStatus, ServiceStatus};
use gantry::reconcile::plan::{ComponentStatus, TrafficTarget};
use gantry::router::Router;
use gantry::runtime::ContainerState;
use gantry::spec::catalog::{next_catalog, parse_file, Catalog, LoadOptions};

/// An InferenceService `name` in namespace `default` with a custom predictor (the image is
/// never run) and the given predictor fields.
pub fn isvc(name: &str, predictor_fields: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: {name}}}
spec:
  predictor:
{predictor_fields}    containers:
    - name: kserve-container
      image: not-run:1
      args: [--model-name={name}]
"
    )
}

/// The catalog of one YAML text, which must be valid.
pub fn catalog(yaml: &str) -> Catalog {
    let opts = LoadOptions::default();
    let parsed = vec![Arc::new(parse_file("service.yaml", yaml, &opts))];
    let catalog = next_catalog(&Catalog::default(), &parsed, &opts);
    assert!(
        catalog.services.values().all(|e| e.desired.is_some()),
        "invalid service: {:?}",
        catalog.all_diagnostics()
    );
    catalog
}

/// What the reconciler publishes once revision 00001 of `service`'s predictor has one ready
/// replica on `port`.
pub fn status(service: &str, port: u16) -> RuntimeStatus {
    let revision = format!("{service}-predictor-00001");
    split_status(
        service,
        &[(revision.as_str(), port)],
        vec![TrafficTarget::new(&revision, 100, true, None)],
    )
}

/// What the reconciler publishes when `service`'s predictor has the given revisions, one
/// ready replica each on the given port, the last one the latest, and `traffic` as its split.
pub fn split_status(
    service: &str,
    revisions: &[(&str, u16)],
    traffic: Vec<TrafficTarget>,
) -> RuntimeStatus {
    let latest = revisions.last().map(|(r, _)| r.to_string());
    let status = ServiceStatus {
        components: vec![ComponentStatus {
            component: "predictor".into(),
            latest_created_revision: latest.clone(),
            latest_ready_revision: latest,
            latest_rolledout_revision: None,
            previous_rolledout_revision: None,
            traffic,
            ready: true,
            reason: None,
            message: None,
        }],
        replicas: revisions
            .iter()
            .map(|&(revision, port)| ReplicaView {
                revision: revision.into(),
                replica: 0,
                container_id: format!("{revision}-replica-0"),
                state: ContainerState::Running,
                ready: true,
                host_port: Some(port),
                restarts: 0,
                last_exit: None,
                gpus: vec![],
            })
            .collect(),
        ..ServiceStatus::default()
    };
    RuntimeStatus {
        services: BTreeMap::from([(("default".into(), service.into()), status)]),
        passes: 1,
    }
}

/// A router serving on a loopback port of the current tokio runtime, routing `yaml`'s service
/// to `replica_port`.
pub struct InProcess {
    pub router: Arc<Router>,
    pub addr: std::net::SocketAddr,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub poked: tokio::sync::mpsc::UnboundedReceiver<String>,
}

pub async fn start(yaml: &str, service: &str, replica_port: u16, queue_depth: usize) -> InProcess {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (router, poked) = Router::new("localhost", addr.port(), queue_depth);
    router.update(&catalog(yaml), &status(service, replica_port));
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(gantry::router::proxy::serve(
        listener,
        router.clone(),
        stopped,
    ));
    InProcess {
        router,
        addr,
        shutdown,
        poked,
    }
}

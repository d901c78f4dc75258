//! Readiness, liveness and startup probes, run by gantry against a replica's published port
//! (Knative's queue-proxy does this in a cluster). Until the first success a replica is probed
//! every 50 ms, so a fast container is ready fast; then at the probe's own period.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::runtime::ContainerRuntime;
use crate::spec::types::Probe;

/// Probe attempts before the first success.
pub const FAST_PERIOD: Duration = Duration::from_millis(50);

/// Kubernetes' probe defaults.
pub fn period(p: Option<&Probe>) -> Duration {
    Duration::from_secs(
        p.and_then(|p| p.period_seconds)
            .filter(|s| *s > 0)
            .unwrap_or(10) as u64,
    )
}

pub fn timeout(p: Option<&Probe>) -> Duration {
    Duration::from_secs(
        p.and_then(|p| p.timeout_seconds)
            .filter(|s| *s > 0)
            .unwrap_or(1) as u64,
    )
}

pub fn failure_threshold(p: Option<&Probe>) -> u32 {
    p.and_then(|p| p.failure_threshold)
        .filter(|s| *s > 0)
        .unwrap_or(3) as u32
}

pub fn initial_delay(p: Option<&Probe>) -> Duration {
    Duration::from_secs(
        p.and_then(|p| p.initial_delay_seconds)
            .filter(|s| *s > 0)
            .unwrap_or(0) as u64,
    )
}

/// One attempt of `probe` (a TCP check of the port when there is none). Only the published
/// port is reachable from the host, so a probe's port is always the serving port.
pub async fn attempt<R: ContainerRuntime>(
    probe: Option<&Probe>,
    host_port: u16,
    container_id: &str,
    runtime: &R,
    client: &reqwest::Client,
) -> Result<(), String> {
    let limit = timeout(probe);
    let addr = ("127.0.0.1", host_port);
    match probe {
        Some(Probe {
            http_get: Some(get),
            ..
        }) => {
            let path = get.path.as_deref().unwrap_or("/");
            let scheme = get.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
            if scheme != "http" {
                return Err(format!("probe scheme {scheme} is not supported; use HTTP"));
            }
            let url = format!("http://127.0.0.1:{host_port}{path}");
            let mut request = client.get(&url).timeout(limit);
            for h in &get.http_headers {
                request = request.header(&h.name, &h.value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| format!("GET {path}: {e}"))?;
            let code = response.status().as_u16();
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!(
                    "GET {path}: HTTP probe failed with statuscode: {code}"
                ))
            }
        }
        Some(Probe {
            exec: Some(exec), ..
        }) => {
            let code = runtime
                .exec(container_id, &exec.command, limit)
                .await
                .map_err(|e| format!("exec probe: {e}"))?;
            if code == 0 {
                Ok(())
            } else {
                Err(format!("exec probe exited with code {code}"))
            }
        }
        Some(Probe { grpc: Some(_), .. }) => Err("gRPC probes are not supported yet".into()),
        _ => match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp 127.0.0.1:{host_port}: {e}")),
            Err(_) => Err(format!("dial tcp 127.0.0.1:{host_port}: i/o timeout")),
        },
    }
}

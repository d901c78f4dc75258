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
    match probe {
        Some(Probe {
            exec: Some(exec), ..
        }) => {
            let code = runtime
                .exec(container_id, &exec.command, timeout(probe))
                .await
                .map_err(|e| format!("exec probe: {e}"))?;
            if code == 0 {
                Ok(())
            } else {
                Err(format!("exec probe exited with code {code}"))
            }
        }
        _ => attempt_network(probe, host_port, client).await,
    }
}

/// An HTTP or TCP attempt against the published port.
pub async fn attempt_network(
    probe: Option<&Probe>,
    host_port: u16,
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
        Some(Probe { grpc: Some(_), .. }) => Err("gRPC probes are not supported yet".into()),
        _ => match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp 127.0.0.1:{host_port}: {e}")),
            Err(_) => Err(format!("dial tcp 127.0.0.1:{host_port}: i/o timeout")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::HttpGetAction;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every request with `status`.
    async fn server(status: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    fn http(path: &str) -> Probe {
        Probe {
            http_get: Some(HttpGetAction {
                path: Some(path.into()),
                port: None,
                host: None,
                scheme: None,
                http_headers: vec![],
            }),
            ..Probe::default()
        }
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_real_sockets() {
        let client = reqwest::Client::new();
        let ok = server("200 OK").await;
        let unavailable = server("503 Service Unavailable").await;
        assert_eq!(
            attempt_network(Some(&http("/ready")), ok, &client).await,
            Ok(())
        );
        assert_eq!(
            attempt_network(Some(&http("/ready")), unavailable, &client).await,
            Err("GET /ready: HTTP probe failed with statuscode: 503".into())
        );
        // No probe: a TCP check of the port.
        assert_eq!(attempt_network(None, ok, &client).await, Ok(()));
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(attempt_network(None, closed, &client)
            .await
            .unwrap_err()
            .starts_with("dial tcp 127.0.0.1:"));
    }

    #[test]
    fn kubernetes_probe_defaults() {
        assert_eq!(period(None), Duration::from_secs(10));
        assert_eq!(timeout(None), Duration::from_secs(1));
        assert_eq!(failure_threshold(None), 3);
        let p = Probe {
            period_seconds: Some(2),
            timeout_seconds: Some(5),
            failure_threshold: Some(1),
            ..Probe::default()
        };
        assert_eq!(
            (
                period(Some(&p)),
                timeout(Some(&p)),
                failure_threshold(Some(&p))
            ),
            (Duration::from_secs(2), Duration::from_secs(5), 1)
        );
    }
}

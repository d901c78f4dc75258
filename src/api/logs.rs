//! `GET .../inferenceservices/{name}/logs`: a service's container output, per revision and
//! replica, optionally followed (`?follow=true`, streamed as it comes).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{ApiError, ApiState};
use crate::runtime::{ContainerEvents, ContainerRuntime, RuntimeError};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, RuntimeError>> + Send + 'a>>;

/// Container output, as the API needs it (object-safe, unlike the runtime traits).
pub trait LogSource: Send + Sync {
    fn tail<'a>(&'a self, id: &'a str, lines: usize) -> Boxed<'a, Vec<String>>;
    fn follow<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> Boxed<'a, mpsc::UnboundedReceiver<String>>;
}

impl<R: ContainerRuntime + ContainerEvents> LogSource for R {
    fn tail<'a>(&'a self, id: &'a str, lines: usize) -> Boxed<'a, Vec<String>> {
        Box::pin(self.logs(id, lines))
    }

    fn follow<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> Boxed<'a, mpsc::UnboundedReceiver<String>> {
        Box::pin(self.follow_logs(id, lines))
    }
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    revision: Option<String>,
    replica: Option<u32>,
    #[serde(default)]
    follow: bool,
    tail: Option<usize>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(ApiError { error: message })).into_response()
}

pub async fn logs(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let (Some(source), Some(runtime)) = (state.logs.clone(), state.runtime.as_ref()) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon runs without containers".into(),
        );
    };
    let status = runtime
        .borrow()
        .services
        .get(&(namespace.clone(), name.clone()))
        .cloned();
    let Some(status) = status else {
        return error(
            StatusCode::NOT_FOUND,
            format!("inferenceservices.serving.kserve.io \"{name}\" not found in namespace \"{namespace}\""),
        );
    };
    let replicas: Vec<_> = status
        .replicas
        .iter()
        .filter(|r| q.revision.as_ref().is_none_or(|rev| &r.revision == rev))
        .filter(|r| q.replica.is_none_or(|n| r.replica == n))
        .cloned()
        .collect();
    if replicas.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no replica of {namespace}/{name} matches"),
        );
    }
    let tail = q.tail.unwrap_or(100);
    let prefix = |r: &crate::reconcile::executor::ReplicaView| {
        if replicas.len() > 1 {
            format!("[{}/{}] ", r.revision, r.replica)
        } else {
            String::new()
        }
    };
    if !q.follow {
        let mut out = String::new();
        for r in &replicas {
            match source.tail(&r.container_id, tail).await {
                Ok(lines) => lines
                    .iter()
                    .for_each(|l| out.push_str(&format!("{}{l}\n", prefix(r)))),
                Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
            }
        }
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response();
    }
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    for r in &replicas {
        let mut lines = match source.follow(&r.container_id, tail).await {
            Ok(rx) => rx,
            Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
        };
        let tx = tx.clone();
        let prefix = prefix(r);
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                if tx.send(format!("{prefix}{line}\n")).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

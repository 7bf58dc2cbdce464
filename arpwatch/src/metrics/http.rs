//! The HTTP side: `/metrics`, `/healthz` and `/readyz` on `--metrics-addr`, and with `--api on`
//! the status API (`/api/v1/...`) and the status page (`/`), which [`crate::api`] answers.
//!
//! The agent runs with `hostNetwork: true`, so the port is reachable from the node's network, and
//! the kubelet restarts the pod when `/healthz` goes unanswered. Slow or stuck clients must not
//! starve the probes and the scrapes:
//!
//! - every connection is accepted at once, and at most [`MAX_CONNECTIONS`] are kept: above it,
//!   the oldest is closed. A probe or a scrape sends its request as soon as it connects and is
//!   answered in milliseconds, so the oldest connection is the slowest client, and the newest
//!   (the probe) is served;
//! - each connection serves one request (no idle keep-alive), must send its headers within
//!   [`HEADER_READ_TIMEOUT`] and is closed after [`CONNECTION_DEADLINE`] whatever it does (a
//!   client that does not read its answer).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use super::{Exporter, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use crate::api::ApiHandle;
use arpwatch_core::observation::Timestamp;

/// Connections kept open at once; above it the oldest is closed. Prometheus and the kubelet's
/// probes need a handful.
const MAX_CONNECTIONS: usize = 64;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives, answer included.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(20);

/// The open connections, oldest first, each with the means to close it.
#[derive(Default)]
struct Open {
    connections: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
}

impl Open {
    /// Registers connection `id`; closes the oldest when there are too many. Returns what tells
    /// `id` to close.
    fn admit(&self, id: u64) -> oneshot::Receiver<()> {
        let (close, closed) = oneshot::channel();
        let mut connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        connections.insert(id, close);
        if connections.len() > MAX_CONNECTIONS {
            if let Some((_, oldest)) = connections.pop_first() {
                let _ = oldest.send(());
            }
        }
        closed
    }

    fn leave(&self, id: u64) {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}

/// A bound listener: binding first makes a bad or busy `--metrics-addr` an error at start, before
/// anything is attached.
pub struct MetricsServer {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        Ok(MetricsServer { listener, local_addr })
    }

    /// The address actually bound (the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until the future is dropped; returns only if the listener cannot be registered
    /// with the runtime. Needs a tokio runtime with I/O and time enabled.
    /// `api`, when given, answers `/api/...` and `/`.
    pub async fn run(self, exporter: Exporter, api: Option<ApiHandle>) -> io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let open = Arc::new(Open::default());
        for id in 0u64.. {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    log::warn!("metrics: cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let closed = open.admit(id);
            let open = open.clone();
            let exporter = exporter.clone();
            let api = api.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (exporter, api) = (exporter.clone(), api.clone());
                    async move { Ok::<_, Infallible>(respond(&exporter, api.as_ref(), &request).await) }
                });
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    served = served => {
                        if let Err(err) = served {
                            log::debug!("metrics: connection ended with an error: {err}");
                        }
                    }
                    _ = closed => log::debug!("metrics: closed the oldest connection to make room"),
                    () = tokio::time::sleep(CONNECTION_DEADLINE) => {
                        log::debug!("metrics: closed a connection open for too long");
                    }
                }
                open.leave(id);
            });
        }
        Ok(())
    }
}

async fn respond(
    exporter: &Exporter,
    api: Option<&ApiHandle>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if let Some(api) = api.filter(|_| path == "/" || path.starts_with("/api/")) {
        return crate::api::respond(api, request.method(), path, request.uri().query()).await;
    }
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        let paths = if api.is_some() { "/, /api/v1/ips, /metrics" } else { "/metrics" };
        return text(
            StatusCode::NOT_FOUND,
            format!("not found: try {paths}, /healthz or /readyz\n"),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(exporter.encode())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => match exporter.readiness(wall_clock_now()) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        },
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Now, as the wall clock says.
pub(crate) fn wall_clock_now() -> Timestamp {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_nanos(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
}

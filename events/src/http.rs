//! HTTP plumbing shared by the services: the JSON error body, a JSON extractor whose
//! rejections are JSON errors, binding (port 0 logs the chosen port), the Prometheus
//! endpoint, and one middleware that gives every request a trace, a log line and metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::trace::{TRACEPARENT_HEADER, TraceParent};

/// An error response: `{"error": "...", "details": ...}` with a status code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// One sentence for a person.
    pub error: String,
    /// Structured detail (field problems, limits); `null` when there is none.
    pub details: Value,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            details: Value::Null,
        }
    }

    /// Adds structured details.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// `404` for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    /// `500`: the cause goes to the log, the body says nothing internal.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let chain: Vec<String> = std::iter::successors(Some(cause), |e| e.source())
            .map(ToString::to_string)
            .collect();
        tracing::error!(error = %chain.join(": "), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "details": self.details });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request body")
                    .with_details(json!({ "body": e.body_text() }))
            }
            JsonRejection::JsonSyntaxError(e) => {
                Self::new(StatusCode::BAD_REQUEST, "malformed JSON")
                    .with_details(json!({ "body": e.body_text() }))
            }
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "expected a JSON body: set `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            }
            other => Self::new(StatusCode::BAD_REQUEST, "unreadable request body")
                .with_details(json!({ "body": other.body_text() })),
        }
    }
}

/// Like `axum::Json`, but a rejection is an [`ApiError`]: 400 for malformed JSON or a
/// wrong content type, 422 for JSON of the wrong shape, 413 over the body limit.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// The fallback for unknown paths: a JSON 404.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Binds `addr`; with port 0 the OS picks one. Logs the bound address either way.
pub async fn bind(addr: &str, what: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "{what} listening on http://{local}");
    Ok(listener)
}

/// Renders `registry` in the Prometheus text format.
pub fn metrics_response(registry: &Registry) -> Response {
    let mut body = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut body, registry) {
        return ApiError::internal(&error).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// Per-request metrics and tracing: install [`observe`] with
/// `axum::middleware::from_fn_with_state(observer, observe)`.
#[derive(Debug, Clone)]
pub struct HttpObserver {
    inner: Arc<Metrics>,
}

#[derive(Debug)]
struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

impl HttpObserver {
    /// Registers `http_requests` (by method, route, status) and
    /// `http_request_duration_seconds` (by method, route) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        Self {
            inner: Arc::new(Metrics { requests, latency }),
        }
    }
}

/// The trace of a request, in its extensions: from its `traceparent` header when valid,
/// else a new root. Handlers pass it on to the events they cause.
#[derive(Debug, Clone, Copy)]
pub struct RequestTrace(pub TraceParent);

/// The middleware: continues or starts the request's trace ([`RequestTrace`]), runs the
/// handler in a span carrying `trace_id`, logs one line, counts it, echoes `traceparent`.
pub async fn observe(
    State(observer): State<HttpObserver>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let trace = req
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceParent>().ok())
        .map_or_else(TraceParent::new_root, |parent| parent.child());
    req.extensions_mut().insert(RequestTrace(trace));
    let span = tracing::info_span!("http", %method, %route, trace_id = %trace.trace_id());
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    // Probes and scrapes arrive every few seconds: keep them out of the info log.
    let probe = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
    let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    span.in_scope(|| {
        if probe {
            tracing::debug!(%path, status, latency_ms, "request");
        } else {
            tracing::info!(%path, status, latency_ms, "request");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
        response.headers_mut().insert(TRACEPARENT_HEADER, value);
    }
    let labels = RouteLabels { method, route };
    observer
        .inner
        .latency
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    observer
        .inner
        .requests
        .get_or_create(&RequestLabels {
            method: labels.method,
            route: labels.route,
            status,
        })
        .inc();
    response
}

#[cfg(test)]
mod tests;

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
    /// The HTTP status.
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
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    fn app(registry: &mut Registry) -> Router {
        let observer = HttpObserver::register(registry);
        Router::new()
            .route(
                "/named",
                post(|JsonBody(_): JsonBody<Named>| async { StatusCode::CREATED }),
            )
            .route(
                "/trace",
                get(
                    |axum::Extension(RequestTrace(t)): axum::Extension<RequestTrace>| async move {
                        t.trace_id()
                    },
                ),
            )
            .fallback(not_found_fallback)
            .layer(axum::middleware::from_fn_with_state(observer, observe))
            .layer(axum::extract::DefaultBodyLimit::max(1024))
    }

    async fn call(app: Router, req: Request) -> (StatusCode, Value, axum::http::HeaderMap) {
        let response = app.oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body, headers)
    }

    fn post_json(body: &str, content_type: Option<&str>) -> Request {
        let mut builder = Request::post("/named");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn json_rejections_become_json_errors_with_the_right_status() {
        let mut registry = Registry::default();
        let app = app(&mut registry);
        let json = Some("application/json");
        let cases = [
            (post_json("{", json), StatusCode::BAD_REQUEST),
            (post_json(r#"{"name":"a"}"#, None), StatusCode::BAD_REQUEST),
            (
                post_json(r#"{"name":"a"}"#, Some("text/plain")),
                StatusCode::BAD_REQUEST,
            ),
            (
                post_json(r#"{"name":1}"#, json),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                post_json(&format!(r#"{{"name":"{}"}}"#, "x".repeat(2000)), json),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (post_json(r#"{"name":"a"}"#, json), StatusCode::CREATED),
        ];
        for (req, expected) in cases {
            let (status, body, _) = call(app.clone(), req).await;
            assert_eq!(status, expected, "{body}");
            if !status.is_success() {
                assert!(body["error"].is_string(), "{body}");
                assert!(body.get("details").is_some(), "{body}");
            }
        }
    }

    #[tokio::test]
    async fn unknown_paths_get_a_json_404() {
        let mut registry = Registry::default();
        let (status, body, _) = call(
            app(&mut registry),
            Request::get("/nope").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no such endpoint");
    }

    #[tokio::test]
    async fn an_incoming_traceparent_is_continued_and_echoed() {
        let mut registry = Registry::default();
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let req = Request::get("/trace")
            .header(TRACEPARENT_HEADER, incoming)
            .body(Body::empty())
            .unwrap();
        let (status, body, headers) = call(app(&mut registry), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "4bf92f3577b34da6a3ce929d0e0e4736");
        let echoed: TraceParent = headers[TRACEPARENT_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(echoed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[tokio::test]
    async fn a_request_without_traceparent_starts_a_trace() {
        let mut registry = Registry::default();
        let req = Request::get("/trace")
            .header(TRACEPARENT_HEADER, "garbage")
            .body(Body::empty())
            .unwrap();
        let (_, body, headers) = call(app(&mut registry), req).await;
        assert_eq!(body.as_str().unwrap().len(), 32);
        assert!(headers.contains_key(TRACEPARENT_HEADER));
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_and_status() {
        let mut registry = Registry::default();
        let app = app(&mut registry);
        call(app.clone(), post_json("{", Some("application/json"))).await;
        call(app, Request::get("/nope").body(Body::empty()).unwrap()).await;
        let text = match metrics_response(&registry).into_body().collect().await {
            Ok(body) => String::from_utf8(body.to_bytes().to_vec()).unwrap(),
            Err(e) => panic!("{e}"),
        };
        assert!(
            text.contains(r#"http_requests_total{method="POST",route="/named",status="400"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
        assert!(
            text.contains("http_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}

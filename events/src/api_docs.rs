//! A service's API documentation over HTTP: its OpenAPI document at `/openapi.json` and
//! Swagger UI at `/docs`, whose assets are embedded in the binary (no CDN: the page
//! works offline). Swagger UI renders the operations in the browser from
//! `/openapi.json`.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::Config;

use crate::http::ApiError;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the docs page is served (its assets are under `/docs/`).
pub const DOCS_PATH: &str = "/docs";

/// The body of every error response (what [`ApiError`] renders): a sentence for a
/// person, and details for a program.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": "no user with id 999", "details": null}))]
pub struct ErrorBody {
    /// One sentence for a person.
    pub error: String,
    /// Structured detail: the problem of each field, by name or path, or limits;
    /// `null` when there is none.
    #[schema(value_type = Option<Object>, required = true)]
    pub details: Option<serde_json::Value>,
}

/// `GET /openapi.json`, `GET /docs` (a redirect to `/docs/`) and Swagger UI's files
/// under `/docs/`. An unknown file is a JSON `404`, like any unknown path.
pub fn routes<S: Clone + Send + Sync + 'static>(openapi: &OpenApi) -> Router<S> {
    let document = Arc::new(openapi.clone());
    let config = Arc::new(
        Config::from(OPENAPI_PATH)
            // Swagger UI would otherwise load a badge from an online validator.
            .validator_url("none")
            .display_operation_id(true)
            .try_it_out_enabled(true),
    );
    let index = Arc::clone(&config);
    Router::new()
        .route(
            OPENAPI_PATH,
            get(move || async move { axum::Json(Arc::clone(&document)) }),
        )
        .route(
            DOCS_PATH,
            get(|| async { Redirect::permanent(&format!("{DOCS_PATH}/")) }),
        )
        .route(
            &format!("{DOCS_PATH}/"),
            get(move || async move { docs_file("", &index) }),
        )
        .route(
            &format!("{DOCS_PATH}/{{*file}}"),
            get(move |Path(file): Path<String>| async move { docs_file(&file, &config) }),
        )
}

/// One of Swagger UI's files (`""` is its `index.html`).
fn docs_file(file: &str, config: &Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(file, Arc::clone(config)) {
        Ok(Some(found)) => {
            let mut response = (
                [(header::CONTENT_TYPE, found.content_type)],
                found.bytes.into_owned(),
            )
                .into_response();
            if found.gzpipped {
                response.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            response
        }
        Ok(None) => ApiError::not_found("no such file in the docs page").into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render the docs page");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let openapi = utoipa::openapi::OpenApiBuilder::new().build();
        routes(&openapi)
    }

    async fn get_path(path: &str) -> (StatusCode, String) {
        let request = Request::get(path)
            .body(Body::empty())
            .expect("a valid request");
        let response = app().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response.into_body().collect().await.expect("a body");
        (
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        )
    }

    #[tokio::test]
    async fn docs_without_a_slash_redirects_to_the_folder() {
        let request = Request::get("/docs").body(Body::empty()).expect("request");
        let response = app().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "/docs/");
    }

    #[tokio::test]
    async fn the_initializer_points_at_the_local_document_and_no_validator() {
        let (status, body) = get_path("/docs/swagger-initializer.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#""url": "/openapi.json""#), "{body}");
        assert!(body.contains(r#""validatorUrl": "none""#), "{body}");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn an_unknown_docs_file_is_a_json_404() {
        let (status, body) = get_path("/docs/nope.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(body["error"], "no such file in the docs page");
    }
}

//! The OpenAPI document's frame (title, description, tags) and the request bodies as
//! clients send them. The operations come from the handlers' `#[utoipa::path]`
//! annotations, registered with their routes in [`super::router`], so the document lists
//! exactly the routes the router serves.

use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The document's frame; [`super::api_router`] adds the operations.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "user-service",
        description = "Users, stored in SQLite; every change is also published as a CloudEvent \
through a transactional outbox.\n\n\
Every error, on every path, is `{\"error\": \"<one sentence>\", \"details\": <object or null>}`; \
no input produces a `500`. An unknown path is `404` and a wrong method `405` (with `Allow`), \
both with that body. A body over 64 KiB is `413`. Every response carries a `traceparent` header: \
the request's W3C trace, continued from an incoming `traceparent` or new.",
    ),
    tags(
        (name = "users", description = "Create, read, list, change and delete users."),
        (name = "operations", description = "Liveness, readiness and metrics."),
    )
)]
pub struct ApiDoc;

/// `POST /users`: the new user. Every field's problem is reported at once (`422`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Alice", "email": "alice@example.com"}))]
#[allow(
    dead_code,
    reason = "a schema for the document: the handler reads the body itself"
)]
pub struct NewUserBody {
    /// Trimmed and stored in NFC; 1 to 100 characters with at least one visible one;
    /// no control or bidirectional control characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// A `local@domain.tld` address, stored lowercased; unique case-insensitively; at
    /// most 254 characters (64 before the `@`); no spaces, control, invisible or
    /// bidirectional characters.
    #[schema(format = Email, min_length = 3, max_length = 254)]
    email: String,
}

/// `PATCH /users/{id}`: `name`, `email` or both, with the rules of `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Alice B."}), min_properties = 1)]
#[allow(
    dead_code,
    reason = "a schema for the document: the handler reads the body itself"
)]
pub struct UserPatchBody {
    /// As in `POST /users`.
    #[schema(min_length = 1, max_length = 100)]
    #[schema(nullable = false)]
    name: Option<String>,
    /// As in `POST /users`.
    #[schema(format = Email, min_length = 3, max_length = 254)]
    #[schema(nullable = false)]
    email: Option<String>,
}

/// The `{id}` of `/users/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "a parameter for the document: `UserId` reads the path itself"
)]
pub struct UserIdPath {
    /// The user's id, a positive 64-bit integer; anything else names no user (`404`).
    #[param(minimum = 1, example = 1)]
    id: i64,
}

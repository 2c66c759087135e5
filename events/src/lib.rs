//! The one shared crate of the workspace: what every service agrees on.
//!
//! - [`envelope`]: the CloudEvents 1.0 envelope (build, serialize, read structured and
//!   binary mode) with a precise error for every way an input can be bad.
//! - [`amqp`]: connect with retry, declare queues the one shared way, publish with
//!   confirms; [`backoff`]: the one reconnect schedule and its reset rule.
//! - [`settings`]: `AMQP_URL`, the TLS files and `QUEUE_TYPE`, shared by every binary;
//!   [`endpoints`]: the broker nodes they name, tried in turn; [`tls`]: `amqps://`;
//!   [`duration`]: the one grammar of every duration setting.
//! - [`trace`]: the W3C `traceparent` carried from an HTTP request into events.
//! - [`telemetry`], [`shutdown`], [`http`]: logging, stop signal, HTTP plumbing;
//!   `api_docs` (feature `api-docs`): `/openapi.json` and the Swagger UI page at `/docs`.
//!
//! It is small on purpose: anything only one service needs lives in that service.

pub mod amqp;
#[cfg(feature = "api-docs")]
pub mod api_docs;
pub mod backoff;
pub mod defaults;
pub mod duration;
pub mod endpoints;
pub mod envelope;
pub mod http;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod trace;

#[cfg(feature = "testing")]
pub mod testing;

pub use endpoints::Endpoints;
pub use envelope::{CloudEvent, EnvelopeError};
pub use lapin;
pub use settings::{AmqpSettings, QueueType};
pub use trace::TraceParent;

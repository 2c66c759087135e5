//! The whole system under test, one binary (one link step) with a module per area:
//! the container and Kubernetes files checked against the code, the example tables,
//! the pattern demos, TLS and secrets, and the system's own scenarios. Tests that need
//! a broker use the one at `AMQP_URL` (or private nodes they start), each on its own
//! uniquely named queues, so they run side by side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_docs;
mod config_files;
mod dashboard;
mod examples;
mod kubernetes;
mod patterns;
mod replay;
mod secrets;
mod system;
mod tls;

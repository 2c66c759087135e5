//! Runnable event-driven patterns, each through the dispatcher and a routing table in
//! `examples/routes/`. The services are small binaries (`src/bin/`), built on the
//! `events` crate the way the system's own services are:
//!
//! - [`step`]: the loop every service runs (consume, handle, publish with confirms, ack).
//! - [`breaker`], [`gateway`], [`payment`]: the saga's payment service, a circuit breaker
//!   around a simulated flaky gateway.
//! - [`demo`]: the driver behind `cargo xtask demo <name>` and the e2e tests: starts the
//!   dispatcher and the services on the demo's own queues, drives one journey, prints it
//!   hop by hop, and deletes what it declared.

pub mod breaker;
pub mod demo;
pub mod gateway;
pub mod payment;
pub mod step;

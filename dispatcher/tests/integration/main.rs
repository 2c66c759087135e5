//! The dispatcher's integration tests, one binary (one link step) with a module per
//! area. Every module but `cli` runs against the real broker from `AMQP_URL`, each test
//! on its own uniquely named queues, so they run side by side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod spawned;

mod admin_token;
mod archive;
mod binary;
mod broker_loss;
mod cli;
mod filters;
mod forward;
mod hostile;
mod ordered;
mod reading;
mod redrive;
mod reload;
mod shutdown;
mod tap;

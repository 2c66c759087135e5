//! The dispatcher: consumes `queue_dispatch`, routes each event by a hot-reloaded
//! `routes.toml`, and forwards it to every target with publisher confirms.

pub mod routes;

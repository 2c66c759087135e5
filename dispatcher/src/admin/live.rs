//! What the dashboard and `dispatcher tap` read: the tap as Server-Sent Events
//! (`GET /tap`), the counts per route, target and outcome (`GET /stats`), `POST
//! /explain` (the running table's verdicts for one event, as `dispatcher explain
//! --json` prints them) and the dashboard page itself (`GET /`).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use events::http::ApiError;
use futures_util::Stream;
use serde_json::json;

use crate::metrics::target_label;
use crate::routes::Explanation;
use crate::state::Shared;
use crate::tap::filter::{TapFilter, TapQuery};
use crate::tap::{Seen, TapEvent, Watch};

/// The dashboard: one HTML file with its CSS and script, no external asset.
const DASHBOARD: &str = include_str!("dashboard.html");

/// `GET /`: the dashboard. The page holds no data: its script reads the guarded
/// endpoints, sending the admin token the user typed in, if any.
pub async fn dashboard() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        DASHBOARD,
    )
        .into_response()
}

/// `GET /tap`: one SSE `tap` event per settled event the query admits, a `dropped`
/// event when this client fell behind and lost some, and a `ready` event first, once
/// the watch is attached.
pub async fn tap(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<TapQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad tap query")
            .with_details(json!({ "reason": rejection.body_text() }))
    })?;
    let filter = TapFilter::parse(query).map_err(|reason| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad tap query")
            .with_details(json!({ "reason": reason }))
    })?;
    let watch = shared.tap.watch();
    let ready = Event::default()
        .event("ready")
        .data(json!({ "generation": shared.generation().number }).to_string());
    let state = (watch, filter, Some(ready));
    let stream = futures_util::stream::unfold(state, |(mut watch, filter, ready)| async move {
        if let Some(ready) = ready {
            return Some((Ok(ready), (watch, filter, None)));
        }
        let event = next_event(&mut watch, &filter).await?;
        Some((Ok(event), (watch, filter, None)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The next SSE event for this watcher, `None` when the tap closed.
async fn next_event(watch: &mut Watch, filter: &TapFilter) -> Option<Event> {
    loop {
        match watch.next().await? {
            Seen::Dropped(n) => {
                return Some(
                    Event::default()
                        .event("dropped")
                        .data(json!({ "dropped": n }).to_string()),
                );
            }
            Seen::Event(event) if filter.admits(&event) => {
                return Some(Event::default().event("tap").data(as_json(&event, filter)));
            }
            Seen::Event(_) => {}
        }
    }
}

fn as_json(event: &TapEvent, filter: &TapFilter) -> String {
    let result = if filter.body {
        serde_json::to_string(event)
    } else {
        let mut value = serde_json::to_value(event).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.remove("body");
            object.remove("body_truncated");
        }
        serde_json::to_string(&value)
    };
    result.unwrap_or_default()
}

/// `GET /stats`: settled events per outcome, confirmed publishes per target and events
/// per route since start, and the watchers attached to the tap.
pub async fn stats(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let generation = shared.generation();
    let table = &generation.table;
    let routes: serde_json::Map<String, serde_json::Value> = table
        .routes()
        .iter()
        .zip(&generation.counters.routes)
        .map(|(route, counter)| (route.name.clone(), json!(counter.get())))
        .collect();
    let targets: serde_json::Map<String, serde_json::Value> = table
        .targets()
        .iter()
        .zip(&generation.counters.targets)
        .map(|(target, counter)| (target_label(target), json!(counter.get())))
        .collect();
    let totals = &shared.tap.totals;
    Json(json!({
        "generation": generation.number,
        "forwarded": totals.forwarded.load(Ordering::Relaxed),
        "unrouted": totals.unrouted.load(Ordering::Relaxed),
        "dead_lettered": totals.dead_lettered.load(Ordering::Relaxed),
        "routes": routes,
        "targets": targets,
        "tap_watchers": shared.tap.watchers(),
    }))
}

/// `POST /explain`: the body is the event (a structured-mode CloudEvent), each
/// `?header=name=value` an AMQP header for `headers.<name>` conditions. The answer is
/// the running table's explanation, as `dispatcher explain --json` prints it; 422 when
/// the event cannot be read, with the reason the dispatcher would dead-letter it for.
pub async fn explain(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Explanation>, ApiError> {
    let mut headers = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key != "header" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter `{key}`: only `header=name=value` is taken"),
            ));
        }
        let Some((name, value)) = value.split_once('=') else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`header={value}`: write a header as name=value"),
            ));
        };
        headers.push((name.to_owned(), value.to_owned()));
    }
    let generation = shared.generation();
    generation
        .table
        .explain_event(&headers, &body)
        .map(Json)
        .map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the event cannot be read, the dispatcher dead-letters it",
            )
            .with_details(json!({ "reason": error.reason(), "message": error.to_string() }))
        })
}

#[cfg(test)]
mod tests;

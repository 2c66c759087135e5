//! What the dispatcher's tasks share: the running table generation (swapped whole),
//! the broker connection used for declarations, readiness, metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use events::Endpoints;
use lapin::Connection;
use serde::Serialize;

use crate::metrics::{Metrics, TableCounters};
use crate::routes::{RouteError, RoutingTable};
use crate::settings::{AdminToken, Settings};
use crate::tap::Tap;

/// One loaded routing table and what belongs to it.
#[derive(Debug)]
pub struct Generation {
    /// 1 for the table loaded at start, +1 per accepted reload.
    pub number: u64,
    pub table: RoutingTable,
    /// SHA-256 of the file content it was compiled from (hex).
    pub sha256: String,
    /// When it was built, just before it was swapped in.
    pub loaded_at: DateTime<Utc>,
    /// Its per-route and per-target counters, resolved once.
    pub counters: TableCounters,
}

impl Generation {
    /// Generation `number` of `table`, its counters resolved in `metrics`, which now
    /// show it as the running generation.
    pub fn new(number: u64, table: RoutingTable, sha256: String, metrics: &Metrics) -> Self {
        metrics
            .generation
            .set(i64::try_from(number).unwrap_or(i64::MAX));
        metrics
            .routes
            .set(i64::try_from(table.routes().len()).unwrap_or(i64::MAX));
        let counters = metrics.for_table(&table);
        Self {
            number,
            table,
            sha256,
            loaded_at: Utc::now(),
            counters,
        }
    }
}

/// A refused reload, as `GET /routes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadFailure {
    /// When it was refused.
    pub at: DateTime<Utc>,
    /// What asked for the reload (`file`, `poll`, `sighup`, `http`).
    pub trigger: String,
    /// The error, every line of it.
    pub error: String,
    /// The located errors, when the file is at fault.
    pub errors: Vec<RouteError>,
}

/// State shared by the forwarder, the watcher and the admin endpoints.
#[derive(Debug)]
pub struct Shared {
    /// `dispatcher-<pid>-<n>`: names this instance's broker connections (see the
    /// management UI) and is shown on `/healthz`.
    pub instance: String,
    pub settings: Settings,
    /// The broker nodes, and which node each connection reached.
    pub endpoints: Endpoints,
    /// The running table; each event is routed by the generation it loaded.
    pub current: ArcSwap<Generation>,
    /// The publish connection of the live broker session, for declarations on reload.
    pub broker: ArcSwapOption<Connection>,
    /// Whether a consumer is running and its table's declarations succeeded.
    consuming: AtomicBool,
    /// Why the forwarder is not consuming, when it is not.
    pub not_ready: ArcSwapOption<String>,
    /// The last refused reload, cleared by the next accepted one.
    pub last_error: ArcSwapOption<ReloadFailure>,
    /// Serializes reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
    pub metrics: Metrics,
    /// The admin API's bearer token, resolved at start (see
    /// [`Settings::resolve_admin_token`]); `None` leaves the admin API open.
    pub admin_token: Option<AdminToken>,
    /// In ordered mode, whether this replica waits for the active one to go.
    standby: AtomicBool,
    /// What `GET /tap` watchers see, and the totals per outcome.
    pub tap: Arc<Tap>,
}

impl Shared {
    /// State with `table` as generation 1.
    pub fn new(
        settings: Settings,
        endpoints: Endpoints,
        table: RoutingTable,
        sha256: String,
    ) -> Self {
        let metrics = Metrics::new();
        let generation = Generation::new(1, table, sha256, &metrics);
        static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let instance = format!(
            "dispatcher-{}-{}",
            std::process::id(),
            INSTANCES.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            instance,
            settings,
            endpoints,
            current: ArcSwap::from_pointee(generation),
            broker: ArcSwapOption::empty(),
            consuming: AtomicBool::new(false),
            not_ready: ArcSwapOption::from_pointee("not connected to the broker yet".to_owned()),
            last_error: ArcSwapOption::empty(),
            reload_lock: tokio::sync::Mutex::new(()),
            metrics,
            admin_token: None,
            standby: AtomicBool::new(false),
            tap: Arc::new(Tap::new()),
        }
    }

    /// The same state, its admin API guarded by `token`.
    #[must_use]
    pub fn with_admin_token(mut self, token: Option<AdminToken>) -> Self {
        self.admin_token = token;
        self
    }

    /// In ordered mode: marks this replica as the standby (`true`) or the active one.
    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Release);
    }

    /// `active`, `standby` (ordered mode), or `shared` (competing consumers).
    pub fn role(&self) -> &'static str {
        if !self.settings.ordered {
            "shared"
        } else if self.standby.load(Ordering::Acquire) {
            "standby"
        } else {
            "active"
        }
    }

    /// The running generation.
    pub fn generation(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Marks the forwarder as consuming.
    pub fn set_ready(&self) {
        self.not_ready.store(None);
        self.consuming.store(true, Ordering::Release);
    }

    /// Marks the forwarder as not consuming, saying why.
    pub fn set_not_ready(&self, why: impl Into<String>) {
        self.consuming.store(false, Ordering::Release);
        self.not_ready.store(Some(Arc::new(why.into())));
    }

    /// `None` when ready, else why not.
    pub fn readiness(&self) -> Option<String> {
        if self.consuming.load(Ordering::Acquire) {
            let publish_up = self
                .broker
                .load()
                .as_ref()
                .is_some_and(|c| c.status().connected());
            return (!publish_up).then(|| "publish connection lost".to_owned());
        }
        Some(
            self.not_ready
                .load()
                .as_deref()
                .cloned()
                .unwrap_or_else(|| "not consuming".to_owned()),
        )
    }
}

/// A route as `GET /routes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteView {
    pub name: String,
    /// Types and patterns.
    pub event: Vec<String>,
    /// Conditions, as text.
    #[serde(rename = "where")]
    pub conditions: Vec<String>,
    pub to: Vec<crate::routes::Target>,
    /// Whether it stops later routes.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// The routes of `table` for display (and for comparing two tables).
pub fn route_views(table: &RoutingTable) -> Vec<RouteView> {
    table
        .routes()
        .iter()
        .map(|r| RouteView {
            name: r.name.clone(),
            event: r.events.clone(),
            conditions: r.conditions.iter().map(ToString::to_string).collect(),
            to: r.targets.iter().map(|&t| table.target(t).clone()).collect(),
            is_final: r.is_final,
        })
        .collect()
}

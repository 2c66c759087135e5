//! Replacing the running table: read the file, parse, validate, run its `[[test]]`
//! cases, declare its queues and check its exchanges, and only then swap it in whole.
//! Any failure keeps the running table and is logged, counted and shown on `/routes`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::broker::{DeclareError, declare_table};
use crate::routes::{self, RouteError, RouteErrors, RoutingTable};
use crate::state::{Generation, ReloadFailure, Shared, route_views};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The routes file.
        path: String,
        source: std::io::Error,
    },
    /// The file does not exist (deleted, or mid-swap).
    #[error("{0} does not exist; keeping the running table until it is back")]
    Missing(String),
    /// The file has errors or a failing `[[test]]`.
    #[error("{0}")]
    Invalid(RouteErrors),
    /// `source` changed: the consumer would have to move to another queue.
    #[error(
        "`source` changed from `{from}` to `{to}`: restart the dispatcher to consume another queue"
    )]
    SourceChanged {
        /// The running table's source.
        from: String,
        /// The new file's source.
        to: String,
    },
    /// The archive's retention changed: a stream's arguments are fixed once declared.
    #[error(
        "the retention of the archive stream `{stream}` cannot be changed by a reload (running: {from}; file: {to}): a stream keeps the arguments it was declared with. Put the running values back, or archive to a new stream name"
    )]
    ArchiveRetentionChanged {
        /// The stream.
        stream: String,
        /// The running retention.
        from: String,
        /// The file's retention.
        to: String,
    },
    /// No broker connection to declare the new targets on.
    #[error("not connected to the broker, so the new table's queues cannot be declared yet")]
    BrokerUnavailable,
    /// Declaring the new table's queues or checking its exchanges failed.
    #[error("{0}")]
    Declare(#[from] DeclareError),
}

impl ReloadError {
    /// Whether trying again later may succeed without the file changing.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::BrokerUnavailable | Self::Declare(DeclareError::Broker(_)) | Self::Read { .. }
        )
    }

    /// The located errors, when the file itself is at fault.
    pub fn route_errors(&self) -> &[RouteError] {
        match self {
            Self::Invalid(errors) => &errors.0,
            _ => &[],
        }
    }
}

/// What an accepted reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The file has the content of the running table: nothing to do.
    Unchanged {
        /// The running generation.
        generation: u64,
    },
    /// A new generation runs.
    Reloaded {
        generation: u64,
        /// Route names added.
        added: Vec<String>,
        /// Route names removed.
        removed: Vec<String>,
        /// Route names whose definition changed.
        changed: Vec<String>,
    },
}

impl ReloadOutcome {
    /// The generation running after the reload.
    pub fn generation(&self) -> u64 {
        match self {
            Self::Unchanged { generation } | Self::Reloaded { generation, .. } => *generation,
        }
    }
}

/// Hex SHA-256 of the file content.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Reloads the routes file; `trigger` says why (for the logs and `/routes`).
pub async fn reload(shared: &Shared, trigger: &str) -> Result<ReloadOutcome, ReloadError> {
    let _one_at_a_time = shared.reload_lock.lock().await;
    let result = try_reload(shared).await;
    match &result {
        Ok(ReloadOutcome::Unchanged { generation }) => {
            shared.metrics.reload("unchanged");
            shared.last_error.store(None);
            tracing::debug!(trigger, generation, "routes file unchanged");
        }
        Ok(ReloadOutcome::Reloaded {
            generation,
            added,
            removed,
            changed,
        }) => {
            shared.metrics.reload("ok");
            shared.last_error.store(None);
            tracing::info!(
                trigger,
                generation,
                added = %added.join(","),
                removed = %removed.join(","),
                changed = %changed.join(","),
                "routing table reloaded: generation {generation}, {} added, {} removed, {} changed",
                added.len(),
                removed.len(),
                changed.len()
            );
        }
        Err(error @ ReloadError::Missing(_)) => {
            shared.metrics.reload("missing");
            tracing::warn!(trigger, %error, "routes file missing");
        }
        Err(error) => {
            shared.metrics.reload("error");
            tracing::error!(trigger, %error, "routing table refused; the running table stays");
            shared.last_error.store(Some(Arc::new(ReloadFailure {
                at: Utc::now(),
                trigger: trigger.to_owned(),
                error: error.to_string(),
                errors: error.route_errors().to_vec(),
            })));
        }
    }
    result
}

async fn try_reload(shared: &Shared) -> Result<ReloadOutcome, ReloadError> {
    let path = &shared.settings.routes;
    let shown = path.display().to_string();
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(ReloadError::Missing(shown)),
        Err(source) => {
            return Err(ReloadError::Read {
                path: shown,
                source,
            });
        }
    };
    let sha256 = sha256_hex(&text);
    let current = shared.generation();
    if sha256 == current.sha256 {
        return Ok(ReloadOutcome::Unchanged {
            generation: current.number,
        });
    }
    // Compiling 10,000 routes takes a few tens of milliseconds: off the async threads.
    let table = tokio::task::spawn_blocking(move || routes::load(&shown, &text))
        .await
        .map_err(|e| ReloadError::Read {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(ReloadError::Invalid)?;
    if table.source != current.table.source {
        return Err(ReloadError::SourceChanged {
            from: current.table.source.clone(),
            to: table.source,
        });
    }
    if let (Some(running), Some(new)) = (&current.table.archive, &table.archive)
        && let Some(change) = running.retention_change(new)
    {
        return Err(ReloadError::ArchiveRetentionChanged {
            stream: new.stream.clone(),
            from: change.from,
            to: change.to,
        });
    }
    let connection = shared
        .broker
        .load_full()
        .ok_or(ReloadError::BrokerUnavailable)?;
    declare_table(&connection, &table, shared.settings.amqp.queue_type).await?;
    Ok(swap(shared, &current, table, sha256))
}

fn swap(
    shared: &Shared,
    current: &Generation,
    table: RoutingTable,
    sha256: String,
) -> ReloadOutcome {
    let (added, removed, changed) = diff(&current.table, &table);
    match (&current.table.archive, &table.archive) {
        (None, Some(new)) => tracing::info!(archive = %new, "archive added"),
        (Some(old), None) => tracing::info!(archive = %old, "archive removed"),
        (Some(old), Some(new)) if old != new => {
            tracing::info!(from = %old, to = %new, "archive moved to another stream");
        }
        _ => {}
    }
    let generation = Generation::new(current.number + 1, table, sha256, &shared.metrics);
    let number = generation.number;
    shared.current.store(Arc::new(generation));
    ReloadOutcome::Reloaded {
        generation: number,
        added,
        removed,
        changed,
    }
}

/// Route names added, removed and changed from `old` to `new`.
fn diff(old: &RoutingTable, new: &RoutingTable) -> (Vec<String>, Vec<String>, Vec<String>) {
    let old_views: HashMap<String, _> = route_views(old)
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let new_views = route_views(new);
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for view in &new_views {
        match old_views.get(&view.name) {
            None => added.push(view.name.clone()),
            Some(old) if old != view => changed.push(view.name.clone()),
            Some(_) => {}
        }
    }
    let removed = old
        .routes()
        .iter()
        .filter(|r| !new_views.iter().any(|v| v.name == r.name))
        .map(|r| r.name.clone())
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> RoutingTable {
        routes::load("t.toml", text).unwrap()
    }

    #[test]
    fn the_diff_names_added_removed_and_changed_routes() {
        let old = table(
            "[[route]]\nname = \"a\"\nevent = \"x\"\nto = [\"q\"]\n[[route]]\nname = \"b\"\nevent = \"x\"\nto = [\"q\"]\n[[route]]\nname = \"c\"\nevent = \"x\"\nto = [\"q\"]\n",
        );
        let new = table(
            "[[route]]\nname = \"a\"\nevent = \"x\"\nto = [\"q\"]\n[[route]]\nname = \"b\"\nevent = \"x\"\nto = [\"other\"]\n[[route]]\nname = \"d\"\nevent = \"x\"\nto = [\"q\"]\n",
        );
        assert_eq!(
            diff(&old, &new),
            (
                vec!["d".to_owned()],
                vec!["c".to_owned()],
                vec!["b".to_owned()]
            )
        );
    }

    #[test]
    fn the_hash_is_hex_sha256() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

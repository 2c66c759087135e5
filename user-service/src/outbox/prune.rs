//! Pruning: published outbox rows and idempotency records older than the retention
//! period are deleted in chunks, so pruning never holds the writer for long. Unpublished
//! rows are never pruned.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Rows deleted per prune transaction.
const PRUNE_CHUNK: u32 = 5_000;

/// Deletes published rows and idempotency records older than `retention`, in chunks,
/// every `retention / 4` (between 50 ms and one minute), until `shutdown`.
pub async fn prune(store: Store, retention: Duration, shutdown: CancellationToken) {
    let period = (retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let before_ms = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(retention_ms);
        loop {
            match store.prune(before_ms, PRUNE_CHUNK).await {
                Ok(pruned) if pruned.events > 0 || pruned.idempotency_keys > 0 => {
                    tracing::debug!(
                        events = pruned.events,
                        keys = pruned.idempotency_keys,
                        "outbox pruned"
                    );
                    let more = pruned.events.max(pruned.idempotency_keys) >= u64::from(PRUNE_CHUNK);
                    if !more {
                        break;
                    }
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "pruning the outbox failed");
                    break;
                }
            }
        }
    }
}

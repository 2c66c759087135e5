//! File → table: what triggers a reload. The routes file's *directory* is watched
//! (editors save by rename, Kubernetes swaps a `..data` symlink, so the file's own inode
//! is not stable), events are debounced, and the path is re-read each time; the content
//! hash makes an unchanged file a no-op. SIGHUP and `--poll-interval` trigger too, and a
//! reload that failed for a transient reason (no broker) is retried with backoff.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::reload::reload;
use crate::state::Shared;

/// Quiet time after the last file event before reloading (editors write in bursts).
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// A burst of saves never delays a reload longer than this.
const MAX_DELAY: Duration = Duration::from_secs(2);
/// First retry delay after a transient failure (broker unreachable); it doubles up to
/// [`MAX_RETRY`] while the failure lasts.
const RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Watches until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let (events, mut changes) = mpsc::channel::<()>(64);
    let _watcher = start_watcher(&shared.settings.routes, events);
    let mut hangups = hangup_signals();
    let mut poll = shared.settings.poll_interval.map(|every| {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    // When a file event asks for a reload: (first event, last event).
    let mut burst: Option<(Instant, Instant)> = None;
    let mut retry_at: Option<Instant> = None;
    let mut retry_delay = RETRY;
    loop {
        let due = burst.map(|(first, last)| (last + DEBOUNCE).min(first + MAX_DELAY));
        let trigger = tokio::select! {
            () = shutdown.cancelled() => return,
            Some(()) = changes.recv() => {
                let now = Instant::now();
                burst = Some(burst.map_or((now, now), |(first, _)| (first, now)));
                continue;
            }
            () = sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {
                burst = None;
                "file"
            }
            () = sleep_until(retry_at.unwrap_or_else(far_future)), if retry_at.is_some() => "retry",
            Some(()) = recv_hangup(&mut hangups) => "sighup",
            _ = tick(&mut poll) => "poll",
        };
        retry_at = None;
        match reload(&shared, trigger).await {
            Err(error) if error.is_transient() => {
                retry_at = Some(Instant::now() + retry_delay);
                retry_delay = (retry_delay * 2).min(MAX_RETRY);
            }
            _ => retry_delay = RETRY,
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Starts a watcher on the routes file's directory; `None` (with a warning) when the
/// platform refuses, leaving SIGHUP, `POST /reload` and polling.
fn start_watcher(routes: &Path, events: mpsc::Sender<()>) -> Option<RecommendedWatcher> {
    let directory = match routes.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = routes.file_name().map(|n| n.to_os_string());
    let is_link = std::fs::symlink_metadata(routes).is_ok_and(|m| m.file_type().is_symlink());
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = is_link
            || event.paths.iter().any(|path| {
                path.file_name().is_some_and(|n| {
                    Some(n.to_os_string()) == name || n.to_string_lossy().starts_with("..")
                })
            });
        if relevant {
            // A full channel already holds a pending reload: dropping is fine.
            let _ = events.try_send(());
        }
    };
    let result = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher
            .watch(&directory, RecursiveMode::NonRecursive)
            .map(|()| watcher)
    });
    match result {
        Ok(watcher) => {
            tracing::info!(directory = %directory.display(), "watching the routes file's directory");
            Some(watcher)
        }
        Err(error) => {
            tracing::warn!(%error, directory = %directory.display(), "cannot watch the routes file; use --poll-interval, SIGHUP or POST /reload");
            None
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangup_signals() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .map_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP"))
            .ok()
    }
    #[cfg(not(unix))]
    None
}

async fn recv_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}

async fn tick(poll: &mut Option<tokio::time::Interval>) -> Instant {
    match poll {
        Some(interval) => interval.tick().await,
        None => std::future::pending().await,
    }
}

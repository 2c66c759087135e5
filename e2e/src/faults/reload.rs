//! Edits of routes.toml under load, the ways people and platforms make them.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::system::System;

/// The running table's generation and last reload error, from `GET /routes`.
async fn routes_state(system: &System) -> (u64, Value) {
    let Ok(response) = system
        .http
        .get(system.dispatcher.url("/routes"))
        .send()
        .await
    else {
        return (0, Value::Null);
    };
    let body: Value = response.json().await.unwrap_or_default();
    (
        body["generation"].as_u64().unwrap_or(0),
        body["last_reload_error"].clone(),
    )
}

/// A valid variant of the system's table: the user route plus `n` harmless extra routes.
fn variant(system: &System, n: usize) -> String {
    let mut extra = String::new();
    for i in 0..n {
        extra.push_str(&format!(
            "\n[[route]]\nname = \"extra-{i}\"\nevent = \"never.happens.{i}\"\nto = [\"{}\"]\n",
            system.queues.unrouted
        ));
    }
    system.queues.routes_toml(&extra)
}

async fn wait_generation_above(system: &System, generation: u64) -> Option<u64> {
    for _ in 0..100 {
        let (now, _) = routes_state(system).await;
        if now > generation {
            return Some(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// 50 saves in 2 s, alternating two valid tables, ending on a third.
pub async fn storm(system: &System) -> anyhow::Result<String> {
    let (before, _) = routes_state(system).await;
    for i in 0..50 {
        std::fs::write(&system.routes, variant(system, i % 2 + 1))?;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    std::fs::write(&system.routes, variant(system, 3))?;
    // Settle: the debounce, then no further reloads.
    let reached = wait_generation_above(system, before).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, error) = routes_state(system).await;
    let reloads = after.saturating_sub(before);
    let verdict = match reached {
        None => "FAILED: the final table was never loaded",
        Some(_) if reloads > 10 => "FAILED: not debounced",
        Some(_) => "debounced",
    };
    Ok(format!(
        "51 saves in ~2s → {reloads} reload(s) ({verdict}); last error {error}"
    ))
}

/// A broken table mid-stream: refused, events keep flowing; then fixed.
pub async fn invalid(system: &System) -> anyhow::Result<String> {
    let (before, _) = routes_state(system).await;
    std::fs::write(&system.routes, "source = \"x\"\n[[route]]\nname = 1\n")?;
    let mut refused = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (generation, error) = routes_state(system).await;
        if !error.is_null() {
            refused = error;
            anyhow::ensure!(generation == before, "a broken table was loaded");
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(&system.routes, variant(system, 1))?;
    let fixed = wait_generation_above(system, before).await;
    let verdict = if refused.is_null() {
        "FAILED: no reload error reported"
    } else if fixed.is_none() {
        "FAILED: the fixed table was not loaded"
    } else {
        "refused, then the fix loaded"
    };
    Ok(format!(
        "invalid table saved mid-stream: {verdict}; error shown: {refused}"
    ))
}

/// The file deleted (the running table stays), then recreated (reloaded).
pub async fn delete_and_recreate(system: &System) -> anyhow::Result<String> {
    let (before, _) = routes_state(system).await;
    std::fs::remove_file(&system.routes)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (during, _) = routes_state(system).await;
    std::fs::write(&system.routes, variant(system, 2))?;
    let after = wait_generation_above(system, before).await;
    let verdict = match (during == before, after) {
        (true, Some(_)) => "kept the table while deleted, reloaded on recreate",
        (false, _) => "FAILED: the table changed while the file was deleted",
        (_, None) => "FAILED: the recreated file was not loaded",
    };
    Ok(verdict.to_owned())
}

/// Kubernetes ConfigMap style: routes.toml → ..data/routes.toml, ..data → ..<version>;
/// an update swaps the ..data symlink atomically.
pub async fn symlink_swap(system: &System) -> anyhow::Result<String> {
    let dir = system.routes.parent().unwrap_or(Path::new("."));
    let (before, _) = routes_state(system).await;
    write_version(dir, "..v1", &variant(system, 1))?;
    std::os::unix::fs::symlink("..v1", dir.join("..data_tmp"))?;
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data"))?;
    std::os::unix::fs::symlink("..data/routes.toml", dir.join("routes.toml.tmp"))?;
    std::fs::rename(dir.join("routes.toml.tmp"), &system.routes)?;
    let first = wait_generation_above(system, before).await;
    write_version(dir, "..v2", &variant(system, 2))?;
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp"))?;
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data"))?;
    let second = match first {
        Some(g) => wait_generation_above(system, g).await,
        None => None,
    };
    let verdict = match (first, second) {
        (Some(_), Some(_)) => "both swaps reloaded",
        (None, _) => "FAILED: switching to the symlinked layout was not seen",
        (_, None) => "FAILED: the ..data swap was not seen",
    };
    Ok(format!("..data symlink swap: {verdict}"))
}

fn write_version(dir: &Path, version: &str, content: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join(version))?;
    std::fs::write(dir.join(version).join("routes.toml"), content)?;
    Ok(())
}

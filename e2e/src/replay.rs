//! Archive and replay on a running [`System`]: turn the dispatcher's `[archive]` on by a
//! reload, run `dispatcher replay` as the real binary (to the end, or killed midway),
//! and read order-service's snapshot rows straight from its SQLite file.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::process::binary;
use crate::system::System;

/// One snapshot row of order-service, every column.
pub type Row = (
    i64,
    Option<String>,
    Option<String>,
    i64,
    bool,
    Option<String>,
    Option<String>,
);

impl System {
    /// The archive stream of this system (unique like its queues).
    pub fn archive_stream(&self) -> String {
        format!("{}.archive", self.queues.dispatch)
    }

    /// Rewrites the routes file with `[archive]` on [`System::archive_stream`] and
    /// `extra` TOML, and waits until the dispatcher runs that file (`GET /routes` shows
    /// a new hash and the archive). The file must differ from the running one.
    pub async fn enable_archive(&self, extra: &str) -> anyhow::Result<()> {
        let before = self.dispatcher_routes().await?["sha256"].clone();
        let archive = format!(
            "\n[archive]\nstream = \"{}\"\nmax_age = \"1d\"\nmax_bytes = \"1GB\"\n{extra}",
            self.archive_stream()
        );
        std::fs::write(&self.routes, self.queues.routes_toml(&archive))?;
        self.wait_routes(|routes| {
            routes["sha256"] != before && routes["archive"]["stream"] == self.archive_stream()
        })
        .await
    }

    /// Polls `GET /routes` until `check` holds (30 s at most).
    pub async fn wait_routes(&self, check: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let routes = self.dispatcher_routes().await?;
            if check(&routes) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the dispatcher did not take the new table within 30s: {routes}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /routes` of the dispatcher.
    pub async fn dispatcher_routes(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.dispatcher.url("/routes"))
            .send()
            .await?
            .json()
            .await?)
    }

    /// `dispatcher replay ARGS` on this system's routes file and broker, as a process.
    pub fn replay_command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let mut command = Command::new(binary("dispatcher")?);
        command
            .arg("replay")
            .args(args)
            .env("ROUTES_FILE", &self.routes)
            .env("AMQP_URL", &self.amqp.url)
            .env("QUEUE_TYPE", self.amqp.queue_type.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(command)
    }

    /// Runs `dispatcher replay ARGS` to its end (2 minutes at most); its summary when
    /// it succeeded, else an error with its output.
    pub async fn replay(&self, args: &[&str]) -> anyhow::Result<String> {
        let child = self.replay_command(args)?.kill_on_drop(true).spawn()?;
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .context("dispatcher replay did not end within 2 minutes")??;
        summary(&output)
    }

    /// Starts `dispatcher replay ARGS` without waiting.
    pub fn spawn_replay(&self, args: &[&str]) -> anyhow::Result<Child> {
        Ok(self.replay_command(args)?.kill_on_drop(true).spawn()?)
    }

    /// Deletes the archive stream (cleanup).
    pub async fn delete_archive(&self) -> anyhow::Result<()> {
        let connection =
            events::amqp::connect_once(&self.endpoints(), "e2e-cleanup", Duration::from_secs(10))
                .await?;
        events::testing::delete_queues(&connection, &[self.archive_stream().as_str()]).await;
        let _ = connection.close(200, "ok".into()).await;
        Ok(())
    }
}

/// The stdout of a successful replay, else an error with both streams.
pub fn summary(output: &Output) -> anyhow::Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "dispatcher replay failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// The number on the summary line `  sent to TARGET: N` (0 when there is none).
pub fn sent_to(summary: &str, target: &str) -> u64 {
    let prefix = format!("  sent to {target}: ");
    summary
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Every row of order-service's `users` table (tombstones included), by user id.
pub fn snapshot_rows(db: &Path) -> anyhow::Result<Vec<Row>> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    let mut statement = connection.prepare(
        "SELECT user_id, name, email, version, deleted, updated_at, last_event_id
         FROM users ORDER BY user_id",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })?
        .collect::<Result<Vec<Row>, _>>()?;
    Ok(rows)
}

/// Removes an SQLite database and its `-wal` and `-shm` files.
pub fn delete_database(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let path = db.with_file_name(format!(
            "{}{suffix}",
            db.file_name().and_then(|n| n.to_str()).unwrap_or_default()
        ));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("deleting {}", path.display())),
        }
    }
    Ok(())
}

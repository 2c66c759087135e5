//! Where things are, and running commands with their output shown.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The repository root (the workspace holding `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// The `cargo` that runs us.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// The three service binaries, the packages every `cargo xtask` command builds.
pub const SERVICES: [&str; 3] = ["dispatcher", "user-service", "order-service"];

/// `cargo build -p` each of [`SERVICES`], then each of `extra` (e.g. the bench runner);
/// add flags such as `--release` to the command it returns.
pub fn build_services(extra: &[&str]) -> Command {
    let mut command = cargo();
    command.arg("build");
    for package in SERVICES.iter().chain(extra) {
        command.args(["-p", package]);
    }
    command
}

/// Runs `command`, inheriting stdio; an error if it cannot start or exits non-zero.
pub fn run(what: &str, command: &mut Command) -> anyhow::Result<()> {
    println!("\x1b[1m==> {what}\x1b[0m");
    let status = command
        .status()
        .with_context(|| format!("cannot start: {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Whether `program` answers `args` with success (output discarded).
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The path of `program` on PATH (or in the sbin folders, where Debian puts servers).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_services_names_every_service_then_the_extras() {
        let command = build_services(&["bench"]);
        let args: Vec<_> = command.get_args().filter_map(|a| a.to_str()).collect();
        assert_eq!(
            args,
            [
                "build",
                "-p",
                "dispatcher",
                "-p",
                "user-service",
                "-p",
                "order-service",
                "-p",
                "bench"
            ]
        );
    }
}

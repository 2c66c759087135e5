//! The headless browser the end-to-end suite drives: Debian's `chromium` and
//! `chromium-driver`. `cargo xtask test` installs them with apt-get when they are
//! missing and it runs as root on Debian; elsewhere it stops and says what to install
//! (the browser tests fail without them, they are never skipped).

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::workspace::{run, which};

/// Makes sure `chromium` and `chromedriver` are installed (or named by `CHROMIUM` and
/// `CHROMEDRIVER`).
pub fn ensure() -> anyhow::Result<()> {
    let browser = std::env::var_os("CHROMIUM").is_some() || which("chromium").is_some();
    let driver = std::env::var_os("CHROMEDRIVER").is_some() || which("chromedriver").is_some();
    if browser && driver {
        return Ok(());
    }
    let root = nix::unistd::Uid::effective().is_root();
    if root && Path::new("/etc/debian_version").is_file() && which("apt-get").is_some() {
        println!("browser: installing chromium and chromium-driver with apt-get (running as root)");
        run(
            "apt-get update",
            Command::new("apt-get").args(["update", "-qq"]),
        )?;
        return run(
            "apt-get install -y chromium chromium-driver",
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        );
    }
    bail!(
        "the end-to-end tests drive a headless Chromium, and {} missing here. Install them:\n  \
         - Debian/Ubuntu: sudo apt-get install -y chromium chromium-driver\n  \
         - elsewhere: a Chromium and the chromedriver of the same version, named by \
         CHROMIUM and CHROMEDRIVER",
        match (browser, driver) {
            (false, false) => "chromium and chromedriver are",
            (false, true) => "chromium is",
            _ => "chromedriver is",
        }
    )
}

//! The routing tables users copy from: the default `routes.toml` and every table in
//! `examples/routes/` pass `dispatcher check` (validation + their `[[test]]` cases), and a
//! broken table is refused with its position.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn check(path: &Path) -> std::process::Output {
    let dispatcher = e2e::process::binary("dispatcher").unwrap();
    Command::new(dispatcher)
        .arg("check")
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn the_default_routing_table_passes_check() {
    let output = check(&root().join("routes.toml"));
    assert!(
        output.status.success(),
        "routes.toml: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_example_routing_table_passes_check_and_has_test_cases() {
    let dir = root().join("examples/routes");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("[[test]]"),
            "{} has no [[test]] cases",
            path.display()
        );
        let output = check(&path);
        assert!(
            output.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected the registration chain, topic/fan-out and request/reply examples, found {checked}"
    );
}

#[test]
fn a_broken_table_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        "source = \"q\"\nunrouted = \"u\"\ndead_letter = \"q.dead\"\n\n[[route]]\nname = \"a\"\nevent = \"x\"\nto = []\n",
    )
    .unwrap();
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("routes.toml:8:"),
        "position of the empty `to`: {text}"
    );
}

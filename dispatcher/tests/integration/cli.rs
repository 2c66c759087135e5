//! `dispatcher check` and `dispatcher explain`: exit codes and output, on the repository's
//! tables and on broken ones.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn dispatcher(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dispatcher"))
        .args(args)
        .env_remove("ROUTES_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn check_accepts_the_repository_routes_file_and_every_example() {
    let mut files = vec![repo().join("routes.toml")];
    for entry in std::fs::read_dir(repo().join("examples/routes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    assert!(files.len() >= 4, "the examples are there: {files:?}");
    for file in files {
        let output = dispatcher(&["check", file.to_str().unwrap()], None);
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            text(&output.stderr)
        );
        assert!(
            text(&output.stdout).contains("ok:"),
            "{}",
            text(&output.stdout)
        );
    }
}

#[test]
fn check_exits_1_with_every_error_and_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "broken.toml",
        "[[route]]\nname = \"a\"\nevent = \"x\"\nto = []\n\n[[route]]\nname = \"a\"\nevent = \"y\"\nwhere = { \"data.n\" = { gtee = 1 } }\nto = [\"q\"]\n",
    );
    let output = dispatcher(&["check", &path], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("3 errors"), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:4:6: route `a`: `to` is empty")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:7:8: duplicate route name `a`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:9:31: `data.n`: unknown operator `gtee`")),
        "{stderr}"
    );
}

#[test]
fn check_of_a_missing_file_exits_1() {
    let output = dispatcher(&["check", "/nonexistent/routes.toml"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("cannot read /nonexistent/routes.toml"));
}

const TABLE: &str = r##"
[[route]]
name = "audit"
event = "#"
to = ["audit"]

[[route]]
name = "fr"
event = "user.*"
where = { "data.country" = "FR" }
to = ["fr"]
final = true

[[route]]
name = "users"
event = "user.created"
to = ["users"]
"##;

#[test]
fn explain_shows_each_verdict_and_the_targets() {
    let dir = tempfile::tempdir().unwrap();
    let routes = write(&dir, "routes.toml", TABLE);
    let event = write(
        &dir,
        "event.json",
        r#"{"specversion":"1.0","id":"1","source":"s","type":"user.created","data":{"country":"DE"}}"#,
    );
    let output = dispatcher(&["explain", &routes, &event], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("audit  matched"), "{stdout}");
    assert!(
        stdout.contains("fr     condition failed: data.country = \"FR\" (found \"DE\")"),
        "{stdout}"
    );
    assert!(stdout.contains("users  matched"), "{stdout}");
    assert!(stdout.contains("targets: audit, users"), "{stdout}");
}

#[test]
fn explain_reads_the_event_from_stdin_and_reports_final() {
    let dir = tempfile::tempdir().unwrap();
    let routes = write(&dir, "routes.toml", TABLE);
    let event = r#"{"specversion":"1.0","id":"1","source":"s","type":"user.created","data":{"country":"FR"}}"#;
    let output = dispatcher(&["explain", &routes, "-", "--json"], Some(event));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["routes"][2][1]["verdict"], "skipped_after_final",
        "{json}"
    );
    assert_eq!(json["targets"], serde_json::json!(["audit", "fr"]));
}

#[test]
fn explain_says_when_nothing_matches_and_when_the_event_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let routes = write(
        &dir,
        "routes.toml",
        "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\n",
    );
    let output = dispatcher(
        &["explain", &routes, "-"],
        Some(r#"{"specversion":"1.0","type":"b"}"#),
    );
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    assert!(stdout.contains("r  type does not match"), "{stdout}");
    assert!(
        stdout.contains("no route matched: unrouted -> queue_unrouted"),
        "{stdout}"
    );

    let output = dispatcher(&["explain", &routes, "-"], Some("not json"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("not_json"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn help_documents_every_command_and_setting() {
    let help = text(&dispatcher(&["--help"], None).stdout);
    for word in [
        "check",
        "explain",
        "--routes",
        "ROUTES_FILE",
        "--prefetch",
        "--poll-interval",
        "--amqp-url",
        "DISPATCHER_ADDR",
    ] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
}

#[test]
fn the_filters_example_uses_every_operator_and_the_readme_documents_each() {
    let example = std::fs::read_to_string(repo().join("examples/routes/filters.toml")).unwrap();
    let readme = std::fs::read_to_string(repo().join("dispatcher/README.md")).unwrap();
    for op in dispatcher::routes::condition::OPERATORS
        .iter()
        .chain(&["any", "all"])
    {
        assert!(
            example.contains(&format!("{op} = ")),
            "examples/routes/filters.toml does not use `{op}`"
        );
        let entry = format!("`{op}`");
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with("| ")
                    && l.split('|').nth(1).is_some_and(|c| c.contains(&entry))),
            "dispatcher/README.md has no table entry for `{op}`"
        );
    }
    let output = dispatcher(
        &[
            "check",
            repo()
                .join("examples/routes/filters.toml")
                .to_str()
                .unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn explain_prints_every_branch_verdict_and_absent_fields() {
    let routes = repo().join("examples/routes/filters.toml");
    let event = r#"{"specversion":"1.0","id":"1","source":"shop-eu","type":"order.placed","data":{"total":10}}"#;
    let output = dispatcher(&["explain", routes.to_str().unwrap(), "-"], Some(event));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for line in [
        "review       condition failed: any",
        "fails  { data.total >= 1000 }",
        "fails  data.total >= 1000 (found 10)",
        "fails  data.tags contains \"vip\" (found absent)",
        "holds  source anything but [\"shop-test\", \"shop-staging\"] (found \"shop-eu\")",
        "acme         condition failed: tenant in [\"acme\", \"acme-eu\"] ignoring case (found absent)",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
    let output = dispatcher(
        &["explain", routes.to_str().unwrap(), "-", "--json"],
        Some(event),
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let review = &json["routes"][1][1];
    assert_eq!(review["verdict"], "condition_failed", "{json}");
    let any = review["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "any")
        .unwrap();
    assert_eq!(any["holds"], false);
    assert_eq!(
        any["branches"][1]["branches"][0]["found"], "absent",
        "{any}"
    );
    assert_eq!(
        any["branches"][0]["branches"][0]["found"],
        serde_json::json!({"value": 10})
    );
}

#[test]
fn explain_takes_amqp_properties_for_properties_conditions() {
    let routes = repo().join("examples/routes/filters.toml");
    let event = r#"{"specversion":"1.0","id":"1","source":"shop-test","type":"order.placed","data":{"order_id":"ORD-2026-ABC","total":1}}"#;
    let output = dispatcher(
        &[
            "explain",
            routes.to_str().unwrap(),
            "-",
            "--property",
            "app_id=SHOP",
            "--property",
            "priority=5",
        ],
        Some(event),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("new-ids      matched"), "{stdout}");
    assert!(
        stdout.contains("holds  properties.app_id = \"Shop\" ignoring case (found \"SHOP\")"),
        "{stdout}"
    );
    let output = dispatcher(
        &[
            "explain",
            routes.to_str().unwrap(),
            "-",
            "--property",
            "appid=x",
        ],
        Some(event),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("unknown AMQP property `appid`"),
        "{}",
        text(&output.stderr)
    );
}

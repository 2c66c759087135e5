//! No Docker engine runs on our machines, so the container files are checked here
//! instead: they parse, the ports, environment variables and paths they use match the
//! code's defaults and settings, and every file they copy or mount exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use events::defaults;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path} does not parse: {e}"))
}

/// Every environment variable a service binary reads (docs/architecture.md's table plus the
/// per-service extras), by service.
fn known_env(service: &str) -> BTreeSet<&'static str> {
    let mut known: BTreeSet<&str> = ["AMQP_URL", "QUEUE_TYPE", "RUST_LOG", "LOG_FORMAT"].into();
    known.extend(match service {
        "dispatcher" => &[
            "ROUTES_FILE",
            "DISPATCHER_ADDR",
            "ROUTES_POLL_INTERVAL",
            "DISPATCH_PREFETCH",
        ][..],
        "user-service" => &["USER_SERVICE_ADDR", "USER_DB", "DISPATCH_QUEUE"][..],
        "order-service" => &["ORDER_SERVICE_ADDR", "ORDER_DB", "ORDER_QUEUE"][..],
        other => panic!("unknown service {other}"),
    });
    known
}

fn default_port(service: &str) -> u16 {
    let addr = match service {
        "dispatcher" => defaults::DISPATCHER_ADDR,
        "user-service" => defaults::USER_SERVICE_ADDR,
        "order-service" => defaults::ORDER_SERVICE_ADDR,
        other => panic!("unknown service {other}"),
    };
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// `"127.0.0.1:8000:8000"` → (host port, container port).
fn published(mapping: &str) -> (u16, u16) {
    let parts: Vec<&str> = mapping.split(':').collect();
    let n = parts.len();
    (parts[n - 2].parse().unwrap(), parts[n - 1].parse().unwrap())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn the_local_compose_file_runs_the_broker_with_ui_and_healthcheck() {
    let compose = yaml("docker-compose.local.yml");
    let rabbit = &compose["services"]["rabbitmq"];
    let ports: Vec<(u16, u16)> = strings(&rabbit["ports"])
        .iter()
        .map(|p| published(p))
        .collect();
    assert!(ports.contains(&(5672, 5672)), "{ports:?}");
    assert!(ports.contains(&(15672, 15672)), "management UI: {ports:?}");
    assert!(rabbit["image"].as_str().unwrap().contains("management"));
    let test = strings(&rabbit["healthcheck"]["test"]).join(" ");
    assert!(test.contains("rabbitmq-diagnostics"), "{test}");
    let default_url = defaults::AMQP_URL;
    assert!(
        default_url.contains(":5672/"),
        "the code's default broker port is the published one"
    );
}

#[test]
fn the_local_compose_file_runs_each_service_with_settings_the_code_reads() {
    let compose = yaml("docker-compose.local.yml");
    for service in ["dispatcher", "user-service", "order-service"] {
        let spec = &compose["services"][service];
        assert_eq!(
            strings(&spec["command"]),
            vec![service.to_owned()],
            "{service} runs its binary"
        );
        assert_eq!(spec["build"]["dockerfile"], "Dockerfile", "{service}");
        assert_eq!(
            spec["depends_on"]["rabbitmq"]["condition"], "service_healthy",
            "{service} waits for the broker's health check"
        );
        let env = spec["environment"].as_object().unwrap();
        let known = known_env(service);
        for key in env.keys() {
            assert!(
                known.contains(key.as_str()),
                "{service}: {key} is not a setting the code reads"
            );
        }
        assert!(
            env["AMQP_URL"]
                .as_str()
                .unwrap()
                .contains("@rabbitmq:5672/"),
            "{service}"
        );
        let addr_var = match service {
            "dispatcher" => "DISPATCHER_ADDR",
            "user-service" => "USER_SERVICE_ADDR",
            _ => "ORDER_SERVICE_ADDR",
        };
        let container_port = port_of(env[addr_var].as_str().unwrap());
        assert_eq!(
            container_port,
            default_port(service),
            "{service} listens on its default port"
        );
        let ports: Vec<(u16, u16)> = strings(&spec["ports"])
            .iter()
            .map(|p| published(p))
            .collect();
        assert_eq!(
            ports,
            vec![(default_port(service), container_port)],
            "{service}"
        );
    }
}

#[test]
fn the_dispatcher_container_sees_live_edits_of_routes_toml() {
    let compose = yaml("docker-compose.local.yml");
    let dispatcher = &compose["services"]["dispatcher"];
    let env = dispatcher["environment"].as_object().unwrap();
    let routes_in_container = env["ROUTES_FILE"].as_str().unwrap();
    assert!(
        env.get("ROUTES_POLL_INTERVAL").is_some(),
        "bind mounts may not deliver file events: the poll fallback must be on"
    );
    let mounts = strings(&dispatcher["volumes"]);
    let (host, container) = mounts
        .iter()
        .find_map(|m| {
            let parts: Vec<&str> = m.split(':').collect();
            routes_in_container
                .starts_with(parts[1])
                .then(|| (parts[0].to_owned(), parts[1].to_owned()))
        })
        .expect("ROUTES_FILE lies inside a bind mount");
    let relative = routes_in_container
        .strip_prefix(&container)
        .unwrap()
        .trim_start_matches('/');
    let on_host = root().join(&host).join(relative);
    assert!(
        on_host.is_file(),
        "{} must exist on the host",
        on_host.display()
    );
    assert_eq!(relative, defaults::ROUTES_FILE);
}

#[test]
fn the_services_keep_their_databases_in_volumes() {
    let compose = yaml("docker-compose.local.yml");
    let volumes = compose["volumes"].as_object().unwrap();
    for (service, var) in [("user-service", "USER_DB"), ("order-service", "ORDER_DB")] {
        let spec = &compose["services"][service];
        let db = spec["environment"][var].as_str().unwrap();
        let mounts = strings(&spec["volumes"]);
        let volume = mounts
            .iter()
            .find(|m| db.starts_with(m.split(':').nth(1).unwrap()))
            .unwrap_or_else(|| panic!("{service}: {db} is not in a volume"));
        let name = volume.split(':').next().unwrap();
        assert!(
            volumes.contains_key(name),
            "{service}: volume {name} is declared"
        );
        let file = Path::new(db).file_name().unwrap().to_str().unwrap();
        let default = if service == "user-service" {
            defaults::USER_DB
        } else {
            defaults::ORDER_DB
        };
        assert!(
            default.ends_with(file),
            "{service}: same file name as the default {default}"
        );
    }
}

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("Dockerfile")).unwrap()
}

#[test]
fn the_dockerfile_copies_only_files_that_exist_and_every_workspace_member() {
    let text = dockerfile();
    let mut copied = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = rest
            .split_whitespace()
            .filter(|p| !p.starts_with("--"))
            .collect();
        for source in &parts[..parts.len() - 1] {
            assert!(
                root().join(source).exists(),
                "Dockerfile copies {source}, which does not exist"
            );
            copied.insert(source.trim_end_matches('/').to_owned());
        }
    }
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for member in manifest["workspace"]["members"].as_array().unwrap() {
        let member = member.as_str().unwrap();
        let covered = std::path::Path::new(member)
            .ancestors()
            .any(|dir| copied.contains(dir.to_str().unwrap()));
        assert!(
            covered,
            "the build needs every workspace member; {member} is not copied"
        );
    }
}

#[test]
fn the_dockerfile_is_multi_stage_and_runs_as_a_non_root_user() {
    let text = dockerfile();
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage build");
    let last_user = text
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER instruction");
    assert_ne!(last_user.trim(), "root");
    for bin in ["dispatcher", "user-service", "order-service"] {
        assert!(
            text.contains(&format!("target/release/{bin}")),
            "{bin} is built and copied"
        );
        let manifest = root().join(bin).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(
            text.contains(&format!("name = \"{bin}\"")),
            "{bin} is a package of that name"
        );
    }
    assert!(
        text.contains("COPY --chown=app:app routes.toml"),
        "a default routing table in the image"
    );
}

#[test]
fn the_devcontainer_gives_a_toolchain_the_broker_and_forwarded_ports() {
    let text = std::fs::read_to_string(root().join(".devcontainer/devcontainer.json")).unwrap();
    let dev: Value = serde_json::from_str(&text).expect("devcontainer.json is plain JSON");
    let compose_file = dev["dockerComposeFile"].as_str().unwrap();
    let compose_path = root().join(".devcontainer").join(compose_file);
    assert!(compose_path.is_file());
    let compose = yaml(&format!(".devcontainer/{compose_file}"));
    let service = dev["service"].as_str().unwrap();
    let dev_service = &compose["services"][service];
    assert!(dev_service.is_object(), "service {service} is defined");
    let dockerfile = dev_service["build"]["dockerfile"].as_str().unwrap();
    assert!(root().join(".devcontainer").join(dockerfile).is_file());
    assert!(
        compose["services"]["rabbitmq"]["healthcheck"].is_object(),
        "the broker as a service"
    );
    assert_eq!(
        dev_service["network_mode"], "service:rabbitmq",
        "sharing the broker's network makes the default AMQP_URL (127.0.0.1:5672) work unchanged"
    );
    let mounts = strings(&dev_service["volumes"]);
    let workspace = dev["workspaceFolder"].as_str().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("..:") && m.contains(workspace)),
        "the repository is mounted at the workspace folder: {mounts:?}"
    );
    let forwarded: Vec<u64> = dev["forwardPorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    for service in ["dispatcher", "user-service", "order-service"] {
        assert!(
            forwarded.contains(&u64::from(default_port(service))),
            "{service} port forwarded"
        );
    }
    assert!(forwarded.contains(&15672), "management UI forwarded");
    let extensions = strings(&dev["customizations"]["vscode"]["extensions"]);
    assert!(extensions.iter().any(|e| e == "rust-lang.rust-analyzer"));
    let toolchain = std::fs::read_to_string(root().join(".devcontainer").join(dockerfile)).unwrap();
    assert!(
        toolchain.contains("devcontainers/rust"),
        "a Rust toolchain image"
    );
}

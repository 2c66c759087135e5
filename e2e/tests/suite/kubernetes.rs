//! The Kubernetes manifests in `deploy/kubernetes/` checked against the code, as
//! `config_files.rs` does for compose (no cluster runs here): every environment variable
//! is one the binary reads (its `--help`), the container ports are the addresses' ports,
//! the probes hit `/healthz` and `/readyz`, and the volumes hold the paths the settings
//! name. Needs the service binaries (`cargo build --bins`; `cargo xtask test` does it).

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

/// Every document of a manifest file.
fn documents(file: &str) -> Vec<Value> {
    let path = root().join("deploy/kubernetes").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file} does not parse: {e}"))
}

/// The workload (Deployment or StatefulSet) named `name`, and its Service.
fn workload(name: &str) -> (Value, Value) {
    let docs = documents(&format!("{name}.yaml"));
    let find = |kinds: &[&str]| {
        docs.iter()
            .find(|d| kinds.contains(&d["kind"].as_str().unwrap_or_default()))
            .unwrap_or_else(|| panic!("{name}.yaml has no {kinds:?}"))
            .clone()
    };
    (find(&["Deployment", "StatefulSet"]), find(&["Service"]))
}

fn container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container per pod");
    &containers[0]
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap().to_owned())
}

/// The variables `binary` reads: the `[env: …]` of its `--help` (and of `run --help`
/// for the dispatcher), plus the logging variables every binary reads.
fn variables_read_by(binary: &str) -> BTreeSet<String> {
    let path = e2e::process::binary(binary).unwrap();
    let mut help = String::new();
    let runs: &[&[&str]] = if binary == "dispatcher" {
        &[&["--help"], &["run", "--help"]]
    } else {
        &[&["--help"]]
    };
    for args in runs {
        let output = std::process::Command::new(&path)
            .args(*args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{binary} {args:?}");
        help.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    let mut names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap().to_owned())
        .collect();
    assert!(names.contains("AMQP_URL_FILE"), "{binary} --help: {help}");
    names.extend(["RUST_LOG".to_owned(), "LOG_FORMAT".to_owned()]);
    names
}

/// The mount (path, read-only, volume) whose folder holds `path`.
fn mount_holding<'a>(container: &'a Value, path: &str) -> &'a Value {
    let folder = Path::new(path).parent().unwrap();
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == folder)
        .unwrap_or_else(|| panic!("no volume is mounted at {}", folder.display()))
}

fn volume<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// The checks every service shares: command, variables, port, probes, Service, and the
/// broker URL from a Secret through `AMQP_URL_FILE`.
fn check_common(name: &str, addr_variable: &str, default_addr: &str) -> (Value, Value) {
    let (workload, service) = workload(name);
    let container = container(&workload).clone();
    assert_eq!(container["command"][0], name, "{name}: command");
    let known = variables_read_by(name);
    for variable in container["env"].as_array().unwrap() {
        let variable = variable["name"].as_str().unwrap();
        assert!(
            known.contains(variable),
            "{name} does not read {variable}: {known:?}"
        );
    }
    let port: u16 = default_addr.rsplit(':').next().unwrap().parse().unwrap();
    let addr = env(&container, addr_variable).expect("the listen address is set");
    assert_eq!(
        addr,
        format!("0.0.0.0:{port}"),
        "{name}: listens on every interface"
    );
    let ports = container["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{name}: one port");
    assert_eq!(ports[0]["containerPort"], port, "{name}: container port");
    let port_name = ports[0]["name"].as_str().unwrap();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{name}: {probe}");
        assert_eq!(get["port"], port_name, "{name}: {probe} port");
    }
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["port"], port, "{name}: Service port");
    assert_eq!(
        service_port["targetPort"], port_name,
        "{name}: Service targetPort"
    );
    assert_eq!(
        env(&container, "AMQP_URL"),
        None,
        "{name}: the URL comes from a Secret"
    );
    let url_file = env(&container, "AMQP_URL_FILE").expect("AMQP_URL_FILE is set");
    let mount = mount_holding(&container, &url_file);
    let secret = volume(&workload, mount["name"].as_str().unwrap());
    assert!(
        secret["secret"]["secretName"].is_string(),
        "{name}: {secret}"
    );
    assert!(
        container["resources"]["requests"]["memory"].is_string(),
        "{name}: requests"
    );
    (workload, container)
}

#[test]
fn the_dispatcher_runs_two_replicas_with_the_routes_folder_and_secrets() {
    let (workload, container) =
        check_common("dispatcher", "DISPATCHER_ADDR", defaults::DISPATCHER_ADDR);
    assert_eq!(workload["kind"], "Deployment");
    assert_eq!(workload["spec"]["replicas"], 2);
    let routes = env(&container, "ROUTES_FILE").expect("ROUTES_FILE is set");
    let mount = mount_holding(&container, &routes);
    // A subPath mount would never see the ConfigMap's updates.
    assert!(
        mount["subPath"].is_null(),
        "the routes ConfigMap is mounted as a folder"
    );
    let config = volume(&workload, mount["name"].as_str().unwrap());
    assert!(config["configMap"]["name"].is_string(), "{config}");
    let token = env(&container, "DISPATCHER_ADMIN_TOKEN_FILE").expect("the admin token file");
    let mount = mount_holding(&container, &token);
    let secret = volume(&workload, mount["name"].as_str().unwrap());
    assert!(secret["secret"]["secretName"].is_string(), "{secret}");
    assert_eq!(
        env(&container, "DISPATCHER_ADMIN_TOKEN"),
        None,
        "the token comes from a Secret"
    );
    let ordered = env(&container, "DISPATCH_ORDERED").expect("DISPATCH_ORDERED is spelled out");
    assert!(["true", "false"].contains(&ordered.as_str()), "{ordered}");
}

/// One replica, and a writable volume at the folder of its database.
fn check_sqlite_service(name: &str, addr_variable: &str, default_addr: &str, db: &str) {
    let (workload, container) = check_common(name, addr_variable, default_addr);
    assert_eq!(workload["spec"]["replicas"], 1, "{name}: one SQLite writer");
    let path = env(&container, db).unwrap_or_else(|| panic!("{name}: {db} is set"));
    let mount = mount_holding(&container, &path);
    assert_ne!(
        mount["readOnly"], true,
        "{name}: the database folder is writable"
    );
    let claims: Vec<&str> = workload["spec"]["volumeClaimTemplates"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["metadata"]["name"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        claims.contains(&mount["name"].as_str().unwrap()),
        "{name}: the database is on a persistent volume claim, not {mount}"
    );
}

#[test]
fn user_service_runs_one_replica_with_its_database_on_a_volume() {
    check_sqlite_service(
        "user-service",
        "USER_SERVICE_ADDR",
        defaults::USER_SERVICE_ADDR,
        "USER_DB",
    );
}

#[test]
fn order_service_runs_one_replica_with_its_database_on_a_volume() {
    check_sqlite_service(
        "order-service",
        "ORDER_SERVICE_ADDR",
        defaults::ORDER_SERVICE_ADDR,
        "ORDER_DB",
    );
}

#[test]
fn kustomization_lists_every_manifest_of_the_folder() {
    let kustomization = &documents("kustomization.yaml")[0];
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

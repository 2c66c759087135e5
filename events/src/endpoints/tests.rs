//! Broker URL lists and `AMQP_URL_FILE`: order, refusals without passwords, and the
//! node a new connection tries first.

use super::*;

#[test]
fn a_list_of_urls_gives_one_node_each_in_order() {
    let nodes = parse_nodes("amqp://u:p@h1:5672/%2f, amqps://h2\n amqp://h3:5673").unwrap();
    let shown: Vec<&str> = nodes.iter().map(Node::shown).collect();
    assert_eq!(
        shown,
        ["amqp://u:***@h1:5672/%2f", "amqps://h2", "amqp://h3:5673"]
    );
    assert_eq!(nodes[1].host(), "h2");
    assert_eq!(nodes[1].port(), 5671, "amqps defaults to 5671");
    assert!(nodes[1].is_tls() && !nodes[0].is_tls());
}

#[test]
fn an_empty_list_is_refused() {
    assert!(matches!(parse_nodes(" , \n"), Err(EndpointsError::NoUrl)));
}

#[test]
fn a_bad_url_is_refused_without_its_password() {
    let err = parse_nodes("amqp://h1,http://u:Hidden-Pw-42@h2").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("http://u:***@h2"), "{text}");
    assert!(!text.contains("Hidden-Pw-42"), "{text}");
    let err = parse_nodes("u:Hidden-Pw-42@h2").unwrap_err();
    assert!(!err.to_string().contains("Hidden-Pw-42"), "{err}");
}

#[test]
fn the_url_file_wins_over_the_url() {
    let dir = std::env::temp_dir().join(format!("endpoints-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("amqp-url");
    std::fs::write(&file, "amqp://u:p@from-file:5672/%2f\n").unwrap();
    let settings = AmqpSettings {
        url_file: Some(file),
        ..AmqpSettings::for_url("amqp://from-env")
    };
    let nodes = Endpoints::new(&settings).unwrap().nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].host(), "from-file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_url_file_stops_startup_with_its_path() {
    let settings = AmqpSettings {
        url_file: Some(PathBuf::from("/nonexistent/amqp-url")),
        ..AmqpSettings::default()
    };
    let err = Endpoints::new(&settings).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/amqp-url"), "{err}");
}

#[test]
fn connections_start_at_the_node_after_the_last_one_reached() {
    let endpoints = Endpoints::from("amqp://a,amqp://b,amqp://c");
    assert_eq!(endpoints.order(3).collect::<Vec<_>>(), [0, 1, 2]);
    let nodes = endpoints.nodes().unwrap();
    endpoints.reached_node("consume", 1, &nodes[1]);
    assert_eq!(endpoints.clone().order(3).collect::<Vec<_>>(), [2, 0, 1]);
    endpoints.reached_node("publish", 2, &nodes[2]);
    assert_eq!(endpoints.order(3).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(endpoints.node_of("consume").as_deref(), Some("amqp://b"));
    assert_eq!(endpoints.node_of("other"), None);
}

#[test]
fn debug_of_endpoints_and_nodes_shows_no_password() {
    let endpoints = Endpoints::from("amqp://u:Hidden-Pw-42@h1,amqp://u:Hidden-Pw-42@h2");
    let nodes = endpoints.nodes().unwrap();
    let shown = format!("{endpoints:?} {nodes:?}");
    assert!(!shown.contains("Hidden-Pw-42"), "{shown}");
    assert!(shown.contains("amqp://u:***@h2"), "{shown}");
}

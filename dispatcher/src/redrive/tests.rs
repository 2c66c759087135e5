//! Redrive's command line and how it routes a dead letter again.

use super::destinations::route_again;
use super::*;

#[test]
fn a_filter_is_a_path_and_a_value() {
    assert_eq!(
        parse_where("headers.x-dispatch-route=audit"),
        Ok(("headers.x-dispatch-route".into(), "audit".into()))
    );
    assert!(
        parse_where("data.country")
            .unwrap_err()
            .contains("PATH=VALUE")
    );
    assert!(parse_where("data..x=1").is_err());
}

fn parse(args: &[&str]) -> Result<RedriveArgs, clap::Error> {
    use clap::Parser;
    let cli =
        crate::cli::Cli::try_parse_from(["dispatcher", "redrive"].iter().chain(args).copied())?;
    match cli.command {
        Some(crate::cli::Command::Redrive(args)) => Ok(*args),
        other => panic!("not a redrive: {other:?}"),
    }
}

#[test]
fn the_command_line_takes_a_queue_a_destination_and_filters() {
    let args = parse(&[
        "q.dead",
        "--to",
        "parked",
        "--where",
        "data.country=FR",
        "--limit",
        "10",
        "--dry-run",
    ])
    .unwrap();
    assert_eq!(args.queue.as_deref(), Some("q.dead"));
    assert_eq!(args.to.as_deref(), Some("parked"));
    assert_eq!(args.filters, [("data.country".into(), "FR".into())]);
    assert_eq!(args.limit, Some(10));
    assert!(args.dry_run && !args.to_source);
}

#[test]
fn to_source_and_to_a_queue_exclude_each_other_and_a_bad_filter_is_refused() {
    assert!(parse(&["--to-source", "--to", "q"]).is_err());
    let err = parse(&["--where", "nope"]).unwrap_err().to_string();
    assert!(err.contains("PATH=VALUE"), "{err}");
}

fn table() -> RoutingTable {
    routes::load(
        "routes.toml",
        "[[route]]\nname = \"r\"\nevent = \"t\"\nto = [\"a\", { exchange = \"x\", routing_key = \"k.{data.c}\" }]\nheaders = { h = \"{data.c}\" }\n",
    )
    .unwrap()
}

#[test]
fn an_event_is_routed_again_with_its_templates() {
    let body = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"c":"fr"}}"#;
    let properties = BasicProperties::default();
    let copies = route_again(&table(), &properties, body).unwrap();
    let to: Vec<String> = copies.iter().map(|c| c.to.to_string()).collect();
    assert_eq!(to, ["a", r#"{ exchange = "x", routing_key = "k.fr" }"#]);
    let h = events::amqp::header_string(copies[1].properties.headers().as_ref().unwrap(), "h");
    assert_eq!(h.as_deref(), Some("fr"));
}

#[test]
fn an_unreadable_event_cannot_be_routed_again() {
    let err = route_again(&table(), &BasicProperties::default(), b"not json").err();
    assert!(err.is_some());
}

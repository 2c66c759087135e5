//! The drain's routing tables, from one route to 10,000.

use std::fmt::Write as _;

/// Which routing table a dispatcher contender runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// One route, on the event type.
    One,
    /// One route with a `where` condition.
    Where,
    /// 10,000 routes, with the `where` condition on the hot one.
    Large,
}

/// The `where` of the hot route (every bench event matches it).
const WHERE: &str = r#"where = { "data.country" = "FR", "data.version" = { gte = 1 } }"#;

/// The routing table: one hot route to `target` (with a `where` unless `One`); with
/// `Large`, 9,999 more routes (exact types, topic patterns) sending to `other`.
pub fn routes_table(
    source: &str,
    target: &str,
    other: &str,
    unrouted: &str,
    table_kind: Table,
) -> String {
    let large = table_kind == Table::Large;
    let mut table = format!(
        "source = \"{source}\"\nunrouted = \"{unrouted}\"\ndead_letter = \"{source}.dead\"\n\n"
    );
    if large {
        for i in 0..9_999 {
            let event = if i % 2 == 0 {
                format!("type_{i}")
            } else {
                format!("ns{i}.*.created")
            };
            let _ = write!(
                table,
                "[[route]]\nname = \"r{i}\"\nevent = \"{event}\"\nto = [\"{other}\"]\n\n"
            );
        }
    }
    if table_kind == Table::One {
        let _ = write!(
            table,
            "[[route]]\nname = \"hot\"\nevent = \"user_created\"\nto = [\"{target}\"]\n"
        );
    } else {
        let _ = write!(
            table,
            "[[route]]\nname = \"hot\"\nevent = \"user_created\"\n{WHERE}\nto = [\"{target}\"]\n"
        );
    }
    table
}

/// The `[archive]` table appended to the one-route table by the archive contender.
pub fn archive_table(stream: &str) -> String {
    format!("\n[archive]\nstream = \"{stream}\"\nmax_age = \"1h\"\n")
}

/// One route to `exchange` with routing key `key`: the key the target queue is bound
/// with, or a template that renders to it from the event's `data.country` and `type`.
pub fn exchange_table(source: &str, exchange: &str, key: &str, unrouted: &str) -> String {
    format!(
        "source = \"{source}\"\nunrouted = \"{unrouted}\"\ndead_letter = \"{source}.dead\"\n\n\
         [[route]]\nname = \"hot\"\nevent = \"user_created\"\n\
         to = [{{ exchange = \"{exchange}\", routing_key = \"{key}\" }}]\n"
    )
}

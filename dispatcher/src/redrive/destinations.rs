//! Where redrive sends a dead letter: a given queue, the source, or the targets the
//! current table gives the event less those that already confirmed it.

use lapin::BasicProperties;
use lapin::types::AMQPValue;

use super::RedriveArgs;
use crate::forward::letter::{Destination, TARGET_HEADER, delivered_to, without_letter_headers};
use crate::routes::RoutingTable;
use crate::routes::event::{EventDoc, Incoming};

/// One copy to send.
pub(super) struct Resend {
    pub to: Destination,
    pub properties: BasicProperties,
}

/// Where the letter goes, or why it is skipped.
pub(super) fn copies(
    args: &RedriveArgs,
    table: Option<&RoutingTable>,
    properties: &BasicProperties,
    body: &[u8],
) -> Result<Vec<Resend>, String> {
    let clean = without_letter_headers(properties.clone());
    if let Some(to) = &args.to {
        return Ok(vec![Resend {
            to: Destination::queue(to),
            properties: clean,
        }]);
    }
    let table = table.ok_or("no routing table")?;
    if args.to_source {
        return Ok(vec![Resend {
            to: Destination::queue(&table.source),
            properties: clean,
        }]);
    }
    let refused = properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.inner().contains_key(TARGET_HEADER));
    if !refused {
        return Err("not a refused publish (no x-dispatch-target): use --to-source or --to".into());
    }
    let copies = route_again(table, &clean, body)?;
    let delivered = delivered_to(properties);
    let missing: Vec<Resend> = copies
        .into_iter()
        .filter(|c| !delivered.contains(&c.to))
        .collect();
    if missing.is_empty() {
        return Err("every target already has it (x-dispatch-delivered-to)".into());
    }
    Ok(missing)
}

/// The copies the dispatcher would send for this event with `table`.
pub(super) fn route_again(
    table: &RoutingTable,
    properties: &BasicProperties,
    body: &[u8],
) -> Result<Vec<Resend>, String> {
    let incoming = Incoming::read(properties, body).map_err(|e| e.to_string())?;
    let event_type = incoming.event_type.clone();
    let decision = table
        .route(&event_type, || incoming.doc.read())
        .map_err(|e| e.to_string())?;
    if decision.targets.is_empty() {
        return Ok(vec![Resend {
            to: Destination::queue(&table.unrouted),
            properties: properties.clone(),
        }]);
    }
    let doc = EventDoc::from_amqp(properties, body).map_err(|e| e.to_string())?;
    let shaped = table.shape(&decision, &doc).map_err(|e| e.to_string())?;
    Ok(shaped
        .into_iter()
        .map(|one| {
            let target = table.target(one.target);
            let to = Destination {
                exchange: target.exchange().to_owned(),
                routing_key: one
                    .routing_key
                    .unwrap_or_else(|| target.routing_key().to_owned()),
            };
            let mut headers = properties.headers().clone().unwrap_or_default();
            for (name, value) in one.headers {
                headers.insert(
                    name.as_str().into(),
                    AMQPValue::LongString(value.as_str().into()),
                );
            }
            Resend {
                to,
                properties: properties.clone().with_headers(headers),
            }
        })
        .collect())
}

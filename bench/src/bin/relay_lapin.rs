//! A minimal relay on lapin, the dispatcher's AMQP client, with the dispatcher's
//! guarantees and nothing else: consume `SOURCE` (prefetch 500), publish each body with
//! its properties to `TARGET` (mandatory, persistent, publisher confirms), ack the
//! delivery only after its confirm. A nack or a returned message ends the relay without
//! acking (the broker redelivers). No routing, no headers: it measures the client.
//!
//! `AMQP_URL=… SOURCE=… TARGET=… relay_lapin`; prints `relaying` once it consumes.

use anyhow::{Context, bail};
use events::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use events::lapin::types::FieldTable;
use events::lapin::{Confirmation, Connection, ConnectionProperties};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(relay())
}

async fn relay() -> anyhow::Result<()> {
    let url = std::env::var("AMQP_URL").context("AMQP_URL")?;
    let source = std::env::var("SOURCE").context("SOURCE")?;
    let target = std::env::var("TARGET").context("TARGET")?;
    let consume = Connection::connect(&url, ConnectionProperties::default()).await?;
    let publish = Connection::connect(&url, ConnectionProperties::default()).await?;
    let out = publish.create_channel().await?;
    out.confirm_select(ConfirmSelectOptions::default()).await?;
    let input = consume.create_channel().await?;
    input.basic_qos(500, BasicQosOptions::default()).await?;
    let mut consumer = input
        .basic_consume(
            source.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!("relaying");
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let mut confirms = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(confirmed) = confirms.next(), if !confirms.is_empty() => {
                let tag: u64 = confirmed?;
                input.basic_ack(tag, BasicAckOptions::default()).await?;
            }
            delivery = consumer.next() => {
                let Some(delivery) = delivery else { bail!("consumer cancelled") };
                let delivery = delivery?;
                let properties = delivery.properties.with_delivery_mode(2);
                let confirm = out
                    .basic_publish("".into(), target.as_str().into(), mandatory, &delivery.data, properties)
                    .await?;
                let tag = delivery.delivery_tag;
                confirms.push(async move {
                    match confirm.await? {
                        Confirmation::Ack(None) => Ok(tag),
                        other => bail!("publish not confirmed: {other:?}"),
                    }
                });
            }
        }
    }
}

//! The same minimal relay as `relay_lapin`, on amqprs: consume `SOURCE` (prefetch 500),
//! publish each body with its properties to `TARGET` (mandatory, persistent, publisher
//! confirms), ack the delivery only after its confirm. A nack or a returned message ends
//! the relay without acking (the broker redelivers). amqprs reports confirms and returns
//! through a channel callback; the broker sends a return before the ack of the same
//! publish, so a return is seen before any ack could cover it.
//!
//! `AMQP_URL=… SOURCE=… TARGET=… relay_amqprs`; prints `relaying` once it consumes.

use std::collections::BTreeMap;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use anyhow::{Context, bail};
use tokio::sync::mpsc;

/// What the publish channel's callback reports.
enum Confirm {
    Ack { tag: u64, multiple: bool },
    Refused(String),
}

struct Confirms(mpsc::UnboundedSender<Confirm>);

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self
            .0
            .send(Confirm::Refused(format!("channel closed: {close}")));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Confirm::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self
            .0
            .send(Confirm::Refused(format!("nacked {}", nack.delivery_tag())));
    }
    async fn publish_return(&mut self, _: &Channel, ret: Return, _: BasicProperties, _: Vec<u8>) {
        let _ = self.0.send(Confirm::Refused(format!("returned: {ret}")));
    }
}

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
    let mut args = OpenConnectionArguments::try_from(url.as_str())?;
    // amqprs takes the vhost from the path as it is, without percent-decoding it.
    if let Some((_, vhost)) = url.rsplit_once('/')
        && vhost.eq_ignore_ascii_case("%2f")
    {
        args.virtual_host("/");
    }
    let consume = Connection::open(&args).await?;
    let publish = Connection::open(&args).await?;
    let out = publish.open_channel(None).await?;
    let (tx, mut confirms) = mpsc::unbounded_channel();
    out.register_callback(Confirms(tx)).await?;
    out.confirm_select(ConfirmSelectArguments::default())
        .await?;
    let input = consume.open_channel(None).await?;
    input
        .basic_qos(BasicQosArguments::new(0, 500, false))
        .await?;
    let (_tag, mut deliveries) = input
        .basic_consume_rx(
            BasicConsumeArguments::new(&source, "")
                .manual_ack(true)
                .finish(),
        )
        .await?;
    println!("relaying");
    let publish_args = BasicPublishArguments::new("", &target)
        .mandatory(true)
        .finish();
    // Publish sequence numbers (from 1, in order) and the delivery each one carries.
    let mut pending: BTreeMap<u64, u64> = BTreeMap::new();
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            Some(confirm) = confirms.recv() => match confirm {
                Confirm::Ack { tag, multiple } => {
                    let confirmed = if multiple {
                        let rest = pending.split_off(&(tag + 1));
                        std::mem::replace(&mut pending, rest)
                    } else {
                        pending.remove_entry(&tag).into_iter().collect()
                    };
                    for delivery in confirmed.into_values() {
                        input.basic_ack(BasicAckArguments::new(delivery, false)).await?;
                    }
                }
                Confirm::Refused(why) => bail!("publish not confirmed: {why}"),
            },
            message = deliveries.recv() => {
                let Some(message) = message else { bail!("consumer cancelled") };
                let (Some(deliver), Some(mut properties), Some(body)) =
                    (message.deliver, message.basic_properties, message.content)
                else {
                    bail!("incomplete delivery")
                };
                properties.with_persistence(true);
                sequence += 1;
                pending.insert(sequence, deliver.delivery_tag());
                out.basic_publish(properties, body, publish_args.clone()).await?;
            }
        }
    }
}

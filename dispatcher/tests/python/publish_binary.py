"""Publishes one binary-mode CloudEvent per binding of the Python `cloudevents` SDK to a
RabbitMQ queue with pika, and prints each event's id and binding, one per line.

- rabbitmq: the SDK's RabbitMQ binding, `ce-` headers (strings);
- kafka: the SDK's Kafka binding, `ce_` headers (bytes, which pika sends as byte arrays);
- amqp: the SDK's AMQP binding, `cloudEvents_` application properties, sent as headers.

Usage: publish_binary.py AMQP_URL QUEUE EVENT_TYPE
"""

import sys

import pika
from cloudevents.core.bindings import amqp, kafka, rabbitmq
from cloudevents.core.v1.event import CloudEvent


def event(event_type, binding):
    return CloudEvent(
        attributes={
            "type": event_type,
            "source": "/python-sdk",
            "datacontenttype": "application/json",
        },
        data={"binding": binding, "n": 1},
    )


def messages(event_type):
    """(binding, event id, headers, content type, body) for each binding."""
    e = event(event_type, "rabbitmq")
    m = rabbitmq.to_binary_event(e)
    yield "rabbitmq", e.get_id(), m.headers, m.content_type, m.body

    e = event(event_type, "kafka")
    m = kafka.to_binary_event(e)
    headers = {k: v for k, v in m.headers.items() if k != "content-type"}
    content_type = m.headers["content-type"].decode()
    yield "kafka", e.get_id(), headers, content_type, m.value

    e = event(event_type, "amqp")
    m = amqp.to_binary_event(e)
    yield "amqp", e.get_id(), m.application_properties, m.properties["content-type"], m.application_data


def main():
    url, queue, event_type = sys.argv[1:4]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for binding, event_id, headers, content_type, body in messages(event_type):
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=body,
            properties=pika.BasicProperties(
                headers=headers,
                content_type=content_type,
                delivery_mode=2,
            ),
            mandatory=True,
        )
        print(f"{binding} {event_id}", flush=True)
    connection.close()


if __name__ == "__main__":
    main()

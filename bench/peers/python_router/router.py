"""A seed-style Python router, the dispatcher's peer in the drain benchmark.

What a first version of a content router usually is: pika, one blocking connection,
parse each body as JSON, match the event type and a `where` condition (data.country ==
"FR" and data.version >= 1, as the dispatcher's `dispatcher-where` route), publish to
the target (or to the unrouted queue) without publisher confirms, then ack.

AMQP_URL=... SOURCE=... TARGET=... UNROUTED=... python router.py; prints `relaying`.
"""

import json
import os

import pika


def main():
    source = os.environ["SOURCE"]
    target = os.environ["TARGET"]
    unrouted = os.environ["UNROUTED"]
    connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=500)

    def on_message(ch, method, properties, body):
        try:
            event = json.loads(body)
            data = event.get("data") or {}
            hit = (
                event.get("type") == "user_created"
                and data.get("country") == "FR"
                and data.get("version", 0) >= 1
            )
        except ValueError:
            hit = False
        ch.basic_publish("", target if hit else unrouted, body, properties)
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(source, on_message)
    print("relaying", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    main()

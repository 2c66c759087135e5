"""The benchmark's peer: user creation the way the original Python proof of concept did
it. FastAPI + sqlite3 + pika, one uvicorn worker: validate, INSERT and COMMIT, then
publish a CloudEvent to queue_dispatch with publisher confirms (so both sides pay for
the same guarantee that the broker has the event).

Settings: USER_DB (sqlite file), AMQP_URL, DISPATCH_QUEUE. Run:
    uvicorn app:app --host 127.0.0.1 --port 8100
"""

import datetime
import json
import os
import sqlite3
import threading
import uuid

import pika
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

DB = os.environ.get("USER_DB", "peer-users.db")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
QUEUE = os.environ.get("DISPATCH_QUEUE", "queue_dispatch")

app = FastAPI()
local = threading.local()


def db():
    if not hasattr(local, "db"):
        conn = sqlite3.connect(DB, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, version INTEGER NOT NULL, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        local.db = conn
    return local.db


def channel():
    if not hasattr(local, "channel") or local.channel.is_closed:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = connection.channel()
        ch.confirm_delivery()
        local.connection, local.channel = connection, ch
    return local.channel


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@app.post("/users", status_code=201)
def create_user(user: NewUser):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    conn = db()
    try:
        cur = conn.execute(
            "INSERT INTO users (name, email, version, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
            (user.name.strip(), user.email.lower(), now, now),
        )
        conn.commit()
    except sqlite3.IntegrityError:
        conn.rollback()
        raise HTTPException(status_code=409, detail="email already taken")
    user_id = cur.lastrowid
    data = {"id": user_id, "name": user.name.strip(), "email": user.email.lower(), "version": 1}
    event = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "user-service",
        "type": "user_created", "subject": str(user_id), "time": now,
        "datacontenttype": "application/json", "data": data,
    }
    channel().basic_publish(
        exchange="", routing_key=QUEUE, body=json.dumps(event).encode(), mandatory=True,
        properties=pika.BasicProperties(
            content_type="application/cloudevents+json", delivery_mode=2,
            message_id=event["id"], type="user_created", app_id="user-service",
        ),
    )
    return {**data, "created_at": now, "updated_at": now}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}

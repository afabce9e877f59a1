"""Baseline for submit latency: a Flask endpoint that only enqueues the posted body as an RQ job."""
from __future__ import annotations

import os

from flask import Flask, request
from redis import Redis
from rq import Queue

app = Flask(__name__)
queue = Queue("bench-bare", connection=Redis.from_url(os.environ["REDIS_URL"]))


@app.post("/enqueue")
def enqueue() -> tuple[dict[str, str], int]:
    job = queue.enqueue("builtins.len", request.get_data(as_text=True), result_ttl=60)
    return {"id": job.id}, 202

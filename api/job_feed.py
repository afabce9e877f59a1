"""One Redis subscription per API process that wakes every event stream waiting on a job.

A subscription per open stream would hold one Redis connection per browser tab; small Redis
plans allow 20 to 40 connections in all.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from typing import Iterator

from redis import Redis
from redis.exceptions import RedisError

from shared import keys

log = logging.getLogger(__name__)

POLL_S = 1.0
"""How long one read of the subscription blocks before the reader checks it is still wanted."""
RECONNECT_DELAY_S = 1.0


class JobChangeFeed:
    """Started on the first stream in a process (after gunicorn forks), shared by all its streams."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection
        self._waiters: dict[str, set[threading.Event]] = defaultdict(set)
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[threading.Event]:
        """An event set whenever the job is announced as changed; clear it before each read of the job."""
        changed = threading.Event()
        with self._lock:
            self._waiters[job_id].add(changed)
            if self._reader is None or not self._reader.is_alive():
                self._reader = threading.Thread(target=self._read_forever, name="job-change-feed", daemon=True)
                self._reader.start()
        try:
            yield changed
        finally:
            with self._lock:
                self._waiters[job_id].discard(changed)
                if not self._waiters[job_id]:
                    del self._waiters[job_id]

    def _read_forever(self) -> None:
        prefix = keys.job_events("")
        while True:
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(keys.job_events("*"))
                while True:
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        self._wake(message["channel"].decode().removeprefix(prefix))
            except RedisError as exc:
                # Streams re-read their job on their own every few seconds meanwhile.
                log.warning("job change feed lost Redis; resubscribing", extra={"error": type(exc).__name__})
                time.sleep(RECONNECT_DELAY_S)
            finally:
                pubsub.close()

    def _wake(self, job_id: str) -> None:
        with self._lock:
            for changed in self._waiters.get(job_id, ()):
                changed.set()

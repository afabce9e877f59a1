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
from typing import Iterable, Iterator

from redis import Redis
from redis.exceptions import RedisError

from shared import keys

log = logging.getLogger(__name__)

POLL_S = 1.0
"""How long one read of the subscription blocks before the reader checks it is still wanted."""
RECONNECT_DELAY_S = 1.0


class Changes(threading.Event):
    """Set whenever a watched job is announced; `take()` tells which ones since the last take."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: set[str] = set()
        self._ids_lock = threading.Lock()

    def note(self, job_id: str) -> None:
        with self._ids_lock:
            self._ids.add(job_id)
        self.set()

    def take(self) -> set[str]:
        self.clear()
        with self._ids_lock:
            taken, self._ids = self._ids, set()
        return taken


class JobChangeFeed:
    """Started on the first stream in a process (after gunicorn forks), shared by all its streams."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection
        self._waiters: dict[str, set[Changes]] = defaultdict(set)
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[Changes]:
        """An event set whenever the job is announced as changed; clear it before each read of the job."""
        with self.watch_many([job_id]) as changed:
            yield changed

    @contextlib.contextmanager
    def watch_many(self, job_ids: Iterable[str]) -> Iterator[Changes]:
        """One event for several jobs (a batch), which also collects the ids announced."""
        changed, ids = Changes(), list(job_ids)
        with self._lock:
            for job_id in ids:
                self._waiters[job_id].add(changed)
            if self._reader is None or not self._reader.is_alive():
                self._reader = threading.Thread(target=self._read_forever, name="job-change-feed", daemon=True)
                self._reader.start()
        try:
            yield changed
        finally:
            with self._lock:
                for job_id in ids:
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
                changed.note(job_id)

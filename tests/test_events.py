"""Server-Sent Events under the real gunicorn: status changes, a final done, keep-alives, many streams."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests
from redis import Redis

from tests.conftest import TENANT_KEYS
from tests.support import LiveServer, wait_until

HEADERS = {"Authorization": f"Bearer {TENANT_KEYS['acme']}"}
SLOW = {"html": "<table>{% for i in range(rows) %}<tr><td>row {{ i }}</td></tr>{% endfor %}</table>",
        "data": {"rows": 2500}}


def read_events(url: str, timeout: float = 60) -> Iterator[tuple[str, str]]:
    """(event, data) pairs, plus ("comment", text) for keep-alive comments, as a browser's EventSource sees them."""
    with requests.get(url, stream=True, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event, data = "message", []
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith(":"):
                yield "comment", line[1:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                yield event, "\n".join(data)
                event, data = "message", []


def submit(server: LiveServer, body: dict) -> dict:
    response = requests.post(f"{server.url}/v1/jobs", json=body, headers=HEADERS, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


@pytest.mark.usefixtures("workers", "redis")
def test_stream_follows_a_job_to_done(live_api: LiveServer) -> None:
    """With only the link's token, the stream sends status at once, each change, then done, and closes."""
    job = submit(live_api, SLOW)
    events = [(e, json.loads(d)) for e, d in read_events(live_api.url + job["links"]["events"]) if e != "comment"]
    names = [e for e, _ in events]
    assert names[0] == "status" and names[-1] == "done" and names.count("done") == 1
    statuses = [d["status"] for _, d in events]
    assert statuses[-1] == "completed" and "started" in statuses
    steps = [d["progress"]["step"] for e, d in events if e == "status"]
    assert {"layout", "writing"} & set(steps), steps
    assert statuses.index("started") < statuses.index("completed")


@pytest.mark.usefixtures("workers", "redis")
def test_finished_job_gets_status_and_done_at_once(live_api: LiveServer) -> None:
    """A job already completed gets its status and done immediately."""
    job = submit(live_api, {"html": "<p>quick</p>"})
    deadline = time.monotonic() + 30
    while requests.get(f"{live_api.url}/v1/jobs/{job['id']}", headers=HEADERS, timeout=5).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    events = [e for e, _ in read_events(live_api.url + job["links"]["events"]) if e != "comment"]
    assert events == ["status", "done"] and time.monotonic() - started < 2
    bad = requests.get(f"{live_api.url}/v1/jobs/{job['id']}/events?token=1.forged", timeout=5)
    assert bad.status_code == 401


def event_ids(url: str, last_event_id: str | None = None) -> list[tuple[str, str]]:
    """(event, id) of each event of a stream that ends, optionally resumed after `last_event_id`."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with requests.get(url, stream=True, timeout=30, headers=headers) as response:
        assert response.status_code == 200
        found, event, event_id = [], "message", ""
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line == "" and event != "message":
                found.append((event, event_id))
                event, event_id = "message", ""
        return found


@pytest.mark.usefixtures("workers", "redis")
def test_events_carry_ids_and_resume_after_last_event_id(live_api: LiveServer) -> None:
    """Every event has an id; a client reconnecting with the id it last saw is not sent that state again."""
    job = submit(live_api, {"html": "<p>resume</p>"})
    url = live_api.url + job["links"]["events"]
    first = event_ids(url)
    statuses = [(e, i) for e, i in first if e == "status"]
    assert first[-1][0] == "done" and all(i for _, i in first)
    assert len({i for _, i in statuses}) == len(statuses), "one id per state"
    if first[0][1] != first[-1][1]:  # the stream began before the job ended: resume from its first event
        resumed = event_ids(url, first[0][1])
        assert resumed[0] != first[0] and resumed[-1] == first[-1]
    wait_until(lambda: requests.get(f"{live_api.url}/v1/jobs/{job['id']}", headers=HEADERS,
                                    timeout=5).json()["status"] == "completed")
    final = event_ids(url)
    assert [e for e, _ in final] == ["status", "done"] and final[0][1] == final[1][1]
    assert event_ids(url, final[1][1]) == [("done", final[1][1])]


@pytest.mark.usefixtures("workers")
def test_fifty_open_streams_do_not_block_the_api(live_api: LiveServer, redis: Redis) -> None:
    """50 concurrent streams hold no gunicorn worker and no Redis connection each: one subscription per process."""
    job = submit(live_api, {**SLOW, "data": {"rows": 3500}})
    finals: list[str] = []
    lock = threading.Lock()
    open_count = [0]

    def follow() -> None:
        last = None
        for number, (event, data) in enumerate(read_events(live_api.url + job["links"]["events"], timeout=120)):
            if number == 0:
                with lock:
                    open_count[0] += 1
            if event == "done":
                last = json.loads(data)["status"]
        with lock:
            finals.append(str(last))

    threads = [threading.Thread(target=follow) for _ in range(50)]
    for thread in threads:
        thread.start()
    wait_until(lambda: open_count[0] == 50, timeout=60)  # every stream has sent its first event
    assert redis.pubsub_numsub(f"pdfq:events:{job['id']}") == [(f"pdfq:events:{job['id']}".encode(), 0)]
    pattern_subscribers = [c for c in redis.client_list() if int(c.get("psub", 0)) > 0]
    assert 1 <= len(pattern_subscribers) <= 2, "one feed per gunicorn process (WEB_CONCURRENCY=2)"
    latencies = []
    for _ in range(10):
        started = time.monotonic()
        assert requests.get(f"{live_api.url}/v1/jobs/{job['id']}", headers=HEADERS, timeout=10).status_code == 200
        latencies.append(time.monotonic() - started)
    for thread in threads:
        thread.join(timeout=120)
    assert finals == ["completed"] * 50
    assert max(latencies) < 1.0, latencies


def test_keepalive_comments_on_quiet_streams(no_workers: None, env: dict[str, str], tmp_path: Path) -> None:
    """A stream with nothing to report still sends a comment every SSE_KEEPALIVE_S, so proxies keep it open."""
    server = LiveServer({**env, "SSE_KEEPALIVE_S": "1"}, tmp_path / "gunicorn.log")
    try:
        job = submit(server, {"html": "<p>waits: no worker listens here</p>"})
        seen: list[str] = []
        started = time.monotonic()
        for event, _ in read_events(server.url + job["links"]["events"], timeout=30):
            seen.append(event)
            if seen.count("comment") == 2:
                break
        assert seen[0] == "status" and seen.count("comment") == 2
        assert 1.5 < time.monotonic() - started < 10
    finally:
        server.stop()


@pytest.mark.usefixtures("workers", "redis")
def test_batch_stream_sends_each_job_end_then_done(live_api: LiveServer) -> None:
    """The batch stream sends one `job` event per job as it ends, each a final job resource, then `done` with counts."""
    body = {"jobs": [{"html": "<p>{{ n }}</p>", "data": {"n": i}} for i in range(5)] + [SLOW]}
    response = requests.post(f"{live_api.url}/v1/jobs/batch", json=body, headers=HEADERS, timeout=10)
    assert response.status_code == 202
    batch = response.json()
    with_auth = requests.Session()
    with_auth.headers.update(HEADERS)
    events = []
    with with_auth.get(live_api.url + batch["links"]["events"], stream=True, timeout=120) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream"), (stream.status_code, stream.text[:500])
        event = None
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line[5:])))
    names = [e for e, _ in events]
    assert names == ["job"] * 6 + ["done"]
    ended = [d for e, d in events if e == "job"]
    assert sorted(d["id"] for d in ended) == sorted(j["id"] for j in batch["jobs"])
    assert all(d["status"] == "completed" and d["result"]["sha256"] for d in ended)
    assert events[-1][1]["counts"]["completed"] == 6 and events[-1][1]["done"] is True

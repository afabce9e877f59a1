"""The Python client's parts without I/O: reading the event-stream format and the Retry-After header."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from pdfq.retry import MAX_RETRY_AFTER_S, RetryPolicy, retry_after_s
from pdfq.sse import Event, EventParser


def feed(parser: EventParser, text: str) -> list[Event]:
    return [event for line in text.split("\n") if (event := parser.feed(line)) is not None]


def test_event_parser_reads_events_ids_and_retry() -> None:
    """Events end at a blank line; data lines join with newlines; comments are skipped; the last id is kept."""
    parser = EventParser()
    events = feed(parser, ": keep-alive\n\nretry: 2500\nevent: status\nid: 7\ndata: {\"a\":\ndata: 1}\n\n"
                          "data:plain\n\nid: 8\n\n")
    assert events == [Event("status", '{"a":\n1}', "7"), Event("message", "plain", "7")]
    assert (parser.last_event_id, parser.retry_ms) == ("8", 2500)


def test_event_parser_without_ids() -> None:
    """A stream that sends no `id:` leaves nothing to resume from."""
    parser = EventParser()
    assert feed(parser, "event: done\ndata: {}\n\n") == [Event("done", "{}", None)]
    assert parser.last_event_id is None


def answer(status: int, retry_after: str | None) -> httpx.Response:
    return httpx.Response(status, headers={} if retry_after is None else {"Retry-After": retry_after})


@pytest.mark.parametrize(("value", "expected"), [("3", 3.0), ("0", 0.0), (" 12 ", 12.0), (None, None), ("soon", None)])
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    """Retry-After in delta-seconds is read as given; absent or unreadable is None."""
    assert retry_after_s(answer(503, value)) == expected


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date is the seconds until then."""
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    assert 18 <= (retry_after_s(answer(429, when)) or 0) <= 20


def test_policy_waits_only_for_not_now_answers() -> None:
    """429/503 are retried (as Retry-After says, or with back-off) until max_retries; a long Retry-After and any
    other status are handed on."""
    policy = RetryPolicy(max_retries=2)
    assert policy.after_response(answer(503, "2"), 0) == 2
    assert 0 < (policy.after_response(answer(503, None), 1) or 0) <= 1.0
    assert policy.after_response(answer(429, "1"), 2) is None
    assert policy.after_response(answer(429, str(int(MAX_RETRY_AFTER_S) + 1)), 0) is None
    assert policy.after_response(answer(500, "1"), 0) is None and policy.after_response(answer(409, None), 0) is None

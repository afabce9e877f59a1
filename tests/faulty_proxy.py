"""A loopback HTTP proxy in front of the live API that refuses, loses, cuts or stalls answers on purpose, and
records every request, so the Python client's retries and stream recovery meet real faults."""
from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

Action = Literal["refuse", "lose", "cut", "stall", "pass"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Rule:
    """What to do with the next `times` requests whose method matches and whose path contains `path`: `refuse`
    without forwarding, `lose` the service's answer and refuse, `cut` the answer (an event stream after
    `cut_after_events` events, any other body half-way), `stall` (headers, then silence), or `pass`."""

    method: str
    path: str
    action: Action
    times: int = 1
    status: int = 503
    retry_after: str | None = "0"
    cut_after_events: int = 1


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    at: float


@dataclass
class StreamLog:
    """One event stream passed through: the last `id:` forwarded and whether the proxy cut it."""

    path: str
    events: int = 0
    last_id: str | None = None
    cut: bool = False


@dataclass
class FaultyProxy:
    upstream: str
    ids: Literal["strip", "inject", "keep"] = "keep"
    """Event ids: removed from streams, replaced by the proxy's own (1, 2, …), or passed as the service sends them."""
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    streams: list[StreamLog] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._next_id = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                try:
                    proxy._handle(self)
                except (BrokenPipeError, ConnectionResetError):  # the client closed first (e.g. after `done`)
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = handle_one  # noqa: N815 (stdlib names)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and path in s.path]

    def _rule_for(self, method: str, path: str) -> Rule | None:
        for rule in self.rules:
            if rule.times > 0 and rule.method == method and rule.path in path:
                rule.times -= 1
                return rule
        return None

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self.seen.append(Seen(handler.command, handler.path, dict(handler.headers), time.monotonic()))
        rule = self._rule_for(handler.command, handler.path)
        if rule and rule.action == "refuse":
            return self._refuse(handler, rule)
        if rule and rule.action == "stall":
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            self._stopping.wait(60)
            handler.close_connection = True
            return None
        parts = urlsplit(self.upstream)
        upstream = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream.request(handler.command, handler.path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        try:
            if rule and rule.action == "lose":
                answer.read()  # the service did the work; its answer never reaches the client
                return self._refuse(handler, rule)
            handler.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    handler.send_header(name, value)
            if answer.getheader("Content-Type", "").startswith("text/event-stream"):
                return self._relay_stream(handler, answer, rule if rule and rule.action == "cut" else None)
            content = answer.read()
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            if rule and rule.action == "cut":  # half the body, then the connection goes
                handler.wfile.write(content[:len(content) // 2])
                handler.wfile.flush()
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return None
            handler.wfile.write(content)
        finally:
            upstream.close()
        return None

    def _refuse(self, handler: http.server.BaseHTTPRequestHandler, rule: Rule) -> None:
        code = {429: "tenant_limit", 503: "queue_full"}.get(rule.status, "bad_gateway")
        content = json.dumps({"type": "about:blank", "title": "refused by the test proxy", "status": rule.status,
                              "detail": "try again later", "code": code}).encode()
        handler.send_response(rule.status)
        handler.send_header("Content-Type", "application/problem+json")
        if rule.retry_after is not None:
            handler.send_header("Retry-After", rule.retry_after)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    def _relay_stream(self, handler: http.server.BaseHTTPRequestHandler, answer: http.client.HTTPResponse,
                      cut: Rule | None) -> None:
        log = StreamLog(handler.path)
        self.streams.append(log)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        starting = True
        while line := answer.readline():
            text = line.decode()
            if text.startswith("id:") and self.ids != "keep":
                continue
            if text.startswith("id:"):
                log.last_id = text[3:].strip()
            out = text
            if starting and self.ids == "inject" and text.strip() and not text.startswith(":"):
                self._next_id += 1
                log.last_id = str(self._next_id)
                out = f"id: {self._next_id}\n{text}"
            starting = not text.strip()
            if not text.strip():
                log.events += 1
            self._chunk(handler, out.encode())
            if cut and log.events >= cut.cut_after_events and not text.strip():
                log.cut = True  # mid-body, without the closing chunk: the client sees a broken stream
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
        handler.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _chunk(handler: http.server.BaseHTTPRequestHandler, data: bytes) -> None:
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        handler.wfile.flush()

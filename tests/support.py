"""Test helpers that are not fixtures: a real redis-server, real worker processes, polling."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from redis import Redis

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


class RedisServer:
    """A real redis-server on a free port, with AOF so restarts keep queued jobs."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run `make test`, which installs it")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis(port=self.port)
        wait_until(lambda: _pings(client), timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)


def _pings(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class WorkerProcess:
    """`python -m worker` as its own process, exactly as the Procfile runs it."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "worker"], cwd=cwd, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_registered(self, connection: Redis, timeout: float = 30) -> None:
        from rq import Worker

        def registered() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
            return any(w.pid == self.pid for w in Worker.all(connection=connection))

        wait_until(registered, timeout=timeout, interval=0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def children_of(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and its children (RQ's horse runs in its own session, so killpg misses it)."""
    for child in children_of(pid):
        os.kill(child, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def work_horse(pid: int) -> int | None:
    """The work-horse of worker `pid` while it renders, told apart from the worker's other children.

    RQ's horse leads a process group of its own (`os.setpgrp`) inside the worker's session; the browser
    service leads a session of its own; RQ's scheduler process stays in the worker's group.
    """
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return None
    for child in map(int, children):
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        state, group, session = fields[0], int(fields[2]), int(fields[3])
        if state != "Z" and group == child and session != child:
            return child
    return None


class LiveServer:
    """The API under gunicorn with the production config, on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "api/gunicorn_conf.py", "api.wsgi:app"],
            cwd=ROOT, env={**env, "PORT": str(self.port), "WEB_CONCURRENCY": "2"},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        import requests

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).ok
            except requests.RequestException:  # not listening yet, or still booting its workers
                return False

        wait_until(up, timeout=30, interval=0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


class RecordingServer:
    """A loopback HTTP server that records every request (method, path, headers, body) and answers via `reply`."""

    def __init__(self, reply: Callable[[str, str], tuple[int, dict[str, str], bytes]]) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record_and_reply(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, content = reply(self.command, self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(content))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _record_and_reply  # noqa: N815 (stdlib names)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()


class Honeypot(RecordingServer):
    """Records every connection (a TLS attempt too) and request it receives; redirects /redirect to itself."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, int]] = []
        super().__init__(self._reply)
        # Counted before any HTTP parsing: a TLS handshake to this plain-HTTP port is never a request.
        self.server.verify_request = self._record_connection  # type: ignore[method-assign]

    def _record_connection(self, request: Any, client_address: tuple[str, int]) -> bool:
        self.connections.append(client_address)
        return True

    def _reply(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/redirect"):
            return 302, {"Location": self.url("/after-redirect")}, b""
        return 200, {"Content-Type": "text/css"}, b"HONEYPOT-CONTENT"

    @property
    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.requests]

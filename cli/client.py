"""HTTP calls and the event stream, for the command-line client."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

import requests

STREAM_IDLE_TIMEOUT_S = 60
"""A stream silent this long is dead: the service sends a keep-alive comment every 15 s."""


class ApiProblem(Exception):
    """The service answered with a problem+json error."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('code', 'error')}: {body.get('detail', '')}")
        self.status = status
        self.body = body


@dataclass
class Client:
    base_url: str
    api_key: str
    timeout_s: float = 30

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, self.base_url.rstrip("/") + path, timeout=self.timeout_s,
                                    headers={"Authorization": f"Bearer {self.api_key}"}, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text[:200]}
            raise ApiProblem(response.status_code, body)
        return response

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/jobs", json=body).json()

    def status(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/v1/jobs/{job_id}").json()

    def download(self, job_id: str) -> bytes:
        return self._request("GET", f"/v1/jobs/{job_id}/pdf").content

    def events(self, job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, job resource) pairs from the job's SSE stream until `done`."""
        url = self.base_url.rstrip("/") + job["links"]["events"]
        with requests.get(url, stream=True, timeout=(self.timeout_s, STREAM_IDLE_TIMEOUT_S)) as response:
            if response.status_code >= 400:
                raise ApiProblem(response.status_code, response.json())
            event, data = "message", ""
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    yield event, json.loads(data)
                    if event == "done":
                        return
                    event, data = "message", ""

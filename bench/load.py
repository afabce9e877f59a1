"""HTTP load with wrk: requests/s and latency percentiles for a POST endpoint."""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.1f %.1f %.1f %d\\n", summary.requests, latency:percentile(50),
    latency:percentile(99), latency.max, summary.errors.status))
end
"""


def wrk_post(url: str, body: dict, api_key: str, connections: int, seconds: int) -> dict[str, float]:
    """p50/p99/max in ms, requests/s and non-2xx count from `wrk -c N -t min(N, 2)`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=json.dumps(json.dumps(body)), key=api_key))
    result = subprocess.run(["wrk", "-c", str(connections), "-t", str(min(connections, 2)), "-d", f"{seconds}s",
                             "-s", script.name, url], capture_output=True, text=True, timeout=seconds + 60)
    Path(script.name).unlink()
    match = re.search(r"RESULT (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", result.stdout)
    if match is None:
        raise RuntimeError(f"wrk failed: {result.stdout}\n{result.stderr}")
    requests, p50, p99, worst, bad = match.groups()
    return {"requests_per_s": round(int(requests) / seconds, 1), "p50_ms": float(p50) / 1000,
            "p99_ms": float(p99) / 1000, "max_ms": float(worst) / 1000, "non_2xx": int(bad)}

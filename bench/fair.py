"""`python -m bench --fair`: A floods 500 invoices, then B submits 5; B's wait and A's drain, fair share on/off."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from rq.job import Job

from shared.config import Settings
from shared.fair_share import FairShare
from shared.job_state import JobState
from shared.metrics import percentile
from shared.records import epoch_of

if TYPE_CHECKING:
    from bench.__main__ import Bench

FLOOD_JOBS = 500
LATE_JOBS = 5
BATCH_JOBS = 100
"""A flood is sent as batches of this many invoices (500 would pass MAX_PAYLOAD_BYTES)."""
FLOODER, LATECOMER = "tenant-a", "tenant-b"
TENANT_KEYS = {FLOODER: "key-a", LATECOMER: "key-b"}
"""Extra API keys the bench's API serves (API_KEYS), one tenant each."""


def _post(bench: Bench, tenant: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{bench.api.url}{path}", json=body, timeout=60,
                             headers={"Authorization": f"Bearer {TENANT_KEYS[tenant]}"})
    response.raise_for_status()
    return response.json()


def one_mode(bench: Bench, fair: bool) -> dict[str, Any]:
    """One flood with fair share on or off (the fleet's policy, published in Redis, switches every process)."""
    FairShare(Settings(fair_share=fair)).publish(bench.connection)
    ended_before = bench.ended_count()
    started = time.time()
    flood = [j["id"] for _ in range(0, FLOOD_JOBS, BATCH_JOBS)
             for j in _post(bench, FLOODER, "/v1/jobs/batch", {"jobs": [bench.invoice] * BATCH_JOBS})["jobs"]]
    late = [_post(bench, LATECOMER, "/v1/jobs", bench.invoice)["id"] for _ in range(LATE_JOBS)]
    bench.wait_done(flood + late, ended_before)
    flooded = [JobState.from_job(j) for j in Job.fetch_many(flood, connection=bench.connection)]
    waits = sorted(epoch_of(JobState.from_job(j).started_at) - j.created_at.timestamp()
                   for j in Job.fetch_many(late, connection=bench.connection))
    render_s = statistics.median(s.render_ms for s in flooded) / 1000
    drain_s = max(epoch_of(s.finished_at) for s in flooded) - started
    return {"fair_share": fair, "b_wait_p50_s": round(percentile(waits, 0.5), 3),
            "b_wait_p95_s": round(percentile(waits, 0.95), 3), "b_waits_s": [round(w, 3) for w in waits],
            "a_drain_s": round(drain_s, 2), "render_s": round(render_s, 3)}


def run(bench: Bench) -> dict[str, Any]:
    """Plain FIFO first, then fair share, on the same warm fleet."""
    off = one_mode(bench, fair=False)
    on = one_mode(bench, fair=True)
    FairShare(Settings()).publish(bench.connection)
    return summarize(off, on, len(bench.workers))


def summarize(off: dict[str, Any], on: dict[str, Any], workers: int) -> dict[str, Any]:
    """B's p95 against the target, in render times and in job times (a worker's wall time per job: render plus
    fork, storage and bookkeeping, which on a loaded machine is well above the render time)."""
    render_s = statistics.median([off["render_s"], on["render_s"]])
    job_s = statistics.median(m["a_drain_s"] * workers / (FLOOD_JOBS + LATE_JOBS) for m in (off, on))
    return {"workers": workers, "flood_jobs": FLOOD_JOBS, "late_jobs": LATE_JOBS, "off": off, "on": on,
            "render_s": round(render_s, 3), "job_s": round(job_s, 3),
            "b_p95_render_times": round(on["b_wait_p95_s"] / render_s, 2),
            "b_p95_job_times": round(on["b_wait_p95_s"] / job_s, 2),
            "b_p95_target_s": round(2 * render_s * workers, 3),
            "a_drain_growth_pct": round((on["a_drain_s"] / off["a_drain_s"] - 1) * 100, 2)}


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    modes = [("FIFO (fair share off)", results["off"], "#8a96a3"), ("fair share on", results["on"], "#1b3a5c")]
    x = range(2)
    for offset, (label, mode, color) in zip((-0.2, 0.2), modes):
        bars = left.bar([i + offset for i in x], [mode["b_wait_p50_s"], mode["b_wait_p95_s"]], width=0.4,
                        label=label, color=color)
        left.bar_label(bars, fmt="%.2f s")
    left.set_yscale("log")
    left.set_xticks(list(x), ["B wait p50", "B wait p95"])
    left.set_ylabel("seconds, submit → start (log scale)")
    left.set_title(f"Tenant B's {results['late_jobs']} jobs behind A's {results['flood_jobs']}")
    left.legend()
    bars = right.bar([m[0] for m in modes], [m[1]["a_drain_s"] for m in modes], color=[m[2] for m in modes])
    right.bar_label(bars, fmt="%.1f s")
    right.set_ylabel("seconds")
    right.set_title(f"A's drain time ({results['a_drain_growth_pct']:+.1f} % with fair share)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(results: dict[str, Any]) -> None:
    for name in ("off", "on"):
        mode = results[name]
        print(f"fair share {name:<3}  B wait p50 {mode['b_wait_p50_s']:>8.3f} s  p95 {mode['b_wait_p95_s']:>8.3f} s"
              f"   A drain {mode['a_drain_s']:>7.2f} s   render {mode['render_s'] * 1000:.0f} ms")
    print(f"B p95 with fair share = {results['b_p95_render_times']} render times, {results['b_p95_job_times']} "
          f"job times ({results['job_s']} s a job per worker) "
          f"(target ≤ {results['b_p95_target_s']} s = 2 render times × {results['workers']} workers); "
          f"A's drain {results['a_drain_growth_pct']:+.2f} % (target ≤ +5 %)")

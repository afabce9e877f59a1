"""`python -m bench [--quick]`: ceiling, end-to-end throughput, submit latency, job timeline, worker memory."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Queue
from rq.job import Job

from bench.ceiling import RenderRun, invoice_data, render_run
from bench.load import wrk_post
from shared import keys
from shared.config import PROJECT_ROOT
from shared.job_state import JobState
from shared.metrics import percentile
from shared.queues import all_queues
from tests.support import LiveServer, RedisServer, WorkerProcess, children_of, free_port, wait_until

API_KEY = "bench-key"
LATENCY_ROUNDS = 3
"""Rounds of (bare, API) latency runs per connection count; the figures are their medians."""
RESULTS = PROJECT_ROOT / "bench" / "results"


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def cpu_s(pid: int) -> float:
    """CPU seconds of a process and of its children it has reaped (a worker's finished work-horses)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, workdir: Path, cores: int) -> None:
        self.redis_server = RedisServer(workdir)
        self.redis_server.start()
        self.env = {**os.environ, "REDIS_URL": self.redis_server.url(0), "STORAGE_URL": f"file://{workdir}/pdfs",
                    "API_KEYS": f"bench:{API_KEY}", "SECRET_KEY": "bench", "PYTHONPATH": str(PROJECT_ROOT),
                    "MAX_ACTIVE_JOBS_PER_TENANT": "1000000", "MAX_QUEUED_JOBS": "1000000", "LOG_LEVEL": "WARNING"}
        self.connection = Redis.from_url(self.env["REDIS_URL"])
        self.workers = [WorkerProcess(self.env, workdir / f"worker-{i}.log") for i in range(cores)]
        for worker in self.workers:
            worker.wait_registered(self.connection)
        self.api = LiveServer(self.env, workdir / "gunicorn.log")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"
        self.invoice = {"template": "invoice.html", "data": invoice_data()}

    def submit(self, count: int, threads: int = 4) -> list[str]:
        ids: list[str] = []
        lock = threading.Lock()

        def run(share: int) -> None:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {API_KEY}"
                for _ in range(share):
                    response = session.post(f"{self.api.url}/v1/jobs", json=self.invoice, timeout=30)
                    response.raise_for_status()
                    with lock:
                        ids.append(response.json()["id"])

        shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
        pool = [threading.Thread(target=run, args=(s,)) for s in shares]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return ids

    def service_cpu_s(self) -> float:
        """CPU the whole service has used: workers and their horses, gunicorn and its workers, Redis."""
        pids = [w.pid for w in self.workers] + [self.api.process.pid] + children_of(self.api.process.pid)
        redis_cpu = self.connection.info("cpu")
        return sum(cpu_s(pid) for pid in pids) + redis_cpu["used_cpu_user"] + redis_cpu["used_cpu_sys"]

    def ended_count(self) -> int:
        """Jobs ended so far, from the counters workers keep: one cheap read, so waiting costs the workers nothing."""
        with self.connection.pipeline(transaction=False) as pipe:
            for outcome in ("completed", "failed"):
                pipe.hvals(keys.stats(outcome))
            return sum(int(v) for replies in pipe.execute() for v in replies)

    def wait_done(self, ids: list[str], ended_before: int, timeout: float = 1800) -> list[Job]:
        wait_until(lambda: self.ended_count() >= ended_before + len(ids), timeout=timeout, interval=0.05)
        return Job.fetch_many(ids, connection=self.connection)

    def throughput(self, count: int) -> tuple[RenderRun, list[Job]]:
        """Docs/s from the first POST to the last completion, and the service's CPU per job."""
        ended_before, cpu_before = self.ended_count(), self.service_cpu_s()
        started = time.perf_counter()
        ids = self.submit(count)
        jobs = self.wait_done(ids, ended_before)
        elapsed = time.perf_counter() - started
        time.sleep(0.5)  # the last work-horses exit and are reaped, so their CPU is counted
        return RenderRun(count / elapsed, (self.service_cpu_s() - cpu_before) / count * 1000), jobs

    def idle_waits(self, count: int) -> list[float]:
        """Enqueue-to-start on idle workers: one job at a time, each waited for."""
        waits = []
        for _ in range(count):
            ended_before = self.ended_count()
            job_id = self.submit(1, threads=1)[0]
            job = self.wait_done([job_id], ended_before)[0]
            waits.append((parse_time(JobState.from_job(job).started_at) - job.created_at.timestamp()) * 1000)
        return waits

    def latency(self, seconds: int) -> dict[str, Any]:
        """POST /v1/jobs vs a bare enqueue-only endpoint, at 2 and 16 connections, while workers render."""
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "api/gunicorn_conf.py",
                                 "bench.bare_app:app"], cwd=PROJECT_ROOT, env={**self.env, "PORT": str(bare_port)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(f"http://127.0.0.1:{bare_port}/enqueue"), timeout=30)
        self.submit(len(self.workers) * 40)  # a backlog, so the workers render throughout
        results: dict[str, Any] = {}
        try:
            for connections in (2, 16):
                rounds = []
                for _ in range(LATENCY_ROUNDS):  # alternating, so drift on a shared machine hits both alike
                    bare_run = wrk_post(f"http://127.0.0.1:{bare_port}/enqueue", self.invoice, API_KEY,
                                        connections, seconds)
                    api_run = wrk_post(f"{self.api.url}/v1/jobs", self.invoice, API_KEY, connections, seconds)
                    rounds.append((bare_run, api_run))
                results[f"bare_c{connections}"] = _median_run([b for b, _ in rounds])
                results[f"api_c{connections}"] = _median_run([a for _, a in rounds])
                results[f"p99_ratio_c{connections}"] = round(
                    statistics.median(a["p99_ms"] / b["p99_ms"] for b, a in rounds), 2)
                results[f"rounds_c{connections}"] = rounds
        finally:
            bare.terminate()
            bare.wait(timeout=30)
            for queue in all_queues(self.connection):
                queue.empty()
            Queue("bench-bare", connection=self.connection).empty()
        return results

    def memory(self, count: int) -> dict[str, float]:
        wait_until(lambda: all(q.count == 0 for q in all_queues(self.connection)), timeout=600, interval=0.5)
        time.sleep(2)
        before = [rss_mb(w.pid) for w in self.workers]
        run, jobs = self.throughput(count)
        after = [rss_mb(w.pid) for w in self.workers]
        horse_peak = float(self.connection.zrange(keys.PEAK_RSS_MB, -1, -1, withscores=True)[0][1])
        return {"jobs": count, "docs_per_s": round(run.docs_per_s, 2), "parent_rss_before_mb": round(max(before), 1),
                "parent_rss_after_mb": round(max(after), 1),
                "parent_growth_pct": round(max((a - b) / b * 100 for a, b in zip(after, before)), 2),
                "horse_peak_rss_mb": round(horse_peak, 1),
                "peak_rss_per_worker_mb": round(max(after) + horse_peak, 1)}

    def close(self) -> None:
        self.api.stop()
        for worker in self.workers:
            worker.stop()
        self.redis_server.stop()


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over rounds of the same measurement."""
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}


def _answers(url: str) -> bool:
    try:
        requests.post(url, timeout=1)
        return True
    except requests.ConnectionError:
        return False


def timeline(jobs: list[Job]) -> dict[str, dict[str, float]]:
    states = [JobState.from_job(j) for j in jobs]
    waits = [(parse_time(s.started_at) - j.created_at.timestamp()) * 1000 for s, j in zip(states, jobs)]
    parts = {"enqueue_to_start_ms": waits, "render_ms": [s.render_ms for s in states],
             "store_ms": [s.store_ms for s in states]}
    return {name: {"median": round(statistics.median(v), 1), "p95": round(percentile(v, 0.95), 1)}
            for name, v in parts.items()}


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["raw WeasyPrint\n(ceiling)", "our Renderer\n(no queue)", "end to end\n(HTTP + RQ)"]
    values = [results["ceiling_docs_per_s"], results["renderer_docs_per_s"], results["e2e_docs_per_s"]]
    bars = left.bar(names, values, color=["#8a96a3", "#5fb3a8", "#1b3a5c"])
    left.bar_label(bars, fmt="%.1f")
    left.set_ylabel("invoices per second")
    left.set_title(f"Throughput on {results['cores']} cores (ratio {results['e2e_ratio']:.2f})")
    latency = results["latency"]
    labels = ["bare c2", "api c2", "bare c16", "api c16"]
    keys = ["bare_c2", "api_c2", "bare_c16", "api_c16"]
    x = range(len(keys))
    right.bar([i - 0.2 for i in x], [latency[k]["p50_ms"] for k in keys], width=0.4, label="p50", color="#5fb3a8")
    right.bar([i + 0.2 for i in x], [latency[k]["p99_ms"] for k in keys], width=0.4, label="p99", color="#1b3a5c")
    right.set_xticks(list(x), labels)
    right.set_ylabel("ms")
    right.set_title("POST latency while workers render")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small counts, for a fast check")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    counts = ({"rounds": 3, "ceiling": 8, "e2e": 30, "idle": 10, "latency_s": 2, "rss": 200} if args.quick
              else {"rounds": 5, "ceiling": 20, "e2e": 100, "idle": 30, "latency_s": 6, "rss": 1000})
    results: dict[str, Any] = {"cores": cores, "mode": "quick" if args.quick else "full",
                               "measured_at": datetime.now().isoformat(timespec="seconds")}
    print("our Renderer without a queue, in", cores, "processes ...", flush=True)
    results["renderer_docs_per_s"] = round(render_run(cores, counts["ceiling"], plain=False).docs_per_s, 2)
    with tempfile.TemporaryDirectory(prefix="pdfq-bench-") as workdir:
        bench = Bench(Path(workdir), cores)
        try:
            bench.throughput(cores * 2)  # let every worker take a job once
            rounds = []
            for number in range(1, counts["rounds"] + 1):
                # Each end-to-end run is compared with a ceiling run just before it: this machine's speed drifts.
                print(f"round {number}: ceiling (raw WeasyPrint, {cores} processes), then end to end ...", flush=True)
                ceiling = render_run(cores, counts["ceiling"], plain=True)
                e2e, jobs = bench.throughput(counts["e2e"])
                rounds.append({"ceiling_docs_per_s": round(ceiling.docs_per_s, 2),
                               "e2e_docs_per_s": round(e2e.docs_per_s, 2),
                               "ratio": round(e2e.docs_per_s / ceiling.docs_per_s, 3),
                               "ceiling_cpu_ms_per_doc": round(ceiling.cpu_ms_per_doc, 1),
                               "e2e_cpu_ms_per_job": round(e2e.cpu_ms_per_doc, 1),
                               "cpu_ratio": round(ceiling.cpu_ms_per_doc / e2e.cpu_ms_per_doc, 3)})
            results["rounds"] = rounds
            for figure in ("ceiling_docs_per_s", "e2e_docs_per_s", "ceiling_cpu_ms_per_doc", "e2e_cpu_ms_per_job"):
                results[figure] = round(statistics.median(r[figure] for r in rounds), 2)
            results["e2e_ratio"] = round(statistics.median(r["ratio"] for r in rounds), 3)
            results["e2e_cpu_ratio"] = round(statistics.median(r["cpu_ratio"] for r in rounds), 3)
            results["timeline_under_load"] = timeline(jobs)
            idle = bench.idle_waits(counts["idle"])
            results["idle_enqueue_to_start_ms"] = {"median": round(statistics.median(idle), 1),
                                                   "p95": round(percentile(idle, 0.95), 1)}
            print("submit latency ...", flush=True)
            results["latency"] = bench.latency(counts["latency_s"])
            print("worker memory over", counts["rss"], "jobs ...", flush=True)
            results["memory"] = bench.memory(counts["rss"])
        finally:
            bench.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    chart(results, RESULTS / "latest.png")
    report(results)
    return 0


def report(results: dict[str, Any]) -> None:
    lat, mem, tl = results["latency"], results["memory"], results["timeline_under_load"]
    rows = [
        ("raw WeasyPrint ceiling", f"{results['ceiling_docs_per_s']} docs/s",
         f"{results['cores']} processes; median of {len(results['rounds'])} rounds"),
        ("our Renderer, no queue", f"{results['renderer_docs_per_s']} docs/s", ""),
        ("end to end (HTTP + RQ)", f"{results['e2e_docs_per_s']} docs/s",
         f"ratio {results['e2e_ratio']} (target ≥ 0.9); per round {[r['ratio'] for r in results['rounds']]}"),
        ("CPU per document", f"{results['ceiling_cpu_ms_per_doc']} ms raw",
         f"{results['e2e_cpu_ms_per_job']} ms per job end to end (whole service): ratio {results['e2e_cpu_ratio']}"),
        ("enqueue→start, idle worker", f"{results['idle_enqueue_to_start_ms']['median']} ms median",
         f"p95 {results['idle_enqueue_to_start_ms']['p95']} ms (target ≤ 20 median)"),
        ("enqueue→start under load", f"{tl['enqueue_to_start_ms']['median']} ms median", f"p95 {tl['enqueue_to_start_ms']['p95']} ms"),
        ("render time", f"{tl['render_ms']['median']} ms median", f"p95 {tl['render_ms']['p95']} ms"),
        ("store time", f"{tl['store_ms']['median']} ms median", f"p95 {tl['store_ms']['p95']} ms"),
    ]
    for c in (2, 16):
        api, bare = lat[f"api_c{c}"], lat[f"bare_c{c}"]
        rows.append((f"POST /v1/jobs, {c} conns", f"p50 {api['p50_ms']} / p99 {api['p99_ms']} ms",
                     f"{api['requests_per_s']} req/s; p99 ratio {lat[f'p99_ratio_c{c}']} (target ≤ 2)"))
        rows.append((f"bare enqueue, {c} conns", f"p50 {bare['p50_ms']} / p99 {bare['p99_ms']} ms",
                     f"{bare['requests_per_s']} req/s"))
    rows.append((f"worker RSS over {mem['jobs']} jobs", f"{mem['parent_rss_before_mb']} → {mem['parent_rss_after_mb']} MiB",
                 f"growth {mem['parent_growth_pct']} % (target ≤ 10); horse peak {mem['horse_peak_rss_mb']} MiB"))
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<28} {note}")


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench [--quick] [--sections a,b | --fair]`: ceiling, end-to-end throughput, submit latency, job timeline,
worker memory, workloads, reuse, reads, Redis commands; `--fair` measures fair share between tenants alone
(bench/fair.py)."""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Queue
from rq.job import Job

from bench import fair
from bench.ceiling import RenderRun, invoice_data, render_run
from bench.load import wrk_post
from bench.redis_commands import commands_per_job
from bench import engines
from bench.workloads import chromium_run, naive_run, varied_invoice
from shared import keys
from shared.config import PROJECT_ROOT, Settings
from shared.fair_share import FairShare
from shared.job_state import JobState
from shared.metrics import percentile
from shared.records import epoch_of
from shared.queues import QUEUE_ORDER, all_queues
from tests.support import LiveServer, RedisServer, WorkerProcess, children_of, free_port, wait_until

API_KEY = "bench-key"
LATENCY_ROUNDS = 3
"""Rounds of (bare, API) latency runs per connection count; the figures are their medians."""
RESULTS = PROJECT_ROOT / "bench" / "results"
POLL_INTERVAL_S = 0.5
"""How often the polling client reads the job list while it waits for its jobs."""


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
                    "API_KEYS": ",".join([f"bench:{API_KEY}", *(f"{t}:{k}" for t, k in fair.TENANT_KEYS.items())]),
                    "SECRET_KEY": "bench", "PYTHONPATH": str(PROJECT_ROOT),
                    "MAX_ACTIVE_JOBS_PER_TENANT": "1000000", "MAX_QUEUED_JOBS": "1000000", "LOG_LEVEL": "WARNING"}
        self.connection = Redis.from_url(self.env["REDIS_URL"])
        self.sent: Counter[str] = Counter()
        """Commands this bench sent to the service's Redis (its waiting and CPU reads), to leave out of counts."""
        self.workers = [WorkerProcess(self.env, workdir / f"worker-{i}.log") for i in range(cores)]
        for worker in self.workers:
            worker.wait_registered(self.connection)
        self.api = LiveServer(self.env, workdir / "gunicorn.log")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"
        # wrk posts one body over and over: `cache: false` keeps those jobs rendering rather than reused.
        self.invoice = {"template": "invoice.html", "data": invoice_data(), "cache": False}
        self.numbers = itertools.count(1)
        """Each submitted document's own number, so that no two documents of a run are alike."""

    def named(self, count: int) -> list[dict[str, Any]]:
        """`count` named-template invoice jobs, each with its own data."""
        return [{"template": "invoice.html", "data": varied_invoice(next(self.numbers))} for _ in range(count)]

    def inline(self, count: int) -> list[dict[str, Any]]:
        """The same one-page invoices as inline jobs (the template's source sent as `html`)."""
        source = (PROJECT_ROOT / "templates" / "invoice.html").read_text()
        return [{"html": source, "data": varied_invoice(next(self.numbers))} for _ in range(count)]

    def submit(self, bodies: list[dict[str, Any]] | int, threads: int = 4) -> list[str]:
        """POST the jobs from `threads` clients at once (an int: that many named invoices); their ids."""
        bodies = self.named(bodies) if isinstance(bodies, int) else bodies
        ids: list[str] = []
        lock = threading.Lock()

        def run(share: list[dict[str, Any]]) -> None:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {API_KEY}"
                for body in share:
                    response = session.post(f"{self.api.url}/v1/jobs", json=body, timeout=30)
                    response.raise_for_status()
                    with lock:
                        ids.append(response.json()["id"])

        shares = [bodies[i::threads] for i in range(threads)]
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
        self.sent["info"] += 1
        return sum(cpu_s(pid) for pid in pids) + redis_cpu["used_cpu_user"] + redis_cpu["used_cpu_sys"]

    def ended_count(self) -> int:
        """Jobs ended so far, from the counters workers keep: one cheap read, so waiting costs the workers nothing."""
        with self.connection.pipeline(transaction=False) as pipe:
            for outcome in ("completed", "failed"):
                pipe.hvals(keys.stats(outcome))
            self.sent["hvals"] += 2
            return sum(int(v) for replies in pipe.execute() for v in replies)

    def wait_done(self, ids: list[str], ended_before: int, timeout: float = 1800) -> list[Job]:
        wait_until(lambda: self.ended_count() >= ended_before + len(ids), timeout=timeout, interval=0.05)
        self.sent.update({"multi": 1, "exec": 1, "hgetall": len(ids)})
        return Job.fetch_many(ids, connection=self.connection)

    def polled(self, bodies: list[dict[str, Any]], clients: int = 8) -> dict[str, Any]:
        """Submit from `clients` threads and wait as a batch client does: `GET /v1/jobs?limit=200` every 0.5 s.

        Docs/s runs from the first POST to the last job's completion (from the job records), so the
        0.5 s poll step does not round the figure; the polls load the API the whole time.
        """
        cpu_before = self.service_cpu_s()
        started_wall, started = time.time(), time.perf_counter()
        ids = self.submit(bodies, threads=clients)
        wanted, polls, poll_s = set(ids), 0, []
        while True:
            asked = time.perf_counter()
            page = self.session.get(f"{self.api.url}/v1/jobs", params={"limit": 200}, timeout=30).json()["jobs"]
            poll_s.append(time.perf_counter() - asked)
            polls += 1
            ended = [j for j in page if j["id"] in wanted and j["status"] in ("completed", "failed", "canceled")]
            if len(ended) == len(wanted):
                break
            time.sleep(max(0.0, POLL_INTERVAL_S - (time.perf_counter() - asked)))
        observed = time.perf_counter() - started
        last = max(epoch_of(j["finished_at"]) for j in ended)
        time.sleep(0.5)  # the last work-horses exit and are reaped, so their CPU is counted
        return {"jobs": len(ids), "docs_per_s": round(len(ids) / (last - started_wall), 2),
                "observed_docs_per_s": round(len(ids) / observed, 2), "polls": polls,
                "poll_ms_median": round(statistics.median(poll_s) * 1000, 1),
                "failed": sum(j["status"] != "completed" for j in ended),
                "cpu_ms_per_job": round((self.service_cpu_s() - cpu_before) / len(ids) * 1000, 1)}

    def reused(self, count: int) -> dict[str, float]:
        """Submit → completed of a job identical to an earlier completed one (from the job records)."""
        body = self.named(1)[0]
        self.wait_done(self.submit([body], threads=1), self.ended_count())
        took = []
        for _ in range(count):
            ended_before = self.ended_count()
            job = self.wait_done(self.submit([body], threads=1), ended_before)[0]
            assert JobState.from_job(job).result["reused_from"], "the identical job was rendered again"
            took.append((epoch_of(JobState.from_job(job).finished_at) - job.created_at.timestamp()) * 1000)
        return {"jobs": count, "median_ms": round(statistics.median(took), 1), "p95_ms": round(percentile(took, 0.95), 1)}

    def read_cpu(self, rounds: int) -> dict[str, float]:
        """API CPU per `GET /v1/jobs?limit=200` and per `GET /v1/jobs/{id}` (gunicorn's processes, from /proc)."""
        page = self.session.get(f"{self.api.url}/v1/jobs", params={"limit": 200}, timeout=30).json()["jobs"]
        if len(page) < 200:  # a full page: small one-line jobs make up the number
            bodies = [{"html": "<p>{{ n }}</p>", "data": {"n": next(self.numbers)}} for _ in range(200 - len(page))]
            self.wait_done(self.submit(bodies), self.ended_count())
            page = self.session.get(f"{self.api.url}/v1/jobs", params={"limit": 200}, timeout=30).json()["jobs"]
        one = page[0]["id"]

        def api_cpu() -> float:
            return sum(cpu_s(pid) for pid in [self.api.process.pid] + children_of(self.api.process.pid))

        figures = {"page_jobs": len(page)}
        for name, path, count in (("page_of_200_ms", "/v1/jobs?limit=200", rounds),
                                  ("single_job_ms", f"/v1/jobs/{one}", rounds * 10)):
            self.session.get(f"{self.api.url}{path}", timeout=30)
            before = api_cpu()
            for _ in range(count):
                self.session.get(f"{self.api.url}{path}", timeout=30).raise_for_status()
            figures[name] = round((api_cpu() - before) / count * 1000, 2)
        return figures

    def redis_commands(self, count: int) -> dict[str, object]:
        def run() -> tuple[int, Counter[str]]:
            sent_before = Counter(self.sent)
            self.wait_done(self.submit(count), self.ended_count())
            return count, self.sent - sent_before

        return commands_per_job(self.connection, run)

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
            waits.append((epoch_of(JobState.from_job(job).started_at) - job.created_at.timestamp()) * 1000)
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
            for raw in self.connection.smembers(keys.FAIR_TENANTS):  # and what fair share still holds back
                self.connection.delete(*(key(p.value, raw.decode()) for p in QUEUE_ORDER
                                         for key in (keys.fair_held, keys.fair_released)))
            Queue("bench-bare", connection=self.connection).empty()
        return results

    def memory(self, count: int) -> dict[str, float]:
        wait_until(lambda: all(w.total == 0 for w in FairShare(Settings()).waiting(self.connection).values()),
                   timeout=600, interval=0.5)
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
    waits = [(epoch_of(s.started_at) - j.created_at.timestamp()) * 1000 for s, j in zip(states, jobs)]
    parts = {"enqueue_to_start_ms": waits, "render_ms": [s.render_ms for s in states],
             "store_ms": [s.store_ms for s in states]}
    return {name: {"median": round(statistics.median(v), 1), "p95": round(percentile(v, 0.95), 1)}
            for name, v in parts.items()}


def workloads(bench: Bench, cores: int, counts: dict[str, int]) -> dict[str, Any]:
    """In one run, rounds of: raw WeasyPrint, the naive loop, the service (named and inline, the client polling the
    job list every 0.5 s) and headless Chromium, all on the same invoices with different data per document."""
    rounds = []
    for number in range(1, counts["workload_rounds"] + 1):
        print(f"workloads round {number}: raw, naive loop, service named, service inline, Chromium ...", flush=True)
        raw = render_run(cores, counts["ceiling"], plain=True)
        naive = naive_run(cores, counts["naive"])
        named = bench.polled(bench.named(counts["poll_jobs"]))
        inline = bench.polled(bench.inline(counts["poll_jobs"]))
        chromium = chromium_run(cores, counts["chromium"])
        rounds.append({"raw_docs_per_s": round(raw.docs_per_s, 2), "naive_docs_per_s": round(naive.docs_per_s, 2),
                       "service_named": named, "service_inline": inline, "chromium_docs_per_s": round(chromium, 2),
                       "named_vs_naive": round(named["docs_per_s"] / naive.docs_per_s, 3),
                       "inline_vs_raw": round(inline["docs_per_s"] / raw.docs_per_s, 3),
                       "raw_cpu_ms_per_doc": round(raw.cpu_ms_per_doc, 1),
                       "naive_cpu_ms_per_doc": round(naive.cpu_ms_per_doc, 1)})

    def median(pick: Any) -> float:
        return round(statistics.median(pick(r) for r in rounds), 3)

    return {"rounds": rounds, "poll_interval_s": POLL_INTERVAL_S, "jobs_per_service_run": counts["poll_jobs"],
            "raw_docs_per_s": median(lambda r: r["raw_docs_per_s"]),
            "naive_docs_per_s": median(lambda r: r["naive_docs_per_s"]),
            "service_named_docs_per_s": median(lambda r: r["service_named"]["docs_per_s"]),
            "service_inline_docs_per_s": median(lambda r: r["service_inline"]["docs_per_s"]),
            "chromium_docs_per_s": median(lambda r: r["chromium_docs_per_s"]),
            "named_vs_naive": median(lambda r: r["named_vs_naive"]),
            "inline_vs_raw": median(lambda r: r["inline_vs_raw"])}


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [name for name in ("e2e_docs_per_s", "workloads", "engines", "latency") if name in results]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.2), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        if panel == "e2e_docs_per_s":
            names = ["raw WeasyPrint\n(ceiling)", "our Renderer\n(no queue)", "end to end\n(HTTP + RQ)"]
            values = [results["ceiling_docs_per_s"], results["renderer_docs_per_s"], results["e2e_docs_per_s"]]
            bars = axis.bar(names, values, color=["#8a96a3", "#5fb3a8", "#1b3a5c"])
            axis.bar_label(bars, fmt="%.1f")
            axis.set_ylabel("invoices per second")
            axis.set_title(f"Throughput on {results['cores']} cores (ratio {results['e2e_ratio']:.2f})")
        elif panel == "workloads":
            work = results["workloads"]
            names = ["raw\nWeasyPrint", "naive\nloop", "Chromium\n(playwright)", "service\nnamed", "service\ninline"]
            values = [work["raw_docs_per_s"], work["naive_docs_per_s"], work["chromium_docs_per_s"],
                      work["service_named_docs_per_s"], work["service_inline_docs_per_s"]]
            bars = axis.bar(names, values, color=["#8a96a3", "#c9a66b", "#b5651d", "#1b3a5c", "#5fb3a8"])
            axis.bar_label(bars, fmt="%.1f")
            axis.set_ylabel("documents per second")
            axis.set_title(f"Different data per document; client polls the list every {POLL_INTERVAL_S} s\n"
                           f"named {work['named_vs_naive']:.2f} × naive, inline {work['inline_vs_raw']:.2f} × raw",
                           fontsize=10)
        elif panel == "engines":
            rows = results["engines"]["side_by_side"]
            names = [name.removesuffix(".html") for name in rows]
            x = range(len(names))
            for shift, (label, pick, color) in zip((-0.3, -0.1, 0.1, 0.3), (
                    ("service, weasyprint", lambda r: r["weasyprint"]["docs_per_s"], "#1b3a5c"),
                    ("service, chromium", lambda r: r["chromium"]["docs_per_s"], "#5fb3a8"),
                    ("playwright loop, one page", lambda r: r["playwright_loop_docs_per_s"], "#b5651d"),
                    ("playwright loop, context per doc", lambda r: r["playwright_fresh_context_docs_per_s"],
                     "#e0a96d"))):
                bars = axis.bar([i + shift for i in x], [pick(r) for r in rows.values()], width=0.2, label=label,
                                color=color)
                axis.bar_label(bars, fmt="%.1f", fontsize=8)
            axis.set_xticks(list(x), names)
            axis.set_ylabel("documents per second")
            axis.set_title("Two engines, the client polling the job list")
            axis.legend(fontsize=8)
        else:
            latency = results["latency"]
            labels = ["bare c2", "api c2", "bare c16", "api c16"]
            keys = ["bare_c2", "api_c2", "bare_c16", "api_c16"]
            x = range(len(keys))
            axis.bar([i - 0.2 for i in x], [latency[k]["p50_ms"] for k in keys], width=0.4, label="p50",
                     color="#5fb3a8")
            axis.bar([i + 0.2 for i in x], [latency[k]["p99_ms"] for k in keys], width=0.4, label="p99",
                     color="#1b3a5c")
            axis.set_xticks(list(x), labels)
            axis.set_ylabel("ms")
            axis.set_title("POST latency while workers render")
            axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


SECTIONS = ("throughput", "latency", "memory", "workloads", "engines", "reuse", "reads", "redis")
"""What `--sections` may name; all of them by default (what `make bench` runs)."""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small counts, for a fast check")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--fair", action="store_true", help="only the fair-share run (A floods, B submits a few)")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS):
        parser.error(f"unknown sections: {sorted(sections - set(SECTIONS))}")
    cores = os.cpu_count() or 1
    if args.fair:
        return fair_only(cores)
    counts = ({"rounds": 3, "ceiling": 8, "e2e": 30, "idle": 10, "latency_s": 2, "rss": 200, "workload_rounds": 1,
               "naive": 8, "chromium": 8, "poll_jobs": 40, "reuse": 10, "reads": 10, "redis": 30,
               "engine_jobs": 12, "browser_prints": 60} if args.quick
              else {"rounds": 5, "ceiling": 20, "e2e": 100, "idle": 30, "latency_s": 6, "rss": 1000,
                    "workload_rounds": 3, "naive": 20, "chromium": 20, "poll_jobs": 200, "reuse": 30, "reads": 20,
                    "redis": 100, "engine_jobs": 80, "browser_prints": 500})
    results: dict[str, Any] = {"cores": cores, "mode": "quick" if args.quick else "full",
                               "sections": [s for s in SECTIONS if s in sections],
                               "measured_at": datetime.now().isoformat(timespec="seconds")}
    if "throughput" in sections:
        print("our Renderer without a queue, in", cores, "processes ...", flush=True)
        results["renderer_docs_per_s"] = round(render_run(cores, counts["ceiling"], plain=False).docs_per_s, 2)
    with tempfile.TemporaryDirectory(prefix="pdfq-bench-") as workdir:
        bench = Bench(Path(workdir), cores)
        try:
            bench.throughput(cores * 2)  # let every worker take a job once
            if "throughput" in sections:
                throughput(bench, cores, counts, results)
            if "workloads" in sections:
                results["workloads"] = workloads(bench, cores, counts)
            if "engines" in sections:
                results["engines"] = {"side_by_side": engines.side_by_side(bench, cores, counts["engine_jobs"])}
            if "reuse" in sections:
                print("reused jobs ...", flush=True)
                results["reuse"] = bench.reused(counts["reuse"])
            if "reads" in sections:
                print("API CPU per job read ...", flush=True)
                results["reads"] = bench.read_cpu(counts["reads"])
            if "redis" in sections:
                print(f"Redis commands over {counts['redis']} jobs ...", flush=True)
                results["redis_commands"] = bench.redis_commands(counts["redis"])
            if "latency" in sections:
                print("submit latency ...", flush=True)
                results["latency"] = bench.latency(counts["latency_s"])
            if "memory" in sections:
                print("worker memory over", counts["rss"], "jobs ...", flush=True)
                results["memory"] = bench.memory(counts["rss"])
        finally:
            bench.close()
    if "engines" in sections:
        print(f"the browser service alone over {counts['browser_prints']} prints ...", flush=True)
        results["engines"]["browser_service"] = engines.browser_service(counts["browser_prints"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    targets = [RESULTS]
    if results["mode"] == "full" and sections == set(SECTIONS):
        targets.append(PROJECT_ROOT / "bench")  # the committed figures come from full runs only
    for folder in targets:
        (folder / "latest.json").write_text(json.dumps(results, indent=2))
        chart(results, folder / "latest.png")
    report(results)
    return 0


def throughput(bench: Bench, cores: int, counts: dict[str, int], results: dict[str, Any]) -> None:
    """Rounds of ceiling then end to end, the job timeline, and enqueue-to-start on idle workers."""
    rounds = []
    jobs: list[Job] = []
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


def fair_only(cores: int) -> int:
    with tempfile.TemporaryDirectory(prefix="pdfq-bench-") as workdir:
        bench = Bench(Path(workdir), cores)
        try:
            bench.throughput(cores * 2)  # let every worker take a job once
            results = {"cores": cores, "measured_at": datetime.now().isoformat(timespec="seconds"), **fair.run(bench)}
        finally:
            bench.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fair.json").write_text(json.dumps(results, indent=2))
    fair.chart(results, RESULTS / "fair.png")
    fair.report(results)
    return 0


def report(results: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str]] = []
    if "rounds" in results:
        tl = results["timeline_under_load"]
        rows += [
            ("raw WeasyPrint ceiling", f"{results['ceiling_docs_per_s']} docs/s",
             f"{results['cores']} processes; median of {len(results['rounds'])} rounds"),
            ("our Renderer, no queue", f"{results['renderer_docs_per_s']} docs/s", ""),
            ("end to end (HTTP + RQ)", f"{results['e2e_docs_per_s']} docs/s",
             f"ratio {results['e2e_ratio']} (target ≥ 0.9); per round {[r['ratio'] for r in results['rounds']]}"),
            ("CPU per document", f"{results['ceiling_cpu_ms_per_doc']} ms raw",
             f"{results['e2e_cpu_ms_per_job']} ms per job end to end (whole service): ratio {results['e2e_cpu_ratio']}"),
            ("enqueue→start, idle worker", f"{results['idle_enqueue_to_start_ms']['median']} ms median",
             f"p95 {results['idle_enqueue_to_start_ms']['p95']} ms (target ≤ 20 median)"),
            ("enqueue→start under load", f"{tl['enqueue_to_start_ms']['median']} ms median",
             f"p95 {tl['enqueue_to_start_ms']['p95']} ms"),
            ("render time", f"{tl['render_ms']['median']} ms median", f"p95 {tl['render_ms']['p95']} ms"),
            ("store time", f"{tl['store_ms']['median']} ms median", f"p95 {tl['store_ms']['p95']} ms"),
        ]
    if "workloads" in results:
        work = results["workloads"]
        rows += [
            ("raw WeasyPrint, varied data", f"{work['raw_docs_per_s']} docs/s", f"median of {len(work['rounds'])} rounds"),
            ("naive Jinja2 + WeasyPrint loop", f"{work['naive_docs_per_s']} docs/s", ""),
            ("headless Chromium (playwright)", f"{work['chromium_docs_per_s']} docs/s", "warm browser, one page per core"),
            ("service, named, list polled", f"{work['service_named_docs_per_s']} docs/s",
             f"{work['named_vs_naive']} × naive (target ≥ 1.0)"),
            ("service, inline, list polled", f"{work['service_inline_docs_per_s']} docs/s",
             f"{work['inline_vs_raw']} × raw (target ≥ 0.95)"),
        ]
    if "reuse" in results:
        rows.append(("reused job submit→completed", f"{results['reuse']['median_ms']} ms median",
                     f"p95 {results['reuse']['p95_ms']} ms (target ≤ 50 median)"))
    if "reads" in results:
        reads = results["reads"]
        rows.append(("API CPU per job read", f"{reads['page_of_200_ms']} ms / page of {reads['page_jobs']}",
                     f"{reads['single_job_ms']} ms per single job (targets ≤ 5 / ≤ 1)"))
    if "redis_commands" in results:
        redis_figures = results["redis_commands"]
        rows.append(("Redis commands per job", f"{redis_figures['per_job']} in the run",
                     f"{redis_figures['per_job_net']} without the idle background ({redis_figures['idle_per_s']}/s)"))
    if "engines" in results:
        for name, row in results["engines"]["side_by_side"].items():
            rows.append((f"{name}: weasyprint / chromium", f"{row['weasyprint']['docs_per_s']} / "
                         f"{row['chromium']['docs_per_s']} docs/s",
                         f"playwright loop {row['playwright_loop_docs_per_s']}: chromium ratio {row['chromium_vs_loop']}"
                         f" (target ≥ 0.85); loop with a fresh context per document "
                         f"{row['playwright_fresh_context_docs_per_s']}: ratio {row['chromium_vs_fresh_context_loop']}"
                         f"; bytes {row['weasyprint']['bytes_per_doc']} / "
                         f"{row['chromium']['bytes_per_doc']}; peak PSS {row['weasyprint']['peak_pss_mb']} / "
                         f"{row['chromium']['peak_pss_mb']} MiB"))
        service = results["engines"]["browser_service"]
        rows.append((f"browser service, {service['prints']} prints", f"open {service['open_ms_median']} ms median",
                     f"p95 {service['open_ms_p95']} ms (target ≤ 30); a job waited "
                     f"{service['job_wait_for_context_ms_median']} ms for it; memory every 50 prints "
                     f"{service['memory_mb_every_50']} MiB"))
    if "latency" in results:
        lat = results["latency"]
        for c in (2, 16):
            api, bare = lat[f"api_c{c}"], lat[f"bare_c{c}"]
            rows.append((f"POST /v1/jobs, {c} conns", f"p50 {api['p50_ms']} / p99 {api['p99_ms']} ms",
                         f"{api['requests_per_s']} req/s; p99 ratio {lat[f'p99_ratio_c{c}']} (target ≤ 2)"))
            rows.append((f"bare enqueue, {c} conns", f"p50 {bare['p50_ms']} / p99 {bare['p99_ms']} ms",
                         f"{bare['requests_per_s']} req/s"))
    if "memory" in results:
        mem = results["memory"]
        rows.append((f"worker RSS over {mem['jobs']} jobs",
                     f"{mem['parent_rss_before_mb']} → {mem['parent_rss_after_mb']} MiB",
                     f"growth {mem['parent_growth_pct']} % (target ≤ 10); horse peak {mem['horse_peak_rss_mb']} MiB"))
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<28} {note}")


if __name__ == "__main__":
    sys.exit(main())

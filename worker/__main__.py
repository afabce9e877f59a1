"""`python -m worker`: one RQ worker draining urgent, high, normal, low in that order."""
from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path

from shared.errors import ConfigError
from shared.logs import configure_logging
from worker.process import build_worker, check_fast_font_subsetter, warm_up
from worker.runtime import WorkerRuntime, get_runtime

log = logging.getLogger("worker")

RENDER_NICENESS = 5
"""Renders yield the CPU to an API on the same machine, so submissions stay fast while workers are busy."""


def yield_cpu(niceness: int) -> None:
    """Lower this worker's CPU priority, also where the kernel groups processes by session (autogroup).

    With autogroup on (Linux's default on most distributions and VMs), nice only ranks processes
    inside one session, and every worker runs in a session of its own: its group's nice must drop too.
    """
    os.nice(niceness)
    autogroup = Path("/proc/self/autogroup")
    if autogroup.exists():
        try:
            autogroup.write_text(str(niceness))
        except OSError:
            log.warning("could not lower the session's CPU priority", extra={"niceness": niceness})


def start_browser(runtime: WorkerRuntime) -> None:
    """The Chromium engine's warm browser; without one this worker renders WeasyPrint jobs only."""
    if runtime.chromium is None:
        log.info("chromium engine off: no browser found (install chromium or set CHROMIUM_PATH)")
        return
    try:
        runtime.chromium.browser.start()
    except ConfigError as exc:
        log.warning("chromium engine off: the browser did not start", extra={"reason": str(exc)})
        return
    log.info("chromium engine ready", extra={"chromium": runtime.chromium.browser.version})


def main() -> int:
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        check_fast_font_subsetter()
        runtime = get_runtime()
        warm_up()
    except ConfigError as exc:
        log.error("worker refused to start", extra={"reason": str(exc)})
        return 2
    # Objects built during warm-up are never collected again: horses then do not touch (and copy) their pages.
    gc.freeze()
    yield_cpu(RENDER_NICENESS)
    start_browser(runtime)  # after yield_cpu: the browser renders at the workers' lower priority too
    worker = build_worker(runtime.connection, runtime.settings)
    worker.fair.publish(runtime.connection)
    log.info("worker ready", extra={"worker": worker.name, "queues": [q.name for q in worker.queues]})
    try:
        worker.work(with_scheduler=True, logging_level=os.environ.get("LOG_LEVEL", "INFO"))
    finally:
        if runtime.chromium is not None:
            runtime.chromium.browser.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

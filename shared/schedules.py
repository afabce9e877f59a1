"""Tenants' recurring jobs: stored in Redis, fired exactly once per run however many schedulers run."""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from redis import Redis

from shared import keys
from shared.admission import check_capacity
from shared.config import Settings
from shared.enqueue import enqueue_render
from shared.errors import CapacityExceeded
from shared.records import iso, utcnow
from shared.schema import JobRequest, ScheduleRequest

log = logging.getLogger(__name__)

# Move a schedule to its next run only if nobody else already did: the winner fires the run.
_CLAIM_RUN = """
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if current and tonumber(current) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Schedule:
    id: str
    tenant: str
    cron: str
    timezone: str
    job: dict[str, Any]
    created_at: str

    def next_run_after(self, moment: float) -> float:
        """Epoch seconds of the first run strictly after `moment`, reading the cron in the schedule's timezone."""
        local = datetime.fromtimestamp(moment, ZoneInfo(self.timezone))
        return croniter(self.cron, local).get_next(datetime).timestamp()

    def job_request(self) -> JobRequest:
        """The job each run creates: the tenant's request with `metadata.schedule_id` added, validated again
        (the added id counts towards the metadata limit)."""
        metadata = {**self.job.get("metadata", {}), "schedule_id": self.id}
        return JobRequest.model_validate({**self.job, "metadata": metadata})

    def to_resource(self, next_run: float | None) -> dict[str, Any]:
        return {"id": self.id, "cron": self.cron, "timezone": self.timezone, "job": self.job,
                "next_run_at": iso(datetime.fromtimestamp(next_run, timezone.utc)) if next_run else None,
                "created_at": self.created_at}


def create(connection: Redis, tenant: str, request: ScheduleRequest) -> tuple[Schedule, float]:
    """Store a schedule; raises ValidationError if the job it would run is invalid (e.g. metadata too large)."""
    schedule = Schedule(id=uuid.uuid4().hex, tenant=tenant, cron=request.cron, timezone=request.timezone,
                        job=request.job.model_dump(mode="json", exclude_none=True), created_at=iso(utcnow()) or "")
    schedule.job_request()
    next_run = schedule.next_run_after(time.time())
    with connection.pipeline() as pipe:
        pipe.set(keys.schedule(schedule.id), json.dumps(asdict(schedule)))
        pipe.sadd(keys.tenant_schedules(tenant), schedule.id)
        pipe.zadd(keys.SCHEDULES_DUE, {schedule.id: next_run})
        pipe.execute()
    return schedule, next_run


def load(connection: Redis, schedule_id: str) -> Schedule | None:
    raw = connection.get(keys.schedule(schedule_id))
    return Schedule(**json.loads(raw)) if raw else None


def next_run_of(connection: Redis, schedule_id: str) -> float | None:
    return connection.zscore(keys.SCHEDULES_DUE, schedule_id)


def count_for(connection: Redis, tenant: str) -> int:
    return connection.scard(keys.tenant_schedules(tenant))


def for_tenant(connection: Redis, tenant: str) -> list[tuple[Schedule, float | None]]:
    ids = sorted(i.decode() for i in connection.smembers(keys.tenant_schedules(tenant)))
    found = [(s, next_run_of(connection, s.id)) for s in (load(connection, i) for i in ids) if s is not None]
    return sorted(found, key=lambda pair: pair[0].created_at, reverse=True)


def delete(connection: Redis, schedule: Schedule) -> None:
    with connection.pipeline() as pipe:
        pipe.zrem(keys.SCHEDULES_DUE, schedule.id)
        pipe.srem(keys.tenant_schedules(schedule.tenant), schedule.id)
        pipe.delete(keys.schedule(schedule.id))
        pipe.execute()


def fire_due(connection: Redis, settings: Settings, now: float | None = None) -> list[str]:
    """Enqueue one ordinary job per due run; a run claimed by another scheduler is skipped.

    A run that cannot be enqueued (over capacity, invalid, Redis error) is logged and dropped,
    so one schedule never stops the others or the scheduler.
    """
    now = time.time() if now is None else now
    claim = connection.register_script(_CLAIM_RUN)
    fired = []
    for raw_id, due_at in connection.zrangebyscore(keys.SCHEDULES_DUE, "-inf", now, withscores=True):
        schedule = load(connection, raw_id.decode())
        if schedule is None:
            connection.zrem(keys.SCHEDULES_DUE, raw_id)
            continue
        # Runs missed while no scheduler ran are not replayed: the next one is after `now`.
        if not claim(keys=[keys.SCHEDULES_DUE], args=[schedule.id, repr(due_at), schedule.next_run_after(now)]):
            continue
        job_id = _fire(connection, settings, schedule, job_id=f"{schedule.id}-{int(due_at)}")
        if job_id is not None:
            fired.append(job_id)
    return fired


def _fire(connection: Redis, settings: Settings, schedule: Schedule, job_id: str) -> str | None:
    """Enqueue one claimed run; the job id, or None when the run was skipped or failed (logged either way)."""
    run = {"schedule_id": schedule.id, "tenant": schedule.tenant}
    try:
        check_capacity(connection, settings, schedule.tenant)
        job = enqueue_render(schedule.job_request(), tenant=schedule.tenant, connection=connection,
                             settings=settings, job_id=job_id)
    except CapacityExceeded as exc:
        log.warning("schedule run skipped", extra={**run, "reason": exc.code})
        return None
    except Exception as exc:  # one bad run must not stop the others; the type only, as messages may quote job data
        log.error("schedule run failed", extra={**run, "error": type(exc).__name__})
        return None
    log.info("schedule fired", extra={**run, "job_id": job.id})
    return job.id

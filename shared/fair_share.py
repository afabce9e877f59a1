"""Fair share between tenants inside each priority: held jobs, their release into RQ's queues, and the start gate.

Each tenant keeps at most `weight` jobs per priority in RQ's queue; the rest wait in a held list of its
own and one is released (at the queue's tail) each time one of its jobs leaves the queue. The queue is
then a rotation of tenants in proportion to their weights, workers still drain the four RQ queues in
priority order, and `rq info` and rq-dashboard see them as ever. Every step is one Lua script, so two
APIs, several workers and a maintenance pass can run them at once; see README "Fair share".
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Sequence

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job, JobStatus as RQStatus
from rq.utils import as_text, utcparse

from shared import keys
from shared.config import DEFAULT_TENANT_WEIGHT, Settings
from shared.job_state import JobState, is_render_state
from shared.queues import QUEUE_ORDER, Priority

SLOTS_PER_WEIGHT = 1
"""Jobs per unit of weight a tenant may have in one RQ queue at once; one keeps another tenant's wait shortest."""
UNLIMITED_SLOTS = 1_000_000_000
"""Slots with FAIR_SHARE=off: every job goes straight into its queue (plain FIFO)."""
HEAD_SCAN = 10
"""Jobs looked at from each queue's head for the oldest wait: RQ pops from there, but a job pushed `at_front`
may be younger."""
HANDOFF_GRACE_S = 30
"""A job released but absent from its queue, or taken but never started, for this long was lost in a
worker's hand-off (a worker killed between taking and starting it): maintenance gives it back."""

# Functions every script below shares. `cfg` (ARGV[1], JSON) carries the key layout and the caller's own
# policy; the fleet's policy, as the last API or worker started published it, takes precedence.
_PRELUDE = """
local cfg = cjson.decode(ARGV[1])
local published = redis.call('GET', cfg.policy_key)
local policy = published and cjson.decode(published) or cfg.policy
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function slots(t) return policy.slots[t] or policy.default_slots end
local function waits(id) return redis.call('HGET', cfg.job .. id, 'status') == 'queued' end
local function in_flight(t)
  local n = redis.call('ZCARD', cfg.running .. t)
  for _, p in ipairs(cfg.order) do n = n + redis.call('ZCARD', cfg.released[p] .. t) end
  return n
end
-- Release the tenant's oldest held jobs, most urgent priority first, while it has a free slot in that
-- queue and room under its running cap; ids whose record is gone or no longer queued are dropped.
local function refill(t)
  local room = policy.cap > 0 and policy.cap - in_flight(t) or math.huge
  local stamp = now()
  for _, p in ipairs(cfg.order) do
    local held, released = cfg.held[p] .. t, cfg.released[p] .. t
    local free = slots(t) - redis.call('ZCARD', released)
    while free > 0 and room > 0 do
      local id = redis.call('LPOP', held)
      if not id then break end
      if waits(id) then
        redis.call('ZADD', released, stamp, id)
        redis.call('RPUSH', cfg.queue[p], id)
        free = free - 1
        room = room - 1
      end
    end
  end
end
local function tidy(t)
  if redis.call('ZCARD', cfg.running .. t) > 0 then return end
  for _, p in ipairs(cfg.order) do
    if redis.call('LLEN', cfg.held[p] .. t) + redis.call('ZCARD', cfg.released[p] .. t) > 0 then return end
  end
  redis.call('SREM', cfg.tenants, t)
end
-- A worker took `id` from queue `p`: count it running, or hold it again if its tenant is at its cap
-- (a retry RQ put straight into the queue). False when it must not start.
local function take(p, id)
  local t = redis.call('HGET', cfg.job .. id, cfg.field)
  if not t or not p then return true end
  redis.call('ZREM', cfg.released[p] .. t, id)
  redis.call('SADD', cfg.tenants, t)
  if policy.cap > 0 and redis.call('ZCARD', cfg.running .. t) >= policy.cap then
    redis.call('LPUSH', cfg.held[p] .. t, id)
    return false
  end
  redis.call('ZADD', cfg.running .. t, now(), id)
  refill(t)
  return true
end
"""

# push_job_id: a tenant's job joins its held list and is released at once if the tenant has a free
# slot; any other job (webhook delivery, system job) goes into the queue as RQ would put it.
_ADMIT = _PRELUDE + """
local key, id, front = ARGV[2], ARGV[3], ARGV[4] == '1'
local p = cfg.priority_of[key]
local t = p and redis.call('HGET', cfg.job .. id, cfg.field)
if not t then
  redis.call(front and 'LPUSH' or 'RPUSH', key, id)
  return 0
end
redis.call(front and 'LPUSH' or 'RPUSH', cfg.held[p] .. t, id)
redis.call('SADD', cfg.tenants, t)
refill(t)
return 1
"""

# A worker's dequeue: the first job of the first queue that may start now, its tenant's next job
# released behind it in the same step (so a queue never runs dry while that tenant has jobs held).
_TAKE_FIRST = _PRELUDE + """
for i = 2, #ARGV do
  local key = ARGV[i]
  while true do
    local id = redis.call('LPOP', key)
    if not id then break end
    if take(cfg.priority_of[key], id) then return {key, id} end
  end
end
return false
"""

# The same bookkeeping for a job a worker's blocking pop (BLPOP) took while all queues were empty.
_TAKEN = _PRELUDE + """
return take(cfg.priority_of[ARGV[2]], ARGV[3]) and 1 or 0
"""

# One attempt of a tenant's job ended (completed, failed, stopped, killed): free its running slot.
_ENDED = _PRELUDE + """
local t, id = ARGV[2], ARGV[3]
redis.call('ZREM', cfg.running .. t, id)
refill(t)
tidy(t)
return 1
"""

# Cancel's claim on a waiting job: take it out of its queue or its held list (1), or find it in neither (0).
_WITHDRAW = """
local function withdraw(p, t, id)
  local n = redis.call('LREM', cfg.queue[p], 1, id) + redis.call('LREM', cfg.held[p] .. t, 1, id)
  if n > 0 then
    redis.call('ZREM', cfg.released[p] .. t, id)
    refill(t)
    tidy(t)
  end
  return n
end
"""

# Maintenance, one tenant at a time: give back jobs lost in a hand-off, free slots of attempts that ended
# without saying so (worker killed), then release what the tenant may run.
_RECONCILE = _PRELUDE + """
local t = ARGV[2]
local cutoff = now() - cfg.grace
local returned = 0
local function back(p, id)
  if waits(id) and not redis.call('LPOS', cfg.queue[p], id) and not redis.call('LPOS', cfg.held[p] .. t, id) then
    redis.call('LPUSH', cfg.held[p] .. t, id)
    returned = returned + 1
  end
end
for _, p in ipairs(cfg.order) do
  local entries = redis.call('ZRANGEBYSCORE', cfg.released[p] .. t, '-inf', cutoff)
  for _, id in ipairs(entries) do
    if not redis.call('LPOS', cfg.queue[p], id) then
      redis.call('ZREM', cfg.released[p] .. t, id)
      back(p, id)
    end
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', cfg.running .. t, '-inf', cutoff)) do
  if redis.call('HGET', cfg.job .. id, 'status') ~= 'started' then
    redis.call('ZREM', cfg.running .. t, id)
    local p = cfg.priority_of[cfg.queue_prefix .. (redis.call('HGET', cfg.job .. id, 'origin') or '')]
    if p then back(p, id) end
  end
end
refill(t)
tidy(t)
return returned
"""

# Per priority: jobs in RQ's queue, jobs held, tenants with waiting jobs, the oldest waiting job's
# enqueued_at among the first HEAD_SCAN (ARGV[2]) of the queue and each tenant's first held job (RQ writes one
# fixed ISO format, so strings compare as times; '' when none; an id whose record is gone is skipped).
_WAITING = _PRELUDE + """
local tenants = redis.call('SMEMBERS', cfg.tenants)
local out = {}
for i, p in ipairs(cfg.order) do
  local oldest = ''
  local function older(id)
    local at = id and redis.call('HGET', cfg.job .. id, 'enqueued_at')
    if at and (oldest == '' or at < oldest) then oldest = at end
  end
  for _, id in ipairs(redis.call('LRANGE', cfg.queue[p], 0, tonumber(ARGV[2]) - 1)) do older(id) end
  local held, waiting = 0, 0
  for _, t in ipairs(tenants) do
    local n = redis.call('LLEN', cfg.held[p] .. t)
    held = held + n
    if n > 0 then older(redis.call('LINDEX', cfg.held[p] .. t, 0)) end
    if n + redis.call('ZCARD', cfg.released[p] .. t) > 0 then waiting = waiting + 1 end
  end
  out[i] = {redis.call('LLEN', cfg.queue[p]), held, waiting, oldest}
end
return out
"""

# Jobs waiting in all four priorities, held ones included (the global admission limit).
_WAITING_TOTAL = _PRELUDE + """
local tenants = redis.call('SMEMBERS', cfg.tenants)
local n = 0
for _, p in ipairs(cfg.order) do
  n = n + redis.call('LLEN', cfg.queue[p])
  for _, t in ipairs(tenants) do n = n + redis.call('LLEN', cfg.held[p] .. t) end
end
return n
"""

# How many jobs start before this one: all waiting jobs of higher priorities, then either its place in
# the queue, or, held, the queue, its tenant's earlier held jobs and the other tenants' held jobs that the
# rotation releases first (in proportion to weights). -1 when it waits in neither (retry schedule, starting).
_PLACE = _PRELUDE + """
local p, t, id = ARGV[2], ARGV[3], ARGV[4]
local tenants = redis.call('SMEMBERS', cfg.tenants)
local ahead = 0
for _, q in ipairs(cfg.order) do
  if q == p then break end
  ahead = ahead + redis.call('LLEN', cfg.queue[q])
  for _, u in ipairs(tenants) do ahead = ahead + redis.call('LLEN', cfg.held[q] .. u) end
end
local index = redis.call('LPOS', cfg.queue[p], id)
if index then return ahead + index end
local h = redis.call('LPOS', cfg.held[p] .. t, id)
if not h then return -1 end
ahead = ahead + redis.call('LLEN', cfg.queue[p]) + h
for _, u in ipairs(tenants) do
  if u ~= t then
    local share = math.floor(h * slots(u) / slots(t) + 0.5)
    ahead = ahead + math.min(redis.call('LLEN', cfg.held[p] .. u), share)
  end
end
return ahead
"""


@dataclass(frozen=True)
class Waiting:
    """One priority's waiting jobs: in RQ's queue, held, how many tenants wait, the oldest one's age (s)."""

    in_queue: int
    held: int
    tenants: int
    oldest_age_s: float

    @property
    def total(self) -> int:
        return self.in_queue + self.held


@dataclass(frozen=True)
class TenantUsage:
    """A tenant's own figures: waiting jobs (held or in a queue) and its running jobs with their start times."""

    waiting: int
    running: list[tuple[str, float]]


class FairShare:
    """The policy this process's settings give (weights, running cap), applied by the scripts above."""

    def __init__(self, settings: Settings) -> None:
        slots = ({t: w * SLOTS_PER_WEIGHT for t, w in settings.tenant_weights.items()} if settings.fair_share else {})
        self.policy = json.dumps({
            "cap": max(settings.max_running_jobs_per_tenant, 0),
            "slots": slots or {"": 0},  # a JSON object even when empty (cjson reads {} as an empty table)
            "default_slots": DEFAULT_TENANT_WEIGHT * SLOTS_PER_WEIGHT if settings.fair_share else UNLIMITED_SLOTS,
        }, separators=(",", ":"))
        self.config = json.dumps({
            "order": [p.value for p in QUEUE_ORDER],
            "queue": {p.value: keys.rq_queue(p.value) for p in QUEUE_ORDER},
            "queue_prefix": keys.rq_queue(""),
            "priority_of": {keys.rq_queue(p.value): p.value for p in QUEUE_ORDER},
            "held": {p.value: keys.fair_held(p.value, "") for p in QUEUE_ORDER},
            "released": {p.value: keys.fair_released(p.value, "") for p in QUEUE_ORDER},
            "running": keys.tenant_running(""),
            "tenants": keys.FAIR_TENANTS,
            "job": Job.redis_job_namespace_prefix,
            "field": keys.JOB_TENANT_FIELD,
            "policy_key": keys.FAIR_POLICY,
            "policy": json.loads(self.policy),
            "grace": HANDOFF_GRACE_S,
        }, separators=(",", ":"))

    def publish(self, connection: Redis) -> None:
        """Make this process's policy the fleet's: every script reads it, so API and workers never disagree."""
        connection.set(keys.FAIR_POLICY, self.policy)

    def run(self, script: str, client: Redis | Pipeline, *args: Any, connection: Redis | None = None,
            keys: Sequence[str] = ()) -> Any:
        """Run a script built on the prelude (the key layout and this process's policy go as ARGV[1]); on a
        pipeline its reply comes with the pipeline's."""
        owner = connection if connection is not None else client
        return owner.register_script(script)(keys=list(keys), args=[self.config, *args],  # type: ignore[union-attr]
                                              client=client)

    def admit(self, client: Redis | Pipeline, queue_key: str, job_id: str, at_front: bool = False,
              connection: Redis | None = None) -> Any:
        return self.run(_ADMIT, client, queue_key, job_id, "1" if at_front else "0", connection=connection)

    def take_first(self, connection: Redis, queue_keys: Sequence[str]) -> tuple[str, str] | None:
        taken = self.run(_TAKE_FIRST, connection, *queue_keys)
        return (as_text(taken[0]), as_text(taken[1])) if taken else None

    def taken(self, connection: Redis, queue_key: str, job_id: str) -> bool:
        return bool(self.run(_TAKEN, connection, queue_key, job_id))

    def attempt_ended(self, connection: Redis, tenant: str, job_id: str) -> None:
        self.run(_ENDED, connection, tenant, job_id)

    def reconcile(self, connection: Redis) -> int:
        """The maintenance pass: every tenant with fair-share state put right; how many lost jobs came back."""
        returned = 0
        for tenant in connection.smembers(keys.FAIR_TENANTS):
            returned += int(self.run(_RECONCILE, connection, as_text(tenant)))
        return returned

    def waiting(self, connection: Redis, now: float | None = None) -> dict[str, Waiting]:
        moment = time.time() if now is None else now
        found = {}
        replies = self.run(_WAITING, connection, HEAD_SCAN)
        for priority, (in_queue, held, tenants, oldest) in zip(QUEUE_ORDER, replies):
            stamp = oldest.decode() if isinstance(oldest, bytes) else oldest
            age = max(0.0, moment - utcparse(stamp).timestamp()) if stamp else 0.0
            found[priority.value] = Waiting(int(in_queue), int(held), int(tenants), age)
        return found

    def add_waiting_total(self, pipe: Pipeline, connection: Redis) -> None:
        """Queue on a pipeline the number of jobs waiting in all queues, held ones included."""
        self.run(_WAITING_TOTAL, pipe, connection=connection)

    def add_place(self, pipe: Pipeline, connection: Redis, priority: str, tenant: str, job_id: str) -> None:
        """Queue on a pipeline the count of jobs that start before this one (-1: it is not waiting)."""
        self.run(_PLACE, pipe, priority, tenant, job_id, connection=connection)

    def usage(self, connection: Redis, tenant: str) -> TenantUsage:
        with connection.pipeline(transaction=False) as pipe:
            for priority in QUEUE_ORDER:
                pipe.llen(keys.fair_held(priority.value, tenant))
                pipe.zcard(keys.fair_released(priority.value, tenant))
            pipe.zrange(keys.tenant_running(tenant), 0, -1, withscores=True)
            *counts, running = pipe.execute()
        return TenantUsage(sum(counts), [(job_id.decode(), float(at)) for job_id, at in running])


def withdrawing(body: str) -> str:
    """A script (run with `FairShare.run`) whose body may call `withdraw(priority, tenant, id)`: how another
    module's claim on a waiting job (cancel) takes it out of the queue or held list in the same atomic step."""
    return _PRELUDE + _WITHDRAW + body


class FairQueue(Queue):
    """An RQ queue whose pushes go through the tenant's held list and whose pops honour the policy.

    Use `fair_queue_class(settings)`, which binds `fair`; RQ builds further instances of the class itself
    (a worker's `from_queue_key`), so the policy cannot travel in `__init__`.
    """

    fair: ClassVar[FairShare]

    def _persist_job(self, job: Job, pipeline: Pipeline, status: RQStatus = RQStatus.QUEUED) -> None:
        super()._persist_job(job, pipeline, status)
        if is_render_state(job):
            pipeline.hset(job.key, keys.JOB_TENANT_FIELD, JobState.from_job(job).tenant)

    def push_job_id(self, job_id: str, pipeline: Pipeline | None = None, at_front: bool = False) -> None:
        self.fair.admit(pipeline if pipeline is not None else self.connection, self.key, job_id, at_front,
                        connection=self.connection)

    @classmethod
    def lpop(cls, queue_keys: Sequence[str], timeout: int | None,
             connection: Redis | None = None) -> tuple[str, str] | None:
        """RQ's dequeue: a job that may start now, or, with a timeout, block until one is pushed."""
        assert connection is not None
        while True:
            taken = cls.fair.take_first(connection, queue_keys)
            if taken is not None or timeout is None:
                return taken
            popped = connection.blpop(list(queue_keys), timeout)
            if popped is None:
                raise DequeueTimeout(timeout, queue_keys)
            queue_key, job_id = as_text(popped[0]), as_text(popped[1])
            if cls.fair.taken(connection, queue_key, job_id):
                return queue_key, job_id

    @classmethod
    def lmove(cls, connection: Redis, queue_key: str, timeout: int | None) -> tuple[str, str] | None:
        """A worker of one queue dequeues the same way (RQ would park the id in an intermediate list)."""
        return cls.lpop([queue_key], timeout, connection=connection)


@lru_cache(maxsize=8)
def _bound_class(config: str) -> type[FairQueue]:
    return type("FairQueue", (FairQueue,), {})


def fair_queue_class(settings: Settings) -> type[FairQueue]:
    """The FairQueue class bound to these settings' policy (one class per distinct policy)."""
    fair = FairShare(settings)
    bound = _bound_class(fair.config)
    bound.fair = fair
    return bound


def fair_queue(priority: Priority | str, connection: Redis, settings: Settings) -> FairQueue:
    return fair_queue_class(settings)(Priority(priority).value, connection=connection)

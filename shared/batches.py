"""A batch's record: the job ids of one `POST /v1/jobs/batch` under one id, kept as long as its jobs."""
from __future__ import annotations

import json
import uuid

from redis.client import Pipeline

from shared import keys


def record_batch(pipe: Pipeline, *, tenant: str, job_ids: list[str], ttl_s: int) -> str:
    """Keep the batch's job ids as long as its jobs are kept; returns its id."""
    batch_id = uuid.uuid4().hex
    pipe.hset(keys.batch(batch_id), mapping={"tenant": tenant, "jobs": json.dumps(job_ids)})
    pipe.expire(keys.batch(batch_id), ttl_s)
    return batch_id


def batch_links(batch_id: str) -> dict[str, str]:
    return {"self": f"/v1/batches/{batch_id}", "events": f"/v1/batches/{batch_id}/events"}

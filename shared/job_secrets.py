"""A render job's encryption passwords: kept apart from the job (whose kwargs and meta RQ, lists, webhooks and the
dashboard read), only while the job can still run, and deleted when it ends."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from shared import keys
from shared.job_state import JobState
from shared.options import Encryption

JOB_SECRETS_TTL_S = 86400
"""Longest time an unfinished job's passwords stay in Redis, in seconds: a backstop for jobs that never end
(deleted with their queue, say); a job still queued after it fails with `secrets_expired`."""


@dataclass(frozen=True)
class Passwords:
    owner: str
    user: str | None

    @classmethod
    def of(cls, encryption: Encryption) -> Passwords:
        return cls(owner=encryption.owner_password, user=encryption.user_password)


def with_passwords(options: dict[str, Any], passwords: Passwords) -> dict[str, Any]:
    """The worker's copy of `options` (see RenderOptions.for_worker) with the passwords put back."""
    encryption = {**options["encryption"], "owner_password": passwords.owner}
    if passwords.user is not None:
        encryption["user_password"] = passwords.user
    return {**options, "encryption": encryption}


def lost_on_end(state: JobState) -> bool:
    """An encrypted job that has ended cannot run again: its passwords went when it ended."""
    return "encryption" in (state.options or {})


def store(pipe: Pipeline, job_id: str, passwords: Passwords) -> None:
    pipe.set(keys.job_secrets(job_id), json.dumps({"owner": passwords.owner, "user": passwords.user}),
             ex=JOB_SECRETS_TTL_S)


def load(connection: Redis, job_id: str) -> Passwords | None:
    raw = connection.get(keys.job_secrets(job_id))
    return Passwords(**json.loads(raw)) if raw else None


def forget(pipe: Pipeline | Redis, job_id: str) -> None:
    """Part of every "job ended" write: completed, failed for good, canceled, stopped."""
    pipe.delete(keys.job_secrets(job_id))

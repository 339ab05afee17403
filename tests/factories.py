"""Jobs as intake stores them, for tests that put a job in the store directly (a crash's leftovers, a held job)."""

from __future__ import annotations

from typing import Any

from bot.engine import Size
from bot.jobs.model import Job, JobSource
from bot.jobs.store import JobStore
from bot.spec import ResizeSpec


def make_job(dedup_key: str = "upload:C1:1.0:F1", **fields: Any) -> Job:
    """A mention of a 100x100 resize on file F1 in C1 by U1, unless ``fields`` say otherwise."""
    values: dict[str, Any] = {
        "id": "",
        "dedup_key": dedup_key,
        "trigger": "mention",
        "channel_id": "C1",
        "user_id": "U1",
        "source": JobSource.slack_file({"id": "F1"}, None),
        "spec": ResizeSpec(sizes=(Size(100, 100),)),
        "thread_ts": "1.0",
    }
    return Job(**(values | fields))


async def insert(store: JobStore, job: Job) -> tuple[Job, bool]:
    """Store ``job`` as intake does (no rate limit): the stored job, and whether it is new."""
    admission = await store.admit(job, since=0, limit=1_000_000)
    assert admission.job is not None
    return admission.job, admission.new

"""Accepting a request: rate limit, idempotent insert, wake the runner. Fast enough to run before Slack's ack."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from bot.jobs.model import Job, JobSource, Trigger
from bot.jobs.runner import JobRunner
from bot.jobs.store import JobStore
from bot.spec import ResizeSpec
from bot.user_errors import UserError


class Intake:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        jobs_per_user_per_hour: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.runner = runner
        self.jobs_per_user_per_hour = jobs_per_user_per_hour
        self.clock = clock

    async def submit(
        self,
        *,
        trigger: Trigger,
        dedup_key: str,
        channel_id: str,
        user_id: str,
        source: JobSource,
        spec: ResizeSpec,
        team_id: str | None = None,
        thread_ts: str | None = None,
        response_url: str | None = None,
        event_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Returns (job, True) for a new job, or the existing job and False for a repeat of the same request.
        ``event_id``: the Slack event that asked, when an event did (Slack sends one again when it missed the ack)."""
        job = Job(
            id=uuid.uuid4().hex,
            dedup_key=dedup_key,
            trigger=trigger,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            thread_ts=thread_ts,
            source=source,
            spec=spec,
            response_url=response_url,
            event_id=event_id,
        )
        # One transaction, one thread hop: this runs before Slack's ack, with many requests arriving at once.
        admission = await self.store.admit(job, since=self.clock() - 3600, limit=self.jobs_per_user_per_hour)
        if admission.job is None:
            raise UserError(
                f"You've started {admission.recent} resize jobs in the last hour, the most allowed; "
                "please wait a little and try again."
            )
        # A repeat wakes the runner too while its job is open: the first write may have landed after its request
        # stopped waiting (past the ack deadline, handlers.common), when no one woke the runner for it.
        if admission.new or not admission.job.finished:
            self.runner.wake()
        return admission.job, admission.new

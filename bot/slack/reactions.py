"""The status emoji on a job's source message (working, done, failed), kept in step with the job, within Slack's
rate limits.

Reactions are decoration, so they never hold a job up: the runner says which job changed (``changed``) and a
background worker brings that message's reaction in line with the job's state. It changes only what differs from
what the job says it put on (``Job.status_reaction``), so a job that goes from working to done costs one remove and
one add, and a job that finished before the worker reached it costs one add. Calls are paced to Slack's tiers
(reactions.add Tier 3, reactions.remove Tier 2), so a burst of uploads in an auto-resize channel waits its turn
instead of meeting 429s. What the worker had not reached at shutdown is picked up at the next start (``catch_up``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.pacing import TierPacer

if TYPE_CHECKING:
    from bot.jobs.model import Job
    from bot.jobs.store import JobStore

log = logging.getLogger(__name__)

STATUS_REACTIONS = {"working": "hourglass_flowing_sand", "done": "white_check_mark", "failed": "x"}
_STATUS_OF_STATE = {"anchored": "working", "delivering": "working", "done": "done", "failed": "failed"}


def wanted_status(job: Job) -> str | None:
    """The status the source message should show: none before the job starts, none for a link (it has no
    message of its own) or a cancelled job."""
    if job.source.kind != "slack_file" or job.source_message_ts is None:
        return None
    return _STATUS_OF_STATE.get(job.state)


class StatusReactions:
    def __init__(self, client: AsyncWebClient, store: JobStore, pacer: TierPacer | None = None) -> None:
        self.client = client
        self.store = store
        self.pacer = pacer or TierPacer()
        self._due: dict[str, None] = {}  # job ids in the order they changed (a dict as an ordered set)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="status-reactions")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Put on what is due (a few seconds at most), then stop; anything left is caught up at the next start."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled(), grace_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def changed(self, job: Job) -> None:
        self._due[job.id] = None
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Wait until every change noted so far is on Slack (for tests and orderly shutdown)."""
        await self._idle.wait()

    async def catch_up(self, since: float) -> None:
        """Jobs changed since ``since`` whose reaction may lag (the worker had not reached them at shutdown)."""
        for job in await self.store.changed_since(since):
            if wanted_status(job) != job.status_reaction:
                self.changed(job)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            while self._due:
                job_id = next(iter(self._due))
                del self._due[job_id]
                try:
                    job = await self.store.get(job_id)
                    if job is not None:
                        await self._apply(job)
                except Exception:  # one message's reaction must not stop the others'
                    log.exception("status reaction for job %s failed", job_id[:8])
            self._wake.clear()
            self._idle.set()

    async def _apply(self, job: Job) -> None:
        want, have = wanted_status(job), job.status_reaction
        ts = job.source_message_ts
        if want == have or ts is None:
            return
        if have is not None and not await self._call("reactions.remove", job.channel_id, ts, have, "no_reaction"):
            return
        if want is not None and not await self._call("reactions.add", job.channel_id, ts, want, "already_reacted"):
            want = None  # the old one is off, the new one did not go on
        await self.store.set_status_reaction(job.id, want)

    async def _call(self, method: str, channel: str, ts: str, status: str, ignore: str) -> bool:
        """True when the message now is as the call meant it to be."""
        name = STATUS_REACTIONS[status]
        await self.pacer.wait(method)
        call = self.client.reactions_add if method == "reactions.add" else self.client.reactions_remove
        try:
            await call(channel=channel, timestamp=ts, name=name)
        except SlackApiError as error:
            if error.response.get("error") == ignore:
                return True
            log.warning("%s %s failed: %s", method, name, error.response.get("error"))
            return False
        except (aiohttp.ClientError, TimeoutError, OSError) as error:  # Slack out of reach a moment
            log.warning("%s %s failed (%s); put right at the next start", method, name, type(error).__name__)
            return False
        return True

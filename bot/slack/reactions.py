"""The status emoji on a source message (working, done, failed), kept in step with its jobs, within Slack's rate
limits.

One message can have several jobs (one per image, and one per other set of sizes asked for): its reaction says how
all of them stand (``wanted_for_message``), so the first image done does not show done while the others are still
being worked on. Reactions are decoration, so they never hold a job up: the runner says which job changed
(``changed``) and a background worker brings that message's reaction in line with its jobs. It changes only what
differs from what its jobs say is on it (``Job.status_reaction``, the same on each), so a message that goes from
working to done costs one remove and one add, and one whose jobs finished before the worker reached it costs one
add. Calls are paced to Slack's tiers (reactions.add Tier 3, reactions.remove Tier 2), so a burst of uploads in an
auto-resize channel waits its turn instead of meeting 429s. A message Slack could not change just then (out of reach,
failing) is looked at again ``retry_s`` later. What the worker had not reached at shutdown is picked up at the next
start (``catch_up``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.jobs.store import store_out_of_reach
from bot.slack.connection import SLACK_FAILING
from bot.slack.pacing import TierPacer

if TYPE_CHECKING:
    from bot.jobs.model import Job
    from bot.jobs.store import JobStore

log = logging.getLogger(__name__)

# Between looks at a message whose reaction Slack could not change for a moment.
RETRY_S = 30.0
STATUS_REACTIONS = {"working": "hourglass_flowing_sand", "done": "white_check_mark", "failed": "x"}
_STATUS_OF_STATE = {"anchored": "working", "delivering": "working", "done": "done", "failed": "failed"}


def wanted_status(job: Job) -> str | None:
    """The status the source message should show: none before the job starts, none for a link (it has no
    message of its own) or a cancelled job."""
    if job.source.kind != "slack_file" or job.source_message_ts is None:
        return None
    return _STATUS_OF_STATE.get(job.state)


def wanted_for_message(jobs: Sequence[Job]) -> str | None:
    """The status one message should show for all of its jobs: working while any is still open, failed once all
    have finished if any failed, else done; none until one has started."""
    shown = {wanted_status(job) for job in jobs} - {None}
    if not shown:
        return None
    if any(not job.finished for job in jobs):
        return "working"
    return "failed" if "failed" in shown else "done"


def _message_of(job: Job) -> tuple[str, str] | None:
    """The message whose reaction the job shares: (channel, ts); None when it has none (a link's job)."""
    if job.source.kind != "slack_file" or job.source_message_ts is None:
        return None
    return job.channel_id, job.source_message_ts


class StatusReactions:
    def __init__(
        self, client: AsyncWebClient, store: JobStore, pacer: TierPacer | None = None, retry_s: float = RETRY_S
    ) -> None:
        self.client = client
        self.store = store
        self.pacer = pacer or TierPacer()
        self.retry_s = retry_s
        self._retries: set[asyncio.TimerHandle] = set()
        # A job that changed, per message (or per job, without one), in the order they first changed: a burst of
        # changes on one message's jobs is one look at it.
        self._due: dict[tuple[str, str] | str, str] = {}
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
        for retry in self._retries:
            retry.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def changed(self, job: Job) -> None:
        self._due[_message_of(job) or job.id] = job.id
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Wait until every change noted so far is on Slack (for tests and orderly shutdown)."""
        await self._idle.wait()

    async def catch_up(self, since: float) -> None:
        """Jobs changed since ``since`` whose reaction may lag (the worker had not reached them at shutdown)."""
        by_message: defaultdict[tuple[str, str] | None, list[Job]] = defaultdict(list)
        for job in await self.store.changed_since(since):
            by_message[_message_of(job)].append(job)
        for message, jobs in by_message.items():
            # Its other jobs, changed longer ago, are read when it is put right: a wrong guess here costs a read.
            if message is not None and any(job.status_reaction != wanted_for_message(jobs) for job in jobs):
                self.changed(jobs[0])

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            while self._due:
                job_id = self._due.pop(next(iter(self._due)))
                try:
                    job = await self.store.get(job_id)
                    if job is not None and not await self._apply(job):
                        self._try_again_later(job)
                except Exception as error:  # one message's reaction must not stop the others'
                    if store_out_of_reach(error):  # put right at the next change, or the next start's catch-up
                        log.warning("status reaction for job %s skipped: the job database is out of reach", job_id[:8])
                    else:
                        log.exception("status reaction for job %s failed", job_id[:8])
            self._wake.clear()
            self._idle.set()

    def _try_again_later(self, job: Job) -> None:
        # Its last change would otherwise stay off until the next start, which may be weeks away.
        def again() -> None:
            self._retries.discard(retry)
            self.changed(job)

        retry = asyncio.get_running_loop().call_later(self.retry_s, again)
        self._retries.add(retry)

    async def _apply(self, job: Job) -> bool:
        """False when Slack could not take a change just then (out of reach, failing): worth another look later."""
        message = _message_of(job)
        if message is None:
            return True
        channel, ts = message
        async with self.store.message_lock(channel, ts):  # read, change and record it with no other replica between
            return await self._apply_to_message(job, channel, ts)

    async def _apply_to_message(self, job: Job, channel: str, ts: str) -> bool:
        # The message's jobs all have their results in its thread.
        in_thread = await self.store.in_thread(channel, job.thread_ts) if job.thread_ts is not None else [job]
        jobs = [other for other in in_thread if _message_of(other) == (channel, ts)]
        want = wanted_for_message(jobs)
        # What its jobs say is on it: one status, or more only where an earlier change was cut short.
        on = {other.status_reaction for other in jobs if other.status_reaction is not None}
        for status in sorted(on - {want}):
            if (outcome := await self._call("reactions.remove", channel, ts, status, "no_reaction")) != DONE:
                return outcome == REFUSED  # still on: tried again later, at the next change, or at the next start
        outcome = DONE
        if want is not None and want not in on:
            outcome = await self._call("reactions.add", channel, ts, want, "already_reacted")
            if outcome != DONE:
                want = None  # the old one is off, the new one did not go on
        for other in jobs:
            if other.status_reaction != want:
                await self.store.set_status_reaction(other.id, want)
        return outcome != FAILING

    async def _call(self, method: str, channel: str, ts: str, status: str, ignore: str) -> str:
        """DONE when the message now is as the call meant it to be; REFUSED when Slack said no for good (the message
        deleted, the bot out of the channel); FAILING when it could not take the call just then."""
        name = STATUS_REACTIONS[status]
        await self.pacer.wait(method)
        call = self.client.reactions_add if method == "reactions.add" else self.client.reactions_remove
        try:
            await call(channel=channel, timestamp=ts, name=name)
        except SlackApiError as error:
            code = str(error.response.get("error") or "")
            if code == ignore:
                return DONE
            status_code = error.response.status_code
            if code in SLACK_FAILING or status_code == 429 or status_code >= 500:
                log.warning("%s %s failed: %s; trying again in %.0f s", method, name, code, self.retry_s)
                return FAILING
            log.warning("%s %s failed: %s", method, name, code)
            return REFUSED
        except (aiohttp.ClientError, TimeoutError, OSError) as error:  # Slack out of reach a moment
            log.warning("%s %s failed (%s); trying again in %.0f s", method, name, type(error).__name__, self.retry_s)
            return FAILING
        return DONE


DONE, REFUSED, FAILING = "done", "refused", "failing"

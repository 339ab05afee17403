"""The background runner: one coroutine that drives every accepted job to exactly one delivery.

Steps, each persisted before the next starts:
  accepted   -> find the source (a Slack file, a URL, or the channel's latest image), post the anchor message for
                URL jobs and the progress message in the thread             -> anchored
  anchored   -> download, resize through the backend                       -> delivering
  delivering -> upload into the thread, confirmed by file id (each upload step stored with the job)  -> done
A restart resumes each open job at its stored step. Posts a crash could repeat carry the job's marker and are
looked up before being made again; an upload carries on with the same files; the hosted API's request id is stored
as soon as it exists, so a restart polls the same remote job instead of paying for a second one. Status reactions
follow each state change in the background (bot.slack.reactions).

While Slack is out of reach, failing, or refusing the bot token, a job waits for it, however long that lasts, with
capped, jittered backoff and one log line per wait, and without using up its attempts: none of that is the job's
fault, and an accepted job is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.backends import SUBMIT_IN_FLIGHT, Backend, BackendResult, RemoteId, SourceImage, TransientError
from bot.engine import EngineError, image_content_type
from bot.jobs.crop_maps import CropMaps
from bot.jobs.model import Job, JobSource
from bot.jobs.source_links import SourceLinks
from bot.jobs.store import JobStore, StaleJob, store_or_network_out_of_reach, store_out_of_reach
from bot.net import Fetched, FetchError, FetchFailed, FetchTimeout, SafeFetcher
from bot.net.errors import UnexpectedContentType
from bot.net.fetch import DEFAULT_ACCEPT, UNLABELLED
from bot.slack import SlackFileAccessDenied, download_slack_file
from bot.slack.connection import RECONNECT, UNREACHABLE, SlackUnreachable, describe_failure, host_of, waiting_on_slack
from bot.slack.delivery import Delivery, results_outgoing
from bot.slack.messages import escape_mrkdwn, progress_blocks
from bot.slack.reactions import StatusReactions
from bot.slack.uploads import Outgoing, UploadProgress, UploadRecord
from bot.smart_resize_api.retry import RetryPolicy, compute_delay
from bot.user_errors import (
    HIDDEN_BY_PLAN,
    NO_DOWNLOAD,
    SLACK_CONNECT_DENIED,
    UserError,
    external_file_message,
    not_an_image,
    user_message,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
LATEST_IMAGE_WINDOW_S = 3600


@dataclass
class RunnerConfig:
    bot_token: str = field(repr=False)
    slack_api_url: str
    max_download_bytes: int
    max_concurrent_jobs: int = 4
    lease_s: float = 60.0  # how long a claim holds a job; renewed every third of it while the job runs
    job_retention_s: float = 30 * 24 * 3600.0  # finished jobs: who asked, where and for what is kept no longer


@dataclass
class SlackBackoff:
    """The waits of jobs on Slack. One for the runner, not one per job: an outage is everyone's at once, and each job
    that meets it lengthens the next wait (to the policy's cap), so a queue of jobs does not hammer Slack."""

    policy: RetryPolicy
    retry: int = 0
    previous: float | None = None

    def next_delay(self) -> float:
        self.previous = compute_delay(self.policy, self.retry, previous=self.previous)
        self.retry += 1
        return self.previous

    def reset(self) -> None:
        """Slack answered: the next outage starts from the shortest wait again."""
        self.retry, self.previous = 0, None


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        backend: Backend,
        delivery: Delivery,
        fetcher: SafeFetcher,
        slack_session: aiohttp.ClientSession,
        config: RunnerConfig,
        reactions: StatusReactions,
        crop_maps: CropMaps | None = None,
        links: SourceLinks | None = None,
        clock: Callable[[], float] = time.time,
        slack_retry: RetryPolicy = RECONNECT,
    ) -> None:
        self.store = store
        self.reactions = reactions
        self.backend = backend
        self.delivery = delivery
        self.client = delivery.client
        self.crop_maps = crop_maps
        self.links = links  # when set, a hosted service fetches the source from a signed link
        self.fetcher = fetcher
        self.slack_session = slack_session
        self.config = config
        self.clock = clock
        self.slack_backoff = SlackBackoff(slack_retry)
        self._slack_host = host_of(config.slack_api_url)
        self._wake = asyncio.Event()
        self._active: dict[str, asyncio.Task[None]] = {}  # strong references: the loop must not lose a job
        self._pruned_at = float("-inf")
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="job-runner")
        self._lease_task = asyncio.create_task(self._keep_leases(), name="job-leases")

    async def _keep_leases(self) -> None:
        """While a job runs here, its lease is renewed: no other replica takes it over unless this one dies."""
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            running = list(self._active)
            try:
                renewed = await self.store.renew(running, self.clock() + self.config.lease_s)
            except Exception as error:  # a database blip: the next renewal comes well before the lease runs out
                log.warning(
                    "could not renew the leases of running jobs (%s: %s); trying again", type(error).__name__, error
                )
                continue
            for job_id in set(running) - renewed:
                # Taken over by another replica (this one stalled past the lease): stop it here at once, before it
                # makes another Slack call beside the new owner's.
                task = self._active.get(job_id)
                if task is not None:
                    log.info("job %s is no longer this replica's (its lease ran out); stopping it here", job_id[:8])
                    task.cancel()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_s: float = 20.0) -> None:
        """Stop taking jobs and let running ones finish; whatever is cut short resumes at its stored step."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._active:
            _, pending = await asyncio.wait(list(self._active.values()), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._lease_task is not None:
            self._lease_task.cancel()
            await asyncio.gather(self._lease_task, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until no job is runnable or running and their reactions are on (for tests and orderly shutdown)."""
        while True:
            runnable = await self.store.runnable(self.clock() + 3600)
            if not runnable and not self._active:
                await self.reactions.settled()
                return
            await asyncio.sleep(0.02)

    async def _loop(self) -> None:
        while not self._stopping:
            # Cleared before the work, not after: a wake() or stop() that lands while it runs must not be lost
            # (a SIGTERM during the query used to wait out the whole 30 s sleep).
            self._wake.clear()
            try:
                await self._schedule()
                await self._tidy()
                wakeup = await self._next_wakeup()
            except Exception as error:  # the runner must outlive a bad row or the database out of reach a moment
                if store_or_network_out_of_reach(error):  # expected now and then: one line, no traceback
                    log.warning("job scheduling failed (%s: %s); retrying", type(error).__name__, error)
                else:
                    log.exception("job scheduling failed; retrying")
                wakeup = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wakeup)

    async def _tidy(self) -> None:
        """At most hourly: delete finished jobs and crop maps past their time, so neither grows with every job."""
        if self.clock() - self._pruned_at < 3600:
            return
        self._pruned_at = self.clock()
        if removed := await self.store.delete_finished_before(self._pruned_at - self.config.job_retention_s):
            log.info("deleted %d finished jobs older than the retention period", removed)
        if self.crop_maps is not None and (removed := await self.crop_maps.prune(self._pruned_at)):
            log.info("deleted %d expired crop maps", removed)

    async def _next_wakeup(self) -> float:
        next_time = await self.store.next_wakeup(self.clock())
        if next_time is None:
            return 30.0
        return min(30.0, max(0.05, next_time - self.clock()))

    async def _schedule(self) -> None:
        room = self.config.max_concurrent_jobs - len(self._active)
        if room <= 0:
            return
        for job in await self.store.claim(self.clock(), room, self.config.lease_s):
            if job.id in self._active:
                # Running here, its lease run out on this clock (stepped forward, or renewals held up): the claim has
                # just renewed it. Released, it would be stopped mid-step and started over (a paid submit in flight
                # sent again), and on PostgreSQL free for another replica while this one still runs it.
                continue
            if len(self._active) >= self.config.max_concurrent_jobs:
                await self.store.release(job.id)  # claimed but not started: free for any replica now
                continue
            task = asyncio.create_task(self._run(job), name=f"job-{job.short_id}")
            self._active[job.id] = task
            task.add_done_callback(functools.partial(self._finished, job.id))

    def _finished(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._active.pop(job_id, None)
        self._wake.set()

    async def cancel(self, job_id: str, by_user: str) -> str:
        """Stop a job's remaining work; only its requester may. Returns the sentence to show that user."""
        while True:
            job = await self.store.get(job_id)
            if job is None:
                return "I can't find that job any more."
            if by_user != job.user_id:
                return f"Only <@{job.user_id}>, who asked for this resize, can cancel it."
            if job.finished:
                return f"That job is already {job.state}."
            if job.state == "delivering":
                return "Too late to cancel: the images are being posted to the thread now."
            try:
                job = await self.store.update(job, state="cancelled", fenced=False)  # whichever replica runs it
                break
            except StaleJob:  # the runner took a step meanwhile: look again
                continue
        task = self._active.get(job_id)
        if task is not None:
            task.cancel()
        await self._show_cancelled(job)
        self.reactions.changed(job)
        return "Cancelled: nothing more will be posted for that request."

    # --- one job ------------------------------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        try:
            await self._run_steps(job)
        except Exception as error:  # only recording its outcome can fail here: _run_steps handles the rest
            # So a refused connection here is the database's (asyncpg raises the socket's own error when
            # PostgreSQL restarts), not the network of some other call.
            if not store_or_network_out_of_reach(error):
                raise
            self._log_store_out_of_reach(job, error)
        finally:
            # Finished, deferred or cut short by a stop: free for any replica now, not when the lease runs out.
            await asyncio.shield(self._release(job))

    async def _release(self, job: Job) -> None:
        """The job's lease given back; while the database is out of reach, tried again for a third of a lease (past
        that the renewals have stopped, so the lease runs out and any replica takes the job anyway)."""
        give_up = self.clock() + self.config.lease_s / 3
        while True:
            try:
                await self.store.release(job.id)
                return
            except Exception as error:
                if self._stopping or not store_out_of_reach(error) or self.clock() > give_up:
                    return
            await asyncio.sleep(0.5)

    async def _run_steps(self, job: Job) -> None:
        try:
            while not job.finished:
                fresh = await self.store.get(job.id)
                if fresh is None or fresh.finished:
                    return  # cancelled meanwhile
                try:
                    job = await self._step(fresh)
                    self.slack_backoff.reset()
                except StaleJob:
                    if await self.store.holder(job.id) != self.store.owner:
                        # This replica stalled past its lease (another took the job over, or will): not ours now.
                        log.info("job %s is no longer this replica's (its lease ran out); leaving it", job.short_id)
                        return
                    job = fresh  # moved on under us (Cancel): the loop reads it again
        except asyncio.CancelledError:
            if self._stopping:
                raise
            # Cancelled by its requester, or taken over by another replica (_keep_leases): either way what is
            # stored stands, and there is nothing more to do here.
        except (UserError, EngineError, FetchError) as error:
            if isinstance(error, UserError) and error.detail:
                log.error("job %s failed: %s", job.short_id, error.detail)
            await self._fail(job, user_message(error))
        except Exception as error:
            if store_out_of_reach(error):
                # Not the job's fault, and nothing to tell anyone: it is claimed again once the database answers.
                self._log_store_out_of_reach(job, error)
            # A job's other network calls (links, the hosted API) raise their own errors: a connection error is Slack's.
            elif (problem := waiting_on_slack(error, self._slack_host)) is not None:
                await self._wait_for_slack(job, problem)
            else:  # anything else may be transient: retry with backoff, then give up plainly
                await self._retry_or_fail(job, error)

    async def _step(self, job: Job) -> Job:
        if job.state == "accepted":
            return await self._anchor(job)
        if job.state == "anchored":
            result = await self._resize(job)
            fresh = await self.store.get(job.id)
            if fresh is None or fresh.finished:  # cancelled while the images were being made
                return fresh or job
            job = await self.store.update(fresh, state="delivering")
            return await self._deliver(job, result)
        if job.state == "delivering":
            assert job.thread_ts is not None
            # No upload record: the release before this one was posting it (it looked posts up by marker).
            if job.upload is None and await self.delivery.find_own_post(
                job.channel_id, job.marker, since=job.created_at, thread_ts=job.thread_ts, with_files=True
            ):
                return await self._complete(job, already_posted=True)
            return await self._deliver(job, None)
        raise RuntimeError(f"job {job.short_id} in unexpected state {job.state}")

    async def _anchor(self, job: Job) -> Job:
        tag = job.marker
        source = job.source
        thread_ts = job.thread_ts
        if source.kind == "latest":
            file, thread_ts = await self._latest_image(job.channel_id, job.created_at)
            source = JobSource.slack_file(file, thread_ts)
            job = await self.store.update(job, source=source, thread_ts=thread_ts)
        elif thread_ts is None:
            # A link, or an image uploaded in the modal: there is no message to answer, so post one.
            thread_ts = await self.delivery.find_own_post(job.channel_id, tag, since=job.created_at)
            if thread_ts is None and source.url is not None:
                # A link the guard refuses is told to its requester alone, not announced in the channel first.
                await self.fetcher.vet(source.url)
            if thread_ts is None:
                # The link is shown, not linked: escaped, it can't become <!channel> or a disguised <url|text>.
                what = escape_mrkdwn(source.url) if source.url is not None else "an uploaded image"
                thread_ts = await self.delivery.post(
                    job.channel_id, f"<@{job.user_id}> asked for {job.spec.describe()} of {what} · _{tag}_"
                )
            job = await self.store.update(job, thread_ts=thread_ts)
        assert thread_ts is not None
        if job.progress_ts is None:
            progress_ts = await self.delivery.find_own_post(
                job.channel_id, tag, since=job.created_at, thread_ts=thread_ts
            )
            if progress_ts is None:
                text = f":hourglass_flowing_sand: Resizing to {job.spec.describe()}… · _{tag}_"
                post = asyncio.ensure_future(
                    self.delivery.post(
                        job.channel_id,
                        text,
                        thread_ts=thread_ts,
                        blocks=progress_blocks(text, job.id, cancellable=True),
                    )
                )
                try:
                    # Shielded: a Cancel pressed now cancels this task, but Slack still posts the message.
                    progress_ts = await asyncio.shield(post)
                except asyncio.CancelledError:
                    if self._stopping:  # a restart finds the message by its marker; how the post ends is no news
                        post.add_done_callback(_retrieved)
                    else:
                        await self._cancelled_before_progress_was_stored(job, post)
                    raise
            try:
                job = await self.store.update(job, progress_ts=progress_ts)
            except (StaleJob, asyncio.CancelledError):
                await self._cancelled_before_progress_was_stored(job, progress_ts)
                raise
        job = await self.store.update(job, state="anchored")
        self.reactions.changed(job)
        return job

    async def _latest_image(self, channel: str, asked_at: float) -> tuple[Mapping[str, Any], str]:
        # The latest as of the request, not of the run: a busy runner or a restart must not pick a later image.
        oldest, latest = str(asked_at - LATEST_IMAGE_WINDOW_S), str(asked_at)
        response = await self.client.conversations_history(channel=channel, oldest=oldest, latest=latest, limit=100)
        messages: list[dict[str, Any]] = response.get("messages", [])
        for message in messages:
            for file in message.get("files", []) or []:
                if str(file.get("mimetype", "")).startswith("image/"):
                    return file, str(message["ts"])
        raise UserError(
            "I couldn't find an image shared in this channel in the last hour. Upload one, or add its link: "
            "`/resize 1080x1080 https://example.com/photo.jpg`."
        )

    async def source_image(self, job: Job) -> Fetched:
        """The job's image, downloaded now (from Slack with the bot token, or from its link behind the guard)."""
        source = job.source
        if source.url is not None:
            fetched = await self.fetcher.fetch(
                source.url, max_bytes=self.config.max_download_bytes, accept=(*DEFAULT_ACCEPT, *UNLABELLED)
            )
            if fetched.content_type.startswith("image/"):
                return fetched
            # Served without a type of its own (object stores do that): labelled by its bytes, for a backend that
            # goes by the label; what is not an image is refused in the link's own sentence.
            kind = image_content_type(fetched.data)
            if kind is None:
                raise UnexpectedContentType(fetched.content_type)
            return replace(fetched, content_type=kind)
        file = source.file
        assert file is not None  # a "latest" source became a Slack file when the job was anchored
        if file.get("file_access") == "access_denied":  # Slack Connect: the other organisation keeps it to itself
            raise UserError(SLACK_CONNECT_DENIED)
        if file.get("file_access") == "check_file_info" or not file.get("url_private"):
            # Slack Connect (and the modal's uploads) give only the id: files.info has the rest, or access_denied.
            info = await self.client.files_info(file=file["id"])
            file = dict(info["file"])
        if file.get("mode") == "hidden_by_limit":  # a free plan's file past its history limit: its id alone
            raise UserError(HIDDEN_BY_PLAN)
        if file.get("is_external"):  # a Google Drive or Dropbox file shown in Slack: no bytes of it are in Slack
            raise UserError(external_file_message(str(file.get("external_type") or "another service").title()))
        mimetype = str(file.get("mimetype", ""))
        if not mimetype.startswith("image/"):
            raise UserError(not_an_image(str(file.get("name") or ""), mimetype))
        if int(file.get("size") or 0) > self.config.max_download_bytes:
            limit_mb = self.config.max_download_bytes // (1024 * 1024)
            raise UserError(f"That image is larger than {limit_mb} MB; share a smaller or more compressed version.")
        url = file.get("url_private_download") or file.get("url_private")
        if not url:
            raise UserError(NO_DOWNLOAD)
        try:
            return await download_slack_file(
                self.slack_session,
                url,
                token=self.config.bot_token,
                off_slack=self.fetcher,
                api_base_url=self.config.slack_api_url,
                max_bytes=self.config.max_download_bytes,
            )
        except SlackFileAccessDenied:
            # The file host answers a refused token as it answers a file the bot may not see: with its sign-in
            # page. auth.test tells them apart; a refused token raises here, and the job waits for a new one.
            await self.client.auth_test()
            raise
        # Slack's file host out of reach or failing is not the image's fault: the job waits for Slack.
        except FetchTimeout:
            raise SlackUnreachable(f"Slack is unreachable at {host_of(url)} (the file download timed out)") from None
        except FetchFailed as error:
            if error.status is not None and error.status < 500:
                raise  # Slack answered, and would answer the same again
            why = f"answered HTTP {error.status}" if error.status else "failed"
            raise SlackUnreachable(f"Slack is unreachable at {host_of(url)} (the file download {why})") from None

    async def backend_source(self, job: Job) -> SourceImage:
        """The job's image as its backend takes it (for the hosted service, a JPEG of a HEIC, say), with the link
        the service may fetch it by: what ``_resize`` sends, and what the link serves after a restart."""
        fetched = await self.source_image(job)
        links = self.links
        link = links.link(job.id) if links is not None else None
        return await self.backend.accept(SourceImage(fetched.data, fetched.content_type, link))

    async def _resize(self, job: Job) -> BackendResult:
        links = self.links
        image = await self.backend_source(job)

        async def save_remote_id(remote_id: str | None) -> None:
            nonlocal job
            job = await self.store.update(job, remote_id=remote_id)

        remote_id = job.remote_id
        if remote_id == SUBMIT_IN_FLIGHT:
            # The process running this job died between sending its submit and storing the answer. Without an id
            # nothing can ask whether the service took it, and a job is never dropped, so it is submitted again.
            log.warning("job %s: its last run stopped mid-submit; submitting again (may be paid twice)", job.short_id)
            remote_id = None
        with links.hold(job.id, image) if links is not None else contextlib.nullcontext():
            result = await self.backend.run(image, job.spec, RemoteId(remote_id, save_remote_id))
        if result.crop_map is not None and self.crop_maps is not None:
            try:
                await self.crop_maps.save(job.id, result.crop_map)
            except OSError as error:
                # A full disk, or a folder it may not write in: the map is the Done message's extra (its button is
                # left off), not what was asked for. Failing here made the images again five times, then failed.
                log.warning("job %s: could not keep the crop map (%s); posting without it", job.short_id, error)
        return result

    async def _deliver(self, job: Job, result: BackendResult | None) -> Job:
        """Upload the results (made again only if a resumed upload has to send them anew) and confirm the post."""
        thread_ts = job.thread_ts
        assert thread_ts is not None
        tag = job.marker
        extended = False  # an output auto extended rather than cropped: its requester may want the crop instead

        async def outgoing() -> Outgoing:
            nonlocal extended
            made = result or await self._resize(job)
            extended = job.spec.mode == "auto" and any(image.mode == "extend" for image in made.images)
            count = len(made.images)
            notes = "".join(f"\n• {note}" for note in made.notes)
            comment = f"<@{job.user_id}> here are your {count} image{'s' if count != 1 else ''} · _{tag}_{notes}"
            if job.progress_ts:
                await self._quietly(
                    self.delivery.update(
                        job.channel_id,
                        job.progress_ts,
                        f":outbox_tray: Uploading {count} image{'s' if count != 1 else ''}… · _{tag}_",
                        optional=True,  # in a burst, not worth holding the upload for
                    )
                )
            return results_outgoing(made.images, comment, _stem(job.source))

        async def save(record: UploadRecord) -> None:
            nonlocal job
            job = await self.store.update(job, upload=record)

        await self.delivery.upload(job.channel_id, thread_ts, outgoing, UploadProgress(job.upload, save))
        return await self._complete(job, crop_instead=extended)

    async def _complete(self, job: Job, already_posted: bool = False, crop_instead: bool = False) -> Job:
        thread_ts = job.thread_ts
        assert thread_ts is not None
        # The progress message first: a job stored done is never run again, so a crash between the two would leave
        # it at "Uploading…" for good. Done first and stored second, a restart finds the post and says Done again.
        if job.progress_ts:
            text = f":white_check_mark: Done: {job.spec.describe()} · _{job.marker}_"
            has_map = self.crop_maps is not None and await self.crop_maps.exists(job.id)
            blocks = progress_blocks(text, job.id, crop_map=has_map, crop_instead=crop_instead)
            # Slack failing or out of reach now: raised, so the job waits for Slack and says Done then, as after a
            # crash here. Passed over, it was stored done with the thread at "Uploading…" for good.
            await self._quietly(
                self.delivery.update(job.channel_id, job.progress_ts, text, blocks=blocks), unless_slack_waits=True
            )
        job = await self.store.update(job, state="done", error=None)
        self.reactions.changed(job)
        log.info("job %s delivered%s", job.short_id, " (found already posted)" if already_posted else "")
        return job

    async def _fail(self, job: Job, message: str) -> None:
        fresh = await self.store.get(job.id) or job
        if fresh.finished:
            return  # cancelled meanwhile: that outcome and its message stand
        # The thread is told first, as in _complete: a job stored failed never runs again, so a crash between the
        # two would leave it at "Working…" with no word of why. Told first, a restart runs it again and says so again.
        if fresh.progress_ts:
            text = f":x: Couldn't resize: {message} · _{fresh.marker}_"
            try:
                await self._quietly(
                    self.delivery.update(fresh.channel_id, fresh.progress_ts, text), unless_slack_waits=True
                )
            except Exception as error:  # Slack can't take it now: said when it can, as after a crash here
                problem = waiting_on_slack(error, self._slack_host)
                assert problem is not None  # what _quietly lets through
                await self._wait_for_slack(fresh, problem)
                return
        else:
            # Nothing in the thread (a link refused before it was announced): the requester's private word is the
            # only one, so it is said first, and the job waits for a Slack that can't take it, as for the thread.
            told = await self.delivery.ephemeral(
                fresh.channel_id, fresh.user_id, message, thread_ts=fresh.thread_ts, response_url=fresh.response_url
            )
            if told is not None and (problem := waiting_on_slack(told, self._slack_host)) is not None:
                await self._wait_for_slack(fresh, problem)
                return
        try:
            job = await self.store.update(fresh, state="failed", error=message)
        except StaleJob:  # cancelled in the moment since it was read: the message says so again, over ours
            now = await self.store.get(job.id)
            if now is not None and now.state == "cancelled":
                await self._show_cancelled(now)
            return
        log.info("job %s failed: %s", job.short_id, message)
        self.reactions.changed(job)
        if fresh.progress_ts:
            await self.delivery.ephemeral(
                job.channel_id, job.user_id, message, thread_ts=job.thread_ts, response_url=job.response_url
            )

    async def _cancelled_before_progress_was_stored(self, job: Job, progress: str | asyncio.Future[str]) -> None:
        """A Cancel pressed while the progress message was being posted, or its ts stored, found no message to edit
        (it edits the stored one): so the message, once Slack has it, says the job was cancelled here instead of
        "Resizing…" for good. Best effort: the job is cancelled either way."""
        try:
            ts = progress if isinstance(progress, str) else await progress
            now = await self.store.get(job.id)
            if now is not None and now.state == "cancelled" and now.progress_ts is None:
                await self._show_cancelled(replace(now, progress_ts=ts))
        except Exception as error:  # Slack or the database out of reach: the Cancel's own answer stands
            log.warning("job %s: could not mark its progress message cancelled (%s)", job.short_id, _kind(error))

    async def _show_cancelled(self, job: Job) -> None:
        if job.progress_ts:
            # Only the requester may cancel (cancel), so the job names who did.
            text = f":no_entry_sign: Cancelled by <@{job.user_id}> · _{job.marker}_"
            await self._quietly(
                self.delivery.update(job.channel_id, job.progress_ts, text, blocks=progress_blocks(text, job.id))
            )

    @staticmethod
    def _log_store_out_of_reach(job: Job, error: Exception) -> None:
        log.warning(
            "job %s paused: the job database is out of reach (%s: %s); it carries on where it was once it answers",
            job.short_id,
            type(error).__name__,
            error,
        )

    async def _wait_for_slack(self, job: Job, problem: str) -> None:
        """Slack can't take the job's calls now: the job waits and tries again later, however long that takes (an
        accepted job is never dropped for Slack's sake), with its attempts untouched. Released meanwhile, any replica
        may pick it up when it is due."""
        fresh = await self.store.get(job.id) or job
        if fresh.finished:
            return
        delay = self.slack_backoff.next_delay()
        log.warning("job %s waits: %s; retrying in %.1f s", job.short_id, problem, delay)
        with contextlib.suppress(StaleJob):  # cancelled meanwhile, or no longer this replica's: nothing to wait for
            await self.store.update(fresh, not_before=self.clock() + delay)

    async def _retry_or_fail(self, job: Job, error: Exception) -> None:
        fresh = await self.store.get(job.id) or job
        if fresh.finished:
            return
        attempts = fresh.attempts + 1
        if attempts >= MAX_ATTEMPTS or not _transient(error):
            if isinstance(error, TransientError):  # an outage that outlasted the retries: expected, no traceback
                log.error("job %s gave up after %d attempts: %s", job.short_id, attempts, error)
            elif isinstance(error, SlackApiError):  # Slack said no (access_denied, not_in_channel ...): expected
                log.warning("job %s failed: Slack answered %s", job.short_id, error.response.get("error"))
            else:
                log.error("job %s gave up after %d attempts", job.short_id, attempts, exc_info=error)
            await self._fail(fresh, user_message(error))
            return
        delay = min(60.0, 2.0**attempts) * random.uniform(0.5, 1.0)
        log.warning(
            "job %s attempt %d failed (%s: %s); retrying in %.1fs", job.short_id, attempts, _kind(error), error, delay
        )
        with contextlib.suppress(StaleJob):  # cancelled meanwhile: nothing to retry
            await self.store.update(fresh, attempts=attempts, not_before=self.clock() + delay)

    async def _quietly(self, step: Awaitable[None], *, unless_slack_waits: bool = False) -> None:
        """``unless_slack_waits``: for a job's last words, what the job would wait for Slack on (out of reach, failing,
        refusing the token) is raised rather than passed over; what Slack refused for good (the message deleted,
        say) is still passed over: waiting would not help."""
        try:
            await step
        except (SlackApiError, *UNREACHABLE) as error:
            if unless_slack_waits and waiting_on_slack(error, self._slack_host) is not None:
                raise
            if isinstance(error, SlackApiError):
                log.warning("cosmetic update failed: %s", error.response.get("error"))
            else:
                log.warning("cosmetic update failed: Slack is unreachable (%s)", describe_failure(error))


def _transient(error: Exception) -> bool:
    # Slack out of reach or failing never gets here (the job waits for Slack instead). What does: the hosted
    # service's outages, a Slack upload URL that refused the bytes (the next try reserves a new one), a disk full.
    return isinstance(error, (TransientError, aiohttp.ClientResponseError, OSError))


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Done-callback of a call left to finish on its own: its error is taken, not logged as never retrieved."""
    if not future.cancelled():
        future.exception()


def _kind(error: Exception) -> str:
    return type(error).__name__


def _stem(source: JobSource) -> str:
    name = source.file_name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:60].strip("-")
    return safe or "image"

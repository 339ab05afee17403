"""The app's shared services, created once at start-up and closed at shutdown (one HTTP session per purpose)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler, AsyncServerErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends import Backend
from bot.backends.local import LocalBackend
from bot.config import Settings
from bot.engine.pool import EnginePool
from bot.grammar import Grammar
from bot.jobs.crop_maps import CropMaps, FileCropMaps, PostgresCropMaps
from bot.jobs.intake import Intake
from bot.jobs.runner import JobRunner, RunnerConfig
from bot.jobs.source_links import SourceLinks
from bot.jobs.store import JobStore, SqliteJobStore
from bot.net import NetworkPolicy, SafeFetcher
from bot.slack.connection import RECONNECT, Readiness
from bot.slack.delivery import Delivery
from bot.slack.pacing import TierPacer
from bot.slack.reactions import StatusReactions
from bot.slack.uploads import SHARE_PATIENCE_S, SHARE_POLL_S, Uploader
from bot.smart_resize_api.retry import RetryPolicy

log = logging.getLogger(__name__)

# At start-up, jobs changed this recently get their status reaction checked (one a previous run did not finish).
REACTION_CATCH_UP_S = 24 * 3600.0


@dataclass
class Services:
    settings: Settings
    grammar: Grammar
    client: AsyncWebClient
    store: JobStore
    runner: JobRunner
    intake: Intake
    delivery: Delivery
    backend: Backend
    crop_maps: CropMaps | None  # only the local engine draws them
    links: SourceLinks | None  # with PUBLIC_BASE_URL: signed links to job sources
    readiness: Readiness
    reactions: StatusReactions

    async def start_work(self) -> None:
        """Start running jobs and putting status reactions right; only once Slack has accepted the bot token. A
        runner started before would fail each job it claimed on a token Slack refuses, and the reactions' catch-up
        would put a warning per job in the log, before the app stopped on that token."""
        self.reactions.start()
        await self.reactions.catch_up(since=time.time() - REACTION_CATCH_UP_S)
        self.runner.start()


@dataclass(frozen=True)
class Pacing:
    """How long the app waits on others. The defaults are for Slack and the hosted service; tests, where both are
    on loopback and answer at once, pass shorter ones."""

    # How long an upload may take to show in its thread, and the waits between looks (bot.slack.uploads).
    share_patience_s: float = SHARE_PATIENCE_S
    share_poll_s: tuple[float, ...] = SHARE_POLL_S
    # Slack's rate-limit window (its tiers are calls per minute), for the calls the app paces itself.
    rate_window_s: float = 60.0
    # The clock and sleep of share waits: a test's own pair lets a minute-late share take no time.
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # Between status polls of a hosted job: the contract asks for every 2-3 seconds.
    hosted_poll_interval: tuple[float, float] = (2.0, 3.0)
    # Between tries to reach Slack: at start-up, to reopen the Socket Mode connection, and for a job while Slack is
    # out of reach.
    reconnect: RetryPolicy = RECONNECT
    # Pings on the Socket Mode connection: a socket silent for twice this long is taken as dropped.
    socket_heartbeat_s: float = 10.0


def web_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """Every Web API call goes to SLACK_API_URL, with Slack's own retry handlers for 429s and 5xx."""
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, session=session)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=2))
    return client


def grammar_for(settings: Settings) -> Grammar:
    return Grammar(
        limits=settings.limits,
        max_sizes=settings.max_sizes,
        default_sizes=settings.default_sizes,
        reaction=settings.resize_reaction,
    )


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    pool: EnginePool | None = None,
    pacing: Pacing = Pacing(),
) -> AsyncIterator[Services]:
    """``pool``: an engine pool to share (the tests start one for the session); by default the app starts and
    owns one. No job runs until ``Services.start_work()``."""
    store = await open_job_store(settings)
    # Slack's own hosts are reached with a plain session (the token may only go there, see bot.slack.files);
    # user-supplied links go through the SSRF-guarded fetcher.
    slack_session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
    fetcher = SafeFetcher(NetworkPolicy(settings.allow_networks), max_bytes=settings.max_download_bytes)
    own_pool = pool is None
    pool = pool or EnginePool(settings.engine_workers)
    runner: JobRunner | None = None
    try:
        await fetcher.start()
        client = web_client(settings, slack_session)
        uploader = Uploader(
            client,
            patience_s=pacing.share_patience_s,
            poll_s=pacing.share_poll_s,
            clock=pacing.clock,
            sleep=pacing.sleep,
        )
        pacer = TierPacer(pacing.rate_window_s)  # one per workspace: Slack's limits are per workspace and method
        delivery = Delivery(client, uploader, pacer)
        reactions = StatusReactions(client, store, pacer)
        backend = _backend(settings, pool, slack_session, fetcher, pacing)
        crop_maps = _crop_maps(settings, store) if backend.name == "local" else None
        links = None
        if settings.public_base_url is not None:
            links = SourceLinks(settings.public_base_url, settings.source_link_key, settings.source_link_ttl_s)
        runner = JobRunner(
            store,
            backend,
            delivery,
            fetcher,
            slack_session,
            RunnerConfig(
                bot_token=settings.slack_bot_token,
                slack_api_url=settings.slack_api_url,
                max_download_bytes=settings.max_download_bytes,
                max_concurrent_jobs=max(2, settings.engine_workers * 2),
                lease_s=settings.job_lease_s,
                job_retention_s=settings.job_retention_days * 24 * 3600.0,
            ),
            reactions,
            crop_maps,
            links,
            slack_retry=pacing.reconnect,
        )
        intake = Intake(store, runner, settings.jobs_per_user_per_hour)
        await store.listen(runner.wake)  # another replica's intake wakes this runner too
        yield Services(
            settings,
            grammar_for(settings),
            client,
            store,
            runner,
            intake,
            delivery,
            backend,
            crop_maps,
            links,
            Readiness(socket_mode=settings.socket_mode),
            reactions,
        )
    finally:
        if runner is not None:
            await runner.stop()
            await runner.reactions.stop()
        if own_pool:
            await pool.close()
        await fetcher.close()
        await slack_session.close()
        await store.close()


async def open_job_store(settings: Settings) -> JobStore:
    if settings.postgres_url is not None:
        from bot.jobs.pg_store import PostgresJobStore
        from bot.postgres import open_errors, unavailable

        try:
            return await PostgresJobStore.open(settings.postgres_url)
        except open_errors() as error:
            raise unavailable("the job database", error) from None
    return SqliteJobStore(settings.database_path)


def _crop_maps(settings: Settings, store: JobStore) -> CropMaps:
    if settings.postgres_url is not None:
        from bot.jobs.pg_store import PostgresJobStore

        assert isinstance(store, PostgresJobStore)
        return PostgresCropMaps(store.pool)
    return FileCropMaps(settings.database_path.parent / "crop-maps")


def _backend(
    settings: Settings, pool: EnginePool, session: aiohttp.ClientSession, fetcher: SafeFetcher, pacing: Pacing
) -> Backend:
    if settings.backend == "hosted":
        from bot.backends.hosted import HostedBackend

        assert settings.hosted_api_key is not None
        return HostedBackend(
            session,
            settings.hosted_api_key,
            settings.hosted_base_url,
            settings.max_download_bytes,
            media_session=fetcher.session,
            poll_interval=pacing.hosted_poll_interval,
            pool=pool,
            limits=settings.limits,
        )
    return LocalBackend(pool, settings.limits)

"""``smart-resize serve``: the hosted Smart Resize API's contract, served on our embedded engine.

Any client of the hosted API can point at it (base URL ``http://HOST:PORT/smart-resize/v1``). Requests are kept in
SQLite, or in PostgreSQL for several replicas on one database, with their outputs as files (beside the SQLite file,
or in the directory every replica shares), so they survive a restart; outputs expire after a configurable time.
Workers hold a lease on what they run: a replica that dies has its requests run again by another once the lease
runs out. The queue is bounded (429 with Retry-After when full) and image work runs in the engine's worker
processes. Without configured keys the server only listens on loopback.

Each API key is a tenant: its requests, statuses and media are its own (another key gets the same 404 as an unknown
id), it has its own rate limit and its own share of the queue, and workers serve the tenants in turn.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from bot.config import ConfigError, ServerSettings, load_server_settings, parse_authority
from bot.engine import EngineError, Output, Size, TooManyOutputs, check_output_count
from bot.engine.detectors import missing_warning
from bot.engine.pool import EnginePool
from bot.jobs.store import store_out_of_reach
from bot.net import FetchError, NetworkPolicy, SafeFetcher, decode_data_uri
from bot.net.fetch import DEFAULT_ACCEPT, UNLABELLED
from bot.postgres import StoreUnavailable
from bot.slow_clients import SLOW_CLIENTS, SlowClients
from bot.smart_resize_api.contract import (
    KEY_HEADER,
    NOT_FOUND,
    REQUEST_NOT_FOUND,
    ContractError,
    ErrorBody,
    JobOutput,
    OutputImage,
    ResultRequest,
    SmartResizeRequest,
    Status,
    StatusResponse,
    SubmitResponse,
    load_json_body,
)
from bot.smart_resize_api.server.store import (
    ClaimedRequest,
    QueueLimits,
    RequestState,
    RequestStore,
    outputs_path,
    request_store,
)
from bot.spec import ResizeSpec
from bot.user_errors import api_message, system_reason

log = logging.getLogger(__name__)

PREFIX = "/smart-resize/v1"
MODEL_ID = "smart-resize"
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
UNAUTHORIZED = {"error": "Unauthorized", "details": f"A valid {KEY_HEADER} header is required"}
LOOPBACK_ONLY = {"error": "Forbidden", "details": "Without API keys this server only answers requests to localhost"}
STORE_BUSY = {"error": "Service unavailable", "details": "The server's job database is busy; retry in a few seconds"}
STORE_BUSY_RETRY_S = 5
GAVE_UP = "Internal error; the request was not charged."
NO_KEY_TENANT = "local"  # without keys there is one tenant: whoever reaches the loopback address
MAX_ATTEMPTS = 3
_INLINE_JSON_BYTES = 64 * 1024
UNSUPPORTED_MEDIA_TYPE = ErrorBody(
    "Unsupported media type", "Send the request body as JSON, with the header Content-Type: application/json"
)
# Raw bytes per base64 step of a streamed sync_mode answer (a multiple of 3, so the pieces join into one encoding):
# about a millisecond of work off the event loop each, and ~2 MB of memory per answer however large its images.
_STREAM_CHUNK = 3 * 256 * 1024
_REQUEST_ID = re.compile(r"smart-resize_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MEDIA_NAME = re.compile(r"output_\d+x\d+_\d+\.(png|jpeg|webp)")


def tenant_id(key: str) -> str:
    """A key's tenant as stored with its requests: a digest, so the database never holds the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _digest(key: str) -> bytes:
    # surrogateescape: aiohttp decodes header bytes that are not UTF-8 that way, and they must hash, not raise.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def uuid7() -> uuid.UUID:
    """RFC 9562 version 7: 48 bits of Unix milliseconds, then random bits, so ids sort by when they were made."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant
    return uuid.UUID(int=value)


class SubmitRate:
    """Each tenant's submits per minute, as a token bucket: a burst up to the limit, then one every 60/limit s."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, when counted)

    def take(self, tenant: str) -> float | None:
        """None when the submit may go ahead (a token is taken); else the seconds until one is due."""
        now = self.clock()
        tokens, then = self._buckets.get(tenant, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - then) * self.per_minute / 60)
        if tokens < 1:
            self._buckets[tenant] = (tokens, now)
            return (1 - tokens) * 60 / self.per_minute
        self._buckets[tenant] = (tokens - 1, now)
        return None

    def give_back(self, tenant: str) -> None:
        """Return the token a submit took that was not accepted after all (the queue full, the database busy)."""
        if tenant in self._buckets:
            tokens, then = self._buckets[tenant]
            self._buckets[tenant] = (min(float(self.per_minute), tokens + 1), then)


class DrainPace:
    """How fast the workers get through requests, learnt from the ones they finish: a full queue's Retry-After.

    A 429 says when a place is likely to free up (one request's time, shared by the workers), not a fixed guess,
    so clients of a fast server come back soon and those of a busy one do not hammer it.
    """

    FIRST_GUESS_S = 5.0  # before any request has finished
    WEIGHT = 0.2  # of the newest request in the moving average: recent enough to follow load, steady enough

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.seconds_per_request: float | None = None

    def record(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        last = self.seconds_per_request
        self.seconds_per_request = seconds if last is None else last + self.WEIGHT * (seconds - last)

    def retry_after(self) -> int:
        """Whole seconds, 1 to 60, as the Retry-After header takes them."""
        if self.seconds_per_request is None:
            return int(self.FIRST_GUESS_S)
        return min(60, max(1, math.ceil(self.seconds_per_request / self.workers)))


def _now_iso(moment: float | None = None) -> str:
    stamp = dt.datetime.fromtimestamp(time.time() if moment is None else moment, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class SmartResizeServer:
    def __init__(self, config: ServerSettings, *, pool: EnginePool | None = None) -> None:
        """``pool``: engine workers to share (the tests' session pool); by default the server starts and owns its
        own."""
        self.config = config
        # One name per server in the leases it holds: readable (host and process) for whoever looks at the table,
        # and unique even where every replica is process 1 of a host of the same name.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.store: RequestStore = request_store(config, self.owner)
        self._own_pool = pool is None
        self.pool = pool or EnginePool(config.workers, config.limits)
        self.slow_clients = SlowClients(
            config.header_read_timeout_s,
            config.body_read_timeout_s,
            surface="smart-resize serve",
            body_answer=_body_too_slow,
        )
        self.fetcher = SafeFetcher(NetworkPolicy(config.allow_networks), max_bytes=config.max_image_bytes)
        # Set (and replaced) when a request may be waiting: every idle worker looks at once.
        self._wake = asyncio.Event()
        self._keys = [(_digest(key), tenant_id(key)) for key in sorted(config.keys)]
        self.rate = SubmitRate(config.requests_per_minute)
        self.pace = DrainPace(config.workers)
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self._workers: set[asyncio.Task[None]] = set()
        self._working: set[str] = set()  # the requests the workers are on
        self._stopping = False  # a clean stop has begun: workers claim nothing more
        self._hurry = asyncio.Event()  # a second SIGINT or SIGTERM: the rest of the grace is not waited out

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def application(self) -> web.Application:
        slow = self.slow_clients
        # The body is read (within its deadline) after the key is checked: no one without a key makes us wait.
        app = web.Application(
            middlewares=[slow.track, self._errors, self._auth, slow.read_body],
            client_max_size=self.config.max_image_bytes * 2,
        )
        app[SLOW_CLIENTS] = slow
        for prefix in (PREFIX, ""):
            app.router.add_post(f"{prefix}/smart-resize-request", self.submit)
            app.router.add_post(f"{prefix}/smart-resize-request-result", self.result)
        app.router.add_get("/v2/requests/status/{request_id}", self.status)
        app.router.add_post("/v2/requests/status/{request_id}", self.status)
        app.router.add_get("/media/{request_id}/{name}", self.media)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        await self.store.open(self._wake_workers)  # first: if the database is out of reach, nothing else started
        try:
            await asyncio.to_thread(_check_media_dir, self.store.media_dir)
        except StoreUnavailable:
            await self.store.close()
            raise
        await self.fetcher.start()
        log.info("claiming requests as %s, with leases of %g s", self.owner, self.config.lease_s)
        # Requests accepted before a restart need nothing here: the workers find them in the database.
        for index in range(max(1, self.config.workers)):
            self._workers.add(self._spawn(self._worker(), f"worker-{index}"))
        self._spawn(self._expire_loop(), "expiry")

    async def _stop(self, _app: web.Application) -> None:
        await self.drain()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_pool:
            await self.pool.close()
        await self.fetcher.close()
        await self.store.close()

    def _spawn(self, coroutine: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """A clean stop's first part: claim nothing more, give the requests being worked on up to
        ``shutdown_grace_s`` to finish (their results stored as ever), then hand the rest back unfinished (not
        counted as an interruption: they run again in full on the next server to claim them)."""
        self._stopping = True
        self._wake_workers()  # idle workers leave now
        grace = self.config.shutdown_grace_s
        busy = [task for task in self._workers if not task.done()]
        if self._working:
            log.info("stopping: %d request(s) being worked on get up to %g s to finish", len(self._working), grace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        hurry = asyncio.ensure_future(self._hurry.wait())
        pending: set[asyncio.Future[Any]] = set(busy)
        try:
            while pending and not hurry.done() and (left := deadline - loop.time()) > 0:
                _, pending = await asyncio.wait({*pending, hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(hurry)
        finally:
            hurry.cancel()
        for task in pending:  # each hands its request back as it ends (_run)
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)

    def hurry(self) -> None:
        """Stop now: what is still being worked on is handed back without waiting out the rest of the grace."""
        self._hurry.set()

    # --- middleware ---------------------------------------------------------------------------------------------

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except _RequestNotFound:
            return web.json_response(REQUEST_NOT_FOUND.to_json(), status=404)
        except web.HTTPNotFound:
            return web.json_response(NOT_FOUND.to_json(), status=404)
        except web.HTTPMethodNotAllowed as error:
            allowed = ", ".join(sorted(error.allowed_methods))
            return web.json_response(
                {"error": "Method not allowed", "details": f"{request.method} is not supported here; use {allowed}"},
                status=405,
                headers={"Allow": allowed},  # RFC 9110: a 405 says which methods the resource takes
            )
        except ContractError as error:
            return web.json_response(error.body.to_json(), status=400)
        except web.HTTPRequestEntityTooLarge:
            # aiohttp's own text gives the cap in bytes and no way out; the way out is the source's size or a link.
            return web.json_response(self._body_too_large(), status=413)
        except web.HTTPException as error:  # 413 for an oversized body, and the like: JSON too, as the contract has
            if error.status < 400:
                raise
            details = error.text or error.reason
            return web.json_response({"error": error.reason, "details": details}, status=error.status)
        except Exception as error:
            if store_out_of_reach(error):  # SQLite locked past its busy timeout (the app's writes), PostgreSQL down
                # Nothing was stored (a submit's count and insert are one transaction): the client may simply retry.
                log.warning(
                    "%s %s: the request database is busy or out of reach (%s: %s); answered 503",
                    request.method,
                    request.path,
                    type(error).__name__,
                    error,
                )
                return web.json_response(STORE_BUSY, status=503, headers={"Retry-After": str(STORE_BUSY_RETRY_S)})
            log.exception("%s %s failed", request.method, request.path)
            return web.json_response(
                {"error": "Internal server error", "details": "The request failed on the server; try again"}, status=500
            )

    def _body_too_large(self) -> dict[str, str]:
        image_cap, body_cap = self.config.max_image_bytes, self.config.max_image_bytes * 2  # client_max_size
        return {
            "error": "Request Entity Too Large",
            "details": f"The request body is over {_size_said(body_cap)}; send an image of at most "
            f"{_size_said(image_cap)} (MAX_DOWNLOAD_MB), or a link to it as image_url",
        }

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not self.config.keys and not _is_loopback(_host_of(request)):
            # Keyless means loopback only; a page that rebinds its DNS name to 127.0.0.1 still sends its own Host.
            return web.json_response(LOOPBACK_ONLY, status=403)
        # Media links are capabilities handed to the client (like a CDN URL): they need no key, but a wrong one
        # is refused as anywhere else.
        keyless_media = request.path.startswith("/media/") and KEY_HEADER not in request.headers
        if self.config.keys and not keyless_media and self._tenant(request) is None:
            return web.json_response(UNAUTHORIZED, status=401)
        return await handler(request)

    def _tenant(self, request: web.Request) -> str | None:
        """The tenant whose key the request carries (None: no key, or not one of ours). Every key is compared, in
        constant time, so timing tells nothing about them."""
        if not self.config.keys:
            return NO_KEY_TENANT
        given = _digest(request.headers.get(KEY_HEADER, ""))  # same length whatever was sent
        found = None
        for key, tenant in self._keys:
            if hmac.compare_digest(given, key):
                found = tenant
        return found

    def _owner(self, request: web.Request) -> str:
        tenant = self._tenant(request)
        assert tenant is not None  # _auth has let only known keys through
        return tenant

    # --- routes -------------------------------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.Response:
        tenant = self._owner(request)
        if not self.config.keys and request.content_type != "application/json":
            # A web page may send any site a text/plain (or form) POST without asking first; JSON it may not, so a
            # keyless server on this machine takes only JSON, and no page its user visits can queue work on it.
            return web.json_response(UNSUPPORTED_MEDIA_TYPE.to_json(), status=415)
        api_request = SmartResizeRequest.from_json(await _json_body(request))
        try:
            check_output_count(len(api_request.target_sizes), api_request.num_images_per_size, self.config.limits)
        except TooManyOutputs as error:
            raise ContractError("Too many images", str(error)) from None
        self._check_pixels(api_request)
        if api_request.image_url[:5].lower() != "data:":
            try:
                await self.fetcher.vet(api_request.image_url)
            except FetchError as error:
                raise ContractError("Invalid image_url", api_message(error)) from None
        if (wait := self.rate.take(tenant)) is not None:
            return _too_many(
                f"This API key may submit {self.config.requests_per_minute} requests a minute; retry later", wait
            )
        request_id = f"smart-resize_{uuid7()}"
        limits = QueueLimits(size=self.config.queue_size, share=self.config.queue_share)
        try:
            refused = await self.store.add(request_id, tenant, api_request, time.time(), limits)
        except BaseException:  # not stored (or not known to be): the submit is not counted against the rate
            self.rate.give_back(tenant)
            raise
        if refused is not None:  # nor is one the queue had no room for
            self.rate.give_back(tenant)
        if refused is not None and refused.whole_queue:
            return _too_many("The queue is full; retry later", self.pace.retry_after())
        if refused is not None:
            return _too_many(
                f"This API key has {refused.waiting} requests waiting, its share of the queue; retry later",
                self.pace.retry_after(),
            )
        self._wake_workers()
        # sync_mode only changes how the outputs are linked (data URIs); the submit answers at once either way.
        polling_url = f"{self._origin(request)}/v2/requests/status/{request_id}"
        return web.json_response(SubmitResponse(request_id, Status.QUEUED, polling_url).to_json())

    def _check_pixels(self, api_request: SmartResizeRequest) -> None:
        """The work one request may ask for, refused at submit: every output's pixels together, and for sync_mode
        what each status answer would carry inline."""
        pixels = sum(width * height for width, height in api_request.sizes) * api_request.num_images_per_size
        cap = self.config.limits.max_output_pixels
        if pixels > cap:
            raise ContractError(
                "Too many pixels",
                f"This request asks for {_megapixels(pixels)} megapixels of images in all; this server makes at most "
                f"{_megapixels(cap)} per request (SMART_RESIZE_MAX_OUTPUT_MEGAPIXELS). "
                "Ask for fewer or smaller images, or split the request",
            )
        if api_request.sync_mode and pixels > self.config.sync_max_pixels:
            raise ContractError(
                "Too large for sync_mode",
                f"sync_mode returns every image inside each status answer, and this request's "
                f"{_megapixels(pixels)} megapixels are over the {_megapixels(self.config.sync_max_pixels)} this "
                "server returns that way (SMART_RESIZE_SYNC_MAX_MEGAPIXELS). Submit it without sync_mode and "
                "download the media_url links",
            )

    async def status(self, request: web.Request) -> web.StreamResponse:
        return await self._answer_status(request, request.match_info["request_id"])

    async def result(self, request: web.Request) -> web.StreamResponse:
        result_request = ResultRequest.from_json(await _json_body(request))
        return await self._answer_status(request, result_request.request_id)

    async def media(self, request: web.Request) -> web.FileResponse:
        request_id, name = request.match_info["request_id"], request.match_info["name"]
        # Only names this server made, of a request it has finished: never a path of the client's choosing.
        if not (_REQUEST_ID.fullmatch(request_id) and _MEDIA_NAME.fullmatch(name)):
            raise web.HTTPNotFound()
        # Without a key the link is the capability; with one, it must be the owner's.
        tenant = self._owner(request) if KEY_HEADER in request.headers or not self.config.keys else None
        state = await self.store.get(request_id, tenant)
        if state is None or state.status is not Status.COMPLETED or name not in state.files:
            raise _RequestNotFound()
        path = outputs_path(self.store.media_dir, request_id, state.outputs_from) / name
        kind = _MEDIA_TYPES[path.suffix.lstrip(".")]
        return web.FileResponse(path, headers={"Content-Type": kind})

    async def _answer_status(self, request: web.Request, request_id: str) -> web.StreamResponse:
        stored = await self.store.get(request_id, self._owner(request))
        if stored is None:
            raise _RequestNotFound()
        if stored.status is Status.COMPLETED and stored.sync_mode:
            return await self._stream_inline(request, stored)
        urls = [f"{self._origin(request)}/media/{stored.id}/{name}" for name in stored.files]
        return web.json_response(_status_body(stored, urls).to_json())

    async def _stream_inline(self, request: web.Request, stored: RequestState) -> web.StreamResponse:
        """A finished sync_mode request's answer, its images inline as data URIs, streamed from the files.

        Built whole, four polls of ten 8192x8192 PNGs took 4.6 GB and held the event loop for seconds (json.dumps
        of 433 MB). Streamed, an answer costs ~2 MB whatever its size, and the loop only writes: each image is
        read and base64-encoded in pieces, off the loop, into the JSON around it.
        """
        media_type = stored.media_type or "image/png"
        mark = f"inline-{uuid.uuid4().hex}-"  # placeholders nothing else in the answer can contain
        text = json.dumps(_status_body(stored, [f"{mark}{index}" for index in range(len(stored.files))]).to_json())
        pieces = re.split(f'"{mark}([0-9]+)"', text)  # JSON, image index, JSON, ..., JSON
        try:
            folder = outputs_path(self.store.media_dir, stored.id, stored.outputs_from)
            files = await asyncio.to_thread(_open_all, folder, stored.files)
        except OSError:  # expired (its files deleted) since the row was read
            raise _RequestNotFound() from None
        try:
            head = f'"data:{media_type};base64,'.encode()
            sizes = [os.fstat(file.fileno()).st_size for file in files]
            response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
            response.content_length = sum(len(piece.encode()) for piece in pieces[::2]) + sum(
                len(head) + 4 * -(-sizes[int(index)] // 3) + 1 for index in pieces[1::2]
            )
            await response.prepare(request)
            try:
                for position, piece in enumerate(pieces):
                    if position % 2 == 0:
                        await response.write(piece.encode())
                        continue
                    file = files[int(piece)]
                    file.seek(0)  # each image appears twice: in output.media_url and in images[]
                    await response.write(head)
                    while chunk := await asyncio.to_thread(_base64_piece, file):
                        await response.write(chunk)
                    await response.write(b'"')
                await response.write_eof()
            except ConnectionError:  # the client went away mid-answer: there is no one to tell
                pass
            return response
        finally:
            for file in files:
                file.close()

    def _origin(self, request: web.Request) -> str:
        transport = request.transport
        return origin_for(
            request.scheme,
            request.headers.get("Host"),
            transport.get_extra_info("sockname") if transport is not None else None,
            public_url=self.config.public_url,
            allowed_hosts=self.config.allowed_hosts,
        )

    # --- work ---------------------------------------------------------------------------------------------------

    def _wake_workers(self) -> None:
        """A request may be waiting (submitted here, or another replica's NOTIFY): every idle worker looks now."""
        self._wake.set()
        self._wake = asyncio.Event()

    async def _worker(self) -> None:
        # Besides the wake-ups, a slow poll: nothing announces a dead replica's lease running out.
        poll_s = self.config.lease_s / 3
        while not self._stopping:
            wake = self._wake  # taken before the claim: a submit while it runs then makes the wait below end at once
            try:
                claimed = await self.store.claim_next(time.time())
            except Exception as error:  # the database is locked or failing: try again shortly
                if store_out_of_reach(error):  # expected now and then (the app's writes): one line, no traceback
                    log.warning("could not claim a request (%s: %s); retrying", type(error).__name__, error)
                else:
                    log.exception("could not claim a request; retrying")
                await asyncio.sleep(1.0)
                continue
            if claimed is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_s)
                continue
            self._working.add(claimed.id)
            try:
                await self._run(claimed)
            finally:
                self._working.discard(claimed.id)

    async def _run(self, claimed: ClaimedRequest) -> None:
        """Work on a claim while renewing its lease. Work another server has taken over stops (its finish would not
        count anyway); a clean stop whose grace runs out hands the request back, for another server to take at once
        (and the claim is not counted as an interruption)."""
        work = asyncio.ensure_future(self._handle(claimed))
        lease = asyncio.ensure_future(self._keep_lease(claimed))
        try:
            await asyncio.wait((work, lease), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            lease.cancel()
            await asyncio.gather(work, lease, return_exceptions=True)
            try:
                await self.store.release(claimed, time.time())
                log.warning(
                    "request %s was handed back unfinished (the server is stopping); it runs again in full", claimed.id
                )
            except Exception:  # else the lease runs out (at once with SQLite's next start), which hands it on too
                log.warning("request %s could not be handed back; its lease will run out", claimed.id, exc_info=True)
            raise
        lease.cancel()
        if not work.done():
            work.cancel()
            log.warning("request %s was taken over by another server (this one's lease ran out)", claimed.id)
        await asyncio.gather(work, lease, return_exceptions=True)

    async def _keep_lease(self, claimed: ClaimedRequest) -> None:
        """Renew the lease every third of it; returns when the request is no longer this claim."""
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            try:
                if not await self.store.renew(claimed, time.time()):
                    return
            except Exception:  # the database is failing: work on; if the lease does run out, the finish won't count
                log.warning("request %s: its lease could not be renewed", claimed.id, exc_info=True)

    async def _handle(self, claimed: ClaimedRequest) -> None:
        try:
            if claimed.request is None:
                log.error("request %s: its stored body no longer reads; it ends as ERROR", claimed.id)
                await self._finish(claimed, Status.ERROR, error=GAVE_UP)
            elif claimed.interruptions >= MAX_ATTEMPTS:
                log.error("request %s was interrupted %d times; giving up", claimed.id, claimed.interruptions)
                await self._finish(claimed, Status.ERROR, error=GAVE_UP)
            else:
                started = time.monotonic()
                await self._process(claimed)
                self.pace.record(time.monotonic() - started)
        except Exception:  # one bad request must not stop the worker
            log.exception("request %s crashed", claimed.id)
            with contextlib.suppress(Exception):  # if even this fails, the lease runs out and it runs again
                await self._finish(claimed, Status.ERROR, error=GAVE_UP)

    async def _finish(
        self,
        claimed: ClaimedRequest,
        status: Status,
        *,
        error: str | None = None,
        files: list[str] | None = None,
        media_type: str | None = None,
        description: str = "",
    ) -> bool:
        finished = await self.store.finish(
            claimed, status, time.time(), error=error, files=files, media_type=media_type, description=description
        )
        if finished:
            return True
        log.warning(
            "request %s was taken over by another server (this one's lease ran out); this result is dropped",
            claimed.id,
        )
        return False

    async def _process(self, claimed: ClaimedRequest) -> None:
        api_request = claimed.request
        assert api_request is not None  # _handle ends unreadable ones
        try:
            if api_request.image_url[:5].lower() == "data:":
                source = await asyncio.to_thread(
                    decode_data_uri, api_request.image_url, max_bytes=self.config.max_image_bytes
                )
            else:
                # An image served unlabelled (octet-stream, or no Content-Type) is fetched: the engine knows images
                # by their bytes and refuses anything else in its one sentence. text/html and the like are refused.
                source = await self.fetcher.fetch(
                    api_request.image_url, max_bytes=self.config.max_image_bytes, accept=(*DEFAULT_ACCEPT, *UNLABELLED)
                )
            result = await self.pool.resize(source.data, spec_of(api_request).engine_request(), self.config.limits)
        except (EngineError, FetchError) as error:
            await self._finish(claimed, Status.FAILED, error=api_message(error))
            return
        names = [f"output_{output.target}_{output.variant}.{api_request.output_format}" for output in result.outputs]
        folder = outputs_path(self.store.media_dir, claimed.id, claimed.attempts)
        await asyncio.to_thread(_write_outputs, folder, names, result.outputs)
        media_type = result.outputs[0].content_type
        # The engine's notes (what each extended side was filled with, what a prompt did) as the Output's
        # description, which the contract has for what the service says about its result.
        description = " ".join(result.notes)
        if not await self._finish(
            claimed, Status.COMPLETED, files=names, media_type=media_type, description=description
        ):
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _expire_loop(self) -> None:
        while True:
            try:
                await self.expire()
            except Exception:  # a failed sweep is retried on the next round, not the end of all cleaning
                log.exception("expiring old requests failed")
            await asyncio.sleep(self.config.cleanup_every_s)

    async def expire(self, now: float | None = None) -> int:
        """Delete finished requests older than the TTL, with their files; returns how many went."""
        cutoff = (time.time() if now is None else now) - self.config.output_ttl_s
        expired = await self.store.finished_before(cutoff)
        for request_id in expired:
            await asyncio.to_thread(shutil.rmtree, self.store.media_dir / request_id, True)
            await self.store.delete(request_id)
        return len(expired)


class _RequestNotFound(Exception):
    """No such request for this key: unknown, expired, or another key's (one answer for all three)."""


def _status_body(stored: RequestState, urls: list[str]) -> StatusResponse:
    """The status answer; ``urls``: where each of a finished request's files is (unused until it is COMPLETED)."""
    output = images = None
    if stored.status is Status.COMPLETED:
        media_type = stored.media_type or "image/png"
        # Both shapes the document shows: output.media_url, and the Output block's images[].
        output = JobOutput(media_url=urls, media_type=media_type)
        images = [OutputImage(name, media_type, url) for name, url in zip(stored.files, urls, strict=True)]
    return StatusResponse(
        request_id=stored.id,
        status=stored.status,
        model_id=MODEL_ID,
        error=stored.error,
        output=output,
        created_at=_now_iso(stored.created_at),
        updated_at=_now_iso(stored.updated_at),
        completed_at=_now_iso(stored.completed_at) if stored.completed_at else None,
        images=images,
        description=(stored.description or "") if images is not None else None,
    )


def _check_media_dir(directory: Path) -> None:
    """Refuse to start where no output could be written: every request would otherwise end ERROR, with a traceback
    in the log, for a setting (SMART_RESIZE_MEDIA_DIR, or the folder beside the database) one line can name."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-check-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        # mkdir's own words for a file in the way are "File exists", which reads as if it were fine.
        reason = "it is a file, not a folder" if directory.is_file() else system_reason(error)
        raise StoreUnavailable(
            f"Can't write outputs to {directory} ({reason}); set SMART_RESIZE_MEDIA_DIR to a folder this server "
            "may write in."
        ) from None


def _open_all(directory: Path, names: list[str]) -> list[IO[bytes]]:
    """Every file of a request, opened at once: one deleted meanwhile (expiry) then can't cut an answer short."""
    files: list[IO[bytes]] = []
    try:
        for name in names:
            files.append((directory / name).open("rb"))
    except OSError:
        for file in files:
            file.close()
        raise
    return files


def _base64_piece(file: IO[bytes]) -> bytes:
    return base64.b64encode(file.read(_STREAM_CHUNK))


def _size_said(size: int) -> str:
    """A byte cap as MAX_DOWNLOAD_MB counts it (whole MB of 1024 * 1024 bytes), else in bytes."""
    megabytes, rest = divmod(size, 1024 * 1024)
    return f"{megabytes} MB" if megabytes and not rest else f"{size} bytes"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}".removesuffix(".0")


def _body_too_slow(seconds: float) -> web.Response:
    return web.json_response(
        {
            "error": "Request timeout",
            "details": f"The request body did not arrive within {seconds:g} seconds (BODY_READ_TIMEOUT); send it again",
        },
        status=408,
    )


def origin_for(
    scheme: str,
    host_header: str | None,
    sockname: Any,
    *,
    public_url: str | None,
    allowed_hosts: Sequence[tuple[str, int | None]],
) -> str:
    """Where polling and media URLs point: SMART_RESIZE_PUBLIC_URL; else the Host header if it names one of
    SMART_RESIZE_ALLOWED_HOSTS; else the address the request arrived on. Never an unchecked header: a client that
    follows the polling URL sends its key there (``Host: 127.0.0.1@evil.example`` would make it evil.example)."""
    if public_url:
        return public_url.rstrip("/")
    if host_header is not None and allowed_hosts:
        with contextlib.suppress(ValueError):
            host, port = parse_authority(host_header)
            effective = port if port is not None else (443 if scheme == "https" else 80)
            if any(host == name and allowed in (None, effective) for name, allowed in allowed_hosts):
                return f"{scheme}://{host}" + (f":{port}" if port is not None else "")
    return f"{scheme}://{_listening_address(sockname)}"


def _listening_address(sockname: Any) -> str:
    """The local address of the connection (``sockname``): the one the client reached, even behind 0.0.0.0."""
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        address, port = str(sockname[0]), int(sockname[1])
        if ":" in address:  # IPv6, bracketed; a zone (fe80::1%eth0) escaped as URLs need it
            return f"[{address.replace('%', '%25')}]:{port}"
        return f"{address}:{port}"
    return "localhost"  # a Unix socket, or a connection already gone


def _too_many(details: str, retry_after: float) -> web.Response:
    return web.json_response(
        {"error": "Too many requests", "details": details},
        status=429,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def _write_outputs(directory: Path, names: list[str], outputs: Sequence[Output]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, output in zip(names, outputs, strict=True):
        (directory / name).write_bytes(output.data)


def spec_of(api_request: SmartResizeRequest) -> ResizeSpec:
    """The API's request as the engine's spec (the contract has no mode: the engine chooses, as the service does)."""
    return ResizeSpec(
        sizes=tuple(Size(w, h) for w, h in api_request.sizes),
        output_format=api_request.output_format,
        prompt=api_request.prompt,
        variants=api_request.num_images_per_size,
        seed=api_request.seed,
        resolution=api_request.resolution,
    )


async def _json_body(request: web.Request) -> object:
    raw = await request.read()
    if len(raw) > _INLINE_JSON_BYTES:  # a data URI of tens of MB: parsed off the event loop
        return await asyncio.to_thread(load_json_body, raw)
    return load_json_body(raw)


def _host_of(request: web.Request) -> str:
    """The Host header's host, or "" when it is not one (``x:y``, a port past 65535): never an exception."""
    try:
        return request.url.host or ""
    except ValueError:
        return ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def serve_forever(host: str | None, port: int) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_server_settings()
    except ConfigError as error:
        for problem in error.problems:
            print(f"smart-resize serve: {problem}", file=sys.stderr)
        return 2
    if not config.keys:
        if host is not None and not _is_loopback(host):
            print(
                "smart-resize serve: without SMART_RESIZE_API_KEYS the server only listens on loopback; "
                "set keys to serve other hosts.",
                file=sys.stderr,
            )
            return 2
        host = host or "127.0.0.1"
        log.info("no SMART_RESIZE_API_KEYS set: listening on %s only, without authentication", host)
    host = host or "0.0.0.0"  # noqa: S104 - keys are configured, so other hosts may connect
    try:
        server = SmartResizeServer(config)
        asyncio.run(_serve(server, host, port))
    except StoreUnavailable as error:  # can't start, as a bad setting or a taken port: 2, as the app says it too
        print(f"smart-resize serve: {error}", file=sys.stderr)
        return 2
    except CannotListen as error:
        print(f"smart-resize serve: {error}", file=sys.stderr)
        return 2
    return 0


class CannotListen(Exception):
    """The address to serve on is taken, not this machine's, or not a name that resolves."""


def _cannot_listen(host: str, port: int, error: OSError) -> CannotListen:
    """In use, not an address of this machine, a name that does not resolve: said with the system's words."""
    return CannotListen(
        f"can't listen on {host}:{port} ({system_reason(error)}); pick another --port, or a --host this machine has."
    )


def _log_listening(host: str, port: int) -> None:
    log.info("Smart Resize API on http://%s:%d%s", host, port, PREFIX)
    if (models := missing_warning()) is not None:
        log.warning(models)


async def _serve(server: SmartResizeServer, host: str, port: int) -> None:
    """Until SIGINT or SIGTERM, through the runner that puts the read deadlines on every connection."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The address is tried before anything starts: a second start on a port in use (the server already running on
    # it) must not open the database, which hands the running server's claims on, and claim its requests meanwhile.
    try:
        probe = await loop.create_server(asyncio.Protocol, host, port, start_serving=False)
    except OSError as error:
        raise _cannot_listen(host, port, error) from None
    probe.close()
    await probe.wait_closed()
    runner = server.slow_clients.runner(server.application())
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host=host, port=port).start()
        except OSError as error:  # taken in the moment since the probe
            raise _cannot_listen(host, port, error) from None
        # --port 0 takes any free port: the line says which, or no one could find the server.
        _log_listening(host, runner.addresses[0][1] if runner.addresses else port)
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second one: stop without waiting out the grace
            loop.add_signal_handler(sig, server.hurry)
    finally:
        await runner.cleanup()

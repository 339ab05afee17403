"""``smart-resize serve``: the hosted Smart Resize API's contract, served on our embedded engine.

Any client of the hosted API can point at it (base URL ``http://HOST:PORT/smart-resize/v1``). Jobs are kept in SQLite
with their outputs on disk beside it, so they survive a restart (unfinished ones run again); outputs expire after a
configurable time. The queue is bounded (429 with Retry-After when full) and image work runs in the engine's worker
processes. Without configured keys the server only listens on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.net import FetchError, NetworkPolicy, SafeFetcher, decode_data_uri, parse_allow_networks
from bot.smart_resize.contract import (
    NOT_FOUND,
    ContractError,
    JobOutput,
    ResultRequest,
    SmartResizeRequest,
    Status,
    StatusResponse,
    SubmitResponse,
)
from bot.smart_resize.engine import EngineError, Limits, ResizeRequest, Size
from bot.smart_resize.engine.pool import EnginePool

log = logging.getLogger(__name__)

PREFIX = "/smart-resize/v1"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
MODEL_ID = "smart-resize"
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
UNAUTHORIZED = {"error": "Unauthorized", "details": f"A valid {KEY_HEADER} header is required"}


@dataclass(frozen=True)
class ServerConfig:
    keys: frozenset[str] = frozenset()
    db_path: Path = Path("data/smart-resize-server.db")
    output_ttl_s: float = 3600.0
    queue_size: int = 100
    workers: int = 2
    allow_networks: tuple[Any, ...] = ()
    max_image_bytes: int = 50 * 1024 * 1024
    public_url: str | None = None  # how clients reach us, for polling and media URLs; default: the request's host
    cleanup_every_s: float = 60.0
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServerConfig:
        env = dict(os.environ) if env is None else env
        keys = frozenset(k.strip() for k in env.get("SMART_RESIZE_API_KEYS", "").split(",") if k.strip())
        return cls(
            keys=keys,
            db_path=Path(env.get("SMART_RESIZE_SERVER_DB") or "data/smart-resize-server.db"),
            output_ttl_s=float(env.get("SMART_RESIZE_OUTPUT_TTL") or 3600),
            queue_size=int(env.get("SMART_RESIZE_QUEUE_SIZE") or 100),
            workers=int(env.get("ENGINE_WORKERS") or 2),
            allow_networks=parse_allow_networks(env.get("FETCH_ALLOW_PRIVATE_NETWORKS") or ""),
            public_url=env.get("SMART_RESIZE_PUBLIC_URL") or None,
        )


def _now_iso(moment: float | None = None) -> str:
    stamp = dt.datetime.fromtimestamp(time.time() if moment is None else moment, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class RequestStore:
    """One row per request: its body, status, outputs and timestamps (SQLite, WAL; calls in a thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.media_dir = path.with_suffix(".media")
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, body TEXT NOT NULL, status TEXT NOT NULL, "
                "error TEXT, files TEXT, media_type TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
                "completed_at REAL)"
            )

    async def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        def work() -> list[sqlite3.Row]:
            with self._lock:
                return self._db.execute(sql, params).fetchall()

        return await asyncio.to_thread(work)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SmartResizeServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = RequestStore(config.db_path)
        self.pool = EnginePool(config.workers, config.limits)
        self.fetcher = SafeFetcher(NetworkPolicy(config.allow_networks), max_bytes=config.max_image_bytes)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=config.queue_size)
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self._waiters: dict[str, asyncio.Event] = {}

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth], client_max_size=self.config.max_image_bytes * 2)
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
        await self.fetcher.start()
        # Requests accepted before a restart run again: their state is in the database, not in memory.
        unfinished = await self.store.run(
            "SELECT id FROM requests WHERE status IN ('QUEUED', 'PROCESSING') ORDER BY created_at"
        )
        for row in unfinished[: self.config.queue_size]:
            self.queue.put_nowait(row["id"])
        for index in range(max(1, self.config.workers)):
            self._spawn(self._worker(), f"worker-{index}")
        self._spawn(self._expire_loop(), "expiry")

    async def _stop(self, _app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.close()
        await self.fetcher.close()
        self.store.close()

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- middleware ---------------------------------------------------------------------------------------------

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.json_response(NOT_FOUND.to_json(), status=404)
        except web.HTTPMethodNotAllowed:
            return web.json_response(
                {"error": "Method not allowed", "details": f"{request.method} is not supported here"}, status=405
            )
        except ContractError as error:
            return web.json_response(error.body.to_json(), status=400)

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Media links are capabilities handed to the client (like a CDN URL): they carry no key.
        needs_key = self.config.keys and not request.path.startswith("/media/")
        if needs_key and request.headers.get(KEY_HEADER, "") not in self.config.keys:
            return web.json_response(UNAUTHORIZED, status=401)
        return await handler(request)

    # --- routes -------------------------------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        api_request = SmartResizeRequest.from_json(body)
        if self.queue.full():
            return web.json_response(
                {"error": "Too many requests", "details": "The queue is full; retry later"},
                status=429,
                headers={"Retry-After": "5"},
            )
        request_id = f"smart-resize_{uuid.uuid4()}"
        now = time.time()
        await self.store.run(
            "INSERT INTO requests (id, body, status, created_at, updated_at) VALUES (?, ?, 'QUEUED', ?, ?)",
            (request_id, json.dumps(api_request.to_json()), now, now),
        )
        done = asyncio.Event()
        self._waiters[request_id] = done
        self.queue.put_nowait(request_id)
        if api_request.sync_mode:
            await done.wait()
            return web.json_response((await self._status_of(request, request_id, inline=True)).to_json())
        polling_url = f"{self._origin(request)}/v2/requests/status/{request_id}"
        return web.json_response(SubmitResponse(request_id, Status.QUEUED, polling_url).to_json())

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response((await self._status_of(request, request.match_info["request_id"])).to_json())

    async def result(self, request: web.Request) -> web.Response:
        result_request = ResultRequest.from_json(await _json_body(request))
        return web.json_response((await self._status_of(request, result_request.request_id)).to_json())

    async def media(self, request: web.Request) -> web.FileResponse:
        request_id, name = request.match_info["request_id"], request.match_info["name"]
        path = self.store.media_dir / request_id / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        kind = _MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
        return web.FileResponse(path, headers={"Content-Type": kind})

    async def _status_of(self, request: web.Request, request_id: str, *, inline: bool = False) -> StatusResponse:
        rows = await self.store.run("SELECT * FROM requests WHERE id = ?", (request_id,))
        if not rows:
            raise web.HTTPNotFound()
        row = rows[0]
        output = None
        if row["status"] == Status.COMPLETED:
            names: list[str] = json.loads(row["files"])
            if inline:
                urls = [self._data_uri(request_id, name, row["media_type"]) for name in names]
            else:
                urls = [f"{self._origin(request)}/media/{request_id}/{name}" for name in names]
            output = JobOutput(media_url=urls, media_type=row["media_type"])
        return StatusResponse(
            request_id=request_id,
            status=Status(row["status"]),
            model_id=MODEL_ID,
            error=row["error"],
            output=output,
            created_at=_now_iso(row["created_at"]),
            updated_at=_now_iso(row["updated_at"]),
            completed_at=_now_iso(row["completed_at"]) if row["completed_at"] else None,
        )

    def _data_uri(self, request_id: str, name: str, media_type: str) -> str:
        data = (self.store.media_dir / request_id / name).read_bytes()
        return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"

    def _origin(self, request: web.Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    # --- work ---------------------------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            request_id = await self.queue.get()
            try:
                await self._process(request_id)
            except Exception:  # one bad request must not stop the worker
                log.exception("request %s crashed", request_id)
                await self._finish(request_id, Status.ERROR, error="Internal error; the request was not charged.")
            finally:
                self.queue.task_done()
                waiter = self._waiters.pop(request_id, None)
                if waiter is not None:
                    waiter.set()

    async def _process(self, request_id: str) -> None:
        rows = await self.store.run("SELECT body FROM requests WHERE id = ?", (request_id,))
        if not rows:
            return
        api_request = SmartResizeRequest.from_json(json.loads(rows[0]["body"]))
        await self.store.run(
            "UPDATE requests SET status = 'PROCESSING', updated_at = ? WHERE id = ?", (time.time(), request_id)
        )
        try:
            if api_request.image_url.startswith("data:"):
                source = decode_data_uri(api_request.image_url, max_bytes=self.config.max_image_bytes)
            else:
                source = await self.fetcher.fetch(api_request.image_url, max_bytes=self.config.max_image_bytes)
            result = await self.pool.resize(source.data, _engine_request(api_request))
        except (EngineError, FetchError) as error:
            await self._finish(request_id, Status.FAILED, error=str(error))
            return
        directory = self.store.media_dir / request_id
        directory.mkdir(parents=True, exist_ok=True)
        names = []
        for output in result.outputs:
            name = f"output_{output.target}_{output.variant}.{api_request.output_format}"
            (directory / name).write_bytes(output.data)
            names.append(name)
        await self._finish(request_id, Status.COMPLETED, files=names, media_type=result.outputs[0].content_type)

    async def _finish(
        self,
        request_id: str,
        status: Status,
        *,
        error: str | None = None,
        files: list[str] | None = None,
        media_type: str | None = None,
    ) -> None:
        now = time.time()
        await self.store.run(
            "UPDATE requests SET status = ?, error = ?, files = ?, media_type = ?, updated_at = ?, completed_at = ? "
            "WHERE id = ?",
            (status.value, error, json.dumps(files or []), media_type, now, now, request_id),
        )

    async def _expire_loop(self) -> None:
        while True:
            await self.expire()
            await asyncio.sleep(self.config.cleanup_every_s)

    async def expire(self) -> int:
        """Delete finished requests older than the TTL, with their files; returns how many went."""
        cutoff = time.time() - self.config.output_ttl_s
        rows = await self.store.run(
            "SELECT id FROM requests WHERE completed_at IS NOT NULL AND completed_at < ?", (cutoff,)
        )
        for row in rows:
            await asyncio.to_thread(shutil.rmtree, self.store.media_dir / row["id"], True)
            await self.store.run("DELETE FROM requests WHERE id = ?", (row["id"],))
        return len(rows)


def _engine_request(api_request: SmartResizeRequest) -> ResizeRequest:
    return ResizeRequest(
        sizes=tuple(Size(w, h) for w, h in api_request.sizes),
        output_format=api_request.output_format,
        prompt=api_request.prompt,
        variants=api_request.num_images_per_size,
        seed=api_request.seed,
        resolution=api_request.resolution,
    )


async def _json_body(request: web.Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ContractError("Invalid JSON", "The request body must be a JSON object") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def serve_forever(host: str | None, port: int) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = ServerConfig.from_env()
    except ValueError as error:
        print(f"smart-resize serve: {error}", file=sys.stderr)
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
    server = SmartResizeServer(config)
    log.info("Smart Resize API on http://%s:%d%s", host, port, PREFIX)
    web.run_app(server.application(), host=host, port=port, print=None)
    return 0

"""A real HTTP server on loopback that speaks the Smart Resize contract and fails on cue.

Each route has a queue of scripted faults; a request to that route takes the next one, and once the queue is
empty the route behaves like the contract says. Every request is recorded (before any fault applies), so tests
can count exactly what reached the "service". The server validates submits with ``SmartResizeRequest.from_json``,
as a self-hosted server would.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from PIL import Image

from bot.smart_resize_api.contract import (
    NOT_FOUND,
    ContractError,
    JobOutput,
    ResultRequest,
    SmartResizeRequest,
    Status,
    StatusResponse,
    SubmitResponse,
)

API_KEY = "test-key-7f3c9a"
BASE_PATH = "/smart-resize/v1"
KEY_HEADER = "Ocp-Apim-Subscription-Key"

Route = Literal["submit", "status_get", "status_post", "media"]

# What Azure API Management answers for a bad key: not the contract's error shape.
APIM_401 = {
    "statusCode": 401,
    "message": "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription.",
}


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Fault:
    """``status`` answers with that status; ``drop`` closes the connection unanswered; ``delay`` comes first.

    With neither ``status`` nor ``drop``, the request is handled normally after ``delay``. ``accept`` makes a
    submit create the job before the fault applies, as a gateway erroring after its backend accepted would.
    """

    status: int | None = None
    body: Any = None  # dict/list -> JSON, str/bytes -> sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    accept: bool = False


def respond(status: int, body: Any = None, headers: dict[str, str] | None = None, *, accept: bool = False) -> Fault:
    return Fault(status=status, body=body, headers=headers or {}, accept=accept)


def drop(*, accept: bool = False) -> Fault:
    return Fault(drop=True, accept=accept)


def slow(seconds: float) -> Fault:
    return Fault(delay=seconds)


@dataclass
class Seen:
    route: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Job:
    request: SmartResizeRequest
    statuses: deque[Status]
    error: str | None


class FaultServer:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.faults: dict[str, deque[Fault]] = {r: deque() for r in ("submit", "status_get", "status_post", "media")}
        self.jobs: dict[str, Job] = {}
        # Statuses a new job reports on successive polls; the last one sticks.
        self.progression: list[Status] = [Status.QUEUED, Status.PROCESSING, Status.COMPLETED]
        self.job_error: str | None = None
        # None: the GET status route exists. 404/405: it answers that instead (the POST route must be used).
        self.get_route_missing: int | None = None
        self.polling_origin: str | None = None  # to hand out polling URLs on another origin
        self.media_origin: str | None = None  # to serve results from another server ("the CDN")
        self.media_body = png_bytes()
        self.media_content_type = "image/png"
        # "status": the status response with output.media_url; "images": the document's Output block alone.
        self.result_shape: Literal["status", "images"] = "status"
        self.output_says_media_type = True  # False: a COMPLETED status's output block leaves media_type out
        # "images": the submit itself answers with the Output block of the finished job, which the document also shows.
        self.submit_shape: Literal["status", "images"] = "status"
        self.media_declares_length = True
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- control --------------------------------------------------------------------------------------------

    async def start(self) -> FaultServer:
        app = web.Application(middlewares=[self._record])
        app.router.add_post(f"{BASE_PATH}/smart-resize-request", self._submit)
        app.router.add_post(f"{BASE_PATH}/smart-resize-request-result", self._status_post)
        app.router.add_get("/v2/requests/status/{request_id}", self._status_get)
        app.router.add_get("/media/{request_id}/{name}", self._media)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + BASE_PATH

    def script(self, route: Route, *faults: Fault) -> None:
        self.faults[route].extend(faults)

    def count(self, route: Route) -> int:
        return sum(1 for s in self.seen if s.route == route)

    def add_job(self, request: SmartResizeRequest, statuses: list[Status] | None = None) -> str:
        request_id = f"smart-resize_{uuid.uuid4()}"
        self.jobs[request_id] = Job(request, deque(statuses or self.progression), self.job_error)
        return request_id

    # --- plumbing -------------------------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        route = self._route_of(request)
        self.seen.append(Seen(route, request.method, request.path, dict(request.headers), body))
        fault = self.faults[route].popleft() if self.faults.get(route) else None
        if fault is None:
            return await self._authorised(request, handler, route)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.accept and route == "submit":
            self._create_job(body)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never delivered: the connection is gone
        if fault.status is None:
            return await self._authorised(request, handler, route)
        return _answer(fault.status, fault.body, fault.headers)

    async def _authorised(self, request: web.Request, handler: Any, route: str) -> web.StreamResponse:
        if route != "media" and request.headers.get(KEY_HEADER) != API_KEY:
            return _answer(401, APIM_401)
        response: web.StreamResponse = await handler(request)
        return response

    @staticmethod
    def _route_of(request: web.Request) -> str:
        path = request.path
        if path.endswith("/smart-resize-request"):
            return "submit"
        if path.endswith("/smart-resize-request-result"):
            return "status_post"
        if path.startswith("/v2/requests/status/"):
            return "status_get"
        if path.startswith("/media/"):
            return "media"
        return "other"

    def _create_job(self, body: bytes) -> str:
        return self.add_job(SmartResizeRequest.from_json(json.loads(body)))

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        try:
            obj = json.loads(await request.read())
        except ValueError:
            return _answer(400, {"error": "Invalid JSON", "details": "The request body must be valid JSON"})
        try:
            request_id = self.add_job(SmartResizeRequest.from_json(obj))
        except ContractError as error:
            return _answer(400, error.body.to_json())
        if self.submit_shape == "images":
            return _answer(200, self._output_block(request_id))
        polling = f"{self.polling_origin or self.origin}/v2/requests/status/{request_id}"
        return _answer(200, SubmitResponse(request_id, Status.QUEUED, polling).to_json())

    def _output_block(self, request_id: str) -> dict[str, Any]:
        request = self.jobs[request_id].request
        kind = f"image/{request.output_format}"
        urls = self._media_urls(request_id, request)
        images = [{"file_name": url.rsplit("/", 1)[-1], "content_type": kind, "url": url} for url in urls]
        return {"images": images, "description": ""}

    async def _status_get(self, request: web.Request) -> web.StreamResponse:
        if self.get_route_missing is not None:
            return _answer(self.get_route_missing, NOT_FOUND.to_json())
        return self._status(request.match_info["request_id"])

    async def _status_post(self, request: web.Request) -> web.StreamResponse:
        try:
            ask = ResultRequest.from_json(json.loads(await request.read()))
        except ValueError as error:  # ContractError is a ValueError, and so is invalid JSON
            body = error.body.to_json() if isinstance(error, ContractError) else {"error": "Invalid JSON"}
            return _answer(400, body)
        return self._status(ask.request_id)

    def _status(self, request_id: str) -> web.StreamResponse:
        job = self.jobs.get(request_id)
        if job is None:
            return _answer(404, NOT_FOUND.to_json())
        status = job.statuses.popleft() if len(job.statuses) > 1 else job.statuses[0]
        output = None
        kind = f"image/{job.request.output_format}"
        urls = self._media_urls(request_id, job.request) if status is Status.COMPLETED else []
        if urls and self.result_shape == "images":  # the document's "Output" block, alone
            return _answer(200, self._output_block(request_id))
        if urls:
            output = JobOutput(urls, kind)
        error = (job.error or f"{status.value.lower()} in test") if status in (Status.FAILED, Status.ERROR) else None
        created = "2026-03-31T10:00:00.000Z"
        done = "2026-03-31T10:00:15.000Z" if status.terminal else None
        answer = StatusResponse(request_id, status, "smart-resize", error, output, created, created, done).to_json()
        if answer["output"] is not None and not self.output_says_media_type:
            del answer["output"]["media_type"]
        return _answer(200, answer)

    def _media_urls(self, request_id: str, request: SmartResizeRequest) -> list[str]:
        names = [
            f"output_{size}_{variant}.{request.output_format}"
            for size in request.target_sizes
            for variant in range(request.num_images_per_size)
        ]
        if request.sync_mode:
            inline = base64.b64encode(self.media_body).decode()
            return [f"data:{self.media_content_type};base64,{inline}" for _ in names]
        return [f"{self.media_origin or self.origin}/media/{request_id}/{name}" for name in names]

    async def _media(self, request: web.Request) -> web.StreamResponse:
        if self.media_declares_length:
            return web.Response(body=self.media_body, headers={"Content-Type": self.media_content_type})
        # Chunked, with no Content-Length: the client can only find out the size by counting.
        response = web.StreamResponse(headers={"Content-Type": self.media_content_type})
        await response.prepare(request)
        for start in range(0, len(self.media_body), 16 * 1024):
            await response.write(self.media_body[start : start + 16 * 1024])
        await response.write_eof()
        return response


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(body, dict | list):
        return web.json_response(body, status=status, headers=headers)
    raw = body.encode() if isinstance(body, str) else body
    return web.Response(status=status, body=raw, headers=headers, content_type="application/json")

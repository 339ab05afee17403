"""The hosted Smart Resize API as a backend: submit once, store the request id, poll, download the results.

Private Slack images are not reachable by the service, so the source goes as a signed, expiring link the app serves
(``PUBLIC_BASE_URL``, see ``bot.jobs.source_links``) or, without one, as a data URI. The request id is saved before
polling starts, so a restart polls the same remote job instead of paying for a second one. This is the only module
that calls the API client: its errors become the backend's ``TransientError`` or ``UserError`` here.
"""

from __future__ import annotations

import base64
from dataclasses import replace

import aiohttp

from bot.backends import SUBMIT_IN_FLIGHT, BackendResult, RemoteId, ResizedImage, SourceImage, TransientError
from bot.engine import WEB_TYPES, Limits, image_size
from bot.engine.pool import EnginePool
from bot.engine.prompts import MODE_PHRASES, focus_prompt
from bot.smart_resize_api.client import JobHandle, SmartResizeClient, may_pass, submit_may_have_run
from bot.smart_resize_api.contract import MAX_PROMPT_CHARS, ContractError, SmartResizeRequest, StatusResponse
from bot.smart_resize_api.errors import (
    BadRequest,
    DownloadWrongType,
    JobFailed,
    JobTimedOut,
    MalformedResponse,
    SmartResizeError,
)
from bot.spec import ResizeSpec
from bot.user_errors import SUBMIT_OUTCOME_UNKNOWN, UserError, api_error_message


def api_request(spec: ResizeSpec, image: SourceImage) -> SmartResizeRequest:
    output_format = spec.output_format
    if output_format == "auto":  # the API has no "auto": photos as JPEG, anything that may have alpha as PNG
        output_format = "jpeg" if image.content_type == "image/jpeg" else "png"
    return SmartResizeRequest(
        image_url=image.public_url or data_uri(image.data, image.content_type),
        target_sizes=[str(size) for size in spec.sizes],
        prompt=api_prompt(spec),
        num_images_per_size=spec.variants,
        resolution=spec.resolution,
        output_format=output_format,
        seed=spec.seed,
    )


def api_prompt(spec: ResizeSpec) -> str:
    """The user's prompt with the mode and focal point as words (the API has no fields for them, and this engine's
    own server reads the words back), within the API's MAX_PROMPT_CHARS: the app accepted the user's prompt at up
    to that length, so where the added words would take it over, the user's part is shortened, not refused."""
    added = "; ".join(
        part for part in (MODE_PHRASES.get(spec.mode, ""), focus_prompt(spec.focus) if spec.focus else "") if part
    )
    if not spec.prompt or not added:
        return (spec.prompt or added)[:MAX_PROMPT_CHARS]
    room = MAX_PROMPT_CHARS - len(added) - len("; ")
    if (user := _shortened(spec.prompt, room)) == "":
        return added[:MAX_PROMPT_CHARS]
    return f"{user}; {added}"


def _shortened(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: cut at the last space that keeps most of it, else mid-word."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit * 3 // 4:
        cut = cut[:space]
    return cut.rstrip(" ;,")


def data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


class HostedBackend:
    name = "hosted"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        base_url: str,
        max_download_bytes: int,
        media_session: aiohttp.ClientSession | None = None,
        poll_interval: tuple[float, float] = (2.0, 3.0),
        *,
        pool: EnginePool,
        limits: Limits,
    ) -> None:
        """``pool`` and ``limits``: the engine that makes a web copy of a source the service may not read."""
        # Result URLs are chosen by the service: fetch them through the SSRF-guarded session.
        self.client = SmartResizeClient(
            session,
            api_key,
            base_url,
            max_download_bytes=max_download_bytes,
            media_session=media_session,
            poll_interval=poll_interval,
        )
        self.max_download_bytes = max_download_bytes
        self.pool = pool
        self.limits = limits

    async def accept(self, image: SourceImage) -> SourceImage:
        """The contract names no input formats and shows JPEG and PNG: a HEIC, AVIF, TIFF or BMP goes as a JPEG
        (a PNG where it has transparency) made by the engine, upright and in sRGB, so the service can read it."""
        if image.content_type in WEB_TYPES:
            return image
        data, content_type = await self.pool.web_copy(image.data, self.limits)
        return replace(image, data=data, content_type=content_type)

    async def run(self, image: SourceImage, spec: ResizeSpec, remote: RemoteId) -> BackendResult:
        try:
            return await self._run(image, spec, remote)
        except SmartResizeError as error:
            raise _backend_error(error, linked=image.public_url is not None) from None

    async def _run(self, image: SourceImage, spec: ResizeSpec, remote: RemoteId) -> BackendResult:
        remote_id = remote.value
        if remote_id is None:
            try:
                request = api_request(spec, image)
            except ContractError as error:
                raise UserError(f"The hosted Smart Resize API can't take that request: {error.details}.") from None
            await remote.save(SUBMIT_IN_FLIGHT)
            try:
                submitted = await self.client.submit(request)
            except SmartResizeError as error:
                if not submit_may_have_run(error):
                    await remote.save(None)
                    raise  # refused or never sent: the runner may try again where that helps
                # The service may have taken (and will charge for) the job, and we have no id to poll it by:
                # submitting again could pay twice, so this attempt is the last.
                detail = f"submit outcome unknown, not retried: {error}"
                raise UserError(SUBMIT_OUTCOME_UNKNOWN, detail=detail) from None
            if submitted.result is not None:
                # Answered with the images at once: no id to store (a crash before delivery submits again).
                status = submitted.result
            else:
                remote_id = submitted.request_id
                await remote.save(remote_id)
                # Its status came with the submit: the first poll is due an interval later.
                status = await self._wait(submitted, remote_id)
        else:
            status = await self._wait(remote_id, remote_id)  # after a restart: only the id is known, polled at once
        urls = status.media_urls
        if not urls:
            raise MalformedResponse("Job COMPLETED without any image", request_id=remote_id)
        images: list[ResizedImage] = []
        # The service makes num_images_per_size images per target size, in the order of target_sizes.
        per_size = max(1, spec.variants)
        for index, url in enumerate(urls):
            data, media_type = await self.client.download(url, max_bytes=self.max_download_bytes, request_id=remote_id)
            size = image_size(data)  # on the app's event loop: a header padded with blocks is not walked
            if size is None:
                raise DownloadWrongType("Result is not a readable image", content_type=media_type, request_id=remote_id)
            width, height = size
            target = spec.sizes[min(index // per_size, len(spec.sizes) - 1)]
            images.append(ResizedImage(data, media_type, width, height, target, index % per_size, None))
        notes = [status.description] if status.description else []  # what the service said of its result
        if spec.mode != "auto":
            notes.append(
                f"The hosted Smart Resize API has no mode option, so {spec.mode} mode was asked for in words "
                f"({MODE_PHRASES[spec.mode]!r}); it frames its own way."
            )
        if spec.fill != "auto":
            notes.append(
                "The hosted Smart Resize API fills extended canvases its own way; the fill option was not sent."
            )
        return BackendResult(images=images, notes=notes)

    async def _wait(self, job: JobHandle | str, remote_id: str) -> StatusResponse:
        """Poll a paid job to its end. The service keeps working on it whatever our poll meets, so a deadline
        passed or a garbled answer (a proxy's error page) is not the job's end: the runner tries again later, and
        that attempt polls the stored id again rather than paying for a second submit."""
        try:
            return await self.client.wait(job)
        except (JobTimedOut, MalformedResponse) as error:
            raise TransientError(f"{error}; polling {remote_id} again later", api_error_message(error)) from None


def _backend_error(error: SmartResizeError, *, linked: bool) -> TransientError | UserError:
    """Rate limits, outages (the API's, or its result host's) and broken connections may pass; anything else is the
    job's final answer."""
    message = api_error_message(error)
    if may_pass(error):
        return TransientError(str(error), message)
    if _about_the_source(error) or (error.status_code == 413 and not linked):
        # The service would not take the image as sent: the fix is the operator's, and it is one setting.
        if linked:
            return UserError(
                "The Smart Resize API couldn't fetch the image from the app; ask your workspace admin to make the "
                "app's PUBLIC_BASE_URL reachable from the internet.",
                detail=f"hosted API could not fetch the source link; check that PUBLIC_BASE_URL/sources/ is "
                f"reachable from the internet: {error}",
            )
        return UserError(
            "The Smart Resize API didn't accept the image as the app sends it; ask your workspace admin to set "
            "the app's PUBLIC_BASE_URL so the service can fetch it.",
            detail=f"hosted API refused the image sent as a data URI; set PUBLIC_BASE_URL so it gets a link: {error}",
        )
    return UserError(message, detail=f"hosted API: {error}")


def _about_the_source(error: SmartResizeError) -> bool:
    """A refusal of image_url: a 400 naming it, or a job that failed on it (as the contract's servers word it).
    A 413 to a submit carrying the image as a data URI is one too (``_backend_error``): a gateway's body cap under
    the image's size, which a link (PUBLIC_BASE_URL) keeps the body well under, and trying again never passes."""
    said = f"{error.error or ''} {error.details or ''}".lower()
    return isinstance(error, BadRequest | JobFailed) and "image_url" in said

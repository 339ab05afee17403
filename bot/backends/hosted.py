"""The hosted Smart Resize API as a backend: submit once, store the request id, poll, download the results.

Private Slack images are not reachable by the service, so the source goes as a data URI. The request id is saved
before polling starts, so a restart polls the same remote job instead of paying for a second one.
"""

from __future__ import annotations

import io

import aiohttp
from PIL import Image

from bot.backends import BackendResult, ResizedImage, SaveRemoteId, data_uri
from bot.engine import ResizeRequest
from bot.smart_resize_api.client import (
    DownloadWrongType,
    JobHandle,
    MalformedResponse,
    SmartResizeClient,
    SmartResizeError,
    submit_may_have_run,
)
from bot.smart_resize_api.contract import ContractError, SmartResizeRequest
from bot.user_errors import UserError


class SubmitOutcomeUnknown(SmartResizeError):
    """A submit failed after reaching the service (5xx, or the connection broke once sent): the job may run and be
    charged, and there is no request id to poll it by. Final: the runner does not submit again."""

    def user_message(self) -> str:
        return (
            "The Smart Resize API failed while taking the job, so it may still run and be charged; "
            "wait a few minutes before trying again."
        )


class HostedBackend:
    name = "pixazo"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        base_url: str,
        max_download_bytes: int,
        media_session: aiohttp.ClientSession | None = None,
    ) -> None:
        # Result URLs are chosen by the service: fetch them through the SSRF-guarded session.
        self.client = SmartResizeClient(
            session, api_key, base_url, max_download_bytes=max_download_bytes, media_session=media_session
        )
        self.max_download_bytes = max_download_bytes

    async def run(
        self,
        source: bytes,
        content_type: str,
        request: ResizeRequest,
        *,
        remote_id: str | None,
        save_remote_id: SaveRemoteId,
    ) -> BackendResult:
        notes: list[str] = []
        job: JobHandle | str
        if remote_id is None:
            try:
                api_request = self._api_request(source, content_type, request)
            except ContractError as error:
                raise UserError(f"The hosted Smart Resize API can't take that request: {error.details}.") from None
            try:
                submitted = await self.client.submit(api_request)
            except SmartResizeError as error:
                if not submit_may_have_run(error):
                    raise  # refused or never sent: the runner may try again where that helps
                # The service may have taken (and will charge for) the job, and we have no id to poll it by:
                # submitting again could pay twice, so this attempt is the last.
                raise SubmitOutcomeUnknown(str(error), status_code=error.status_code) from None
            remote_id = submitted.request_id
            await save_remote_id(remote_id)
            job = submitted  # its status came with the submit: the first poll is due an interval later
        else:
            job = remote_id  # after a restart: only the id is known, so it is polled at once
        status = await self.client.wait(job)
        urls = status.output.media_url if status.output else []
        if not urls:
            raise MalformedResponse("Job COMPLETED without any image", request_id=remote_id)
        images: list[ResizedImage] = []
        # The service makes num_images_per_size images per target size, in the order of target_sizes.
        per_size = max(1, request.variants)
        for index, url in enumerate(urls):
            data, media_type = await self.client.download(url, max_bytes=self.max_download_bytes, request_id=remote_id)
            try:
                width, height = Image.open(io.BytesIO(data)).size
            except (OSError, Image.DecompressionBombError):  # UnidentifiedImageError is an OSError
                raise DownloadWrongType(
                    "Result is not a readable image", content_type=media_type, request_id=remote_id
                ) from None
            target = request.sizes[min(index // per_size, len(request.sizes) - 1)]
            images.append(ResizedImage(data, media_type, width, height, target, index % per_size, None))
        if request.mode != "auto":
            notes.append("The hosted Smart Resize API chooses its own framing; the mode option was not sent.")
        return BackendResult(images=images, notes=notes)

    @staticmethod
    def _api_request(source: bytes, content_type: str, request: ResizeRequest) -> SmartResizeRequest:
        output_format = request.output_format
        if output_format == "auto":  # the API has no "auto": photos as JPEG, anything that may have alpha as PNG
            output_format = "jpeg" if content_type == "image/jpeg" else "png"
        return SmartResizeRequest(
            image_url=data_uri(source, content_type),
            target_sizes=[str(size) for size in request.sizes],
            prompt=request.prompt,
            num_images_per_size=request.variants,
            resolution=request.resolution,
            output_format=output_format,
            seed=request.seed,
        )

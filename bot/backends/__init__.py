"""One resize interface, two backends: the embedded engine (default) and the hosted Smart Resize API."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.engine import ResizeRequest, Size
from bot.engine.pool import EnginePool


@dataclass(frozen=True)
class ResizedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    target: Size
    variant: int
    mode: str | None  # crop | extend (None when the backend does not say)

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(self.content_type, "img")


@dataclass(frozen=True)
class BackendResult:
    images: list[ResizedImage]
    notes: list[str]
    crop_map: bytes | None = None


SaveRemoteId = Callable[[str], Awaitable[None]]


class Backend(Protocol):
    name: str

    async def run(
        self,
        source: bytes,
        content_type: str,
        request: ResizeRequest,
        *,
        remote_id: str | None,
        save_remote_id: SaveRemoteId,
    ) -> BackendResult: ...


def request_from_spec(spec: dict[str, Any], *, explain: bool = False) -> ResizeRequest:
    return ResizeRequest(
        sizes=tuple(Size(*size) for size in spec["sizes"]),
        mode=spec.get("mode", "auto"),
        output_format=spec.get("output_format", "auto"),
        prompt=spec.get("prompt", ""),
        variants=int(spec.get("variants", 1)),
        seed=spec.get("seed"),
        resolution=spec.get("resolution", "1K"),
        explain=explain,
    )


class LocalBackend:
    name = "local"

    def __init__(self, pool: EnginePool) -> None:
        self.pool = pool

    async def run(
        self,
        source: bytes,
        content_type: str,
        request: ResizeRequest,
        *,
        remote_id: str | None,
        save_remote_id: SaveRemoteId,
    ) -> BackendResult:
        result = await self.pool.resize(source, request)
        images = [
            ResizedImage(o.data, o.content_type, o.width, o.height, o.target, o.variant, o.mode) for o in result.outputs
        ]
        return BackendResult(images=images, notes=list(result.notes), crop_map=result.crop_map)


def data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"

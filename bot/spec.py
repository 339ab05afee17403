"""One resize request, in one shape: what every surface (Slack, the CLI, the API server) asks either backend for.

The grammar and the forms make it once, with the sizes the job will really make (the defaults filled in); the job
stores it as versioned JSON; each backend maps it to its own terms in one function: ``engine_request`` here for the
engine (the local backend, the CLI and the API server all run it, and the CLI must start without the Slack side's
imports), ``bot.backends.hosted.api_request`` for the API contract.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from bot.engine.types import FillChoice, Focus, FormatChoice, Mode, ResizeRequest, Resolution, Size

SPEC_VERSION = 1


def describe_sizes(sizes: Sequence[Size]) -> str:
    return ", ".join(str(size) for size in sizes)


@dataclass(frozen=True)
class ResizeSpec:
    sizes: tuple[Size, ...]
    mode: Mode = "auto"
    # Unlike the API (png), the app and the forms default to "auto": JPEG for photos, PNG where there is alpha.
    output_format: FormatChoice = "auto"
    variants: int = 1
    prompt: str = ""
    seed: int | None = None
    resolution: Resolution = "1K"
    fill: FillChoice = "auto"  # the engine's; the hosted service fills extended canvases its own way
    focus: Focus | None = None  # the hosted service gets it as words in the prompt

    def describe(self) -> str:
        """The sizes as people read them: ``1080x1080, 1200x630 (2 alternatives each)``."""
        text = describe_sizes(self.sizes)
        return text + (f" ({self.variants} alternatives each)" if self.variants > 1 else "")

    def engine_request(self, *, explain: bool = False) -> ResizeRequest:
        # The engine's request is this spec plus what only the engine has (explain), under the same field names.
        return ResizeRequest(**{f.name: getattr(self, f.name) for f in fields(self)}, explain=explain)

    def digest(self) -> str:
        """A short name for exactly what this asks for: equal specs, equal digests (a dedup key's part)."""
        stored = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(stored.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            # [width, height] pairs, as the release before versions stored them: it can still read these rows.
            "sizes": [[size.width, size.height] for size in self.sizes],
            "mode": self.mode,
            "output_format": self.output_format,
            "variants": self.variants,
            "prompt": self.prompt,
            "seed": self.seed,
            "resolution": self.resolution,
            "fill": self.fill,
            "focus": list(self.focus) if self.focus is not None else None,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ResizeSpec:
        """Read a stored spec: this version, or the unversioned one jobs stored before (the same fields)."""
        version = obj.get("version", 0)
        if version not in (0, SPEC_VERSION):
            raise ValueError(f"unknown resize spec version {version!r}")
        sizes = tuple(Size(*(int(side) for side in size)) for size in obj["sizes"])
        return cls(
            sizes=sizes,
            mode=obj.get("mode", "auto"),
            output_format=obj.get("output_format", "auto"),
            variants=int(obj.get("variants", 1)),
            prompt=obj.get("prompt", ""),
            seed=obj.get("seed"),
            resolution=obj.get("resolution", "1K"),
            fill=obj.get("fill", "auto"),
            focus=tuple(float(v) for v in obj["focus"]) if obj.get("focus") is not None else None,  # type: ignore[arg-type]
        )

"""Crop maps: the picture behind "Show crop map", one JPEG per job, kept for a week and then pruned.

The only module that knows where they live; the runner saves them, the progress buttons read them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

DEFAULT_TTL_S = 7 * 24 * 3600.0  # then the button says the map has expired


class CropMaps:
    def __init__(self, directory: Path, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.directory = directory
        self.ttl_s = ttl_s

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.jpg"

    def save(self, job_id: str, picture: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path(job_id).write_bytes(picture)

    def exists(self, job_id: str) -> bool:
        return self._path(job_id).exists()

    def read(self, job_id: str) -> bytes | None:
        try:
            return self._path(job_id).read_bytes()
        except FileNotFoundError:
            return None

    async def prune(self, now: float | None = None) -> int:
        """Delete maps older than the TTL, off the event loop; returns how many went."""
        cutoff = (time.time() if now is None else now) - self.ttl_s

        def prune() -> int:
            if not self.directory.is_dir():
                return 0
            old = [path for path in self.directory.glob("*.jpg") if path.stat().st_mtime < cutoff]
            for path in old:
                path.unlink(missing_ok=True)
            return len(old)

        return await asyncio.to_thread(prune)

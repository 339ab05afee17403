"""Crop maps: the picture behind "Show crop map", one JPEG per job, kept for a week and then pruned.

The only module that knows where they live: files beside the SQLite database, or a table in PostgreSQL (so every
replica can show any job's map). The runner saves them, the progress buttons read them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncpg

DEFAULT_TTL_S = 7 * 24 * 3600.0  # then the button says the map has expired


class CropMaps(Protocol):
    ttl_s: float

    async def save(self, job_id: str, picture: bytes) -> None: ...
    async def exists(self, job_id: str) -> bool: ...
    async def read(self, job_id: str) -> bytes | None: ...
    async def prune(self, now: float | None = None) -> int: ...


class FileCropMaps:
    def __init__(self, directory: Path, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.directory = directory
        self.ttl_s = ttl_s

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.jpg"

    async def save(self, job_id: str, picture: bytes) -> None:
        def write() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path(job_id).write_bytes(picture)

        await asyncio.to_thread(write)

    async def exists(self, job_id: str) -> bool:
        return self._path(job_id).exists()

    async def read(self, job_id: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._path(job_id).read_bytes)
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


class PostgresCropMaps:
    """In the jobs database (its ``crop_maps`` table, made by the job store's migrations)."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.pool = pool
        self.ttl_s = ttl_s

    async def save(self, job_id: str, picture: bytes) -> None:
        await self.pool.execute(
            "INSERT INTO crop_maps (job_id, picture, saved_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (job_id) DO UPDATE SET picture = excluded.picture, saved_at = excluded.saved_at",
            job_id,
            picture,
            time.time(),
        )

    async def exists(self, job_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM crop_maps WHERE job_id = $1", job_id))

    async def read(self, job_id: str) -> bytes | None:
        value = await self.pool.fetchval(
            "SELECT picture FROM crop_maps WHERE job_id = $1 AND saved_at >= $2", job_id, time.time() - self.ttl_s
        )
        return bytes(value) if value is not None else None

    async def prune(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - self.ttl_s
        rows = await self.pool.fetch("DELETE FROM crop_maps WHERE saved_at < $1 RETURNING job_id", cutoff)
        return len(rows)

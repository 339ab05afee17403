"""The server's settings and stores on the ``database_url`` fixture's database: a SQLite file, or a PostgreSQL
database with a media directory of its own, as ``load_server_settings`` makes them from DATABASE_URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.config import ServerSettings
from bot.smart_resize_api.server.store import RequestStore, request_store
from bot.sqlite import is_postgres_url, sqlite_path


def settings_for(database_url: str, tmp_path: Path, **fields: Any) -> ServerSettings:
    if is_postgres_url(database_url):
        return ServerSettings(postgres_url=database_url, media_dir=tmp_path / "media", **fields)
    return ServerSettings(database_path=sqlite_path(database_url), **fields)


@contextlib.asynccontextmanager
async def opened(config: ServerSettings, *owners: str) -> AsyncIterator[list[RequestStore]]:
    """One store per owner, each with its own connections: servers sharing the database."""
    stores = [request_store(config, owner) for owner in owners]
    try:
        for store in stores:
            await store.open(lambda: None)
        yield stores
    finally:
        for store in stores:
            await store.close()

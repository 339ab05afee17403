"""Every setting in one typed place, read from the environment (and ``.env``), validated at start.

A bad or missing setting stops start-up with one line per problem saying what to do, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bot.engine import EngineError, Limits, Size, parse_size
from bot.net import parse_allow_networks
from bot.presets import DEFAULT_GROUP, resolve_preset
from bot.sqlite import DEFAULT_DATABASE_URL, sqlite_path

Backend = Literal["local", "pixazo"]
DEFAULT_PIXAZO_BASE_URL = "https://gateway.pixazo.ai/smart-resize/v1"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
MANIFEST_HINT = "create the app from manifest.yml at https://api.slack.com/apps (From an app manifest)"


class ConfigError(Exception):
    """All problems found at once, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str | None = field(repr=False)
    slack_app_token: str | None = field(repr=False)
    slack_api_url: str
    port: int
    backend: Backend
    pixazo_api_key: str | None = field(repr=False)
    pixazo_base_url: str
    database_path: Path
    allow_networks: tuple[IPv4Network | IPv6Network, ...]
    default_sizes: tuple[Size, ...]
    resize_reaction: str
    engine_workers: int
    max_sizes: int
    max_download_bytes: int
    jobs_per_user_per_hour: int
    job_retention_days: int
    limits: Limits

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    problems: list[str] = []

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    def integer(name: str, default: int, low: int, high: int) -> int:
        raw = get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a whole number; use a number from {low} to {high}.")
            return default
        if not low <= value <= high:
            problems.append(f"{name}={value} is out of range; use a number from {low} to {high}.")
            return default
        return value

    bot_token = get("SLACK_BOT_TOKEN")
    if bot_token is None:
        problems.append(
            f"SLACK_BOT_TOKEN is missing: {MANIFEST_HINT}, install it to your workspace, then copy "
            "OAuth & Permissions > Bot User OAuth Token (xoxb-...) into .env."
        )
    elif not bot_token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be the bot token starting with xoxb- (OAuth & Permissions page).")

    app_token = get("SLACK_APP_TOKEN")
    if app_token is not None and not app_token.startswith("xapp-"):
        problems.append(
            "SLACK_APP_TOKEN must be an app-level token starting with xapp- (Basic Information > App-Level Tokens, "
            "scope connections:write); leave it empty to run over HTTP instead of Socket Mode."
        )
    signing_secret = get("SLACK_SIGNING_SECRET")
    if app_token is None and signing_secret is None:
        problems.append(
            "SLACK_APP_TOKEN is missing: for Socket Mode (no public URL needed) generate one under Basic Information > "
            "App-Level Tokens with scope connections:write (xapp-...); or, for HTTP mode, set SLACK_SIGNING_SECRET "
            "from Basic Information > App Credentials."
        )

    slack_api_url = get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
    if urlsplit(slack_api_url).scheme not in ("http", "https") or not urlsplit(slack_api_url).netloc:
        problems.append(f"SLACK_API_URL={slack_api_url!r} is not an http(s) URL; leave it unset for Slack.")
    if not slack_api_url.endswith("/"):
        slack_api_url += "/"

    pixazo_key = get("PIXAZO_API_KEY")
    backend_raw = (get("SMART_RESIZE_BACKEND") or ("pixazo" if pixazo_key else "local")).lower()
    backend: Backend = "local"
    if backend_raw in ("local", "pixazo"):
        backend = backend_raw  # type: ignore[assignment]
    else:
        problems.append(f"SMART_RESIZE_BACKEND={backend_raw!r} is unknown; use local or pixazo.")
    if backend == "pixazo" and not pixazo_key:
        problems.append("SMART_RESIZE_BACKEND=pixazo needs PIXAZO_API_KEY; set it, or use the local engine.")

    database_path = sqlite_path(DEFAULT_DATABASE_URL)
    try:
        database_path = sqlite_path(get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    except ValueError as error:
        problems.append(str(error))

    allow_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    try:
        allow_networks = parse_allow_networks(get("FETCH_ALLOW_PRIVATE_NETWORKS") or "")
    except ValueError as error:
        problems.append(str(error))

    max_pixels = integer("MAX_IMAGE_MEGAPIXELS", 100, 1, 1000) * 1_000_000
    max_download_mb = integer("MAX_DOWNLOAD_MB", 50, 1, 1000)
    limits = Limits(
        max_pixels=max_pixels,
        max_outputs=integer("MAX_OUTPUTS_PER_REQUEST", 20, 1, 100),
        max_input_bytes=max_download_mb * 1024 * 1024,
    )
    default_sizes = _default_sizes(get("DEFAULT_SIZES"), limits, problems)
    reaction = (get("RESIZE_REACTION") or "frame_with_picture").strip(":")
    port = integer("PORT", 3000, 1, 65535)
    engine_workers = integer("ENGINE_WORKERS", max(1, min(4, os.cpu_count() or 1)), 1, 64)
    max_sizes = integer("MAX_SIZES_PER_REQUEST", 10, 1, 40)
    jobs_per_user_per_hour = integer("JOBS_PER_USER_PER_HOUR", 60, 1, 10_000)
    job_retention_days = integer("JOB_RETENTION_DAYS", 30, 1, 3650)

    if problems:
        raise ConfigError(problems)
    assert bot_token is not None
    return Settings(
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=slack_api_url,
        port=port,
        backend=backend,
        pixazo_api_key=pixazo_key,
        pixazo_base_url=get("PIXAZO_BASE_URL") or DEFAULT_PIXAZO_BASE_URL,
        database_path=database_path,
        allow_networks=allow_networks,
        default_sizes=default_sizes,
        resize_reaction=reaction,
        engine_workers=engine_workers,
        max_sizes=max_sizes,
        max_download_bytes=max_download_mb * 1024 * 1024,
        jobs_per_user_per_hour=jobs_per_user_per_hour,
        job_retention_days=job_retention_days,
        limits=limits,
    )


def _default_sizes(raw: str | None, limits: Limits, problems: list[str]) -> tuple[Size, ...]:
    """DEFAULT_SIZES: sizes and preset names separated by spaces or commas (default: the "social" group)."""
    sizes: list[Size] = []
    for token in (raw or DEFAULT_GROUP).replace(",", " ").split():
        preset = resolve_preset(token)
        if preset is not None:
            sizes.extend(size for size in preset if size not in sizes)
            continue
        try:
            size = parse_size(token, limits)
        except EngineError as error:
            problems.append(f"DEFAULT_SIZES: {error} (or use a preset name such as {DEFAULT_GROUP})")
            continue
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes)

"""Every setting in one typed place, read from the environment (and ``.env``), validated at start.

A bad or missing setting stops start-up with one line per problem saying what to do, never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from bot.engine import EngineError, Limits, Size, output_pixels, parse_size
from bot.engine.pool import default_workers
from bot.jobs.source_links import derive_key
from bot.presets import DEFAULT_GROUP, resolve_preset
from bot.smart_resize_api.contract import DEFAULT_BASE_URL
from bot.sqlite import DEFAULT_DATABASE_URL, is_postgres_url, sqlite_path

Backend = Literal["local", "hosted"]
# "pixazo" is the hosted service's vendor: the value earlier releases documented, still accepted.
_BACKEND_NAMES: dict[str, Backend] = {"local": "local", "hosted": "hosted", "pixazo": "hosted"}
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
MANIFEST_HINT = "create the app from manifest.yml at https://api.slack.com/apps (From an app manifest)"
WHERE_BOT_TOKENS_ARE = "OAuth & Permissions > Bot User OAuth Token at https://api.slack.com/apps"
# What each kind of Slack token is called, for a token pasted into the wrong setting.
_TOKEN_KINDS = {"xoxb-": "a bot token", "xapp-": "an app-level token", "xoxp-": "a user token"}
DEFAULT_DATABASE_PATH = sqlite_path(DEFAULT_DATABASE_URL)
Network = IPv4Network | IPv6Network
T = TypeVar("T")


class ConfigError(Exception):
    """All problems found at once, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """The Slack app's settings (``python -m bot``)."""

    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str | None = field(repr=False)
    slack_app_token: str | None = field(repr=False)
    slack_api_url: str
    port: int
    backend: Backend
    hosted_api_key: str | None = field(repr=False)
    hosted_base_url: str
    database_path: Path  # the SQLite file, unless postgres_url is set
    allow_networks: tuple[Network, ...]
    default_sizes: tuple[Size, ...]
    resize_reaction: str
    engine_workers: int
    max_sizes: int
    jobs_per_user_per_hour: int
    job_retention_days: int
    limits: Limits
    # Where the internet reaches this app (only /sources/ needs to be public): the hosted backend then hands the
    # service signed links to private Slack images instead of data URIs.
    public_base_url: str | None = None
    source_link_ttl_s: float = 15 * 60.0
    source_link_key: bytes = field(default=b"", repr=False)
    # Every listening socket: a request's headers must be in within the first, its body within the second.
    header_read_timeout_s: float = 10.0
    body_read_timeout_s: float = 30.0
    # DATABASE_URL=postgresql://...: jobs, channel settings and crop maps in PostgreSQL, shared by every replica.
    postgres_url: str | None = field(default=None, repr=False)
    job_lease_s: float = 60.0  # a replica that dies mid-job has its jobs taken over within about this long

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def max_download_bytes(self) -> int:
        return self.limits.max_input_bytes


@dataclass(frozen=True)
class ServerSettings:
    """``smart-resize serve``'s settings: the self-hosted API server."""

    keys: frozenset[str] = field(default=frozenset(), repr=False)
    database_path: Path = DEFAULT_DATABASE_PATH  # the app's database: its jobs and these requests
    postgres_url: str | None = field(default=None, repr=False)  # requests in PostgreSQL, shared by replicas
    media_dir: Path | None = None  # outputs; default beside the SQLite file (replicas: one shared directory)
    output_ttl_s: float = 3600.0
    queue_size: int = 100
    queue_per_key: int | None = None  # waiting requests one key may hold; default: an equal share of the queue
    requests_per_minute: int = 120  # submits per key
    workers: int = field(default_factory=default_workers)
    allow_networks: tuple[Network, ...] = ()
    public_url: str | None = None  # how clients reach us, for polling and media URLs
    # Host headers that may name us in polling and media URLs (host, port or None for any); any other Host is
    # ignored for the address the request arrived on, so a forged header can't send a client's key elsewhere.
    allowed_hosts: tuple[tuple[str, int | None], ...] = ()
    cleanup_every_s: float = 60.0
    # A claimed request's lease, renewed while it runs: a replica that dies has its requests taken over within
    # about this long (SMART_RESIZE_LEASE_SECONDS).
    lease_s: float = 60.0
    # A clean stop (SIGTERM) gives the requests being worked on this long to finish, then hands the rest back
    # (SMART_RESIZE_SHUTDOWN_GRACE_SECONDS).
    shutdown_grace_s: float = 20.0
    limits: Limits = field(default_factory=Limits)
    # Work per request beyond limits.max_output_pixels (SMART_RESIZE_MAX_OUTPUT_MEGAPIXELS here): the pixels of a
    # sync_mode request, whose every status answer carries them inline (base64, each image twice).
    sync_max_pixels: int = 16_000_000
    header_read_timeout_s: float = 10.0
    body_read_timeout_s: float = 30.0

    @property
    def max_image_bytes(self) -> int:
        return self.limits.max_input_bytes

    @property
    def queue_share(self) -> int:
        """How many waiting requests one key may hold, so one tenant's burst cannot fill the queue for all."""
        if self.queue_per_key is not None:
            return self.queue_per_key
        return max(1, self.queue_size // max(1, len(self.keys)))


class _Reader:
    """Reads one environment, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self.env = os.environ if env is None else env
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a whole number; use a number from {low} to {high}.")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}={value} is out of range; use a number from {low} to {high}.")
            return default
        return value

    def parsed(self, parse: Callable[[str], T], raw: str, default: T) -> T:
        """``parse(raw)``, or ``default`` with the problem noted when it raises ValueError."""
        try:
            return parse(raw)
        except ValueError as error:
            self.problems.append(str(error))
            return default

    def limits(self, output_pixels_setting: str = "MAX_OUTPUT_MEGAPIXELS") -> Limits:
        return Limits(
            max_pixels=self.integer("MAX_IMAGE_MEGAPIXELS", 100, 1, 1000) * 1_000_000,
            max_outputs=self.integer("MAX_OUTPUTS_PER_REQUEST", Limits().max_outputs, 1, 100),
            max_output_pixels=self.integer(output_pixels_setting, 100, 1, 10_000) * 1_000_000,
            max_input_bytes=self.integer("MAX_DOWNLOAD_MB", 50, 1, 1000) * 1024 * 1024,
            max_decoded_bytes=self.integer("MAX_DECODED_MB", 400, 16, 65536) * 1024 * 1024,
        )

    def database_path(self) -> Path:
        url = self.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        if is_postgres_url(url):
            return DEFAULT_DATABASE_PATH
        return self.parsed(sqlite_path, url, DEFAULT_DATABASE_PATH)

    def postgres_url(self) -> str | None:
        url = self.get("DATABASE_URL") or ""
        if not is_postgres_url(url):
            return None
        if not _readable_postgres_url(url):
            # Never echoed, nor the parser's error: an unencoded '#' or '/' in the password makes the URL split
            # there, and asyncpg's "invalid literal for int(): 'Xk3'" would show the password up to it.
            self.problems.append(
                "DATABASE_URL can't be read as a URL: percent-encode any / ? # @ : [ ] in its user name and "
                "password (# as %23, / as %2F, @ as %40), and give its port as a number from 1 to 65535."
            )
            return url
        try:
            import asyncpg  # noqa: F401 - only to say, now, that it is missing
        except ImportError:
            self.problems.append(
                "DATABASE_URL names PostgreSQL, whose driver is not installed; install the app with "
                "pip install -e '.[postgres]', or use sqlite:///path/to/file.db."
            )
        return url

    def allow_networks(self) -> tuple[Network, ...]:
        from bot.net import parse_allow_networks  # the fetcher (aiohttp): not for the CLI's settings

        return self.parsed(parse_allow_networks, self.get("FETCH_ALLOW_PRIVATE_NETWORKS") or "", ())

    def engine_workers(self) -> int:
        return self.integer("ENGINE_WORKERS", default_workers(), 1, 64)

    def read_timeouts(self) -> tuple[float, float]:
        """HEADER_READ_TIMEOUT and BODY_READ_TIMEOUT, in seconds: the app's and the server's sockets alike."""
        return (
            float(self.integer("HEADER_READ_TIMEOUT", 10, 1, 3600)),
            float(self.integer("BODY_READ_TIMEOUT", 30, 1, 3600)),
        )

    def allowed_hosts(self) -> tuple[tuple[str, int | None], ...]:
        hosts: list[tuple[str, int | None]] = []
        for entry in (self.get("SMART_RESIZE_ALLOWED_HOSTS") or "").split(","):
            if not entry.strip():
                continue
            try:
                hosts.append(parse_authority(entry.strip()))
            except ValueError:
                self.problems.append(
                    f"SMART_RESIZE_ALLOWED_HOSTS: {entry.strip()[:80]!r} is not a host name or address with an "
                    "optional port; list the names clients use, like resize.example.com,resize.internal:8080."
                )
        return tuple(hosts)

    def done(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def load_limits(env: Mapping[str, str] | None = None) -> Limits:
    """The engine's caps (the CLI's settings): MAX_IMAGE_MEGAPIXELS, MAX_DOWNLOAD_MB, MAX_OUTPUTS_PER_REQUEST,
    MAX_OUTPUT_MEGAPIXELS, MAX_DECODED_MB."""
    read = _Reader(env)
    limits = read.limits()
    read.done()
    return limits


def load_server_settings(env: Mapping[str, str] | None = None) -> ServerSettings:
    read = _Reader(env)
    keys = frozenset(k.strip() for k in (read.get("SMART_RESIZE_API_KEYS") or "").split(",") if k.strip())
    if any(not key.isprintable() or any(c.isspace() for c in key) for key in keys):
        # A key no client could send (ours refuses such a key, as the app's PIXAZO_API_KEY check does): most often
        # keys separated by spaces rather than commas, which made one key of them all. Not echoed: keys are secret.
        read.problems.append(
            "SMART_RESIZE_API_KEYS has a key with spaces or control characters; separate keys with commas, like "
            "key-one,key-two."
        )
    public_url = read.get("SMART_RESIZE_PUBLIC_URL")
    if public_url is not None and not _is_http_url(public_url):
        read.problems.append(
            f"SMART_RESIZE_PUBLIC_URL={public_url!r} is not an http(s) URL; use the address clients reach this "
            "server at, like https://resize.example.com."
        )
    header_timeout_s, body_timeout_s = read.read_timeouts()
    postgres_url = read.postgres_url()
    media = read.get("SMART_RESIZE_MEDIA_DIR")
    if postgres_url is not None and media is None:
        read.problems.append(
            "With DATABASE_URL on PostgreSQL, set SMART_RESIZE_MEDIA_DIR to a directory every replica of "
            "smart-resize serve shares (an NFS or other shared mount), so any replica can answer any media link."
        )
    settings = ServerSettings(
        keys=keys,
        database_path=read.database_path(),
        postgres_url=postgres_url,
        media_dir=Path(media) if media else None,
        lease_s=float(read.integer("SMART_RESIZE_LEASE_SECONDS", 60, 1, 3600)),
        shutdown_grace_s=float(read.integer("SMART_RESIZE_SHUTDOWN_GRACE_SECONDS", 20, 0, 3600)),
        output_ttl_s=float(read.integer("SMART_RESIZE_OUTPUT_TTL", 3600, 1, 30 * 24 * 3600)),
        queue_size=read.integer("SMART_RESIZE_QUEUE_SIZE", 100, 1, 100_000),
        queue_per_key=read.integer("SMART_RESIZE_QUEUE_PER_KEY", 0, 0, 100_000) or None,
        requests_per_minute=read.integer("SMART_RESIZE_REQUESTS_PER_MINUTE", 120, 1, 100_000),
        workers=read.engine_workers(),
        allow_networks=read.allow_networks(),
        public_url=public_url,
        allowed_hosts=read.allowed_hosts(),
        limits=read.limits(output_pixels_setting="SMART_RESIZE_MAX_OUTPUT_MEGAPIXELS"),
        sync_max_pixels=read.integer("SMART_RESIZE_SYNC_MAX_MEGAPIXELS", 16, 1, 1000) * 1_000_000,
        header_read_timeout_s=header_timeout_s,
        body_read_timeout_s=body_timeout_s,
    )
    read.done()
    return settings


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    read = _Reader(env)
    problems = read.problems
    get = read.get
    integer = read.integer

    bot_token = get("SLACK_BOT_TOKEN")
    if bot_token is None:
        problems.append(
            f"SLACK_BOT_TOKEN is missing: {MANIFEST_HINT}, install it to your workspace, then copy "
            "OAuth & Permissions > Bot User OAuth Token (xoxb-...) into .env."
        )
    elif (pasted := _mispasted(bot_token)) is not None:
        problems.append(f"SLACK_BOT_TOKEN {pasted}; copy the token alone from {WHERE_BOT_TOKENS_ARE} into .env.")
    elif not bot_token.startswith("xoxb-"):
        problems.append(
            f"SLACK_BOT_TOKEN must be the bot token starting with xoxb-{_token_kind(bot_token)}; copy "
            f"{WHERE_BOT_TOKENS_ARE} into .env."
        )
    elif _is_placeholder(bot_token):
        problems.append(
            f"SLACK_BOT_TOKEN is still the example value from .env.example: {MANIFEST_HINT}, install it, then copy "
            "OAuth & Permissions > Bot User OAuth Token (xoxb-...) into .env."
        )

    app_token = get("SLACK_APP_TOKEN")
    if app_token is not None and (pasted := _mispasted(app_token)) is not None:
        problems.append(
            f"SLACK_APP_TOKEN {pasted}; copy the token alone from Basic Information > App-Level Tokens at "
            "https://api.slack.com/apps into .env."
        )
    elif app_token is not None and _is_placeholder(app_token):
        problems.append(
            "SLACK_APP_TOKEN is still the example value from .env.example: generate one under Basic Information > "
            "App-Level Tokens with scope connections:write (xapp-...), or leave it empty to run over HTTP."
        )
    elif app_token is not None and not app_token.startswith("xapp-"):
        problems.append(
            f"SLACK_APP_TOKEN must be an app-level token starting with xapp-{_token_kind(app_token)} (Basic "
            "Information > App-Level Tokens at https://api.slack.com/apps, scope connections:write); leave it empty "
            "to run over HTTP instead of Socket Mode."
        )
    signing_secret = get("SLACK_SIGNING_SECRET")
    if signing_secret is not None and (pasted := _mispasted(signing_secret)) is not None:
        # Every request's signature would fail to match, each a quiet 401 with nothing to say why.
        problems.append(
            f"SLACK_SIGNING_SECRET {pasted}; copy the secret alone from Basic Information > App Credentials at "
            "https://api.slack.com/apps into .env."
        )
    if app_token is None and signing_secret is None:
        problems.append(
            "SLACK_APP_TOKEN is missing: for Socket Mode (no public URL needed) generate one under Basic Information > "
            "App-Level Tokens with scope connections:write (xapp-...); or, for HTTP mode, set SLACK_SIGNING_SECRET "
            "from Basic Information > App Credentials."
        )

    slack_api_url = get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
    if not _is_http_url(slack_api_url):
        problems.append(f"SLACK_API_URL={slack_api_url!r} is not an http(s) URL; leave it unset for Slack.")
    if not slack_api_url.endswith("/"):
        slack_api_url += "/"

    hosted_key = get("PIXAZO_API_KEY")
    backend_raw = (get("SMART_RESIZE_BACKEND") or ("hosted" if hosted_key else "local")).lower()
    backend: Backend = _BACKEND_NAMES.get(backend_raw, "local")
    if backend_raw not in _BACKEND_NAMES:
        problems.append(f"SMART_RESIZE_BACKEND={backend_raw!r} is unknown; use local or hosted.")
    if backend == "hosted" and not hosted_key:
        problems.append(f"SMART_RESIZE_BACKEND={backend_raw} needs PIXAZO_API_KEY; set it, or use the local engine.")
    if hosted_key is not None and (not hosted_key.isprintable() or any(c.isspace() for c in hosted_key)):
        # The key itself is not echoed: this line is printed, and may be logged.
        problems.append("PIXAZO_API_KEY has spaces or control characters; paste the key again as it was issued.")
    hosted_base_url = get("PIXAZO_BASE_URL") or DEFAULT_BASE_URL
    if not _is_http_url(hosted_base_url):
        problems.append(
            f"PIXAZO_BASE_URL={hosted_base_url!r} is not an http(s) URL; leave it unset for the hosted service, or "
            "give the address of a `smart-resize serve`, like http://127.0.0.1:8080."
        )

    database_path = read.database_path()
    postgres_url = read.postgres_url()
    job_lease_s = float(integer("JOB_LEASE_SECONDS", 60, 5, 3600))
    allow_networks = read.allow_networks()
    limits = read.limits()
    max_sizes = integer("MAX_SIZES_PER_REQUEST", 10, 1, 40)
    default_sizes = _default_sizes(get("DEFAULT_SIZES"), limits, problems)
    if len(default_sizes) > min(max_sizes, limits.max_outputs):
        problems.append(
            f"DEFAULT_SIZES has {len(default_sizes)} sizes, more than one request may make "
            f"(MAX_SIZES_PER_REQUEST={max_sizes}, MAX_OUTPUTS_PER_REQUEST={limits.max_outputs}); name fewer sizes "
            "or raise those limits."
        )
    elif output_pixels(default_sizes, 1) > limits.max_output_pixels:
        problems.append(
            f"DEFAULT_SIZES make {output_pixels(default_sizes, 1) / 1e6:.1f} megapixels of images in all, more than "
            f"one request may make (MAX_OUTPUT_MEGAPIXELS={limits.max_output_pixels // 1_000_000}); name fewer or "
            "smaller sizes, or raise that limit."
        )
    reaction = (get("RESIZE_REACTION") or "frame_with_picture").strip(":")
    port = integer("PORT", 3000, 1, 65535)
    engine_workers = read.engine_workers()
    jobs_per_user_per_hour = integer("JOBS_PER_USER_PER_HOUR", 60, 1, 10_000)
    job_retention_days = integer("JOB_RETENTION_DAYS", 30, 1, 3650)

    public_base_url = get("PUBLIC_BASE_URL")
    if public_base_url is not None and not _is_http_url(public_base_url):
        problems.append(
            f"PUBLIC_BASE_URL={public_base_url!r} is not an http(s) URL; use the address the internet reaches this "
            "app at, like https://resize.example.com, or leave it unset to send images as data URIs."
        )
    source_link_minutes = integer("SOURCE_LINK_MINUTES", 15, 1, 24 * 60)
    # A key of its own when given; else one derived from a secret the app has anyway (a restart keeps it).
    link_secret = get("SOURCE_LINK_KEY") or signing_secret or bot_token or ""
    header_timeout_s, body_timeout_s = read.read_timeouts()

    read.done()
    assert bot_token is not None
    return Settings(
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=slack_api_url,
        port=port,
        backend=backend,
        hosted_api_key=hosted_key,
        hosted_base_url=hosted_base_url,
        database_path=database_path,
        postgres_url=postgres_url,
        job_lease_s=job_lease_s,
        allow_networks=allow_networks,
        default_sizes=default_sizes,
        resize_reaction=reaction,
        engine_workers=engine_workers,
        max_sizes=max_sizes,
        jobs_per_user_per_hour=jobs_per_user_per_hour,
        job_retention_days=job_retention_days,
        limits=limits,
        public_base_url=public_base_url.rstrip("/") if public_base_url else None,
        source_link_ttl_s=source_link_minutes * 60.0,
        source_link_key=derive_key(link_secret),
        header_read_timeout_s=header_timeout_s,
        body_read_timeout_s=body_timeout_s,
    )


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_AUTHORITY = re.compile(rf"(?P<host>\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?", re.ASCII)


def parse_authority(text: str) -> tuple[str, int | None]:
    """``host[:port]`` as a Host header or SMART_RESIZE_ALLOWED_HOSTS entry names it: a DNS name, an IPv4 address or
    a bracketed IPv6 one, lower-cased. Anything else (``127.0.0.1@evil.example``, paths, spaces) is a ValueError:
    such a header must never make its way into a URL this server hands out."""
    match = _AUTHORITY.fullmatch(text)
    if match is None or len(match["host"]) > 253:
        raise ValueError(f"{text[:80]!r} is not a host with an optional port")
    host = match["host"].lower()
    if host.startswith("["):
        ipaddress.IPv6Address(host[1:-1])  # ValueError for a malformed address
    port = int(match["port"]) if match["port"] is not None else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def _readable_postgres_url(url: str) -> bool:
    """Whether ``url`` splits where asyncpg will split it: no fragment, every host's port (asyncpg takes a list,
    ``h1:5432,h2``) a number in range, and no '@' after the hosts (a password's unencoded '/' or '?' moves the
    rest of it, and the hosts, into the path or query)."""
    if "#" in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # an IPv6 host's brackets unclosed
        return False
    if "@" not in parts.netloc and "@" in parts.path + parts.query:
        return False
    for host in parts.netloc.rpartition("@")[2].split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        digits = port.rpartition(":")[2] if ":" in port else ""
        if ":" in port and not (digits.isascii() and digits.isdigit() and 0 < int(digits) < 65536):
            return False
    return True


def _mispasted(secret: str) -> str | None:
    """What is wrong with a secret that was pasted with more than itself: quotes kept as part of the value (an
    env-file that does not strip them, as Docker's does not), or a space, line break or other character no Slack
    secret holds. Such a token would otherwise reach Slack only to crash the HTTP client (a line break in a header)
    or be refused as invalid_auth, with nothing saying why. The value is not echoed: this line is printed."""
    if len(secret) > 1 and secret[0] == secret[-1] and secret[0] in "\"'":
        return "has quotes around it, kept as part of its value"
    if not secret.isascii() or not secret.isprintable() or any(c.isspace() for c in secret):
        return "holds spaces, line breaks or other characters no Slack token or secret has"
    return None


def _token_kind(token: str) -> str:
    """``, not a user token`` for a token of another kind, so the operator knows what was pasted instead."""
    kind = next((name for prefix, name in _TOKEN_KINDS.items() if token.startswith(prefix)), None)
    return f", not {kind}" if kind else ""


def _is_placeholder(token: str) -> bool:
    """The example values .env.example ships (``xoxb-your-bot-token``): never a real token."""
    return token.lower().split("-", 1)[-1].startswith("your")


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _default_sizes(raw: str | None, limits: Limits, problems: list[str]) -> tuple[Size, ...]:
    """DEFAULT_SIZES: sizes and preset names separated by spaces or commas (default: the "social" group)."""
    sizes: list[Size] = []
    refused = len(problems)
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
    if not sizes and len(problems) == refused:  # nothing at all, not sizes that were each refused
        problems.append(f"DEFAULT_SIZES={raw!r} names no size; give sizes or presets, like {DEFAULT_GROUP} 1200x628.")
    return tuple(sizes)

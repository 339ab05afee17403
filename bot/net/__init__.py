"""Fetching bytes from user-supplied links without reaching private networks."""

from bot.net.errors import (
    BlockedAddress,
    FetchError,
    FetchFailed,
    FetchTimeout,
    InvalidUrl,
    TooLarge,
    UnexpectedContentType,
)
from bot.net.fetch import (
    DEFAULT_ACCEPT,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT_S,
    MAX_REDIRECTS,
    MAX_URL_LENGTH,
    Fetched,
    SafeFetcher,
    decode_data_uri,
    fetch_url,
)
from bot.net.guard import ALLOW_SETTING, GuardedConnector, NetworkPolicy, parse_allow_networks

__all__ = [
    "ALLOW_SETTING",
    "DEFAULT_ACCEPT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT_S",
    "MAX_REDIRECTS",
    "MAX_URL_LENGTH",
    "BlockedAddress",
    "FetchError",
    "FetchFailed",
    "FetchTimeout",
    "Fetched",
    "GuardedConnector",
    "InvalidUrl",
    "NetworkPolicy",
    "SafeFetcher",
    "TooLarge",
    "UnexpectedContentType",
    "decode_data_uri",
    "fetch_url",
    "parse_allow_networks",
]

"""Slack-specific plumbing."""

from bot.slack.files import (
    DEFAULT_API_BASE_URL,
    RedirectedOffSlack,
    SlackFileAccessDenied,
    SlackFileError,
    SlackFileHosts,
    UntrustedFileHost,
    download_slack_file,
)

__all__ = [
    "DEFAULT_API_BASE_URL",
    "RedirectedOffSlack",
    "SlackFileAccessDenied",
    "SlackFileError",
    "SlackFileHosts",
    "UntrustedFileHost",
    "download_slack_file",
]

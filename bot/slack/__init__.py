"""Slack-specific plumbing."""

from bot.slack.files import (
    DEFAULT_API_BASE_URL,
    RedirectedOffSlack,
    SlackFileAccessDenied,
    SlackFileError,
    SlackFileHosts,
    UntrustedFileHost,
    download_slack_file,
    is_slack_link,
)

__all__ = [
    "DEFAULT_API_BASE_URL",
    "RedirectedOffSlack",
    "SlackFileAccessDenied",
    "SlackFileError",
    "SlackFileHosts",
    "UntrustedFileHost",
    "download_slack_file",
    "is_slack_link",
]

"""A job: who asked, where the image is, what to make of it, and how far it has got."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.slack.uploads import UploadRecord
from bot.spec import ResizeSpec

State = Literal["accepted", "anchored", "delivering", "done", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})
Trigger = Literal["command", "mention", "reaction", "shortcut", "modal", "auto", "button"]
SourceKind = Literal["slack_file", "url", "latest"]


@dataclass(frozen=True)
class JobSource:
    """Where the image comes from: a Slack file (``file`` is Slack's file object as the event carried it, or just
    its id), a link, or the latest image shared in the channel (resolved to a Slack file when the job starts)."""

    kind: SourceKind
    url: str | None = None
    file: Mapping[str, Any] | None = None
    message_ts: str | None = None  # the message holding the file: status reactions go there

    @classmethod
    def slack_file(cls, file: Mapping[str, Any], message_ts: str | None) -> JobSource:
        return cls("slack_file", file=dict(file), message_ts=message_ts)

    @classmethod
    def link(cls, url: str) -> JobSource:
        return cls("url", url=url)

    @classmethod
    def latest(cls) -> JobSource:
        return cls("latest")

    @property
    def file_name(self) -> str:
        if self.file is not None:
            return str(self.file.get("name") or "")
        if self.url is not None:
            return self.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        return ""

    def to_json(self) -> dict[str, Any]:
        if self.kind == "url":
            return {"kind": "url", "url": self.url}
        if self.kind == "latest":
            return {"kind": "latest"}
        return {"kind": "slack_file", "file": dict(self.file or {}), "message_ts": self.message_ts}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> JobSource:
        kind = obj["kind"]
        if kind == "url":
            return cls.link(str(obj["url"]))
        if kind == "latest":
            return cls.latest()
        if kind == "slack_file":
            return cls.slack_file(obj["file"], obj.get("message_ts"))
        raise ValueError(f"unknown job source kind {kind!r}")


@dataclass(frozen=True)
class Job:
    id: str
    dedup_key: str
    trigger: Trigger
    channel_id: str
    user_id: str
    source: JobSource
    spec: ResizeSpec
    state: State = "accepted"
    team_id: str | None = None
    thread_ts: str | None = None  # where results go: the source message's ts
    progress_ts: str | None = None
    remote_id: str | None = None  # the hosted API's request_id, kept so a restart polls instead of paying twice
    upload: UploadRecord | None = None  # the results' upload, step by step: a restart confirms the same files
    status_reaction: str | None = None  # the status emoji the app last put on the source message
    # The Slack event that asked (its event_id): Slack sends an event again when it missed the ack, to any replica
    # and after a restart, and that delivery is this job whatever became of it, never a new try.
    event_id: str | None = None
    response_url: str | None = field(default=None, repr=False)
    error: str | None = None
    attempts: int = 0
    not_before: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def marker(self) -> str:
        """In every post a crash could repeat, so a resumed job finds its own post instead of posting twice."""
        return f"job {self.short_id}"

    @property
    def source_message_ts(self) -> str | None:
        """The message holding the image (status reactions go there); replies go to its thread."""
        return self.source.message_ts or self.thread_ts

"""Files uploaded into a thread, and confirmed there by their own ids.

Slack shares an upload asynchronously (malware scanning; delays of many seconds are reported in python-slack-sdk
#1277 and node-slack-sdk #2040): ``files.completeUploadExternal`` answering ok is not yet a post. The files' ids
say when it is: ``files.info`` -> ``shares.public|private[channel][].thread_ts``. Each step is recorded
(``UploadRecord``, saved by the caller) before the next, so a restart looks at the same files instead of guessing:

  reserve   ``files.getUploadURLExternal`` per file; the ids are saved before a byte is sent
  send      the bytes to each upload URL, then one ``files.completeUploadExternal``; saved as complete, with the
            time by which the share must show (the patience)
  confirm   ``files.info`` until every file is shared in the thread, or the patience runs out

Files not shared in time are deleted (``files.delete``) before anything is uploaded again, so a late share can
never make a second post. The second upload goes without alt text: Slack has been seen to accept an upload with
alt text and never share it (python-slack-sdk #1818, open, server-side). If that one is not shared either, it is
deleted too and the requester gets one sentence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.user_errors import UserError

log = logging.getLogger(__name__)

# Long enough for the slow shares people report (tens of seconds), short enough that a job stuck on a share that
# will never come tells its requester within a few minutes.
SHARE_PATIENCE_S = 120.0
# Between files.info looks while a share is awaited (Tier 4: 100+ a minute; one file is looked at per round).
SHARE_POLL_S = (0.5, 1.0, 2.0, 3.0, 5.0)
MAX_ATTEMPTS = 2

NEVER_SHARED = (
    "Slack accepted the images but never showed them in this thread, twice, so I removed them rather than risk "
    "posting them twice; please ask again in a few minutes."
)


@dataclass(frozen=True)
class UploadRecord:
    """How far an upload has got: the files reserved for it (none yet: nothing sent on this attempt), whether
    Slack has them all, and by when (on the uploader's clock) they must be shared."""

    files: tuple[str, ...] = ()
    complete: bool = False
    deadline: float = 0.0
    attempt: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "complete": self.complete,
            "deadline": self.deadline,
            "attempt": self.attempt,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> UploadRecord:
        return cls(
            tuple(str(f) for f in obj["files"]),
            bool(obj["complete"]),
            float(obj["deadline"]),
            int(obj["attempt"]),
        )


@dataclass(frozen=True)
class OutgoingFile:
    content: bytes
    filename: str
    title: str
    alt_txt: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """What one post into the thread carries: its files and the comment above them."""

    files: tuple[OutgoingFile, ...]
    comment: str


@dataclass
class UploadProgress:
    """The stored record of an upload and how to store the next one (the job store, for a job's results)."""

    record: UploadRecord | None
    save: Callable[[UploadRecord], Awaitable[None]]

    async def step(self, record: UploadRecord) -> UploadRecord:
        await self.save(record)
        self.record = record
        return record

    @classmethod
    def in_memory(cls) -> UploadProgress:
        async def keep(_record: UploadRecord) -> None:
            return None

        return cls(None, keep)


class Uploader:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        patience_s: float = SHARE_PATIENCE_S,
        poll_s: Sequence[float] = SHARE_POLL_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.patience_s = patience_s
        self.poll_s = tuple(poll_s)
        self.clock = clock
        self._sleep = sleep

    async def upload(
        self, channel: str, thread_ts: str, make: Callable[[], Awaitable[Outgoing]], progress: UploadProgress
    ) -> None:
        """Post ``make()``'s files into the thread exactly once, carrying on from ``progress``; ``make`` is called
        only when something must be sent (a resumed upload that Slack already has needs no images)."""
        record = progress.record or UploadRecord()
        while True:
            if record.files and not record.complete:
                # Reserved before a crash: Slack has the upload only if every file is there.
                if await self._all_exist(record.files):
                    record = await progress.step(replace(record, complete=True, deadline=self._deadline()))
                else:
                    await self._delete(record.files)
                    record = await progress.step(UploadRecord(attempt=record.attempt))
            if not record.files:
                record = await self._send(channel, thread_ts, await make(), record.attempt, progress)
            if await self._confirmed(channel, thread_ts, record):
                return
            log.warning(
                "upload %s: Slack had not shared it in %s after %.0f s; deleting it before anything is sent again",
                ",".join(record.files),
                channel,
                self.patience_s,
            )
            await self._delete(record.files)
            if record.attempt >= MAX_ATTEMPTS:
                await progress.step(UploadRecord(attempt=record.attempt + 1))
                raise UserError(NEVER_SHARED, detail=f"upload never shared in {channel} after {record.attempt} tries")
            record = await progress.step(UploadRecord(attempt=record.attempt + 1))

    def _deadline(self) -> float:
        return self.clock() + self.patience_s

    async def _send(
        self, channel: str, thread_ts: str, outgoing: Outgoing, attempt: int, progress: UploadProgress
    ) -> UploadRecord:
        reserved: list[tuple[str, str]] = []
        for file in outgoing.files:
            response = await self.client.files_getUploadURLExternal(
                filename=file.filename,
                length=len(file.content),
                alt_txt=file.alt_txt if attempt == 1 else None,  # the second try goes without (see the docstring)
            )
            reserved.append((str(response["file_id"]), str(response["upload_url"])))
        record = await progress.step(UploadRecord(tuple(file_id for file_id, _ in reserved), attempt=attempt))
        for file, (_, url) in zip(outgoing.files, reserved, strict=True):
            await self._post_bytes(url, file)
        # Saved again (for a job: a fenced write) right before the one call that posts: a process that lost the
        # job while the bytes went up stops here, instead of posting beside the one that took it over.
        record = await progress.step(record)
        await self.client.files_completeUploadExternal(
            files=[
                {"id": file_id, "title": file.title}
                for file, (file_id, _) in zip(outgoing.files, reserved, strict=True)
            ],
            channel_id=channel,
            thread_ts=thread_ts,
            initial_comment=outgoing.comment,
        )
        return await progress.step(replace(record, complete=True, deadline=self._deadline()))

    async def _post_bytes(self, url: str, file: OutgoingFile) -> None:
        # The URL is Slack's own, signed for this one file: it needs (and gets) no token.
        session = self.client.session
        assert session is not None, "the web client is built with the app's Slack session"
        timeout = aiohttp.ClientTimeout(total=120)
        async with session.post(url, data=file.content, timeout=timeout) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=f"upload of {file.filename} refused"
                )

    async def _confirmed(self, channel: str, thread_ts: str, record: UploadRecord) -> bool:
        """Wait until every file is shared in the thread (True) or the record's deadline passes (False). The files
        of one upload are shared together, so only the first not yet seen is looked at each round."""
        pending = list(record.files)
        delays = iter(self.poll_s)
        while True:
            while pending and await self._shared(pending[0], channel, thread_ts):
                pending.pop(0)
            if not pending:
                return True
            left = record.deadline - self.clock()
            if left <= 0:
                return False
            await self._sleep(min(next(delays, self.poll_s[-1]), left))

    async def _shared(self, file_id: str, channel: str, thread_ts: str) -> bool:
        file = await self._info(file_id)
        shares: dict[str, Any] = (file or {}).get("shares") or {}
        for visibility in ("public", "private"):
            for share in (shares.get(visibility) or {}).get(channel, []):
                if share.get("thread_ts") == thread_ts or share.get("ts") == thread_ts:
                    return True
        return False

    async def _all_exist(self, file_ids: Sequence[str]) -> bool:
        for file_id in file_ids:
            if await self._info(file_id) is None:
                return False
        return True

    async def _info(self, file_id: str) -> dict[str, Any] | None:
        """The file as files.info has it; None when Slack has no such file (never completed, or deleted)."""
        try:
            response = await self.client.files_info(file=file_id)
        except SlackApiError as error:
            if error.response.get("error") in ("file_not_found", "file_deleted"):
                return None
            raise
        return dict(response["file"])

    async def _delete(self, file_ids: Sequence[str]) -> None:
        for file_id in file_ids:
            try:
                await self.client.files_delete(file=file_id)
            except SlackApiError as error:
                # Never completed (Slack dropped it) or already gone: nothing left to share either way.
                if error.response.get("error") not in ("file_not_found", "file_deleted"):
                    raise

"""Everything the app posts into Slack for a job: the anchor and progress messages, status reactions, the resized
files in the thread, and plain-words errors for the requester.

Posts that a crash could repeat carry the job's marker (``job 1a2b3c4d``), so a resumed job first looks for its
own earlier post instead of posting twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.backends import ResizedImage

log = logging.getLogger(__name__)

# Seconds between looks for a finished upload in the thread: about 8 s in all, since Slack shares a completed
# upload within a second or two.
SHARE_CHECK_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)
CLOCK_SKEW_S = 300.0

STATUS_REACTIONS = {"working": "hourglass_flowing_sand", "done": "white_check_mark", "failed": "x"}


class Delivery:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        share_check_delays: Sequence[float] = SHARE_CHECK_DELAYS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.share_check_delays = tuple(share_check_delays)
        self._sleep = sleep
        self._bot_user_id: str | None = None

    async def bot_user_id(self) -> str:
        if self._bot_user_id is None:
            response = await self.client.auth_test()
            self._bot_user_id = str(response["user_id"])
        return self._bot_user_id

    async def post(
        self, channel: str, text: str, *, thread_ts: str | None = None, blocks: list[dict[str, Any]] | None = None
    ) -> str:
        response = await self.client.chat_postMessage(
            channel=channel, text=text, thread_ts=thread_ts, blocks=blocks, unfurl_links=False, unfurl_media=False
        )
        return str(response["ts"])

    async def update(self, channel: str, ts: str, text: str, *, blocks: list[dict[str, Any]] | None = None) -> None:
        await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks or [])

    async def find_own_post(
        self, channel: str, tag: str, *, since: float, thread_ts: str | None = None, with_files: bool = False
    ) -> str | None:
        """The ts of a message this bot posted with ``tag`` in it, in a thread or in the channel, at ``since`` or later.

        Every page from ``since`` on is read: a busy thread's new replies come after its first 200, and missing our
        own post would mean posting it twice.
        """
        bot = await self.bot_user_id()
        oldest = f"{since - CLOCK_SKEW_S:.6f}"  # our clock against Slack's: a post's ts may read a little earlier
        cursor: str | None = None
        while True:
            if thread_ts is not None:
                response = await self.client.conversations_replies(
                    channel=channel, ts=thread_ts, oldest=oldest, limit=200, cursor=cursor
                )
            else:
                response = await self.client.conversations_history(
                    channel=channel, oldest=oldest, limit=200, cursor=cursor
                )
            messages: list[dict[str, Any]] = response.get("messages", [])
            for message in messages:
                if message.get("user") != bot or message.get("ts") == thread_ts:  # not ours, or the thread's parent
                    continue
                if with_files and not message.get("files"):
                    continue
                if tag in _message_text(message):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return None

    async def set_status(self, channel: str, ts: str, status: str) -> None:
        """Swap the status reaction on the source message; reactions are decoration, so failures are only logged."""
        for other, name in STATUS_REACTIONS.items():
            if other != status:
                await self._reaction("reactions_remove", channel, ts, name, ignore=("no_reaction",))
        await self._reaction("reactions_add", channel, ts, STATUS_REACTIONS[status], ignore=("already_reacted",))

    async def clear_status(self, channel: str, ts: str) -> None:
        for name in STATUS_REACTIONS.values():
            await self._reaction("reactions_remove", channel, ts, name, ignore=("no_reaction",))

    async def _reaction(self, method: str, channel: str, ts: str, name: str, ignore: tuple[str, ...]) -> None:
        try:
            await getattr(self.client, method)(channel=channel, timestamp=ts, name=name)
        except SlackApiError as error:
            if error.response.get("error") not in ignore:
                log.warning("%s %s failed: %s", method, name, error.response.get("error"))

    async def upload(
        self, channel: str, thread_ts: str, images: Sequence[ResizedImage], comment: str, stem: str, tag: str
    ) -> None:
        """Upload into the thread and check the files were really shared: with alt text, Slack has been seen to
        accept an upload and never share it (python-slack-sdk #1818), so then upload once more without it."""
        uploads = [
            {
                "content": image.data,
                "filename": f"{stem}_{image.target}{_variant_suffix(image)}.{image.extension}",
                "title": f"{image.target}" + (f" (alternative {image.variant + 1})" if image.variant else ""),
                "alt_txt": f"{stem} resized to {image.target}"
                + (" with the canvas extended" if image.mode == "extend" else ""),
            }
            for image in images
        ]
        await self._upload_checked(channel, thread_ts, uploads, comment, tag)

    async def _upload_checked(
        self, channel: str, thread_ts: str, uploads: list[dict[str, Any]], comment: str, tag: str
    ) -> None:
        started = time.time()
        await self.client.files_upload_v2(
            channel=channel, thread_ts=thread_ts, file_uploads=uploads, initial_comment=comment
        )
        if await self._shared(channel, thread_ts, tag, since=started):
            return
        log.warning("upload accepted but not shared in %s; uploading again without alt text", channel)
        for upload in uploads:
            upload.pop("alt_txt", None)
        await self.client.files_upload_v2(
            channel=channel, thread_ts=thread_ts, file_uploads=uploads, initial_comment=comment
        )

    async def _shared(self, channel: str, thread_ts: str, tag: str, *, since: float) -> bool:
        for delay in self.share_check_delays:
            if await self.find_own_post(channel, tag, since=since, thread_ts=thread_ts, with_files=True):
                return True
            await self._sleep(delay)
        return False

    async def upload_file(
        self,
        channel: str,
        thread_ts: str,
        data: bytes,
        *,
        filename: str,
        title: str,
        alt_txt: str,
        comment: str,
        tag: str,
    ) -> None:
        upload = {"content": data, "filename": filename, "title": title, "alt_txt": alt_txt}
        await self._upload_checked(channel, thread_ts, [upload], comment, tag)

    async def ephemeral(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, response_url: str | None = None
    ) -> None:
        """Tell only the requester. A slash command's response_url works even where the bot is not a member."""
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
            return
        except SlackApiError as error:
            log.warning("could not tell %s in the channel: %s", user, error.response.get("error"))
        if response_url:
            webhook = AsyncWebhookClient(response_url, session=self.client.session)
            try:
                response = await webhook.send(text=text, response_type="ephemeral", replace_original=False)
            except (aiohttp.ClientError, TimeoutError) as error:  # the last way to reach them: log, don't crash the job
                log.warning("response_url failed: %s", type(error).__name__)
                return
            if response.status_code != 200:
                log.warning("response_url answered %s", response.status_code)


def _message_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("text", ""))]
    for block in message.get("blocks", []) or []:
        parts.append(str(block))
    return " ".join(parts)


def _variant_suffix(image: ResizedImage) -> str:
    return f"_{image.variant + 1}" if image.variant else ""

"""Everything the app posts into Slack for a job: the anchor and progress messages, the resized files in the
thread (bot.slack.uploads), and plain-words errors for the requester. Status reactions: bot.slack.reactions.

Posts that a crash could repeat carry the job's marker (``job 1a2b3c4d``), so a resumed job first looks for its
own earlier post instead of posting twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.backends import ResizedImage
from bot.slack.connection import UNREACHABLE, describe_failure
from bot.slack.pacing import TierPacer
from bot.slack.uploads import Outgoing, OutgoingFile, Uploader, UploadProgress

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 300.0


class Delivery:
    def __init__(
        self, client: AsyncWebClient, uploader: Uploader | None = None, pacer: TierPacer | None = None
    ) -> None:
        self.client = client
        self.uploader = uploader or Uploader(client)
        self.pacer = pacer or TierPacer()
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

    async def update(
        self, channel: str, ts: str, text: str, *, blocks: list[dict[str, Any]] | None = None, optional: bool = False
    ) -> None:
        """Edit a message. Paced (Tier 3, and every job edits its progress message a few times); ``optional``: a
        passing state ("Uploading...") that is skipped rather than waited for when the tier is spent."""
        if optional:
            if not self.pacer.free("chat.update"):
                return
        else:
            await self.pacer.wait("chat.update")
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

    async def upload(
        self,
        channel: str,
        thread_ts: str,
        make: Callable[[], Awaitable[Outgoing]],
        progress: UploadProgress | None = None,
    ) -> None:
        """Post ``make()``'s files into the thread once, confirmed by file id (bot.slack.uploads); ``progress``
        carries a stored upload on from where it got to (a fresh, unstored one by default)."""
        await self.uploader.upload(channel, thread_ts, make, progress or UploadProgress.in_memory())

    async def ephemeral(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, response_url: str | None = None
    ) -> Exception | None:
        """Tell only the requester. A slash command's response_url works even where the bot is not a member.
        Returns chat.postEphemeral's error when neither way got through (None once one did), for a caller to whom
        this is the only word of an outcome: it may wait for Slack and say it again."""
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
            return None
        except SlackApiError as error:
            log.warning("could not tell %s in the channel: %s", user, error.response.get("error"))
            failure: Exception = error
        except UNREACHABLE as error:  # Slack out of reach: the response_url may still get through, or not
            log.warning("could not tell %s in the channel: Slack is unreachable (%s)", user, describe_failure(error))
            failure = error
        if response_url:
            webhook = AsyncWebhookClient(response_url, session=self.client.session)
            try:
                response = await webhook.send(text=text, response_type="ephemeral", replace_original=False)
            except UNREACHABLE as error:  # the last way to reach them: log, don't crash the job
                log.warning("response_url failed: %s", type(error).__name__)
                return failure
            if response.status_code == 200:
                return None
            log.warning("response_url answered %s", response.status_code)
        return failure


def _message_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("text", ""))]
    for block in message.get("blocks", []) or []:
        parts.append(str(block))
    return " ".join(parts)


def results_outgoing(images: Sequence[ResizedImage], comment: str, stem: str) -> Outgoing:
    """A job's images as one post: named after the source and size, titled, each with alt text."""
    return Outgoing(
        tuple(
            OutgoingFile(
                content=image.data,
                filename=f"{stem}_{image.target}{_variant_suffix(image)}.{image.extension}",
                title=f"{image.target}" + (f" (alternative {image.variant + 1})" if image.variant else ""),
                alt_txt=f"{stem} resized to {image.target}"
                + (" with the canvas extended" if image.mode == "extend" else ""),
            )
            for image in images
        ),
        comment,
    )


def _variant_suffix(image: ResizedImage) -> str:
    return f"_{image.variant + 1}" if image.variant else ""

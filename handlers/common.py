"""Small helpers shared by the Slack feature modules, and the order every request that makes jobs follows: the
job is stored first, then Slack is acked, then the requester is answered."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import aiohttp
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError

from bot.engine import Size, fit_outputs
from bot.jobs.model import JobSource, Trigger
from bot.jobs.store import store_or_network_out_of_reach
from bot.net.errors import shown_content_type
from bot.services import Services
from bot.slack.messages import escape_mrkdwn
from bot.spec import ResizeSpec
from bot.user_errors import UserError, slack_error_message, user_message
from bot.write_deadline import writes_begin_within

log = logging.getLogger(__name__)
T = TypeVar("T")

# The form opens with a trigger_id that lasts 3 s: a membership check slower than this gives way to the form.
MEMBERSHIP_CHECK_S = 1.0
# Slack waits 3 s for the ack. A request not stored by then is not acked: Slack sends an event again (its event id
# finds the job if the write landed after all), and a command or form is answered in time, asking to try again.
STORE_DEADLINE_S = 2.0
# A store write must begin this much before the deadline or not at all (bot.write_deadline): a command answered
# "try again" then leaves nothing behind to become a second job when it is retyped.
WRITE_BEGINS_BY_S = STORE_DEADLINE_S - 0.5
_REPLIES = "smart_resize_replies"  # the Bolt context key the store step leaves its replies under


class NotStored(Exception):
    """The job store could not take a request in time (locked, out of reach, failing): Slack must not be acked."""


@dataclass(frozen=True)
class Reply:
    """An ephemeral for the requester, sent only once Slack has its ack."""

    channel: str
    user: str
    text: str
    thread_ts: str | None = None
    response_url: str | None = None


StoreStep = Callable[[dict[str, Any], dict[str, Any]], Awaitable[list[Reply]]]  # (event, body) -> replies


async def stored_in_time(step: Awaitable[T]) -> T:
    """``step`` (which stores a job), within STORE_DEADLINE_S; NotStored, saying why, when the store fails or is
    slower. A write that could not begin in time is not made, and one that began is waited for and its outcome
    returned, on SQLite and PostgreSQL alike (bot.write_deadline), so "not stored" is true when it is said."""
    try:
        with writes_begin_within(WRITE_BEGINS_BY_S):
            async with asyncio.timeout(STORE_DEADLINE_S):
                return await step
    except Exception as error:
        if not store_or_network_out_of_reach(error):  # the deadline passing is a TimeoutError too
            raise
        reason = f"{type(error).__name__}: {error}" if str(error) else f"not stored within {STORE_DEADLINE_S:g} s"
        raise NotStored(reason) from None


async def send(services: Services, replies: list[Reply]) -> None:
    for reply in replies:
        await services.delivery.ephemeral(
            reply.channel, reply.user, reply.text, thread_ts=reply.thread_ts, response_url=reply.response_url
        )


def on_event(app: AsyncApp, services: Services, event: str | dict[str, Any], store_step: StoreStep) -> None:
    """Listen to ``event`` so that its jobs are stored before Slack is acked, and its replies sent after.

    Bolt acks an event before its listener runs, and Slack never sends an acked event again, so a crash or a failing
    database there would lose the request. ``store_step`` runs as listener middleware instead, which Bolt awaits
    before the ack; when the store fails Slack gets a 503 (in Socket Mode no ack) and sends the event again."""

    async def store_first(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        try:
            context[_REPLIES] = await stored_in_time(store_step(body["event"], body))
        except NotStored as error:
            log.warning(
                "event %s (%s) not acknowledged, so Slack sends it again: its job could not be stored (%s)",
                body.get("event_id"),
                body["event"].get("type"),
                error,
            )
            return BoltResponse(status=503, body={"error": "the request could not be stored; send it again"})
        await next()
        return None

    async def send_replies(body: dict[str, Any], context: AsyncBoltContext) -> None:
        replies = context.get(_REPLIES) or []
        if replies and not await _first_answer(services, body.get("event_id")):
            log.info("event %s delivered again: its replies were sent already", body.get("event_id"))
            return
        await send(services, replies)

    app.event(event, middleware=[store_first])(send_replies)


async def _first_answer(services: Services, event_id: str | None) -> bool:
    """Whether to send an event's replies: not when a delivery of the same event sent them already (Slack sends
    an event again when its ack was late, to this replica or another; its jobs are found by the event id, and a
    mention's own answers, which are not jobs, by this). When the store cannot say, they are sent: a sentence said
    twice is better than a request left unanswered."""
    if event_id is None:
        return True
    try:
        return await services.store.first_answer(event_id, time.time())
    except Exception as error:
        if not store_or_network_out_of_reach(error):
            raise
        log.warning("event %s: could not record that its replies were sent (%s); sending them", event_id, error)
        return True


def image_files(event: dict[str, Any]) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = event.get("files") or []
    # A Slack Connect file may come without its type, and one a free plan hides past its history limit comes as its
    # id alone: checked (or refused in a sentence) when the job runs.
    return [
        f
        for f in files
        if str(f.get("mimetype", "")).startswith("image/")
        or f.get("file_access") in ("check_file_info", "access_denied")
        or f.get("mode") == "hidden_by_limit"
    ]


async def message_at(services: Services, channel: str, ts: str) -> dict[str, Any] | None:
    """The message at ``ts``, whether it is in the channel or a thread reply; None when Slack has none there."""
    response = await services.client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
    messages: list[dict[str, Any]] = response.get("messages", [])
    if messages and messages[0].get("ts") == ts:
        return messages[0]
    replies = await services.client.conversations_replies(channel=channel, ts=ts, latest=ts, inclusive=True, limit=1)
    thread: list[dict[str, Any]] = replies.get("messages", [])
    found = [m for m in thread if m.get("ts") == ts]
    return found[0] if found else None


def left_out(event: dict[str, Any]) -> str | None:
    """The sentence naming the files of a message that are not images, when it has images too: those are resized
    and these are not, which the requester should hear rather than find out. None when every file is an image."""
    images = image_files(event)
    others = [file for file in event.get("files") or [] if not any(file is image for image in images)]
    if not others or not images:
        return None
    going_on = "the image is being resized" if len(images) == 1 else "the images are being resized"
    if len(others) == 1:
        name, mimetype = str(others[0].get("name") or ""), str(others[0].get("mimetype") or "")
        kind = shown_content_type(mimetype) if mimetype else "unknown type"
        return f"I left out {escape_mrkdwn(name) or 'one file'}, which isn't an image ({kind}); {going_on}."
    names = [escape_mrkdwn(str(file.get("name") or "")) or "a file" for file in others]
    if len(names) > 3:
        listed = f"{', '.join(names[:3])} and {len(names) - 3} more"
    else:
        listed = f"{', '.join(names[:-1])} and {names[-1]}"
    return f"I left out {listed}, which aren't images; {going_on}."


async def not_a_member(services: Services, channel: str) -> str | None:
    """The sentence to answer with when the bot is not in ``channel`` (it could post no results there), before a
    form is filled in for nothing; None when it is in, or when Slack could not say in time (the form opens, and
    the job's response_url still reaches the requester if it fails)."""
    try:
        async with asyncio.timeout(MEMBERSHIP_CHECK_S):
            response = await services.client.conversations_info(channel=channel)
    except SlackApiError as error:
        code = str(error.response.get("error", ""))
        # A private channel the bot is not in is hidden from it: channel_not_found.
        return slack_error_message(code) if code in ("channel_not_found", "not_in_channel") else None
    except (aiohttp.ClientError, TimeoutError):
        return None
    if (response.get("channel") or {}).get("is_member") is False:
        return slack_error_message("not_in_channel")
    return None


FORM_TOO_SLOW = "The form took too long to open, so it didn't; please try again."
_TRIGGER_SPENT = frozenset({"expired_trigger_id", "exchanged_trigger_id", "invalid_trigger_id"})


async def open_form(
    services: Services, trigger_id: str, view: dict[str, Any], *, channel: str, user: str, response_url: str | None
) -> None:
    """Open a form; when Slack will not (its trigger lasts 3 s and opens one view, Slack out of reach), the person
    who asked is told in one sentence and the log gets one line, not a traceback and an unanswered request."""
    try:
        await services.client.views_open(trigger_id=trigger_id, view=view)
        return
    except SlackApiError as error:
        code = str(error.response.get("error", ""))
        answer = FORM_TOO_SLOW if code in _TRIGGER_SPENT else user_message(error)
        why = f"Slack answered {code}"
    except (aiohttp.ClientError, TimeoutError) as error:
        answer, why = FORM_TOO_SLOW, f"Slack is unreachable ({type(error).__name__})"
    log.warning("the form for %s did not open: %s", user, why)
    await services.delivery.ephemeral(channel, user, answer, response_url=response_url)


async def channel_spec(
    services: Services, channel: str, asked: ResizeSpec | None = None
) -> tuple[ResizeSpec, tuple[str, ...]]:
    """What a reaction or an upload in this channel asks for, or a mention that names no sizes (``asked``, whose
    other options stand): the channel's auto-resize sizes when it has them, else the defaults. So a bare mention on
    an upload there makes the upload's one job, not a second set of outputs in other sizes. Sizes stored under
    higher caps than today's (or with the mention's variants) are fitted to them, as a mention's own are, with the
    notes saying so; UserError when not one image fits."""
    stored = await services.store.auto_sizes(channel)
    sizes = tuple(Size.parse(text) for text in stored or []) or services.grammar.default_sizes
    base = asked or ResizeSpec(sizes=())
    fitted = fit_outputs(sizes, base.variants, services.grammar.limits)
    if not fitted.sizes:
        raise UserError(
            f"{fitted.cuts[0][0]} This channel's auto-resize sizes are over it: a member can set smaller ones with "
            "`/resize auto on SIZES`."
        )
    notes = tuple(f"{message} {made_instead}" for message, made_instead in fitted.cuts)
    return replace(base, sizes=fitted.sizes, variants=fitted.variants), notes


async def submit_images(
    services: Services,
    *,
    trigger: Trigger,
    channel: str,
    user: str,
    team: str | None,
    message_ts: str,
    thread_ts: str,
    files: list[dict[str, Any]],
    spec: ResizeSpec,
    event_id: str | None,
) -> list[Reply]:
    """One job per image of a message and spec: a mention, an auto-resize and a reaction that ask for the same sizes
    of the same image make one job, however they arrive; other sizes or options are a job of their own. And
    ``event_id`` (the Slack event's), so Slack sending the event again makes none even after the job failed."""
    for file in files:
        try:
            await services.intake.submit(
                trigger=trigger,
                dedup_key=f"upload:{channel}:{message_ts}:{file['id']}:{spec.digest()}",
                channel_id=channel,
                user_id=user,
                team_id=team,
                source=JobSource.slack_file(file, message_ts),
                thread_ts=thread_ts,
                spec=spec,
                event_id=event_id,
            )
        except UserError as error:
            # In the thread when the message is a reply in one (where its sender is looking), else in the channel.
            return [Reply(channel, user, str(error), thread_ts=thread_ts if thread_ts != message_ts else None)]
    return []

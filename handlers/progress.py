"""The progress message's buttons: Cancel (the requester only), and once done Show crop map and Crop instead."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.jobs.model import Job
from bot.services import Services
from bot.slack.messages import CANCEL_ACTION, CROP_INSTEAD_ACTION, CROP_MAP_ACTION
from bot.slack.uploads import Outgoing, OutgoingFile
from bot.user_errors import UserError


def register(app: AsyncApp, services: Services) -> None:
    @app.action(CANCEL_ACTION)
    async def cancel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        answer = await services.runner.cancel(action["value"], by_user=body["user"]["id"])
        await _answer(services, body, answer)

    posting: set[str] = set()  # jobs whose crop map this process is posting: a second click waits for none

    @app.action(CROP_MAP_ACTION)
    async def show_crop_map(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        job = await services.store.get(action["value"])
        channel, user = body["channel"]["id"], body["user"]["id"]
        picture = await services.crop_maps.read(job.id) if job is not None and services.crop_maps is not None else None
        if job is None or job.thread_ts is None or picture is None:
            await _answer(services, body, "That crop map has expired; run the resize again to see it.")
            return
        tag = f"crop map · _{job.marker}_"
        if job.id in posting:
            await _answer(services, body, "The crop map is on its way to this thread.")
            return
        posting.add(job.id)
        try:
            await _post_crop_map(services, job, picture, tag, channel, user)
        finally:
            posting.discard(job.id)

    @app.action(CROP_INSTEAD_ACTION)
    async def crop_instead(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        job = await services.store.get(action["value"])
        user = body["user"]["id"]
        if job is None or job.thread_ts is None:
            await _answer(
                services,
                body,
                "That request has expired; run the resize again with `crop`, like `/resize 1080x1080 crop`.",
            )
            return
        try:
            cropping, new = await services.intake.submit(
                trigger="button",
                dedup_key=f"crop-instead:{job.id}",  # every click, on any replica, is this one job
                channel_id=job.channel_id,
                user_id=user,
                team_id=job.team_id,
                source=job.source,
                spec=replace(job.spec, mode="crop"),
                thread_ts=job.thread_ts,
            )
        except UserError as error:
            await _answer(services, body, str(error))
            return
        if cropping.state == "done":
            answer = "The cropped images are already in this thread."
        else:
            verb = "Cropping instead" if new else "Already on it"
            answer = f"{verb}: the cropped images will follow in this thread."
        await _answer(services, body, answer)


async def _answer(services: Services, body: dict[str, Any], text: str) -> None:
    """A private answer to who pressed a button, in the thread the button is in (its progress message's)."""
    container = body.get("container") or {}
    await services.delivery.ephemeral(
        body["channel"]["id"], body["user"]["id"], text, thread_ts=container.get("thread_ts")
    )


async def _post_crop_map(services: Services, job: Job, picture: bytes, tag: str, channel: str, user: str) -> None:
    """Post the map into the job's thread, unless it is there already (a click on another replica, say: the look and
    the post are made under the thread's lock, which replicas on PostgreSQL share)."""
    assert job.thread_ts is not None
    async with services.store.message_lock(channel, job.thread_ts):
        await _post_crop_map_once(services, job, picture, tag, channel, user, job.thread_ts)


async def _post_crop_map_once(
    services: Services, job: Job, picture: bytes, tag: str, channel: str, user: str, thread_ts: str
) -> None:
    if await services.delivery.find_own_post(channel, tag, since=job.created_at, thread_ts=thread_ts, with_files=True):
        await services.delivery.ephemeral(channel, user, "The crop map is already in this thread.", thread_ts=thread_ts)
        return
    crop_map = OutgoingFile(
        picture,
        filename="crop-map.jpg",
        title="Crop map: what each size kept",
        alt_txt="The source photo with each output's window outlined and labelled",
    )
    post = Outgoing((crop_map,), f"What each size kept, outlined on the original · {tag}")

    async def outgoing() -> Outgoing:
        return post

    try:
        await services.delivery.upload(channel, thread_ts, outgoing)
    except UserError as error:  # never shared: said to the one who asked, not left as a traceback
        await services.delivery.ephemeral(channel, user, str(error), thread_ts=thread_ts)

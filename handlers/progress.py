"""The progress message's buttons: Cancel (the requester only) and Show crop map (once done)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.jobs.model import Job
from bot.services import Services
from bot.slack.messages import CANCEL_ACTION, CROP_MAP_ACTION
from bot.slack.uploads import Outgoing, OutgoingFile
from bot.user_errors import UserError


def register(app: AsyncApp, services: Services) -> None:
    @app.action(CANCEL_ACTION)
    async def cancel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        answer = await services.runner.cancel(action["value"], by_user=user)
        await services.delivery.ephemeral(body["channel"]["id"], user, answer)

    posting: set[str] = set()  # jobs whose crop map this process is posting: a second click waits for none

    @app.action(CROP_MAP_ACTION)
    async def show_crop_map(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        job = await services.store.get(action["value"])
        channel, user = body["channel"]["id"], body["user"]["id"]
        picture = await services.crop_maps.read(job.id) if job is not None and services.crop_maps is not None else None
        if job is None or job.thread_ts is None or picture is None:
            await services.delivery.ephemeral(
                channel, user, "That crop map has expired; run the resize again to see it."
            )
            return
        tag = f"crop map · _{job.marker}_"
        if job.id in posting:
            await services.delivery.ephemeral(channel, user, "The crop map is on its way to this thread.")
            return
        posting.add(job.id)
        try:
            await _post_crop_map(services, job, picture, tag, channel, user)
        finally:
            posting.discard(job.id)


async def _post_crop_map(services: Services, job: Job, picture: bytes, tag: str, channel: str, user: str) -> None:
    """Post the map into the job's thread, unless it is there already (a click on another replica, say)."""
    assert job.thread_ts is not None
    if await services.delivery.find_own_post(
        channel, tag, since=job.created_at, thread_ts=job.thread_ts, with_files=True
    ):
        await services.delivery.ephemeral(channel, user, "The crop map is already in this thread.")
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
        await services.delivery.upload(channel, job.thread_ts, outgoing)
    except UserError as error:  # never shared: said to the one who asked, not left as a traceback
        await services.delivery.ephemeral(channel, user, str(error))

"""The "Smart resize" message shortcut and the `/resize` modal: pick presets, custom sizes and options in a form.

From a message with images the results go to that message's thread; from `/resize` with no arguments the modal has
a file input, and the results go to a new message in the channel, in its thread.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.engine import Size, TooManyOutputs, check_output_count, check_output_pixels, output_pixels
from bot.grammar import ParseError
from bot.jobs.model import JobSource
from bot.presets import PRESETS
from bot.services import Services
from bot.slack.messages import is_direct_message, not_in_dms
from bot.slack.views import MODAL_ID, resize_modal
from bot.smart_resize_api.contract import MAX_PROMPT_CHARS
from bot.spec import ResizeSpec
from bot.user_errors import UserError
from handlers.common import NotStored, Reply, image_files, left_out, not_a_member, open_form, send, stored_in_time

log = logging.getLogger(__name__)
SHORTCUT_ID = "smart_resize"
# Submitting the same form again is safe: its jobs are keyed on the form, so a late first write makes no second job.
SUBMIT_AGAIN = "Smart Resize couldn't save this request in time; please submit the form again."
NOT_IN_DMS = not_in_dms("share the image in a channel and use the shortcut there")


def register(app: AsyncApp, services: Services) -> None:
    @app.shortcut(SHORTCUT_ID)
    async def on_shortcut(ack: AsyncAck, shortcut: dict[str, Any]) -> None:
        await ack()
        message = shortcut.get("message") or {}
        files = image_files(message)
        channel, user = shortcut["channel"]["id"], shortcut["user"]["id"]
        response_url = shortcut.get("response_url") or None
        refusal = None
        if is_direct_message(channel, shortcut["channel"].get("name")):
            # The bot is in no DM or group DM (its Messages tab is read-only): it could not post the results there.
            refusal = NOT_IN_DMS
        elif not files:
            refusal = "That message has no image to resize; use the shortcut on a message with a photo."
        elif message.get("user") == await services.delivery.bot_user_id():  # its results: copies of a copy
            refusal = "That's one of my own posts; use the shortcut on the original photo to resize it."
        else:
            refusal = await not_a_member(services, channel)
        if refusal is not None:
            await services.delivery.ephemeral(channel, user, refusal, response_url=response_url)
            return
        metadata = {
            "channel": shortcut["channel"]["id"],
            "message_ts": message["ts"],
            "thread_ts": message.get("thread_ts") or message["ts"],
            "files": [file["id"] for file in files],
            "response_url": response_url,
            "left_out": left_out(message),  # said once the form is submitted, with the jobs it starts
        }
        await open_form(
            services,
            shortcut["trigger_id"],
            resize_modal(metadata, file_input=False),
            channel=channel,
            user=user,
            response_url=response_url,
        )

    @app.view(MODAL_ID)
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        metadata = json.loads(view["private_metadata"])
        values = view["state"]["values"]
        errors, spec = read_form(values, services)
        file_ids = list(metadata.get("files") or [])
        if "upload" in values:
            uploaded = values["upload"]["value"].get("files") or []
            file_ids = [file["id"] for file in uploaded]
            if not file_ids:
                errors["upload"] = "Attach an image to resize."
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        user = body["user"]["id"]
        channel = metadata["channel"]
        # The shortcut's or the command's, carried in the form: a submission has none of its own, and it is the one
        # way to tell the requester of a failure in a channel the bot has left meanwhile.
        response_url = metadata.get("response_url") or None
        try:
            # Stored before the ack: Slack never sends a form again, and the ack is the last chance to say so.
            refusals = await stored_in_time(submit_form(body, view, metadata, file_ids, spec))
        except NotStored as error:
            log.warning("a form from %s started nothing: its jobs could not be stored (%s)", user, error)
            # Shown on the form, which stays open: submitting it again is the retry.
            await ack(response_action="errors", errors={"upload" if "upload" in values else "presets": SUBMIT_AGAIN})
            return
        await ack()
        said = refusals or [text for text in [metadata.get("left_out")] if isinstance(text, str)]
        await send(services, [Reply(channel, user, text, response_url=response_url) for text in said])

    async def submit_form(
        body: dict[str, Any], view: dict[str, Any], metadata: dict[str, Any], file_ids: list[str], spec: ResizeSpec
    ) -> list[str]:
        """One job per image of the form; the sentence refusing the rest, if intake refuses one."""
        for file_id in file_ids:
            try:
                await services.intake.submit(
                    trigger="shortcut" if metadata.get("message_ts") else "modal",
                    # One modal is one request: submitting it twice (or Slack retrying) makes no second job.
                    dedup_key=f"view:{view['id']}:{file_id}",
                    channel_id=metadata["channel"],
                    user_id=body["user"]["id"],
                    team_id=(body.get("team") or {}).get("id"),
                    source=JobSource.slack_file(
                        {"id": file_id, "file_access": "check_file_info"}, metadata.get("message_ts")
                    ),
                    thread_ts=metadata.get("thread_ts"),
                    spec=spec,
                    response_url=metadata.get("response_url") or None,
                )
            except UserError as error:
                return [str(error)]
        return []


def read_form(values: dict[str, Any], services: Services) -> tuple[dict[str, str], ResizeSpec]:
    """The modal's fields -> the spec, or field errors shown under the fields that need fixing."""
    grammar = services.grammar
    errors: dict[str, str] = {}
    chosen = [o["value"] for o in values["presets"]["value"].get("selected_options") or []]
    sizes: list[Size] = []
    for name in chosen:
        if PRESETS[name].size not in sizes:
            sizes.append(PRESETS[name].size)
    custom = (values["sizes"]["value"].get("value") or "").strip()
    if custom:
        try:
            sizes.extend(s for s in grammar.parse_size_list(custom, max_sizes=40) if s not in sizes)
        except ParseError as error:
            errors["sizes"] = error.message
    variants = int(values["variants"]["value"]["selected_option"]["value"])
    spec = ResizeSpec(
        sizes=tuple(sizes) or grammar.default_sizes,
        mode=values["mode"]["value"]["selected_option"]["value"],
        output_format=values["format"]["value"]["selected_option"]["value"],
        variants=variants,
        prompt=(values["prompt"]["value"].get("value") or "").strip(),
    )
    if len(spec.prompt) > MAX_PROMPT_CHARS:  # Slack's own max_length on the field, checked here too
        errors["prompt"] = f"The instructions have {len(spec.prompt)} characters; keep them to {MAX_PROMPT_CHARS}."
    if len(sizes) > grammar.max_sizes:
        errors["sizes"] = f"That's {len(sizes)} sizes; the limit is {grammar.max_sizes} per request."
    else:
        try:
            check_output_count(len(spec.sizes), variants, grammar.limits)
        except TooManyOutputs as error:
            errors["variants"] = str(error)
        else:
            try:
                check_output_pixels(spec.sizes, variants, grammar.limits)
            except TooManyOutputs as error:
                # Under the sizes when one image of each is already too much; else fewer variants would do.
                one_each = output_pixels(spec.sizes, 1) > grammar.limits.max_output_pixels
                errors["sizes" if one_each else "variants"] = str(error)
    return errors, spec

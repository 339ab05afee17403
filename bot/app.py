"""Build the Bolt app on the shared services and register one module per Slack feature.

Also what stands in front of Bolt on the HTTP socket (``add_request_guards``): read deadlines, and a check that
refuses unsigned, stale and malformed ``/slack/events`` requests with a 400 or 401 and one log line, where Bolt would
answer 500 and log a traceback (``X-Slack-Request-Timestamp: abc``, a signed body that is not JSON, an array, ...).
And a Bolt middleware that refuses requests of another workspace or app (``only_this_installation``), in both modes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import EngineError
from bot.jobs.source_links import PATH_PREFIX
from bot.net import FetchError
from bot.services import Services
from bot.slack.connection import (
    UNREACHABLE,
    Readiness,
    SlackUnreachable,
    host_of,
    refresh_readiness,
    waiting_on_slack,
)
from bot.slow_clients import SLOW_CLIENTS, SlowClients
from bot.user_errors import UserError

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_CLOCK_SKEW_S = 5 * 60  # Slack's rule for X-Slack-Request-Timestamp, and Bolt's
MAX_FOREIGN_LOGGED = 1000  # distinct foreign teams named in the log; past it they are refused without a line


def build_app(services: Services) -> AsyncApp:
    from handlers import channel_uploads, commands, home, progress, reactions, shortcuts, uploads

    settings = services.settings
    app = AsyncApp(
        client=services.client,
        signing_secret=settings.slack_signing_secret or "",
        # Socket Mode requests arrive over an authenticated websocket and carry no signature.
        request_verification_enabled=not settings.socket_mode,
        # Ack first, then keep working: Slack gets its answer in milliseconds.
        process_before_response=False,
    )
    app.use(only_this_installation(Installation(services.client, settings.slack_app_token)))
    commands.register(app, services)
    uploads.register(app, services)
    reactions.register(app, services)
    channel_uploads.register(app, services)
    home.register(app, services)
    progress.register(app, services)
    shortcuts.register(app, services)
    return app


# --- this installation only -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The workspace (and org, for an org-wide install) and app the bot token belongs to."""

    team_id: str
    enterprise_id: str | None
    org_install: bool
    app_id: str | None  # from auth.test when it says, else from the app-level token; None: not checked

    def foreign(self, team_id: str | None, enterprise_id: str | None, app_id: str | None) -> str | None:
        """What makes a request someone else's (``"team T123"``, ``"app A123"``), or None when it is ours."""
        if app_id and self.app_id and app_id != self.app_id:
            return f"app {app_id}"
        if team_id and team_id != self.team_id:
            if self.org_install and enterprise_id and enterprise_id == self.enterprise_id:
                return None  # an org-wide install serves every workspace of its org
            return f"team {team_id}"
        return None


class Installation:
    """Who this app is, asked of Slack once (``auth.test``), and which foreign requests have been logged."""

    def __init__(self, client: AsyncWebClient, app_token: str | None) -> None:
        self.client = client
        self.token_app_id = app_id_of(app_token)
        self._identity: Identity | None = None
        self._lock = asyncio.Lock()
        self._failure_logged = False
        self.logged: set[str] = set()

    async def identity(self) -> Identity | None:
        """None while Slack can't be asked: then nothing works with this token anyway, and Bolt says so."""
        if self._identity is None:
            async with self._lock:
                if self._identity is None:
                    try:
                        response = await self.client.auth_test()
                    except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
                        if not self._failure_logged:  # asked again on the next request; said once
                            self._failure_logged = True
                            log.warning("auth.test failed (%s): requests are not checked against this workspace", error)
                        return None
                    self._identity = Identity(
                        team_id=str(response.get("team_id") or ""),
                        enterprise_id=response.get("enterprise_id"),
                        org_install=bool(response.get("is_enterprise_install")),
                        app_id=response.get("app_id") or self.token_app_id,
                    )
        return self._identity

    def note_refusal(self, whose: str, identity: Identity) -> None:
        """One WARNING per foreign team or app, not one per request: a busy foreign workspace can't flood the log."""
        if whose in self.logged or len(self.logged) >= MAX_FOREIGN_LOGGED:
            return
        self.logged.add(whose)
        log.warning(
            "refusing requests from %s: this app is installed for team %s%s only, and its token is not used for "
            "another's events or commands",
            whose,
            identity.team_id,
            f" (app {identity.app_id})" if identity.app_id else "",
        )


def app_id_of(app_token: str | None) -> str | None:
    """The app id inside an app-level token (``xapp-1-A0123ABC-...``)."""
    match = re.fullmatch(r"xapp-\d+-(A[A-Z0-9]+)-.*", app_token or "", re.DOTALL)
    return match[1] if match else None


BoltMiddleware = Callable[..., Awaitable[BoltResponse | None]]


_INTERACTIVE = frozenset(
    {"block_actions", "block_suggestion", "message_action", "shortcut", "view_submission", "view_closed"}
)


def only_this_installation(installation: Installation) -> BoltMiddleware:
    async def middleware(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        identity = await installation.identity()
        api_app_id = body.get("api_app_id")
        whose = None
        if identity is not None:
            app_id = api_app_id if isinstance(api_app_id, str) else None
            # Interactive payloads (buttons, shortcuts, forms) name the clicking user's workspace, which in a Slack
            # Connect channel is not ours: for them the app id decides. Events name the installation
            # (authorizations), and commands the workspace they were typed in.
            interactive = body.get("type") in _INTERACTIVE
            team_id = None if interactive else context.team_id
            whose = identity.foreign(team_id, context.enterprise_id, app_id)
        if whose is None:
            return await next()
        assert identity is not None
        installation.note_refusal(whose, identity)
        # An empty 200 (in Socket Mode an empty ack): Slack takes it as handled and does not retry.
        return BoltResponse(status=200, body="")

    return middleware


# --- in front of Bolt on the HTTP socket ------------------------------------------------------------------------


def add_request_guards(web_app: web.Application, services: Services) -> SlowClients:
    """Read deadlines on every request of ``web_app``; in HTTP mode, /slack/events checked before Bolt sees it."""
    settings = services.settings
    slow = SlowClients(settings.header_read_timeout_s, settings.body_read_timeout_s, surface="Smart Resize")
    slow.install(web_app)  # the body read goes before the check below: it needs the whole body
    if not settings.socket_mode:
        web_app.middlewares.append(slack_request_check(settings.slack_signing_secret or "", services.readiness))
    return slow


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INVALID = {"error": "invalid request"}  # Bolt's own body for a request it does not trust


NOT_READY = "Smart Resize is starting and can't reach Slack yet; try again in a minute."


def slack_request_check(secret: str, readiness: Readiness, clock: Callable[[], float] = time.time) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != EVENTS_PATH or request.method != "POST":
            return await handler(request)
        body = await request.read()
        refusal = slack_refusal(secret, request.headers, body, request.query_string, clock())
        if refusal is None:
            if not readiness.token_checked:
                return _not_ready(request.content_type, body)
            return await handler(request)
        status, reason = refusal
        # Unsigned or stale requests are the internet's noise (INFO); a signed but malformed one is worth a look.
        log.log(logging.INFO if status == 401 else logging.WARNING, "refused a request to %s: %s", EVENTS_PATH, reason)
        return web.json_response(INVALID, status=status)

    return check


def _not_ready(content_type: str, body: bytes) -> web.Response:
    """Before Slack has accepted the token, Bolt would ask it (auth.test) and answer an empty 500 with a traceback
    when it is out of reach: a command is told in a sentence, an event is left for Slack to send again."""
    log.info("answered a request before Slack was reachable: %s", NOT_READY)
    form = urllib.parse.parse_qs(body.decode()) if content_type == "application/x-www-form-urlencoded" else {}
    if "command" in form and "payload" not in form:
        return web.json_response({"response_type": "ephemeral", "text": NOT_READY})
    return web.json_response({"error": NOT_READY}, status=503, headers={"Retry-After": "60"})


def slack_refusal(
    secret: str, headers: Mapping[str, str], body: bytes, query: str, now: float
) -> tuple[int, str] | None:
    """Why Slack could not have sent this request: (401, reason) when it is unsigned or stale, (400, reason) when
    it is signed but not a payload Bolt and the listeners can read; None when it may go on to Bolt."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    # Digits only: int() would take " 1", "1_0" and "١" and refuse "1e10" and "abc" with a ValueError (Bolt's 500).
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        return 401, "X-Slack-Request-Timestamp is not a Unix time"
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return 401, "X-Slack-Request-Timestamp is more than five minutes away from this server's clock"
    # Over the raw bytes, as Slack signs them: slack_sdk's verifier would first decode them, and fail on non-UTF-8.
    expected = (
        b"v0="
        + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest().encode()
    )
    given = headers.get("X-Slack-Signature", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected, given):
        return 401, "the signature does not match SLACK_SIGNING_SECRET"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "the signed body is not UTF-8"
    content_type = headers.get("Content-Type", "").split(";")[0].strip()
    try:
        parsed = parse_body(text, content_type)  # Bolt's own reading: JSON, or a form with or without payload=
    except RecursionError:
        return 400, "the signed body is JSON nested too deeply"
    except ValueError:
        return 400, "the signed body (or its payload=) is not JSON"
    if not isinstance(parsed, dict):
        return 400, "the signed body is not a JSON object"
    problem = payload_problem(parsed)
    if problem is not None:
        return 400, f"the signed body is malformed: {problem}"
    try:
        # Exactly what Bolt will build from it, every id extracted for its context: whatever trips that is the body.
        AsyncBoltRequest(body=text, query=query, headers=dict(headers))
    except Exception as error:
        return 400, f"the signed body is not a Slack payload ({type(error).__name__})"
    return None


# What Bolt's dispatch reads at the top of every payload, and of which types.
_ENVELOPE: dict[str, tuple[type, ...]] = {
    "event": (dict,),
    "team": (str, dict),
    "user": (str, dict),
    "channel": (str, dict),
    "enterprise": (str, dict),
    "view": (dict,),
    "container": (dict,),
    "message": (dict,),
    "actions": (list,),
    "authorizations": (list,),
    "function_data": (dict,),
    "bot_access_token": (str,),
    "api_app_id": (str,),
    "team_id": (str,),
    "enterprise_id": (str,),
    "type": (str,),
    "callback_id": (str,),  # matched against listeners' ids
    "action_id": (str,),
    "block_id": (str,),
}
_NULLABLE = frozenset({"team", "enterprise", "channel", "user", "team_id", "enterprise_id", "api_app_id"})
# What the listeners read of each payload they take, as Slack always sends it: "str" must be a string, "str?" a
# string or absent, "files" a list of file objects. A signed body that breaks this is refused with a 400, rather
# than becoming a KeyError and a traceback in a listener. (The form's state is read as Slack sends it.)
Fields = dict[str, str]
_MESSAGE_EVENT: Fields = {
    "channel": "str",
    "ts": "str",
    "user": "str?",
    "text": "str?",
    "thread_ts": "str?",
    "team": "str?",
    "subtype": "str?",
    "files": "files",
    "message": "dict?",  # Bolt's assistant matchers read both, as objects
    "previous_message": "dict?",
}
_EVENTS: dict[str, Fields] = {
    "app_mention": _MESSAGE_EVENT,
    "message": _MESSAGE_EVENT,
    "reaction_added": {"reaction": "str?", "user": "str?", "team": "str?", "item.type": "str?"},
    "app_home_opened": {"user": "str", "tab": "str?"},
}
_PAYLOADS: dict[str, Fields] = {
    "block_actions": {"user.id": "str", "channel.id": "str?"},
    "message_action": {
        "user.id": "str",
        "channel.id": "str",
        "trigger_id": "str",
        "response_url": "str?",
        "message.ts": "str?",
        "message.thread_ts": "str?",
        "message.files": "files",
    },
    "view_submission": {
        "user.id": "str",
        "view.id": "str",
        "view.type": "str",
        "view.private_metadata": "str",
        "team.id": "str?",
    },
    "view_closed": {"view.type": "str"},
}
_COMMAND: Fields = {
    "channel_id": "str",
    "user_id": "str",
    "command": "str?",
    "text": "str?",
    "trigger_id": "str",
    "team_id": "str?",
    "response_url": "str?",
}
_MISSING = object()


def payload_problem(body: dict[str, Any]) -> str | None:
    """What in a parsed payload would trip Bolt or a listener, in a few words; None when it is well formed."""
    for key, kinds in _ENVELOPE.items():
        value = body.get(key, _MISSING)
        # Bolt reads some with body.get(key, {}): there null is as bad as a wrong type. Slack does send nulls
        # for team, enterprise, channel and user (org-wide installs, modals).
        if value is _MISSING or (value is None and key in _NULLABLE):
            continue
        if not isinstance(value, kinds):
            return f"{key} has the wrong type"
    for key in ("actions", "authorizations"):
        if not all(isinstance(item, dict) for item in body.get(key) or []):
            return f"{key} must be a list of objects"
    for action in body.get("actions") or []:
        if not isinstance(action.get("action_id", ""), str) or not isinstance(action.get("value", ""), str):
            return "an action's action_id or value is not a string"
    if "command" in body:  # Bolt takes any body with a command for a slash command, whatever its type says
        problem = _check(body, _COMMAND, "")
        if problem is not None:
            return problem
    kind = body.get("type")
    # Bolt hands every middleware and listener the first action, and the workflow step, whether it asked or not.
    takes_actions = (kind == "block_actions" and "actions" in body) or (
        kind == "interactive_message" and "callback_id" in body
    )
    if takes_actions and not body.get("actions"):
        return "actions is missing or empty"
    step_edit = kind == "workflow_step_edit" and "callback_id" in body
    step_save = (
        kind == "view_submission" and isinstance(body.get("view"), dict) and body["view"].get("type") == "workflow_step"
    )
    if (step_edit or step_save) and "workflow_step" not in body:
        return "workflow_step is missing"
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "event must be an object with a type"
        fields = _EVENTS.get(event["type"], {})
        if event["type"] == "reaction_added":
            item = event.get("item") or {}
            if not isinstance(item, dict):
                return "event.item must be an object"
            if item.get("type") == "message":
                fields = {**fields, "item.channel": "str", "item.ts": "str"}
        return _check(event, fields, "event.")
    if isinstance(kind, str) and kind in _PAYLOADS:
        problem = _check(body, _PAYLOADS[kind], "")
        if problem is None and kind == "view_submission":
            problem = _view_problem(body["view"])
        return problem
    return None


def _check(value: dict[str, Any], fields: Fields, prefix: str) -> str | None:
    for path, kind in fields.items():
        found = _at(value, path.split("."))
        if kind == "str" and not isinstance(found, str):
            return f"{prefix}{path} is missing"
        if kind == "str?" and found is not _MISSING and found is not None and not isinstance(found, str):
            return f"{prefix}{path} is not a string"
        if kind == "files" and found is not _MISSING and found is not None and not _are_files(found):
            return f"{prefix}{path} must be a list of file objects with ids"
        if kind == "dict?" and found is not _MISSING and found is not None and not isinstance(found, dict):
            return f"{prefix}{path} is not an object"
    return None


def _at(value: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _are_files(files: object) -> bool:
    return isinstance(files, list) and all(
        isinstance(file, dict)
        and isinstance(file.get("id"), str)
        and all(isinstance(file.get(key, ""), str) for key in ("mimetype", "file_access", "name"))
        for file in files
    )


def _view_problem(view: dict[str, Any]) -> str | None:
    # The app's own modal put these there; Slack returns them as they were.
    try:
        metadata = json.loads(view["private_metadata"])
    except ValueError:
        return "view.private_metadata is not JSON"
    if not isinstance(metadata, dict):
        return "view.private_metadata is not a JSON object"
    if not isinstance(_at(view, ["state", "values"]), dict):
        return "view.state.values is missing"
    return None


# --- other routes -----------------------------------------------------------------------------------------------


def add_health_route(web_app: web.Application, services: Services) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        body: dict[str, Any] = {"ok": True, "backend": services.backend.name, "mode": _mode(services)}
        slow = web_app.get(SLOW_CLIENTS)
        if slow is not None:
            body["slow_clients_cut"] = slow.counts()  # connections cut by HEADER_/BODY_READ_TIMEOUT since start
        return web.json_response(body)

    async def readyz(_request: web.Request) -> web.Response:
        readiness = services.readiness
        if not readiness.socket_mode:  # no socket to watch: ask Slack, at most every READY_PROBE_S
            await refresh_readiness(services.client, readiness)
        return web.json_response(readiness.as_json(), status=200 if readiness.ready else 503)

    web_app.router.add_get("/healthz", healthz)  # live: the process answers (restart it if not)
    web_app.router.add_get("/readyz", readyz)  # ready: Slack reachable and, in Socket Mode, the socket open


def add_source_route(web_app: web.Application, services: Services) -> None:
    """``GET /sources/<token>``: a job's source image for the hosted service, while the link and the job last."""
    links = services.links
    if links is None:
        return

    async def source(request: web.Request) -> web.Response:
        job_id = links.job_of(request.match_info["token"])
        job = await services.store.get(job_id) if job_id is not None else None
        if job is None or job.finished:
            raise web.HTTPNotFound()  # bad, tampered, expired or done: the same answer, revealing nothing
        image = links.held(job.id)
        if image is None:  # not in memory (a restart, say): fetched again from where the job has it
            try:
                image = await services.runner.backend_source(job)
            except (FetchError, UserError, EngineError) as error:
                log.warning("source link for job %s: the image could not be fetched again (%s)", job.short_id, error)
                raise web.HTTPNotFound() from None
            except (SlackApiError, SlackUnreachable, *UNREACHABLE) as error:
                if (problem := waiting_on_slack(error, host_of(services.settings.slack_api_url))) is None:
                    log.warning("source link for job %s: Slack refused the image (%s)", job.short_id, error)
                    raise web.HTTPNotFound() from None
                # Slack for a moment, not the link: the service that fetches it may try again.
                log.warning("source link for job %s: not served now: %s", job.short_id, problem)
                raise web.HTTPServiceUnavailable(headers={"Retry-After": "5"}) from None
        return _image_response(image.data, image.content_type)

    web_app.router.add_get(PATH_PREFIX + "{token}", source)


def _image_response(data: bytes, content_type: str) -> web.Response:
    # Served from the app's own origin: never sniffed as something else, never run as a page (an SVG, say).
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
    return web.Response(body=data, content_type=content_type, headers=headers)


def _mode(services: Services) -> str:
    return "socket" if services.settings.socket_mode else "http"

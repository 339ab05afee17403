"""A real aiohttp server on loopback that speaks the parts of Slack's Web API the app uses.

It keeps channels, messages, threads, reactions, files and uploads as state, demands the bot token like Slack
does (``invalid_auth`` for a bad one; file downloads without it get Slack's HTML login page with status 200), and
records every call so tests can assert on what the app really sent. Faults can be armed per method.

Socket Mode too: ``apps.connections.open`` (app token only) hands out a websocket URL on this server, which greets
the app with ``hello``, carries envelopes to it (``send_envelope``) and collects its acks by ``envelope_id``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

BOT_TOKEN = "xoxb-test-1-emulator"
APP_TOKEN = "xapp-1-AEMU-1-emulator"  # the app-level token Socket Mode connects with
BOT_USER = "UBOTEMU01"
BOT_ID = "BBOTEMU01"
TEAM = "TEMU00001"
APP_ID = "AEMU"
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"

# Calls per window (Slack's are per minute) for the methods the app makes often: Tier 2 is 20, Tier 3 is 50,
# Tier 4 is 100; chat.postMessage is about one a second per channel.
TIER_LIMITS = {
    "reactions.remove": 20,
    "reactions.add": 50,
    "chat.update": 50,
    "conversations.replies": 50,
    "conversations.history": 50,
    "files.delete": 50,
    "files.info": 100,
    "files.getUploadURLExternal": 100,
    "files.completeUploadExternal": 100,
    "chat.postEphemeral": 100,
}

SCOPE = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "files.info": "files:read",
    "files.delete": "files:write",
    "conversations.members": "channels:read",
    "conversations.info": "channels:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}


@dataclass
class Fault:
    error: str
    status: int = 200
    retry_after: int | None = None


@dataclass
class Channel:
    id: str
    members: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)  # oldest first


class SlackEmulator:
    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.deleted_files: list[str] = []
        self.pending_uploads: dict[str, dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.reactions: dict[tuple[str, str], set[str]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.downloads: list[dict[str, Any]] = []
        self.faults: dict[str, list[Fault]] = {}
        self.scopes: set[str] | None = None  # None: every scope granted
        self.download_delay = 0.0
        self.download_redirects: dict[str, str] = {}  # file id -> where its download redirects (a CDN, say)
        self.answer_delay: dict[str, float] = {}  # method -> seconds to wait after acting, before answering
        # method -> which of its calls to hold before acting, while it says so, as a Slack the request has not reached
        self.hold: dict[str, Callable[[dict[str, Any]], bool]] = {}
        self._released = asyncio.Event()
        self.home_views: dict[str, dict[str, Any]] = {}
        self.opened_views: list[dict[str, Any]] = []
        # python-slack-sdk #1818 (open): with alt_txt the upload succeeds but the files are never shared.
        self.alt_txt_breaks_sharing = False
        # Slack shares a completed upload this many seconds later on ``clock`` (malware scanning); None: never.
        self.share_delay: float | None = 0.0
        self.clock: Callable[[], float] = time.time
        self._pending_shares: list[tuple[float, Channel, dict[str, Any]]] = []
        # Slack's rate-limit tiers, enforced per method over a sliding window of this many seconds (None: off).
        # A test compresses Slack's minute so a burst takes seconds; the app is told the same window.
        self.rate_window_s: float | None = None
        self._call_times: dict[str, list[float]] = {}
        self.rate_limited: list[str] = []  # every method answered with a 429
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        self._server: TestServer | None = None
        self._port: int | None = None  # kept while offline: Slack comes back at the same address
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.socket_connected = asyncio.Event()
        self._socket_requests: list[web.Request] = []
        self.socket_opens = 0
        self.unacked: dict[str, dict[str, Any]] = {}  # envelope id -> envelope sent and not acked yet
        self.acks: list[dict[str, Any]] = []  # every ack, in order (a redelivered envelope may be acked twice)

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> SlackEmulator:
        self._server = TestServer(self._application(), host="127.0.0.1")
        await self._server.start_server()
        self._port = self._server.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        for socket in self.sockets:
            await socket.close()
        if self._server is not None:
            await self._server.close()

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/files/{file_id}/{name}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{token}", self._response)
        app.router.add_get("/socket-mode", self._socket)
        return app

    async def go_offline(self) -> None:
        """Slack out of reach (a network partition, an outage): nothing listens on its port, so every connection
        is refused, until ``come_back``. What Slack holds stays as it was."""
        await self._close()

    async def come_back(self) -> None:
        """Slack reachable again, at the same address and with the same state."""
        self._server = TestServer(self._application(), host="127.0.0.1", port=self._port)
        await self._server.start_server()

    @property
    def base_url(self) -> str:
        assert self._port is not None, "the emulator has not started"
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # --- seeding -------------------------------------------------------------------------------------------------

    def add_channel(self, channel_id: str, members: tuple[str, ...] = ("U1",), bot_member: bool = True) -> Channel:
        channel = Channel(channel_id, set(members) | ({BOT_USER} if bot_member else set()))
        self.channels[channel_id] = channel
        return channel

    def add_file(self, data: bytes, name: str = "photo.jpg", mimetype: str = "image/jpeg") -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        meta = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1],
            "size": len(data),
            "url_private": f"{self.base_url}/files/{file_id}/{name}",
            "url_private_download": f"{self.base_url}/files/{file_id}/{name}?download=1",
        }
        self.files[file_id] = meta
        self.file_bytes[file_id] = data
        return dict(meta)

    def post_user_message(
        self,
        channel: str,
        user: str,
        text: str,
        files: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": self._ts()}
        if files:
            message["files"] = files
            message["subtype"] = "file_share"
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.channels[channel].messages.append(message)
        return dict(message)

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base_url}/response/{name}"

    def fail_next(self, method: str, error: str, status: int = 200, retry_after: int | None = None) -> None:
        self.faults.setdefault(method, []).append(Fault(error, status, retry_after))

    # --- queries for tests ---------------------------------------------------------------------------------------

    def release(self) -> None:
        """Let every held call go on."""
        self.hold.clear()
        self._released.set()
        self._released = asyncio.Event()

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        self._release_shares()
        return [m for m in self.channels[channel].messages if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]

    def uploads_in_thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Each uploaded file posted in the thread: title, name, alt text and its bytes."""
        found = []
        for message in self.thread(channel, thread_ts):
            for file in message.get("files", []):
                if file["id"] in self.file_bytes and message.get("user") == BOT_USER:
                    found.append({**file, "bytes": self.file_bytes[file["id"]], "message": message})
        return found

    def ephemerals_for(self, user: str) -> list[str]:
        return [e["text"] for e in self.ephemerals if e["user"] == user] + [
            r["text"] for r in self.responses if r.get("response_type", "ephemeral") == "ephemeral"
        ]

    def reactions_on(self, channel: str, ts: str) -> set[str]:
        return set(self.reactions.get((channel, ts), set()))

    # --- the Web API ---------------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(await request.post())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or params.get("token")
        self.calls.append((method, params))
        if not token:
            return _error("not_authed")
        if token != (APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN):
            return _error("invalid_auth")
        self._release_shares()
        limited = self._over_tier(method)
        if limited is not None:
            self.rate_limited.append(method)
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": limited}
            )
        faults = self.faults.get(method)
        if faults:
            fault = faults.pop(0)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return web.json_response({"ok": False, "error": fault.error}, status=fault.status, headers=headers)
        needed = SCOPE.get(method)
        if self.scopes is not None and needed and needed not in self.scopes:
            return web.json_response({"ok": False, "error": "missing_scope", "needed": needed})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        while method in self.hold and self.hold[method](params):  # until the test lets it go (release)
            await self._released.wait()
        result = handler(params)
        if method in self.answer_delay:  # the effect has happened; the caller has not heard yet (crash window)
            await asyncio.sleep(self.answer_delay[method])
        if isinstance(result, str):
            return _error(result)
        return web.json_response({"ok": True, **result})

    def _member_channel(self, params: dict[str, Any], key: str = "channel") -> Channel | str:
        channel = self.channels.get(str(params.get(key, "")))
        if channel is None or BOT_USER not in channel.members:
            return "channel_not_found" if channel is None else "not_in_channel"
        return channel

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.base_url.rsplit(':', 1)[1]}/socket-mode?ticket={next(self._ids)}"}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        # app_id: Slack includes it for bot tokens (the app falls back to the app-level token's when it is missing).
        return {"user_id": BOT_USER, "bot_id": BOT_ID, "team_id": TEAM, "user": "smart-resize", "app_id": APP_ID}

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._member_channel(params)
        if isinstance(channel, str):
            return channel
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": params.get("text", ""),
            "ts": self._ts(),
        }
        if params.get("blocks"):
            message["blocks"] = _json(params["blocks"])
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        channel.messages.append(message)
        return {"channel": channel.id, "ts": message["ts"], "message": message}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._member_channel(params)
        if isinstance(channel, str):
            return channel
        for message in channel.messages:
            if message["ts"] == params.get("ts"):
                if message.get("user") != BOT_USER:
                    return "cant_update_message"
                message["text"] = params.get("text", message["text"])
                message["blocks"] = _json(params.get("blocks") or [])
                return {"channel": channel.id, "ts": message["ts"], "text": message["text"]}
        return "message_not_found"

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._member_channel(params)
        if isinstance(channel, str):
            return channel
        if params.get("user") not in channel.members:
            return "user_not_in_channel"
        self.ephemerals.append(
            {
                "channel": channel.id,
                "user": params["user"],
                "text": params.get("text", ""),
                "thread_ts": params.get("thread_ts"),
            }
        )
        return {"message_ts": self._ts()}

    def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._member_channel(params)
        if isinstance(channel, str):
            return channel
        names = self.reactions.setdefault((channel.id, str(params["timestamp"])), set())
        if params["name"] in names:
            return "already_reacted"
        names.add(str(params["name"]))
        return {}

    def _reactions_remove(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._member_channel(params)
        if isinstance(channel, str):
            return channel
        names = self.reactions.setdefault((channel.id, str(params["timestamp"])), set())
        if params["name"] not in names:
            return "no_reaction"
        names.discard(str(params["name"]))
        return {}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._member_channel(params)
        if isinstance(channel, str):
            return channel
        top = [m for m in channel.messages if "thread_ts" not in m or m["thread_ts"] == m["ts"]]
        return _page(list(reversed(_between(top, params))), params)  # newest first, as Slack pages it

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._member_channel(params)
        if isinstance(channel, str):
            return channel
        ts = str(params.get("ts"))
        parent = [m for m in channel.messages if m["ts"] == ts]
        if not parent:
            return "thread_not_found"
        # The parent first, then the replies oldest first: a busy thread's newest replies are on later pages.
        return _page(parent + _between(self.thread(channel.id, ts), params), params)

    def _visible_channel(self, params: dict[str, Any]) -> Channel | str:
        """A channel as conversations.info and .members see it: a public one whether or not the bot is in it
        (channels:read is enough, and neither method has a not_in_channel error), a private one (G...) only from
        inside; from outside it does not exist."""
        channel = self.channels.get(str(params.get("channel", "")))
        if channel is None or (channel.id.startswith("G") and BOT_USER not in channel.members):
            return "channel_not_found"
        return channel

    def _conversations_members(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._visible_channel(params)
        if isinstance(channel, str):
            return channel
        return {"members": sorted(channel.members), "response_metadata": {"next_cursor": ""}}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any] | str:
        # is_member says whether the bot is in it.
        channel = self._visible_channel(params)
        if isinstance(channel, str):
            return channel
        return {"channel": {"id": channel.id, "is_member": BOT_USER in channel.members}}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any] | str:
        if not params.get("trigger_id"):
            return "invalid_trigger_id"
        view = {"id": f"V{next(self._ids):08d}", **_json(params.get("view") or "{}")}
        self.opened_views.append(view)
        return {"view": view}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any] | str:
        view = _json(params.get("view") or "{}")
        self.home_views[str(params.get("user_id"))] = view
        return {"view": {"id": f"V{next(self._ids):08d}", **view}}

    def _files_info(self, params: dict[str, Any]) -> dict[str, Any] | str:
        meta = self.files.get(str(params.get("file")))
        return {"file": dict(meta)} if meta else "file_not_found"

    def _files_delete(self, params: dict[str, Any]) -> dict[str, Any] | str:
        file_id = str(params.get("file"))
        if file_id not in self.files:
            return "file_not_found"
        self.deleted_files.append(file_id)
        del self.files[file_id]
        self.file_bytes.pop(file_id, None)
        for _, _, message in self._pending_shares:
            message["files"] = [f for f in message["files"] if f["id"] != file_id]
        self._pending_shares = [share for share in self._pending_shares if share[2]["files"]]
        return {}

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any] | str:
        if not params.get("filename") or not params.get("length"):
            return "invalid_arguments"
        file_id = f"F{next(self._ids):08d}"
        self.pending_uploads[file_id] = {
            "filename": params["filename"],
            "length": int(params["length"]),
            "alt_txt": params.get("alt_txt"),
        }
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any] | str:
        entries = _json(params.get("files") or "[]")
        files = []
        for entry in entries:
            pending = self.pending_uploads.get(entry["id"])
            if pending is None or "data" not in pending:
                return "file_not_found"
            name = pending["filename"]
            meta = {
                "id": entry["id"],
                "name": name,
                "title": entry.get("title") or name,
                "alt_txt": pending.get("alt_txt"),
                "size": len(pending["data"]),
                # As Slack types an upload by its name, and links it for members to download.
                "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "url_private": f"{self.base_url}/files/{entry['id']}/{name}",
                "url_private_download": f"{self.base_url}/files/{entry['id']}/{name}?download=1",
            }
            self.files[entry["id"]] = meta
            self.file_bytes[entry["id"]] = pending["data"]
            files.append(meta)
        channel_id = params.get("channel_id")
        silently_unshared = self.alt_txt_breaks_sharing and any(f.get("alt_txt") for f in files)
        if channel_id:
            channel = self._member_channel({"channel": channel_id})
            if isinstance(channel, str):
                return channel
            message = {
                "type": "message",
                "subtype": "file_share",
                "user": BOT_USER,
                "bot_id": BOT_ID,
                "text": params.get("initial_comment", ""),
                "files": files,
                "ts": self._ts(),
            }
            if params.get("thread_ts"):
                message["thread_ts"] = str(params["thread_ts"])
            if not silently_unshared and self.share_delay is not None:
                self._pending_shares.append((self.clock() + self.share_delay, channel, message))
                self._release_shares()
        return {"files": [{"id": f["id"], "title": f["title"]} for f in files]}

    def _release_shares(self) -> None:
        """Post the uploads whose scan is over: the message appears, and each file lists where it is shared."""
        now = self.clock()
        due = [share for share in self._pending_shares if share[0] <= now]
        self._pending_shares = [share for share in self._pending_shares if share[0] > now]
        for _, channel, message in due:
            message["ts"] = self._ts()
            channel.messages.append(message)
            visibility = "private" if channel.id.startswith("G") else "public"
            for file in message["files"]:
                share = {"ts": message["ts"], "thread_ts": message.get("thread_ts", message["ts"])}
                self.files[file["id"]].setdefault("shares", {}).setdefault(visibility, {}).setdefault(
                    channel.id, []
                ).append(share)

    def _over_tier(self, method: str) -> str | None:
        """Retry-After (seconds, as Slack sends it) when ``method`` is past its tier in the window, else None."""
        limit = TIER_LIMITS.get(method)
        if self.rate_window_s is None or limit is None:
            return None
        now = time.monotonic()
        times = [t for t in self._call_times.get(method, []) if t > now - self.rate_window_s]
        if len(times) >= limit:
            self._call_times[method] = times
            return str(max(1, math.ceil(times[0] + self.rate_window_s - now)))
        times.append(now)
        self._call_times[method] = times
        return None

    # --- files, uploads, response_url ----------------------------------------------------------------------------

    # --- Socket Mode ---------------------------------------------------------------------------------------------

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], *, within: float = 5.0, envelope_id: str | None = None
    ) -> dict[str, Any]:
        """Deliver ``payload`` as Slack would over the open socket; returns the app's ack (TimeoutError if none).
        Unacked, it stays in ``unacked`` and is sent again on the next socket, as Slack does."""
        envelope_id = envelope_id or f"env-{next(self._ids)}"
        acked = self.socket_acks.get(envelope_id)
        if acked is None or acked.done():
            acked = asyncio.get_running_loop().create_future()
            self.socket_acks[envelope_id] = acked
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,  # events_api | slash_commands | interactive
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        self.unacked[envelope_id] = envelope
        await self.sockets[-1].send_json(envelope)
        return await asyncio.wait_for(asyncio.shield(acked), within)

    async def disconnect(self, reason: str) -> None:
        """Slack's ``disconnect`` message (``warning``, ``refresh_requested``, ``link_disabled``) on the open socket."""
        self.socket_connected.clear()
        await self.sockets[-1].send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "emu"}})

    def drop_socket(self) -> None:
        """The connection lost without a word (a network fault): no close frame, the TCP stream just ends."""
        self.socket_connected.clear()
        transport = self._socket_requests[-1].transport
        if transport is not None:
            transport.abort()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)  # answers the SDK's pings with pongs, as Slack does
        await socket.prepare(request)
        self.sockets.append(socket)
        self._socket_requests.append(request)
        self.socket_opens += 1
        await socket.send_json(
            {"type": "hello", "num_connections": len(self.sockets), "connection_info": {"app_id": "AEMU"}}
        )
        # What the last socket took but never acked comes again, marked as a retry.
        for envelope in list(self.unacked.values()):
            envelope["retry_attempt"] += 1
            envelope["retry_reason"] = "timeout"
            await socket.send_json(envelope)
        self.socket_connected.set()
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                continue
            ack = json.loads(message.data)
            envelope_id = ack.get("envelope_id", "")
            self.acks.append(ack)
            self.unacked.pop(envelope_id, None)
            waiting = self.socket_acks.get(envelope_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(ack)
        return socket

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        authorization = request.headers.get("Authorization")
        self.downloads.append({"file_id": file_id, "authorization": authorization})
        if self.download_delay:
            await asyncio.sleep(self.download_delay)
        if file_id in self.download_redirects:
            raise web.HTTPFound(self.download_redirects[file_id])
        if authorization != f"Bearer {BOT_TOKEN}" or file_id not in self.file_bytes:
            # What Slack really does: a 200 with its sign-in page, not an error status.
            return web.Response(body=LOGIN_PAGE, content_type="text/html")
        return web.Response(body=self.file_bytes[file_id], content_type=self.files[file_id]["mimetype"])

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        pending = self.pending_uploads.get(file_id)
        if pending is None:
            return web.Response(status=404)
        pending["data"] = await request.read()
        return web.Response(text=f"OK - {len(pending['data'])}")

    async def _response(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append(body)
        return web.Response(text="ok")

    def _ts(self) -> str:
        # Like Slack's: the posting time to the microsecond, and unique.
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return f"{self._last_ts:.6f}"


def _between(messages: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    oldest = float(params.get("oldest") or 0)
    latest = float(params.get("latest") or "inf")
    inclusive = str(params.get("inclusive", "")).lower() in ("1", "true")
    return [m for m in messages if oldest <= float(m["ts"]) < latest or (inclusive and float(m["ts"]) == latest)]


def _page(messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Slack's cursor pagination: ``limit`` per page, ``response_metadata.next_cursor`` empty on the last."""
    start = int(params.get("cursor") or 0)
    end = start + int(params.get("limit") or 100)
    more = end < len(messages)
    return {
        "messages": messages[start:end],
        "has_more": more,
        "response_metadata": {"next_cursor": str(end) if more else ""},
    }


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value

"""Two replicas of ``smart-resize serve`` on one PostgreSQL database and one media directory, started as an operator
starts them (the CLI, in processes of their own, on loopback). One is killed outright (SIGKILL, with its engine
workers: a machine gone) while it works on a request; every accepted request still completes, once, and any
replica answers any polling URL and any media link.

Leases of 2 s keep it short: the dead replica's request is taken over within about 3 s.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from bot.smart_resize_api.contract import KEY_HEADER
from bot.smart_resize_api.server.app import PREFIX
from tests.images import encode, photo

KEY = "replica-test-key"
LEASE_S = 2
# The CLI as the package installs it (pyproject's smart-resize script), or the module it runs.
_SCRIPT = Path(sys.executable).with_name("smart-resize")
SERVE = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "bot.cli"]
# Several outputs of a 2 MP photo: long enough at work for the kill to land mid-request.
BODY = {
    "image_url": "data:image/jpeg;base64," + base64.b64encode(encode(photo(1600, 1200), "JPEG", quality=90)).decode(),
    "target_sizes": ["1080x1080", "1920x1080", "1080x1920"],
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Replica:
    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.log = log
        self._log: IO[bytes] = log.open("ab")
        # A session of its own: the kill takes its engine workers too, as when its machine goes.
        self.process = subprocess.Popen(
            [*SERVE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=log.parent,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, f"replica on {self.port} ended:\n{self.log.read_text()}"
            try:
                async with session.get(f"{self.origin}/v2/requests/status/x", headers={KEY_HEADER: KEY}) as response:
                    if response.status == 404:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, f"replica on {self.port} never answered:\n{self.log.read_text()}"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kwargs: object) -> dict[str, object]:
    async with session.request(method, url, headers={KEY_HEADER: KEY}, **kwargs) as response:  # type: ignore[arg-type]
        assert response.status == 200, (url, response.status, await response.text())
        answer: dict[str, object] = await response.json()
        return answer


async def test_a_replica_killed_mid_request_loses_nothing(
    postgres_url: str, tmp_path: Path, replicas: list[Replica]
) -> None:
    import asyncpg

    media = tmp_path / "media"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_RESIZE_")} | {
        "DATABASE_URL": postgres_url,
        "SMART_RESIZE_MEDIA_DIR": str(media),
        "SMART_RESIZE_API_KEYS": KEY,
        "SMART_RESIZE_LEASE_SECONDS": str(LEASE_S),
        "ENGINE_WORKERS": "1",
    }
    victim_port, survivor_port = _free_port(), _free_port()
    replicas += [Replica(port, env, tmp_path / f"replica-{port}.log") for port in (victim_port, survivor_port)]
    victim, survivor = replicas
    database = await asyncpg.connect(postgres_url)
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(victim.ready(session), survivor.ready(session))
            submitted = []
            for n in range(6):  # to each replica in turn; either may run any of them
                origin = replicas[n % 2].origin
                answer = await _json(session, "POST", f"{origin}{PREFIX}/smart-resize-request", json=BODY)
                submitted.append((str(answer["request_id"]), str(answer["polling_url"])))

            # The victim's claim, as the table shows it; the kill comes while it is at work on it.
            held_by_victim = f"%:{victim.process.pid}:%"
            deadline = time.monotonic() + 20
            while (
                taken := await database.fetchval(
                    "SELECT id FROM api_requests WHERE status = 'PROCESSING' AND owner LIKE $1", held_by_victim
                )
            ) is None:
                assert time.monotonic() < deadline, "the victim never claimed a request"
                await asyncio.sleep(0.01)
            victim.kill()

            deadline = time.monotonic() + 60
            while await database.fetchval("SELECT COUNT(*) FROM api_requests WHERE status <> 'COMPLETED'"):
                assert time.monotonic() < deadline, await database.fetch("SELECT id, status, owner FROM api_requests")
                await asyncio.sleep(0.05)
            rows = {row["id"]: row for row in await database.fetch("SELECT * FROM api_requests")}
            assert sorted(rows) == sorted(request_id for request_id, _ in submitted)
            # The killed claim ran again on the survivor, its second attempt.
            assert rows[taken]["attempts"] == 2 and f":{survivor.process.pid}:" in rows[taken]["owner"]
            # Each request's outputs were written once: one claim's folder, the one its row names, nothing else.
            for request_id, row in rows.items():
                folders = [path.name for path in (media / request_id).iterdir()]
                assert folders == [f"attempt-{row['outputs_from']}"], (request_id, folders)
                assert len(list((media / request_id / folders[0]).iterdir())) == len(BODY["target_sizes"])

            # A replica comes back in the dead one's place; from then on every polling URL answers, and so does the
            # same path on the other replica, with the same media.
            replicas.append(Replica(victim_port, env, tmp_path / "replacement.log"))
            await replicas[-1].ready(session)
            for request_id, polling_url in submitted:
                answers = []
                for port in (victim_port, survivor_port):
                    url = polling_url.replace(polling_url.split("/")[2], f"127.0.0.1:{port}")
                    answers.append(await _json(session, "GET", url))
                assert all(answer["status"] == "COMPLETED" for answer in answers)
                links = [answer["output"]["media_url"] for answer in answers]  # type: ignore[index]
                assert [link.split("/", 3)[3] for link in links[0]] == [link.split("/", 3)[3] for link in links[1]]
                folder = media / request_id / f"attempt-{rows[request_id]['outputs_from']}"
                for link in links[0] + links[1]:
                    async with session.get(link) as response:
                        assert response.status == 200
                        assert await response.read() == (folder / link.rsplit("/", 1)[1]).read_bytes()
    finally:
        await database.close()
    survivor_log = survivor.log.read_text()
    assert "Traceback" not in survivor_log and "taken over" not in survivor_log, survivor_log

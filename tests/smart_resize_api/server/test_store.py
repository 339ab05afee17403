"""The request store's rules, on SQLite and on PostgreSQL alike (each test runs on both): tenants, turns, leases,
fenced finishes and the queue's limits. Several stores on one database stand for several servers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from bot.smart_resize_api.contract import SmartResizeRequest, Status
from bot.smart_resize_api.server.store import QueueLimits, Refused, outputs_path, request_store
from tests.smart_resize_api.server.databases import opened, settings_for

REQUEST = SmartResizeRequest(image_url="data:image/png;base64,AAAA", target_sizes=["64x64"])
ROOMY = QueueLimits(size=1000, share=1000)
T = 1_000_000.0  # a moment in the past: the tests say when each call happens


async def test_a_request_is_its_tenants_alone(database_url: str, tmp_path: Path) -> None:
    async with opened(settings_for(database_url, tmp_path), "s1") as [store]:
        assert await store.add("r1", "alice", REQUEST, T, ROOMY) is None
        mine = await store.get("r1", "alice")
        assert mine is not None and (mine.tenant, mine.status, mine.files, mine.outputs_from) == (
            "alice",
            Status.QUEUED,
            [],
            None,
        )
        assert await store.get("r1", "bob") is None  # the same answer as an unknown id
        assert await store.get("r2", "alice") is None
        assert await store.get("r1", None) == mine  # a media link's capability: whoever's it is


async def test_workers_serve_the_tenants_in_turn(database_url: str, tmp_path: Path) -> None:
    async with opened(settings_for(database_url, tmp_path), "s1") as [store]:
        submitted = [("alice", n) for n in range(5)] + [("bob", 0), ("carol", 0)]  # alice's burst came first
        for at, (tenant, n) in enumerate(submitted):
            await store.add(f"{tenant}-{n}", tenant, REQUEST, T + at, ROOMY)
        order = []
        for turn in range(len(submitted)):
            claimed = await store.claim_next(T + 100 + turn)
            assert claimed is not None
            order.append(claimed.id)
        assert await store.claim_next(T + 120) is None  # all held
    assert order == ["alice-0", "bob-0", "carol-0", "alice-1", "alice-2", "alice-3", "alice-4"]


async def test_two_servers_never_claim_the_same_request(database_url: str, tmp_path: Path) -> None:
    async with opened(settings_for(database_url, tmp_path), "s1", "s2") as stores:
        for n in range(40):
            await stores[0].add(f"r{n:02d}", "tenant", REQUEST, time.time() + n, ROOMY)

        async def drain(index: int) -> list[str]:
            claimed = []
            while (next_one := await stores[index].claim_next(time.time())) is not None:
                claimed.append(next_one.id)
            return claimed

        first, second = await asyncio.gather(drain(0), drain(1))
    assert sorted(first + second) == [f"r{n:02d}" for n in range(40)]
    assert not set(first) & set(second)
    assert first == sorted(first) and second == sorted(second)  # oldest first


async def test_a_lease_that_runs_out_is_taken_over_and_the_first_claim_no_longer_counts(
    database_url: str, tmp_path: Path
) -> None:
    async with opened(settings_for(database_url, tmp_path, lease_s=60), "stalled", "other") as [stalled, other]:
        await stalled.add("r1", "alice", REQUEST, T, ROOMY)
        first = await stalled.claim_next(T)
        assert first is not None and first.attempts == 1
        assert await other.claim_next(T + 30) is None  # held
        assert await stalled.renew(first, T + 30)  # now until T + 90
        assert await other.claim_next(T + 80) is None
        second = await other.claim_next(T + 91)  # the stalled server missed its renewals
        assert second is not None and (second.id, second.attempts, second.request) == ("r1", 2, REQUEST)

        # The stalled server wakes up: its claim is over, whatever it does.
        assert not await stalled.renew(first, T + 92)
        assert not await stalled.finish(first, Status.COMPLETED, T + 92, files=["stale.png"], media_type="image/png")
        await stalled.release(first, T + 92)
        state = await other.get("r1", "alice")
        assert state is not None and state.status is Status.PROCESSING
        assert await stalled.claim_next(T + 93) is None  # and not back in the queue

        assert await other.finish(second, Status.COMPLETED, T + 95, files=["output_64x64_0.png"])
        done = await stalled.get("r1", "alice")
        assert done is not None and (done.status, done.files, done.outputs_from, done.completed_at) == (
            Status.COMPLETED,
            ["output_64x64_0.png"],
            2,
            T + 95,
        )
        assert not await other.finish(second, Status.ERROR, T + 96, error="twice")  # a finish counts once
        assert outputs_path(other.media_dir, "r1", done.outputs_from) == other.media_dir / "r1" / "attempt-2"


async def test_a_released_request_is_claimed_again_at_once(database_url: str, tmp_path: Path) -> None:
    async with opened(settings_for(database_url, tmp_path), "stopping", "other") as [stopping, other]:
        await stopping.add("r1", "alice", REQUEST, T, ROOMY)
        claim = await stopping.claim_next(T)
        assert claim is not None
        await stopping.release(claim, T + 1)
        state = await other.get("r1", None)
        assert state is not None and state.status is Status.PROCESSING  # never back to QUEUED for a poller
        again = await other.claim_next(T + 1)  # long before the released lease would have run out
        # A new claim (its own number, its own outputs folder), and a clean stop's release is no interruption...
        assert again is not None and (again.id, again.attempts, again.interruptions) == ("r1", 2, 0)
        # ...as a claim whose server died is.
        died = await stopping.claim_next(T + 1 + 61)
        assert died is not None and (died.attempts, died.interruptions) == (3, 1)


async def test_the_queue_and_each_tenants_share_are_counted_in_the_database(database_url: str, tmp_path: Path) -> None:
    limits = QueueLimits(size=3, share=2)
    async with opened(settings_for(database_url, tmp_path, lease_s=60), "s1", "s2") as [one, two]:
        assert await one.add("a1", "alice", REQUEST, T, limits) is None
        assert await two.add("a2", "alice", REQUEST, T + 1, limits) is None
        assert await one.add("a3", "alice", REQUEST, T + 2, limits) == Refused(whole_queue=False, waiting=2)
        assert await two.add("b1", "bob", REQUEST, T + 3, limits) is None
        assert await one.add("b2", "bob", REQUEST, T + 4, limits) == Refused(whole_queue=True, waiting=3)
        # A request being worked on is not waiting...
        claimed = await two.claim_next(T + 5)
        assert claimed is not None and claimed.id == "a1"
        assert await one.add("a3", "alice", REQUEST, T + 6, limits) is None
        # ...until its lease runs out: then it waits to run again, and counts.
        assert await one.add("c1", "carol", REQUEST, T + 66, limits) == Refused(whole_queue=True, waiting=4)
        assert await one.get("b2", None) is None and await one.get("c1", None) is None  # refused: never stored


async def test_a_burst_over_two_servers_stops_at_the_tenants_share(database_url: str, tmp_path: Path) -> None:
    limits = QueueLimits(size=100, share=3)
    async with opened(settings_for(database_url, tmp_path), "s1", "s2") as stores:
        answers = await asyncio.gather(
            *(stores[n % 2].add(f"r{n}", "alice", REQUEST, T + n, limits) for n in range(12))
        )
    assert answers.count(None) == 3
    assert all(answer == Refused(whole_queue=False, waiting=3) for answer in answers if answer is not None)


async def test_finished_requests_are_listed_for_expiry_and_deleted(database_url: str, tmp_path: Path) -> None:
    async with opened(settings_for(database_url, tmp_path), "s1") as [store]:
        for n in range(3):
            await store.add(f"r{n}", "alice", REQUEST, T, ROOMY)
        for n in range(2):
            claim = await store.claim_next(T + n)
            assert claim is not None
            assert await store.finish(claim, Status.FAILED, T + 10 * (n + 1), error="no")
        assert await store.finished_before(T + 15) == ["r0"]
        assert sorted(await store.finished_before(T + 100)) == ["r0", "r1"]  # r2 waits: never expired
        await store.delete("r0")
        assert await store.get("r0", None) is None and await store.finished_before(T + 100) == ["r1"]


async def test_a_submit_wakes_the_other_servers(postgres_url: str, tmp_path: Path) -> None:
    config = settings_for(postgres_url, tmp_path)
    woken = asyncio.Event()
    idle = request_store(config, "idle")
    await idle.open(woken.set)
    try:
        async with opened(config, "submitting") as [submitting]:
            await submitting.add("r1", "alice", REQUEST, T, ROOMY)
            await asyncio.wait_for(woken.wait(), 5)
        claim = await idle.claim_next(T)
        assert claim is not None
        woken.clear()
        await idle.release(claim, T)  # a clean stop hands the request on just as promptly
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await idle.close()


def _release_before_leases(db: Path) -> None:
    """The file as the release before leases left it: tenants and turns, no owner, lease or outputs folder."""
    with sqlite3.connect(db) as connection:
        connection.executescript(
            """
            CREATE TABLE api_requests (id TEXT PRIMARY KEY, body TEXT NOT NULL, sync_mode INTEGER NOT NULL,
                status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT, files TEXT, media_type TEXT,
                created_at REAL NOT NULL, updated_at REAL NOT NULL, completed_at REAL,
                tenant TEXT NOT NULL DEFAULT '', claimed_at REAL);
            CREATE INDEX api_requests_status ON api_requests (status, created_at);
            """
        )
        body = '{"image_url": "data:image/png;base64,AAAA", "target_sizes": ["64x64"]}'
        connection.execute(
            "INSERT INTO api_requests VALUES ('interrupted', ?, 0, 'PROCESSING', 1, NULL, NULL, NULL, 1, 1, NULL, "
            "'alice', 1)",
            (body,),
        )
        connection.execute(
            "INSERT INTO api_requests VALUES ('done', ?, 0, 'COMPLETED', 1, NULL, '[\"output_64x64_0.png\"]', "
            "'image/png', 1, 2, 2, 'alice', 1)",
            (body,),
        )


async def test_a_sqlite_file_from_before_leases_keeps_working(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _release_before_leases(db)
    async with opened(settings_for(f"sqlite:///{db}", tmp_path), "s1") as [store]:
        # Its server stopped while processing: the row holds no lease, so it is taken at once, not in a minute.
        claim = await store.claim_next(time.time())
        assert claim is not None and (claim.id, claim.attempts, claim.request) == ("interrupted", 2, REQUEST)
        done = await store.get("done", "alice")
        assert done is not None and done.status is Status.COMPLETED and done.outputs_from is None
        # Its outputs are where that release wrote them: in the request's folder itself.
        assert outputs_path(store.media_dir, "done", done.outputs_from) == tmp_path / "old-api-media" / "done"


async def test_renewing_keeps_a_lease_as_long_as_the_work_takes(database_url: str, tmp_path: Path) -> None:
    async with opened(settings_for(database_url, tmp_path, lease_s=60), "busy", "other") as [busy, other]:
        await busy.add("r1", "alice", REQUEST, T, ROOMY)
        claim = await busy.claim_next(T)
        assert claim is not None
        for renewal in range(1, 10):  # every 40 s, within the lease: never free to take
            assert await busy.renew(claim, T + renewal * 40)
            assert await other.claim_next(T + renewal * 40 + 50) is None
        assert await busy.finish(claim, Status.COMPLETED, T + 400, files=["output_64x64_0.png"])

"""The job store, on a real SQLite file and on a real PostgreSQL database: every behaviour test runs on both
(the ``database_url`` fixture); what only a file can show (reopening it, earlier releases' files) on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.engine import Size
from bot.jobs.model import Job, JobSource
from bot.jobs.pg_store import PostgresJobStore
from bot.jobs.store import JobStore, SqliteJobStore, StaleJob, store_or_network_out_of_reach
from bot.spec import ResizeSpec
from bot.sqlite import Database
from bot.write_deadline import writes_begin_within
from tests.factories import insert, make_job


async def open_store(database_url: str) -> JobStore:
    if database_url.startswith("sqlite:///"):
        return SqliteJobStore(Path(database_url.removeprefix("sqlite:///")))
    return await PostgresJobStore.open(database_url)


async def held(store: JobStore) -> None:
    """Every open job claimed by ``store``, as the runner claims a job before it writes a step."""
    await store.claim(time.time() + 1, 1000, lease_s=3600)


def _job(key: str = "upload:C1:1.0:F1", user: str = "U1") -> Job:
    return make_job(key, user_id=user)


async def test_insert_is_idempotent_on_the_dedup_key(database_url: str) -> None:
    store = await open_store(database_url)
    first, new = await insert(store, _job())
    again, new_again = await insert(store, _job())
    assert new and not new_again
    assert again.id == first.id
    other, other_new = await insert(store, _job("upload:C1:1.0:F2"))
    assert other_new and other.id != first.id
    await store.close()


async def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path)
    job, _ = await insert(store, _job())
    await held(store)
    job = await store.update(job, state="anchored", progress_ts="2.0", remote_id="smart-resize_1")
    await store.close()

    reopened = SqliteJobStore(path)
    stored = await reopened.get(job.id)
    assert stored is not None
    assert (stored.state, stored.progress_ts, stored.remote_id) == ("anchored", "2.0", "smart-resize_1")
    assert stored.source == JobSource.slack_file({"id": "F1"}, None)
    assert stored.spec == job.spec
    assert [j.id for j in await reopened.runnable(now=stored.updated_at + 1)] == [job.id]
    await reopened.close()


async def test_finished_and_deferred_jobs_are_not_runnable(database_url: str) -> None:
    store = await open_store(database_url)
    done, _ = await insert(store, _job("a"))
    later, _ = await insert(store, _job("b"))
    await held(store)
    await store.update(done, state="done")
    later = await store.update(later, not_before=later.created_at + 100)
    await store.release(later.id)
    assert await store.runnable(now=later.created_at + 1) == []
    assert [j.id for j in await store.runnable(now=later.created_at + 101)] == [later.id]
    assert await store.next_wakeup(later.created_at) == later.not_before
    await store.close()


async def test_a_wait_set_before_the_clock_stepped_back_is_not_lengthened_by_the_step(database_url: str) -> None:
    # NTP stepping the clock back an hour, or a VM resumed from an older snapshot: a job told to wait 30 s would
    # have waited an hour and 30 s, as every stored wait is a time on the clock.
    store = await open_store(database_url)
    waiting, _ = await insert(store, _job("a"))
    stepped, _ = await insert(store, _job("b"))
    await held(store)
    now = time.time()
    waiting = await store.update(waiting, not_before=now + 30)  # told to wait 30 s, by today's clock
    stepped = await store.update(stepped, not_before=now + 3600 + 30)  # told the same, an hour before the step
    for job in (waiting, stepped):
        await store.release(job.id)
    assert [j.id for j in await store.runnable(now=now)] == [stepped.id]
    assert await store.next_wakeup(now) == now
    assert [j.id for j in await store.claim(now, 10, lease_s=60)] == [stepped.id]
    assert await store.next_wakeup(now) == waiting.not_before  # the wait is kept, the one left
    await store.close()


async def test_counts_and_recent_jobs_per_user(database_url: str) -> None:
    store = await open_store(database_url)
    for index in range(3):
        await insert(store, _job(f"k{index}", user="U1"))
    await insert(store, _job("other", user="U2"))
    probe = await store.admit(_job("probe", user="U1"), since=0, limit=3)
    assert (probe.job, probe.recent) == (None, 3)
    assert len(await store.recent_for_user("U1", limit=2)) == 2
    await store.close()


async def test_unknown_fields_cannot_be_updated(database_url: str) -> None:
    store = await open_store(database_url)
    job, _ = await insert(store, _job())
    try:
        await store.update(job, dedup_key="x")
    except ValueError as error:
        assert "dedup_key" in str(error)
    else:
        raise AssertionError("dedup_key must not be updatable")
    await store.close()


async def test_a_step_taken_on_a_stale_read_cannot_undo_a_cancel(database_url: str) -> None:
    store = await open_store(database_url)
    job, _ = await insert(store, _job())
    await held(store)
    runners_view = await store.update(job, state="anchored")  # what the runner read before resizing
    await store.update(runners_view, state="cancelled")  # the requester pressed Cancel meanwhile
    with pytest.raises(StaleJob):
        await store.update(runners_view, state="delivering")
    with pytest.raises(StaleJob):
        await store.update(runners_view, progress_ts="9.0")
    stored = await store.get(job.id)
    assert stored is not None and stored.state == "cancelled" and stored.progress_ts is None
    await store.close()


async def test_admit_returns_a_live_repeat_and_retries_a_failed_one(database_url: str) -> None:
    store = await open_store(database_url)
    first = await store.admit(_job(), since=0, limit=10)
    assert first.new and first.job is not None
    repeat = await store.admit(_job(), since=0, limit=10)
    assert not repeat.new and repeat.job is not None and repeat.job.id == first.job.id

    await held(store)
    await store.update(first.job, state="failed", error="boom")
    again = await store.admit(_job(), since=0, limit=10)
    assert again.new and again.job is not None and again.job.id != first.job.id
    old = await store.get(first.job.id)
    assert old is not None and old.state == "failed"  # kept, under a retired key
    assert old.dedup_key != again.job.dedup_key == _job().dedup_key
    await store.close()


@pytest.mark.parametrize("trigger", ["command", "shortcut", "modal"])
async def test_a_request_keyed_on_its_slack_trigger_sent_again_gets_its_job_even_failed(
    database_url: str, trigger: str
) -> None:
    # Its key holds Slack's trigger id, one per request: the key comes again only with that request replayed.
    store = await open_store(database_url)
    first, _ = await insert(store, make_job("command:T123:300x300", trigger=trigger))
    await held(store)
    await store.update(first, state="failed", error="boom")
    replayed = await store.admit(make_job("command:T123:300x300", trigger=trigger), since=0, limit=10)
    assert not replayed.new and replayed.job is not None and replayed.job.id == first.id
    await store.close()


async def test_slack_sending_an_event_again_gets_its_job_whatever_became_of_it(database_url: str) -> None:
    store, replica = await open_store(database_url), await open_store(database_url)
    first = await store.admit(make_job(event_id="Ev1"), since=0, limit=10)
    assert first.job is not None
    await held(store)
    await store.update(first.job, state="failed", error="boom")
    # Slack's retry, on another replica (or after a restart): the failed job, not a second try.
    redelivered = await replica.admit(make_job(event_id="Ev1"), since=0, limit=10)
    assert not redelivered.new and redelivered.job is not None and redelivered.job.id == first.job.id
    # A person asking again is a new event: a new try, which retires the failed job's key.
    asked_again = await replica.admit(make_job(event_id="Ev2"), since=0, limit=10)
    assert asked_again.new and asked_again.job is not None
    await held(replica)
    await replica.update(asked_again.job, state="failed", error="boom")
    # Slack's last retry of the first event comes minutes later: still its own job, under the retired key.
    late = await store.admit(make_job(event_id="Ev1"), since=0, limit=10)
    assert not late.new and late.job is not None and late.job.id == first.job.id
    # The event's other image is a job of its own.
    other = await store.admit(make_job("upload:C1:1.0:F2", event_id="Ev1"), since=0, limit=10)
    assert other.new
    await store.close()
    await replica.close()


async def test_admit_refuses_over_the_limit_and_stores_nothing(database_url: str) -> None:
    store = await open_store(database_url)
    for index in range(2):
        assert (await store.admit(_job(f"k{index}"), since=0, limit=2)).new
    refused = await store.admit(_job("k2"), since=0, limit=2)
    assert (refused.job, refused.new, refused.recent) == (None, False, 2)
    assert sorted(job.dedup_key for job in await store.recent_for_user("U1")) == ["k0", "k1"]
    assert (await store.admit(_job("k2", user="U2"), since=0, limit=2)).new  # the limit is per user
    await store.close()


async def test_admit_holds_the_limit_under_a_burst_from_two_connections(database_url: str) -> None:
    # Two stores on one database, as two replicas have: count and insert are one transaction (SQLite: BEGIN
    # IMMEDIATE; PostgreSQL: under the user's advisory lock), so requests from both cannot all read "4 so far".
    stores = [await open_store(database_url), await open_store(database_url)]
    admissions = await asyncio.gather(*(stores[n % 2].admit(_job(f"burst{n}"), since=0, limit=5) for n in range(40)))
    assert sum(a.new for a in admissions) == 5
    assert (await stores[0].admit(_job("probe"), since=0, limit=100)).recent == 5
    for store in stores:
        await store.close()


async def test_a_failed_commit_is_rolled_back_and_the_next_transaction_works(tmp_path: Path) -> None:
    schema = """
        PRAGMA foreign_keys = ON;
        CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
    """
    database = Database(tmp_path / "t.db", schema)

    def orphan(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO child VALUES (7)")  # checked only at COMMIT, which then fails

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await database.transaction(orphan)

    def family(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO parent VALUES (7)")
        db.execute("INSERT INTO child VALUES (7)")
        return int(db.execute("SELECT COUNT(*) FROM child").fetchone()[0])

    assert await database.transaction(family) == 1  # the orphan is gone and BEGIN works again
    database.close()


async def test_a_failing_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    database = Database(tmp_path / "t.db", "CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    def insert_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        await database.transaction(insert_then_fail)
    assert await database.transaction(lambda db: db.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 0
    database.close()


async def test_jobs_stored_by_an_earlier_version_are_read_in_place(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    await SqliteJobStore(path).close()  # the schema, as every version has it
    with sqlite3.connect(path) as db:  # a row as the previous release wrote it: unversioned spec, sizes as pairs
        db.execute(
            "INSERT INTO jobs (id, dedup_key, trigger, channel_id, user_id, thread_ts, source, spec, state, "
            "created_at, updated_at) VALUES ('old', 'k', 'command', 'C1', 'U1', NULL, ?, ?, 'accepted', 1, 1)",
            ('{"kind": "url", "url": "https://e.com/a.jpg"}', '{"sizes": [[300, 200]], "output_format": "png"}'),
        )
    store = SqliteJobStore(path)
    job = await store.get("old")
    await store.close()
    assert job is not None and job.source == JobSource.link("https://e.com/a.jpg")
    assert job.spec == ResizeSpec(sizes=(Size(300, 200),), output_format="png")


async def test_an_unreadable_row_fails_alone_and_never_stalls_the_others(database_url: str) -> None:
    store = await open_store(database_url)
    good, _ = await insert(store, _job("good"))
    bad, _ = await insert(store, _job("bad"))
    # As a newer release, or a hand edit, might leave it.
    await execute(database_url, "UPDATE jobs SET spec = ? WHERE id = ?", '{"version": 99, "sizes": []}', bad.id)
    assert [job.id for job in await store.runnable(now=good.created_at + 1)] == [good.id]
    assert [job.id for job in await store.recent_for_user("U1")] == [good.id]
    stored = await execute(database_url, "SELECT state, error FROM jobs WHERE id = ?", bad.id)
    await store.close()
    [(state, error)] = stored
    assert state == "failed" and "could not be read" in error


async def execute(database_url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """One statement behind the store's back, with ``?`` placeholders on either database."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return [tuple(row) for row in db.execute(sql, params).fetchall()]
    import asyncpg

    numbered = sql
    for n in range(1, len(params) + 1):
        numbered = numbered.replace("?", f"${n}", 1)
    connection = await asyncpg.connect(database_url)
    try:
        return [tuple(row) for row in await connection.fetch(numbered, *params)]
    finally:
        await connection.close()


# --- leases: several replicas on one database ------------------------------------------------------------------


async def test_replicas_claim_different_jobs_and_a_dead_ones_are_taken_over(database_url: str) -> None:
    first, second = await open_store(database_url), await open_store(database_url)
    jobs = [(await insert(first, _job(f"k{n}")))[0] for n in range(4)]
    now = jobs[-1].created_at + 1
    mine, theirs = await asyncio.gather(first.claim(now, 2, lease_s=60), second.claim(now, 2, lease_s=60))
    assert len(mine) == len(theirs) == 2 and not {j.id for j in mine} & {j.id for j in theirs}
    assert await first.claim(now, 10, lease_s=60) == []  # all held, its own included
    # The second replica dies: once its leases run out, the first takes its jobs over, at their stored step.
    assert await first.next_wakeup(now) == pytest.approx(now + 60)
    taken = await first.claim(now + 61, 10, lease_s=60)
    assert {j.id for j in taken} == {j.id for j in jobs}
    await first.close()
    await second.close()


async def test_a_replica_that_lost_its_lease_cannot_write_a_step(database_url: str) -> None:
    old, new = await open_store(database_url), await open_store(database_url)
    job, _ = await insert(old, _job())
    [held] = await old.claim(job.created_at + 1, 1, lease_s=10)
    [taken] = await new.claim(job.created_at + 20, 1, lease_s=10)  # old stalled past its lease
    with pytest.raises(StaleJob):
        await old.update(held, state="anchored")
    assert await old.holder(job.id) == new.owner  # what tells the old replica to let it go
    await new.update(taken, state="anchored")
    # A cancel is not fenced: whoever holds the job sees it at its next step.
    stored = await new.get(job.id)
    assert stored is not None
    await old.update(stored, state="cancelled", fenced=False)
    with pytest.raises(StaleJob):
        await new.update(stored, state="delivering")
    await old.close()
    await new.close()


async def test_renewal_keeps_a_job_and_release_frees_it_at_once(database_url: str) -> None:
    owner, other = await open_store(database_url), await open_store(database_url)
    job, _ = await insert(owner, _job())
    t = job.created_at + 1
    await owner.claim(t, 1, lease_s=10)
    assert await owner.renew([job.id], until=t + 100) == {job.id}
    assert await other.renew([job.id], until=t + 200) == set()  # not its lease: nothing renewed
    assert await other.claim(t + 50, 1, lease_s=10) == []  # renewed: still the owner's
    await owner.release(job.id)
    assert [j.id for j in await other.claim(t + 50, 1, lease_s=10)] == [job.id]
    await owner.close()
    await other.close()


async def test_channel_settings_and_status_reactions(database_url: str) -> None:
    store = await open_store(database_url)
    assert await store.auto_sizes("C1") is None
    await store.set_auto_sizes("C1", ["400x400", "og-image"], "U1")
    assert await store.auto_sizes("C1") == ["400x400", "og-image"]
    await store.set_auto_sizes("C1", None, "U1")
    assert await store.auto_sizes("C1") is None
    job, _ = await insert(store, _job())
    await store.set_status_reaction(job.id, "working")
    assert [(j.id, j.status_reaction) for j in await store.changed_since(0)] == [(job.id, "working")]
    await store.close()


async def test_an_events_replies_are_claimed_once_across_replicas_until_pruned(database_url: str) -> None:
    first, second = await open_store(database_url), await open_store(database_url)
    answers = await asyncio.gather(*(store.first_answer("Ev1", 100.0) for store in (first, second, first)))
    assert sorted(answers) == [False, False, True]
    assert await second.first_answer("Ev2", 100.0)  # another event is its own
    await first.delete_finished_before(99.0)  # answered after the cutoff: kept
    assert not await first.first_answer("Ev1", 200.0)
    await first.delete_finished_before(150.0)  # a day on, Slack has long stopped sending it: the record goes
    assert await second.first_answer("Ev1", 200.0)
    await first.close()
    await second.close()


async def test_one_replica_at_a_time_changes_a_messages_status_reaction(postgres_url: str) -> None:
    first, second = await open_store(postgres_url), await open_store(postgres_url)
    async with first.message_lock("C1", "1.0"):
        waiting = asyncio.create_task(_enter(second.message_lock("C1", "1.0")))
        await asyncio.wait_for(_enter(second.message_lock("C1", "2.0")), 5)  # another message is not held up
        await asyncio.sleep(0.2)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 5)
    await first.close()
    await second.close()


async def _enter(lock: contextlib.AbstractAsyncContextManager[None]) -> None:
    async with lock:
        pass


async def test_a_new_job_on_one_replica_wakes_the_others(postgres_url: str) -> None:
    admitting, idle = await open_store(postgres_url), await open_store(postgres_url)
    woken = asyncio.Event()
    await idle.listen(woken.set)
    await insert(admitting, _job())
    await asyncio.wait_for(woken.wait(), 5)
    await admitting.close()
    await idle.close()


async def test_two_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    import asyncpg

    from bot.jobs import pg_store

    stores = await asyncio.gather(*(PostgresJobStore.open(postgres_url) for _ in range(3)))
    connection = await asyncpg.connect(postgres_url)
    version = await connection.fetchval("SELECT version FROM schema_versions WHERE component = 'jobs'")
    await connection.close()
    assert version == len(pg_store._MIGRATIONS)
    for store in stores:
        await store.close()


async def test_the_app_and_the_api_server_starting_together_on_one_new_database_both_start(
    postgres_server: str,
) -> None:
    from bot.jobs import pg_store
    from bot.postgres import migrate, open_pool
    from bot.smart_resize_api.server import pg_store as api_store
    from tests.conftest import fresh_database

    for _ in range(5):  # the race is lost in about one start in two
        async with fresh_database(postgres_server) as url:
            app, api = await open_pool(url), await open_pool(url)
            try:
                versions = await asyncio.gather(
                    migrate(app, "jobs", pg_store._MIGRATIONS), migrate(api, "api_requests", api_store._MIGRATIONS)
                )
            finally:
                await app.close()
                await api.close()
        assert versions == [len(pg_store._MIGRATIONS), len(api_store._MIGRATIONS)]


async def test_an_earlier_postgresql_database_is_upgraded_in_place(postgres_url: str) -> None:
    from bot.jobs import pg_store
    from bot.postgres import migrate, open_pool

    pool = await open_pool(postgres_url)
    await migrate(pool, "jobs", pg_store._MIGRATIONS[:1])  # the tables as the first PostgreSQL release made them
    await pool.close()
    store = await PostgresJobStore.open(postgres_url)
    job, _ = await insert(store, make_job(event_id="Ev1"))
    stored = await store.get(job.id)
    await store.close()
    assert stored is not None and stored.event_id == "Ev1"


async def test_an_earlier_sqlite_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as db:  # the tables as the first release made them: no versions, no leases
        db.executescript(V1_SCHEMA)
        db.execute(
            "INSERT INTO jobs (id, dedup_key, trigger, channel_id, user_id, thread_ts, source, spec, state, "
            "created_at, updated_at) VALUES ('old', 'k', 'command', 'C1', 'U1', '1.0', ?, ?, 'anchored', 1, 1)",
            ('{"kind": "url", "url": "https://e.com/a.jpg"}', '{"sizes": [[300, 200]]}'),
        )
    store = SqliteJobStore(path)
    [job] = await store.claim(2.0, 5, lease_s=60)
    assert job.id == "old" and job.upload is None and job.status_reaction is None
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_versions WHERE component = 'jobs'").fetchone() == (6,)


V1_SCHEMA = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, dedup_key TEXT NOT NULL UNIQUE, trigger TEXT NOT NULL, team_id TEXT,
    channel_id TEXT NOT NULL, user_id TEXT NOT NULL, thread_ts TEXT, source TEXT NOT NULL, spec TEXT NOT NULL,
    state TEXT NOT NULL, progress_ts TEXT, remote_id TEXT, response_url TEXT, error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE channel_settings (channel_id TEXT PRIMARY KEY, auto_sizes TEXT, updated_by TEXT, updated_at REAL NOT NULL);
"""


async def test_the_wake_up_listener_comes_back_after_its_connection_is_cut(postgres_url: str) -> None:
    import asyncpg

    admitting, idle = await open_store(postgres_url), await open_store(postgres_url)
    woken = asyncio.Event()
    await idle.listen(woken.set)
    admin = await asyncpg.connect(postgres_url)
    # As a PostgreSQL restart or failover would: every LISTEN connection cut from the server's side.
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid != pg_backend_pid()"
    )
    await admin.close()
    await asyncio.wait_for(woken.wait(), 10)  # the reconnect itself wakes the runner: it may have missed one
    woken.clear()
    await insert(admitting, _job())
    await asyncio.wait_for(woken.wait(), 10)
    await admitting.close()
    await idle.close()


@contextlib.asynccontextmanager
async def another_writer(database_url: str, user: str, holds_for: float | None = None) -> AsyncIterator[None]:
    """What makes an intake wait: another process's write lock on the SQLite file, or another replica's intake of
    the same user on PostgreSQL (its advisory lock). Let go when the block ends, or after ``holds_for`` seconds."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
        connection.execute("BEGIN IMMEDIATE")

        async def let_go() -> None:
            connection.execute("ROLLBACK")
    else:
        import asyncpg

        replica = await asyncpg.connect(database_url)
        await replica.execute("SELECT pg_advisory_lock(hashtext($1))", f"jobs:user:{user}")

        async def let_go() -> None:
            await replica.close()  # its session's advisory lock goes with it

    timer = asyncio.get_running_loop().call_later(holds_for, asyncio.ensure_future, let_go()) if holds_for else None
    try:
        yield
    finally:
        if timer is None:
            await let_go()


async def test_an_admission_that_cannot_begin_in_time_stores_nothing(database_url: str) -> None:
    store = await open_store(database_url)
    await store.recent_for_user("U1")  # connected and migrated before the other writer holds anything
    async with another_writer(database_url, "U1"):
        started = time.monotonic()
        with writes_begin_within(0.3):
            try:
                await store.admit(_job(), since=0, limit=10)
            except Exception as error:
                refused: Exception = error
            else:
                pytest.fail("admitted past its write deadline")
        assert store_or_network_out_of_reach(refused), repr(refused)  # "try again", in one line
        assert time.monotonic() - started < 1.0
    assert await store.recent_for_user("U1") == []  # and nothing lands once the other writer lets go
    await store.close()


async def test_an_admission_begun_in_time_is_waited_for_though_its_caller_stopped_waiting(database_url: str) -> None:
    store = await open_store(database_url)
    await store.recent_for_user("U1")
    async with another_writer(database_url, "U1", holds_for=0.4):
        with writes_begin_within(1.5):
            # The caller's wait ends at 0.2 s, while the intake waits for the other writer; at 0.4 s it goes on,
            # and its outcome, not a TimeoutError, is the answer: cancelled there, it could have landed unreported.
            async with asyncio.timeout(0.2):
                admitted = await store.admit(_job(), since=0, limit=10)
    assert admitted.new
    assert [job.id for job in await store.recent_for_user("U1")] == [admitted.job.id]  # type: ignore[union-attr]
    await store.close()

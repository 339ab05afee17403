"""The job store under load: intake (admit) latency and jobs claimed per second, SQLite against PostgreSQL, with
1, 2 and 3 replicas (separate processes) on this machine.

Each replica is a process of its own with its own store, as replicas are. Intake: every replica admits jobs, 8 at
a time, and each admit's latency is recorded (what stands between a Slack event and its ack). Claims: the table is
filled, then every replica claims jobs 4 at a time and takes each through the steps a job's bookkeeping costs
(two state updates, the release), until none are left; jobs per second over all replicas. The engine and Slack are
not in it: this is the store's ceiling, far above what Slack lets through (about one message per second per
channel). Contenders run interleaved, in rotating order, and are reported as ratios to SQLite with one replica.

    .venv/bin/pip install -e '.[test]'   # asyncpg
    out=$(.ci/postgres); export TEST_DATABASE_URL=${out#* }
    .venv/bin/python bench/stores.py [--rounds 3] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_line, render_table
from bot.jobs.model import Job
from bot.jobs.pg_store import PostgresJobStore
from bot.jobs.store import JobStore, SqliteJobStore
from tests.factories import make_job

ADMITS_PER_REPLICA = 400
WARM_UP = 32
CLAIM_JOBS = 1500


async def _open(url: str) -> JobStore:
    if url.startswith("sqlite:///"):
        return SqliteJobStore(Path(url.removeprefix("sqlite:///")))
    return await PostgresJobStore.open(url)


def _job(tag: str, n: int) -> Job:
    return make_job(f"bench:{tag}:{n}", user_id=f"U{n % 50}")


async def _intake(url: str, tag: str) -> list[float]:
    store = await _open(url)
    gate = asyncio.Semaphore(8)
    latencies: list[float] = []

    async def one(n: int) -> None:
        async with gate:
            started = time.perf_counter()
            await store.admit(_job(tag, n), since=0, limit=1_000_000)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one(n) for n in range(-WARM_UP, 0)))  # the pool's connections opened, not timed
    latencies.clear()
    await asyncio.gather(*(one(n) for n in range(ADMITS_PER_REPLICA)))
    await store.close()
    return latencies


async def _drain(url: str) -> int:
    store = await _open(url)
    done = 0
    while True:
        jobs = await store.claim(time.time(), 4, lease_s=60)
        if not jobs:
            break
        for job in jobs:
            job = await store.update(job, state="anchored")
            await store.update(job, state="done")
            await store.release(job.id)
            done += 1
    await store.close()
    return done


def _replica(kind: str, url: str, tag: str, start: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    time.sleep(max(0.0, start - time.time()))  # every replica starts together
    if kind == "intake":
        results.put(asyncio.run(_intake(url, tag)))
    else:
        results.put(asyncio.run(_drain(url)))


def _run(kind: str, url: str, replicas: int) -> list[object]:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    start = time.time() + 1.5  # after every child has imported the app
    tag = uuid.uuid4().hex[:8]
    processes = [
        context.Process(target=_replica, args=(kind, url, f"{tag}-{n}", start, results)) for n in range(replicas)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    return outcomes


async def _fill(url: str, count: int) -> None:
    store = await _open(url)
    tag = uuid.uuid4().hex[:8]
    for n in range(count):
        await store.admit(_job(tag, n), since=0, limit=1_000_000)
    await store.close()


async def _fresh_postgres(server: str) -> str:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return server.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        sys.exit("bench/stores.py needs PostgreSQL: out=$(.ci/postgres); export TEST_DATABASE_URL=${out#* }")
    folder = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    contenders = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3)]
    p99: dict[tuple[str, int], list[float]] = {c: [] for c in contenders}
    rate: dict[tuple[str, int], list[float]] = {c: [] for c in contenders}
    for round_index in range(args.rounds):
        order = contenders[round_index % len(contenders) :] + contenders[: round_index % len(contenders)]
        for kind, replicas in order:
            if kind == "sqlite":
                url = f"sqlite:///{folder / f'r{round_index}.db'}"
            else:
                url = asyncio.run(_fresh_postgres(server))
            latencies = sorted(x for batch in _run("intake", url, replicas) for x in batch)  # type: ignore[attr-defined]
            p99[(kind, replicas)].append(latencies[int(len(latencies) * 0.99) - 1])
            # The claims on a database of their own: exactly CLAIM_JOBS open jobs, whatever intake left behind.
            url = (
                f"sqlite:///{folder / f'c{round_index}.db'}"
                if kind == "sqlite"
                else asyncio.run(_fresh_postgres(server))
            )
            asyncio.run(_fill(url, CLAIM_JOBS))
            started = time.perf_counter()
            claimed = sum(_run("claims", url, replicas))  # type: ignore[arg-type]
            rate[(kind, replicas)].append(claimed / (time.perf_counter() - started - 1.5))
    base_p99 = statistics.median(p99[("sqlite", 1)])
    base_rate = statistics.median(rate[("sqlite", 1)])
    rows = []
    for kind, replicas in contenders:
        median_p99 = statistics.median(p99[(kind, replicas)])
        median_rate = statistics.median(rate[(kind, replicas)])
        rows.append(
            [
                f"{kind}, {replicas} replica{'s' if replicas > 1 else ''}",
                f"{median_p99 * 1000:.1f} ms",
                f"{median_p99 / base_p99:.2f}x",
                f"{median_rate:.0f}/s",
                f"{median_rate / base_rate:.2f}x",
            ]
        )
    print(machine_line())
    print(f"{args.rounds} rounds, interleaved; medians; baseline: SQLite, one replica")
    headers = ["store", "intake p99", "vs baseline", "jobs claimed", "vs baseline"]
    print(render_table(headers, rows, markdown=args.markdown))


if __name__ == "__main__":
    main()

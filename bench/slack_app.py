"""The Slack app under load: ack latency against a bare Bolt app, and one photo end to end against the engine alone.

    python bench/slack_app.py [--rounds 5] [--e2e-rounds 9] [--workers 2] [--markdown]

One process drives everything over loopback: the Slack Web API emulator (tests/slack_api/emulator.py, in this
process), the real app (``python -m bot``, a child in HTTP mode, local backend, its own temporary SQLite file) and the
baseline (bench/bare_bolt_app.py, a child: a Bolt app whose /resize listener only acks).

Ack latency, interleaved rounds (the order of the two apps alternates every round; one warm-up round not counted):
  1. a fresh message with the 12 MP photo in #busy; 10 ``/resize 1080x1080 1920x1080 1080x1920 --format jpeg`` sent
     to the real app (distinct trigger ids and users), then wait until the engine pool is busy with them;
  2. 50 concurrent signed ``/resize 320x320`` commands (50 users, accepted: intake runs and creates 50 jobs on a
     small image in #acks) to the real app, and the same 50 to the bare app; each response time is measured;
  3. wait until every job of the round is finished (so rounds do not pile up).
  Reports p50/p90/p99/max per app over all rounds, the ratio real/bare (goal p99 <= 1.5x) and p99 < 100 ms.

End to end, interleaved rounds: the 12 MP photo shared as a fresh message in #e2e; the time from sending
``/resize 1080x1080 1920x1080 1080x1920 --format jpeg`` to the moment the emulator holds all three files in the
message's thread, against ``engine.resize`` in this process on the same bytes (same sizes, jpeg, mode auto).
Goal: app/engine < 1.3x and the app under 1.5 s. Phases of the app's path come from the emulator's call log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

if __package__ in (None, ""):  # run as a script: make `bench` (and `tests`, `bot`) importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO_DIR, Engine, load_engine, machine_line, ms, out_dir, render_table, stats
from bench.speed import make_photo
from bot.engine.pool import EnginePool
from tests.images import astronaut
from tests.slack_api.emulator import TEAM, SlackEmulator
from tests.slack_api.harness import SIGNING_SECRET, app_env

E2E_TEXT = "1080x1080 1920x1080 1080x1920 --format jpeg"
E2E_SIZES = ((1080, 1080), (1920, 1080), (1080, 1920))
ACK_TEXT = "320x320"
BUSY, ACKS, E2E = "CBUSY0001", "CACKS0001", "CE2E00001"
OPEN_STATES = ("accepted", "anchored", "fetched", "processed", "delivering")
SLACK_DEADLINE_S = 3.0


# --------------------------------------------------------------------------------------------------------------
# The emulator, with a clock on every call (for the end-to-end phases) and a signal when files are shared.


class TimedEmulator(SlackEmulator):
    def __init__(self) -> None:
        super().__init__()
        self.timeline: list[tuple[float, str]] = []  # (perf_counter when answered, method or "download")
        self.changed = asyncio.Event()  # set on every call
        self.last_at: dict[str, float] = {}

    async def _api(self, request: web.Request) -> web.Response:
        response = await super()._api(request)
        self._mark(request.match_info["method"])
        return response

    async def _download(self, request: web.Request) -> web.Response:
        self._mark("download")
        return await super()._download(request)

    def _mark(self, name: str) -> None:
        now = time.perf_counter()
        self.timeline.append((now, name))
        self.last_at[name] = now
        self.changed.set()

    async def until(self, holds: Callable[[], bool], within: float = 60.0) -> None:
        """Return once ``holds()`` is true (checked after every call the emulator answers, no polling)."""
        deadline = time.perf_counter() + within
        while not holds():
            self.changed.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError("the emulator never reached the expected state")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=remaining)

    async def wait_uploads(self, channel: str, thread_ts: str, count: int) -> float:
        """perf_counter at which the emulator answered the upload that put the ``count``-th file in the thread."""
        await self.until(lambda: len(self.uploads_in_thread(channel, thread_ts)) >= count)
        return self.last_at["files.completeUploadExternal"]

    def after(self, since: float, name: str) -> list[float]:
        return [t for t, method in self.timeline if t >= since and method == name]


# --------------------------------------------------------------------------------------------------------------
# Child processes: the real app and the bare Bolt app, each in HTTP mode on its own port.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    async def start(self, session: aiohttp.ClientSession) -> None:
        env = {**self.env, "PORT": str(self.port), "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_DIR)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, env=env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                async with session.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def real_app(env: dict[str, str], cwd: Path) -> Child:
    return Child("real-app", [sys.executable, "-m", "bot"], env, cwd, free_port())


def bare_app(env: dict[str, str], cwd: Path) -> Child:
    port = free_port()
    argv = [sys.executable, str(REPO_DIR / "bench" / "bare_bolt_app.py"), "--port", str(port)]
    return Child("bare-bolt", argv, env, cwd, port)


# --------------------------------------------------------------------------------------------------------------
# Signed slash commands, built before the clock starts, and timed posts.


@dataclass(frozen=True)
class Signed:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Reply:
    seconds: float
    status: int
    text: str


def signed_command(text: str, *, channel: str, user: str) -> Signed:
    form = {
        "token": "legacy",
        "team_id": TEAM,
        "channel_id": channel,
        "user_id": user,
        "command": "/resize",
        "text": text,
        "response_url": "",
        "trigger_id": uuid.uuid4().hex,
    }
    body = urlencode(form).encode()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return Signed(body, headers)


async def timed_post(session: aiohttp.ClientSession, url: str, request: Signed) -> Reply:
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/slack/events", data=request.body, headers=request.headers) as response:
            text = await response.text()
            return Reply(time.perf_counter() - started, response.status, text)
    except (aiohttp.ClientError, TimeoutError) as error:
        return Reply(time.perf_counter() - started, 0, f"{type(error).__name__}: {error}")


async def burst(session: aiohttp.ClientSession, url: str, requests: Sequence[Signed]) -> list[Reply]:
    return list(await asyncio.gather(*(timed_post(session, url, r) for r in requests)))


# --------------------------------------------------------------------------------------------------------------
# The real app's job table (read from this process; WAL lets it read while the app writes).


class Jobs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def counts(self) -> dict[str, int]:
        with sqlite3.connect(self.path, timeout=10) as db:
            return {state: n for state, n in db.execute("SELECT state, count(*) FROM jobs GROUP BY state")}

    def open_count(self) -> int:
        counts = self.counts()
        return sum(counts.get(state, 0) for state in OPEN_STATES)

    async def drain(self, within: float = 180.0) -> None:
        deadline = time.monotonic() + within
        while self.open_count():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still open after {within:.0f} s: {self.counts()}")
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------------------------
# Ack latency.


@dataclass
class AckResults:
    replies: dict[str, list[Reply]] = field(default_factory=lambda: {"real app": [], "bare Bolt": []})
    busy_open_after: list[int] = field(default_factory=list)  # of the 10 big jobs, how many were still open
    round_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Bench:
    slack: TimedEmulator
    session: aiohttp.ClientSession
    real: Child
    bare: Child
    jobs: Jobs
    photo: bytes
    small: bytes


async def start_busy_jobs(bench: Bench, busy: int, round_no: int) -> float:
    """A fresh 12 MP message in #busy and ``busy`` accepted jobs on it; returns when the engine pool is working."""
    file = bench.slack.add_file(bench.photo, "busy-12mp.jpg")
    bench.slack.post_user_message(BUSY, "U000", f"round {round_no}", files=[file])
    started = time.perf_counter()
    requests = [signed_command(E2E_TEXT, channel=BUSY, user=f"UB{i:03d}") for i in range(busy)]
    replies = await burst(bench.session, bench.real.url, requests)
    refused = [r for r in replies if r.status != 200 or "On it" not in r.text]
    if refused:
        raise RuntimeError(f"busy jobs not accepted: {refused[:3]}")
    await bench.slack.until(lambda: len(bench.slack.after(started, "download")) >= min(2, busy), within=30)
    return started


async def ack_round(bench: Bench, results: AckResults | None, *, busy: int, size: int, round_no: int) -> None:
    round_started = time.perf_counter()
    file = bench.slack.add_file(bench.small, "small.jpg")
    bench.slack.post_user_message(ACKS, "U000", f"round {round_no}", files=[file])
    if busy:
        await start_busy_jobs(bench, busy, round_no)
    order = [("real app", bench.real), ("bare Bolt", bench.bare)]
    if round_no % 2:
        order.reverse()
    for name, child in order:
        requests = [signed_command(ACK_TEXT, channel=ACKS, user=f"U{i:03d}") for i in range(size)]
        replies = await burst(bench.session, child.url, requests)
        if results is not None:
            results.replies[name].extend(replies)
    open_busy = await asyncio.to_thread(busy_open, bench.jobs)
    await bench.jobs.drain()
    if results is not None:
        results.busy_open_after.append(open_busy)
        results.round_seconds.append(time.perf_counter() - round_started)


def busy_open(jobs: Jobs) -> int:
    placeholders = ",".join("?" * len(OPEN_STATES))
    with sqlite3.connect(jobs.path, timeout=10) as db:
        row = db.execute(
            f"SELECT count(*) FROM jobs WHERE channel_id = ? AND state IN ({placeholders})",  # noqa: S608 - fixed
            (BUSY, *OPEN_STATES),
        ).fetchone()
    return int(row[0])


async def measure_acks(bench: Bench, *, rounds: int, busy: int, size: int, warmup: bool = True) -> AckResults:
    results = AckResults()
    if warmup:  # pool spawn, connections, Bolt's auth.test
        await ack_round(bench, None, busy=busy, size=size, round_no=-1)
    for round_no in range(rounds):
        await ack_round(bench, results, busy=busy, size=size, round_no=round_no)
        print(f"\r  ack round {round_no + 1}/{rounds} ({busy} busy jobs)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return results


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 250 samples is the 248th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def accepted(name: str, reply: Reply) -> bool:
    if reply.status != 200:
        return False
    return "On it" in reply.text if name == "real app" else True


def ack_table(results: AckResults, md: bool, label: str) -> str:
    rows = []
    for name, replies in results.replies.items():
        times = [r.seconds for r in replies]
        bad = sum(not accepted(name, r) for r in replies)
        late = sum(r.seconds > SLACK_DEADLINE_S for r in replies)
        rows.append(
            [
                name,
                str(len(times)),
                ms(percentile(times, 50)),
                ms(percentile(times, 90)),
                ms(percentile(times, 99)),
                ms(max(times)),
                f"{bad}",
                f"{late}",
            ]
        )
    headers = [label, "n", "p50", "p90", "p99", "max", "not accepted", "> 3 s"]
    return render_table(headers, rows, markdown=md)


def ack_goals(results: AckResults, md: bool, *, goals: bool = True) -> str:
    real = [r.seconds for r in results.replies["real app"]]
    bare = [r.seconds for r in results.replies["bare Bolt"]]
    p50, p99 = percentile(real, 50) / percentile(bare, 50), percentile(real, 99) / percentile(bare, 99)
    p99_ms = percentile(real, 99) * 1000
    rows = [
        ["real / bare, p50", f"{p50:.2f}x", "-", "-"],
        ["real / bare, p99", f"{p99:.2f}x", "<= 1.5x", "yes" if p99 <= 1.5 else "NO"],
        ["real app p99", f"{p99_ms:.0f} ms", "< 100 ms", "yes" if p99_ms < 100 else "NO"],
    ]
    if not goals:  # a reference measurement: no goal applies
        rows = [[name, value, "-", "-"] for name, value, _, _ in rows]
    return render_table(["ack latency, baseline bare Bolt", "value", "goal", "met"], rows, markdown=md)


def per_round_p99(results: AckResults, size: int) -> str:
    parts = []
    for name, replies in results.replies.items():
        chunks = [replies[i : i + size] for i in range(0, len(replies), size)]
        parts.append(f"{name} " + " ".join(ms(percentile([r.seconds for r in c], 99)) for c in chunks))
    return "per-round p99: " + "; ".join(parts)


# --------------------------------------------------------------------------------------------------------------
# End to end.


@dataclass
class E2EResults:
    app: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    engine_explain: list[float] = field(default_factory=list)
    pool_explain: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)


async def app_once(bench: Bench, results: E2EResults | None) -> None:
    file = bench.slack.add_file(bench.photo, "photo-12mp.jpg")
    message = bench.slack.post_user_message(E2E, "U001", "", files=[file])
    request = signed_command(E2E_TEXT, channel=E2E, user="U001")
    started = time.perf_counter()
    reply = await timed_post(bench.session, bench.real.url, request)
    if not accepted("real app", reply):
        raise RuntimeError(f"end-to-end command refused: {reply}")
    finished = await bench.slack.wait_uploads(E2E, message["ts"], len(E2E_SIZES))
    await bench.jobs.drain()  # the trailing "Done" update and reactions finish before anything else is timed
    if results is None:
        return
    results.app.append(finished - started)
    for phase, seconds in phases(bench.slack, started, started + reply.seconds, finished).items():
        results.phases.setdefault(phase, []).append(seconds)


def phases(slack: TimedEmulator, started: float, acked: float, finished: float) -> dict[str, float]:
    """Where the app's time goes, from the emulator's call log (each mark is when the emulator answered)."""
    download = slack.after(started, "download")[0]
    uploading = next(t for t in slack.after(download, "chat.update") if t <= finished)  # "Uploading 3 images…"
    return {
        "command -> ack received": acked - started,
        "command -> download starts (intake, runner, history, anchor posts, reactions)": download - started,
        "download + engine in the pool + results back": uploading - download,
        "upload 3 files (files_upload_v2)": finished - uploading,
    }


def engine_request(engine: Engine, *, explain: bool) -> Any:
    sizes = tuple(engine.size_type(w, h) for w, h in E2E_SIZES)
    if explain:
        return engine.request_type(sizes=sizes, mode="auto", output_format="jpeg", explain=True)
    return engine.request_type(sizes=sizes, mode="auto", output_format="jpeg")


def engine_once(engine: Engine, data: bytes, request: Any) -> float:
    started = time.perf_counter()
    result = engine.resize(data, request, engine.limits_type())
    seconds = time.perf_counter() - started
    if len(result.outputs) != len(E2E_SIZES):
        raise RuntimeError(f"engine made {len(result.outputs)} outputs")
    return seconds


async def pool_once(pool: EnginePool, data: bytes, request: Any) -> float:
    started = time.perf_counter()
    await pool.resize(data, request)
    return time.perf_counter() - started


async def measure_e2e(bench: Bench, engine: Engine, rounds: int) -> E2EResults:
    results = E2EResults()
    plain = engine_request(engine, explain=False)
    explain = None if engine.stand_in else engine_request(engine, explain=True)
    async with EnginePool(1) as pool:
        await app_once(bench, None)  # warm-up
        engine_once(engine, bench.photo, plain)
        if explain is not None:
            await pool_once(pool, bench.photo, explain)
        for round_no in range(rounds):
            steps = ["app", "engine", "explain", "pool"]
            shift = round_no % len(steps)
            for step in steps[shift:] + steps[:shift]:
                if step == "app":
                    await app_once(bench, results)
                elif step == "engine":
                    results.engine.append(engine_once(engine, bench.photo, plain))
                elif explain is None:
                    continue
                elif step == "explain":
                    results.engine_explain.append(engine_once(engine, bench.photo, explain))
                else:
                    results.pool_explain.append(await pool_once(pool, bench.photo, explain))
            print(f"\r  end-to-end round {round_no + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return results


def e2e_table(results: E2EResults, md: bool) -> str:
    base = stats(results.engine).median
    rows = []
    contenders = [
        ("engine alone (baseline): resize(), in-process", results.engine),
        ("engine + crop map (explain=True, as the app asks)", results.engine_explain),
        ("the same in a pool worker (EnginePool, as the app runs it)", results.pool_explain),
        ("app: /resize -> 3rd file in the thread", results.app),
    ]
    for name, values in contenders:
        if not values:
            continue
        s = stats(values)
        rows.append([name, str(s.n), ms(s.median), f"{ms(s.q1)}-{ms(s.q3)}", f"{s.median / base:.2f}x"])
    return render_table(["12 MP -> 3 JPEGs", "n", "median", "IQR", "vs engine alone"], rows, markdown=md)


def phase_table(results: E2EResults, md: bool) -> str:
    rows = [[name, ms(statistics.median(values))] for name, values in results.phases.items()]
    return render_table(["app phase (median per round)", "time"], rows, markdown=md)


def e2e_goals(results: E2EResults, md: bool) -> str:
    app, engine = stats(results.app).median, stats(results.engine).median
    rows = [
        ["app / engine alone", f"{app / engine:.2f}x", "< 1.3x", "yes" if app / engine < 1.3 else "NO"],
        ["app, end to end", ms(app), "< 1.5 s", "yes" if app < 1.5 else "NO"],
    ]
    return render_table(["end to end, baseline engine alone", "value", "goal", "met"], rows, markdown=md)


# --------------------------------------------------------------------------------------------------------------
# Driver.


def seed_channels(slack: TimedEmulator, users: int) -> None:
    members = ("U000", "U001", *(f"U{i:03d}" for i in range(users)), *(f"UB{i:03d}" for i in range(20)))
    for channel in (BUSY, ACKS, E2E):
        slack.add_channel(channel, members=members)


@dataclass
class Report:
    loaded: AckResults
    idle: AckResults
    e2e: E2EResults
    note: str


def real_env(slack: TimedEmulator, workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    db_dir = Path(args.db_dir) if args.db_dir else workdir
    db_dir.mkdir(parents=True, exist_ok=True)
    return app_env(
        slack,
        workdir,
        DATABASE_URL=f"sqlite:///{db_dir / 'jobs.db'}",
        ENGINE_WORKERS=str(args.workers),
        JOBS_PER_USER_PER_HOUR="10000",
        SMART_RESIZE_BACKEND="local",
    )


async def run(args: argparse.Namespace, engine: Engine) -> Report:
    photo = make_photo().read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="slack-app-", dir=out_dir()))
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        TimedEmulator() as slack,
        aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        seed_channels(slack, args.burst)
        env = real_env(slack, workdir, args)
        db = Path(env["DATABASE_URL"].removeprefix("sqlite:///"))
        bench = Bench(slack, session, real_app(env, workdir), bare_app(env, workdir), Jobs(db), photo, astronaut())
        try:
            await bench.real.start(session)
            await bench.bare.start(session)
            loaded = await measure_acks(bench, rounds=args.rounds, busy=args.busy, size=args.burst)
            idle = await measure_acks(bench, rounds=args.idle_rounds, busy=0, size=args.burst, warmup=False)
            e2e = await measure_e2e(bench, engine, args.e2e_rounds)
            final = bench.jobs.counts()
        finally:
            bench.real.stop()
            bench.bare.stop()
    shutil.rmtree(db.parent / "crop-maps", ignore_errors=True)
    note = f"jobs in the real app's store at the end: {final}; database {db}; logs in {workdir}"
    return Report(loaded, idle, e2e, note)


def print_report(report: Report, args: argparse.Namespace) -> None:
    md = args.markdown
    print(f"\nSlack app over loopback against the emulator; ENGINE_WORKERS={args.workers}, local backend")
    print(machine_line(), "\n")
    print(f"Ack latency: {args.burst} concurrent signed /resize per app per round while {args.busy} 12 MP jobs run,")
    print(f"{args.rounds} interleaved rounds (order alternating) — baseline: a bare Bolt app that only acks\n")
    print(ack_table(report.loaded, md, f"app ({args.burst} concurrent, {args.busy} jobs running)"), "\n")
    print(ack_goals(report.loaded, md), "\n")
    print(per_round_p99(report.loaded, args.burst))
    print(f"12 MP jobs still open after both bursts, per round: {report.loaded.busy_open_after} of {args.busy}\n")
    if report.idle.replies["real app"]:
        print(f"Reference, no jobs running ({args.idle_rounds} rounds): the same bursts on an idle machine\n")
        print(ack_table(report.idle, md, f"app ({args.burst} concurrent, idle)"), "\n")
        print(ack_goals(report.idle, md, goals=False), "\n")
    print(f"End to end: /resize {E2E_TEXT} on the 12 MP photo, {args.e2e_rounds} interleaved rounds")
    print("— baseline: the engine alone on the same bytes\n")
    print(e2e_table(report.e2e, md), "\n")
    print(e2e_goals(report.e2e, md), "\n")
    print(phase_table(report.e2e, md), "\n")
    print(report.note)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="ack-latency rounds under load (plus one warm-up)")
    parser.add_argument("--idle-rounds", type=int, default=2, help="reference ack rounds with no jobs running")
    parser.add_argument("--e2e-rounds", type=int, default=9, help="end-to-end rounds (plus one warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="ENGINE_WORKERS for the real app")
    parser.add_argument("--burst", type=int, default=50, help="concurrent /resize commands per app per round")
    parser.add_argument("--busy", type=int, default=10, help="12 MP jobs started before each burst")
    parser.add_argument("--db-dir", help="directory for the real app's SQLite file (default: its work dir)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    engine = load_engine()
    print(engine.banner())
    print_report(asyncio.run(run(args, engine)), args)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

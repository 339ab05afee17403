"""The Smart Resize API: our server's throughput and submit latency, and our client's cost while polling.

1. Server: `smart-resize serve` as a child process; 50 concurrent clients submit small images (one 160x160 output
   each) until N jobs are done. Reports completed jobs/s, and p50/p99 submit latency. Baseline: the engine alone,
   in-process, making the same outputs back to back (jobs/s), so the ratio is the price of HTTP, queueing and
   persistence.
2. Client: 1,000 remote jobs in flight against a slow local server (a child process that answers PROCESSING until
   each job is 20 s old), every one awaited with SmartResizeClient.wait (polling every 2-3 s with jitter): first
   with the poll wake-ups not aligned, then on the default poll grid. Reports the poller's CPU (share of one core)
   and peak RSS. Baseline: the same process with 1,000 tasks that only sleep on the same schedule. Goals: under
   10% of one core and under 200 MB. The heap is frozen before measuring, as the app does once it has started.

Run: .venv/bin/python bench/api.py [--only server|client] [--jobs 200] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_line, peak_rss_mb, render_table
from bot.engine import ResizeRequest, Size, resize
from bot.smart_resize_api.client import DEFAULT_POLL_GRID_S, SmartResizeClient
from tests.images import encode, photo

KEY = "bench-key"
SLOW_SECONDS = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.post(url, json={}):
                    return  # any HTTP answer means it is listening
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# --- 1. server --------------------------------------------------------------------------------------------------


async def bench_server(jobs: int, markdown: bool) -> str:
    image = encode(photo(320, 240), "JPEG", quality=85)
    uri = f"data:image/jpeg;base64,{base64.b64encode(image).decode()}"
    body = {"image_url": uri, "target_sizes": ["160x160"], "output_format": "jpeg"}

    started = time.perf_counter()
    for _ in range(jobs):
        resize(image, ResizeRequest(sizes=(Size(160, 160),), output_format="jpeg"))
    engine_rate = jobs / (time.perf_counter() - started)

    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = {
        **os.environ,
        "SMART_RESIZE_API_KEYS": KEY,
        "DATABASE_URL": f"sqlite:///{workdir / 'api.db'}",
        "ENGINE_WORKERS": "2",
        "SMART_RESIZE_QUEUE_SIZE": str(jobs + 50),
        "SMART_RESIZE_REQUESTS_PER_MINUTE": str(jobs * 60),  # one key stands for all 50 clients: no per-key cap
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/smart-resize/v1"
    latencies: list[float] = []
    try:
        await _wait_healthy(f"{base}/smart-resize-request")
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(jobs):
            queue.put_nowait(index)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            client = SmartResizeClient(session, KEY, base, poll_interval=(0.2, 0.3))

            async def one_client() -> None:
                while not queue.empty():
                    queue.get_nowait()
                    sent = time.perf_counter()
                    async with session.post(
                        f"{base}/smart-resize-request", json=body, headers={"Ocp-Apim-Subscription-Key": KEY}
                    ) as response:
                        submitted = await response.json()
                    latencies.append(time.perf_counter() - sent)
                    await client.wait(submitted["request_id"])

            began = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(50)))
            server_rate = jobs / (time.perf_counter() - began)
    finally:
        child.terminate()
        child.wait(timeout=30)
    rows = [
        ["engine alone, in-process (baseline)", f"{engine_rate:.1f}", "-", "-", "1.00x"],
        [
            "server, 50 concurrent clients",
            f"{server_rate:.1f}",
            f"{_percentile(latencies, 0.5) * 1000:.0f} ms",
            f"{_percentile(latencies, 0.99) * 1000:.0f} ms",
            f"{server_rate / engine_rate:.2f}x",
        ],
    ]
    return f"Server: {jobs} jobs, 320x240 JPEG -> one 160x160 JPEG each, ENGINE_WORKERS=2\n\n" + render_table(
        ["", "completed jobs/s", "submit p50", "submit p99", "vs engine alone"], rows, markdown=markdown
    )


# --- 2. client poller --------------------------------------------------------------------------------------------


def slow_server(port: int) -> None:
    """Answers PROCESSING until a job is SLOW_SECONDS old, then COMPLETED with one (unused) media URL."""
    born: dict[str, float] = {}

    async def submit(_request: web.Request) -> web.Response:
        request_id = f"smart-resize_{uuid.uuid4()}"
        born[request_id] = time.monotonic()
        return web.json_response(
            {
                "request_id": request_id,
                "status": "QUEUED",
                "polling_url": f"http://127.0.0.1:{port}/v2/requests/status/{request_id}",
            }
        )

    async def status(request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        done = time.monotonic() - born[request_id] >= SLOW_SECONDS
        return web.json_response(
            {
                "request_id": request_id,
                "status": "COMPLETED" if done else "PROCESSING",
                "model_id": "smart-resize",
                "error": None,
                "output": {"media_url": ["http://127.0.0.1/x.png"], "media_type": "image/png"} if done else None,
                "created_at": None,
                "updated_at": None,
                "completed_at": None,
            }
        )

    app = web.Application()
    app.router.add_post("/smart-resize/v1/smart-resize-request", submit)
    app.router.add_get("/v2/requests/status/{request_id}", status)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def _cpu_and_memory(work: asyncio.Future[object] | asyncio.Task[object]) -> tuple[float, float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await work
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, peak_rss_mb()


async def bench_client(jobs: int, markdown: bool) -> str:
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--slow-server", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}/smart-resize/v1"
    try:
        await _wait_healthy(f"{base}/smart-resize-request")

        async def sleepers() -> None:
            async def one() -> None:
                waited = 0.0
                while waited < SLOW_SECONDS:
                    step = random.uniform(2.0, 3.0)
                    await asyncio.sleep(step)
                    waited += step

            await asyncio.gather(*(one() for _ in range(jobs)))

        # As the app does once it has started (bot/__main__.py): the import graph is frozen out of the collector.
        gc.collect()
        gc.freeze()
        base_wall, base_cpu, base_rss = await _cpu_and_memory(asyncio.ensure_future(sleepers()))

        async def pollers(grid: float) -> None:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
                client = SmartResizeClient(session, KEY, base, poll_grid=grid)
                handles = await asyncio.gather(*(client.submit(_request()) for _ in range(jobs)))
                waits = asyncio.gather(*(client.wait(handle, deadline=120) for handle in handles))
                measured.append(await _cpu_and_memory(waits))

        measured: list[tuple[float, float, float]] = []
        await pollers(0.0)
        await pollers(DEFAULT_POLL_GRID_S)
    finally:
        child.terminate()
        child.wait(timeout=30)
    (plain_wall, plain_cpu, plain_rss), (wall, cpu, rss) = measured
    rows = [
        ["1,000 sleeping tasks (baseline)", f"{base_wall:.1f} s", f"{base_cpu / base_wall:.1%}", f"{base_rss:.0f} MB"],
        [
            "SmartResizeClient, wake-ups not aligned",
            f"{plain_wall:.1f} s",
            f"{plain_cpu / plain_wall:.1%}",
            f"{plain_rss:.0f} MB",
        ],
        [
            f"SmartResizeClient, {DEFAULT_POLL_GRID_S:g} s poll grid (default)",
            f"{wall:.1f} s",
            f"{cpu / wall:.1%}",
            f"{rss:.0f} MB",
        ],
    ]
    verdict = (
        f"\npoller: {cpu / wall:.1%} of one core (goal < 10%: {'met' if cpu / wall < 0.10 else 'NOT met'}), "
        f"peak RSS {rss:.0f} MB (goal < 200 MB: {'met' if rss < 200 else 'NOT met'})"
    )
    return (
        f"Client: {jobs} remote jobs in flight, each COMPLETED after {SLOW_SECONDS:.0f} s, polled every 2-3 s\n\n"
        + render_table(["", "wall", "CPU (share of one core)", "peak RSS"], rows, markdown=markdown)
        + verdict
    )


def _request():  # type: ignore[no-untyped-def]
    from bot.smart_resize_api.contract import SmartResizeRequest

    return SmartResizeRequest(image_url="https://example.com/p.jpg", target_sizes=["1080x1080"])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--only", choices=("server", "client"))
    parser.add_argument("--slow-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.slow_server:
        slow_server(args.slow_server)
        return
    print(machine_line())
    if args.only in (None, "server"):
        print(await bench_server(args.jobs, args.markdown))
        print()
    if args.only in (None, "client"):
        print(await bench_client(args.in_flight, args.markdown))
    print(json.dumps({"max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    if "--slow-server" in sys.argv:
        slow_server(int(sys.argv[sys.argv.index("--slow-server") + 1]))
    else:
        asyncio.run(main())

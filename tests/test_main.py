from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import RedactTokens


def test_tokens_never_reach_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    logger.addFilter(RedactTokens())
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("calling with xoxb-123-456-abcDEF and %s", "xapp-1-A0-999-zz")
    assert "abcDEF" not in caplog.text
    assert "999-zz" not in caplog.text
    assert "xoxb-[redacted]" in caplog.text
    assert "xapp-[redacted]" in caplog.text


def _start(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLACK_", "PIXAZO_", "DATABASE_"))}
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
        "SLACK_BOT_TOKEN=xoxb-1-2-abc\nSLACK_APP_TOKEN=xapp-1-A1-2-abc\nDATABASE_URL=postgres://db/resize\n"
    )
    started = _start(tmp_path)
    assert started.returncode == 2
    # Only the database is wrong: the tokens came from the .env in the working directory.
    assert "DATABASE_URL scheme 'postgres' is not supported yet" in started.stderr
    assert "SLACK_BOT_TOKEN" not in started.stderr

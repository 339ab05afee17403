from __future__ import annotations

import logging

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

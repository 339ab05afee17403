"""A deadline by which a store write must begin, for a caller that stops waiting then: a request stored before
Slack's ack (handlers.common.stored_in_time), answered "not stored, try again" when it is past.

A write that could not begin by then must not begin later (behind the answer, it would make the retyped request a
second job), and one that began must be waited for and its outcome told, not abandoned mid-commit. Both job stores
read it: SQLite cuts its busy timeout to what is left, PostgreSQL its lock and pool waits (bot.sqlite,
bot.jobs.pg_store).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("store_write_deadline", default=None)


@contextlib.contextmanager
def writes_begin_within(seconds: float) -> Iterator[None]:
    """Store writes started inside this block begin within ``seconds`` or not at all."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def write_deadline() -> float | None:
    """The time.monotonic() by which a write started now must begin; None outside writes_begin_within."""
    return _deadline.get()

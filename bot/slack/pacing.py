"""Slack's rate-limit tiers, kept on our side: the calls a burst makes many of (status reactions, progress
updates) wait their turn here instead of meeting a 429 and a Retry-After at Slack."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable

# Slack's published tiers: at least this many calls a minute per workspace and method.
TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIER = {"reactions.add": 3, "reactions.remove": 2, "chat.update": 3}


class TierPacer:
    """A sliding window per method: no more calls in any ``window_s`` than the method's tier allows a minute."""

    def __init__(
        self,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._calls: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def free(self, method: str) -> bool:
        """Whether a call may go now without waiting (it is counted if so): for what can be skipped in a burst."""
        limit = TIER_PER_MINUTE[METHOD_TIER.get(method, 4)]
        calls = self._calls[method]
        now = self._clock()
        while calls and calls[0] <= now - self.window_s * 1.05:
            calls.popleft()
        if len(calls) < limit:
            calls.append(now)
            return True
        return False

    async def wait(self, method: str) -> None:
        limit = TIER_PER_MINUTE[METHOD_TIER.get(method, 4)]
        calls = self._calls[method]
        # Slack counts a call when it arrives, a little after it is counted here: a call is let go of a twentieth
        # of a window late, so one sent as an old one leaves this window is never still inside Slack's.
        window = self.window_s * 1.05
        while True:
            now = self._clock()
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) < limit:
                calls.append(now)
                return
            await self._sleep(calls[0] + window - now)

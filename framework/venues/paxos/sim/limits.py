"""Paxos REST rate limits: per-endpoint 5-minute averages, and the 5-minute IP throttle.

[DOC] guides/developer/rate-limits.mdx: limits are "based on the average number of requests per
second during a five (5) minute window"; "If you hit a rate limit ... you will receive a 429 ...
All requests from the offending IP are then throttled for five (5) minutes." Every client of the
simulator is on 127.0.0.1, so there is one IP.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable
from typing import Any

import trio

from framework.sim.server import HttpRequest, HttpResponse
from framework.venues.paxos.sim.common import problem

WINDOW_S = 300.0  # [DOC] the averaging window
THROTTLE_S = 300.0  # [DOC] the throttle after a breach


class RateLimiter:
    """Counts requests per endpoint over the trailing 5 minutes (trio clock, so MockClock tests
    run it); a breach throttles every endpoint for 5 minutes."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.throttled_until: float | None = None
        self.answered_429 = 0
        self.breaches = 0
        self._seen: dict[str, collections.deque[float]] = {}

    def throttle(self) -> None:
        """Throttle the (only) IP for five minutes from now, as after a breach."""
        # [INF] the window is not extended by requests made while throttled
        self.throttled_until = trio.current_time() + THROTTLE_S
        self.breaches += 1

    def throttled(self) -> bool:
        until = self.throttled_until
        if until is None:
            return False
        if trio.current_time() >= until:
            self.throttled_until = None
            return False
        return True

    def admit(self, endpoint: str, per_s: float) -> bool:
        """Count one request; False if it must be answered 429."""
        if self.throttled():
            self.answered_429 += 1
            return False
        now = trio.current_time()
        seen = self._seen.setdefault(endpoint, collections.deque())
        seen.append(now)
        while seen and seen[0] <= now - WINDOW_S:
            seen.popleft()
        if len(seen) > per_s * self.scale * WINDOW_S:
            self.throttle()
            self.answered_429 += 1
            return False
        return True

    def wrap(self, endpoint: str, per_s: float, handler: Callable[..., Any]) -> Callable[..., Any]:
        async def limited(request: HttpRequest, **params: str) -> HttpResponse:
            if not self.admit(endpoint, per_s):
                return problem(429, None, "Too many requests")  # [DOC] the published body
            result = handler(request, **params)
            if inspect.isawaitable(result):
                result = await result
            return result

        return limited

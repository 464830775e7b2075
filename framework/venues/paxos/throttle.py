"""The Paxos REST throttle: one 429 closes the door for five minutes to every request of the IP.

[DOC] guides/developer/rate-limits.mdx: "If you hit a rate limit ... you will receive a 429 ...
All requests from the offending IP are then throttled for five (5) minutes." "The retry mechanism
should include a backoff schedule that takes volume into consideration."

One `RestThrottle` is shared by every Paxos REST caller of the process (catalogue, tokens, order
entry, cancels, queries, the pollers). While it is open:
- the balance poller sends nothing (it skips its turn);
- a new order is refused before it leaves (definite: nothing was sent);
- cancels, order queries, the order poll and token fetches share one sparse probe, at most one
  per `probe_every_s` [INF: 30 s], so the venue never sees hundreds of requests into the
  throttle and order updates resume as soon as it lets one through;
- the strategy is told (`VenueStatus` THROTTLED with the end time, CONNECTED when it ends).
A probe that gets a non-429 answer ends the window early (the venue let it through); a 429 while
open does not extend it [INF], a 429 after it ends opens a new one.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
import trio

from framework.events import VenueState, VenueStatus

log = structlog.get_logger("botrun.paxos")

THROTTLE_S = 300.0  # [DOC] five minutes
PROBE_EVERY_S = 30.0  # [INF] one sparse probe per 30 s while throttled


class Throttled(Exception):
    """A Paxos request not sent: the venue throttles this IP (the outcome of nothing is unknown:
    nothing left)."""


class RestThrottle:
    def __init__(
        self,
        venue: str,
        *,
        window_s: float = THROTTLE_S,
        probe_every_s: float = PROBE_EVERY_S,
    ) -> None:
        self.venue = venue
        self.window_s = window_s
        self.probe_every_s = probe_every_s
        self.until: float | None = None  # trio time the window ends
        self._last_probe: float | None = None
        self.opened = 0  # windows opened (tests, summaries)
        self.held = 0  # requests not sent because of the throttle
        self.publish: Callable[[object], None] | None = None  # set once the core is bound

    def is_open(self) -> bool:
        if self.until is None:
            return False
        if trio.current_time() >= self.until:
            self._close("throttle window over")
            return False
        return True

    def remaining_s(self) -> float:
        return 0.0 if not self.is_open() or self.until is None else self.until - trio.current_time()

    def admit(self, kind: str) -> bool:
        """Raise `Throttled` unless a request of `kind` may go out now; True if it goes out as
        a probe inside the window (its answer says whether the window is over).

        kind: "poll" (never while open), "submit" (never while open), "probe" (cancel, query,
        token: one per `probe_every_s` while open)."""
        if not self.is_open():
            return False
        if kind == "probe":
            now = trio.current_time()
            if self._last_probe is None or now - self._last_probe >= self.probe_every_s:
                self._last_probe = now
                log.info("throttled: sending one probe", venue=self.venue)
                return True
        self.held += 1
        raise Throttled(f"{self.venue}: IP throttled after a 429, {self.remaining_s():.0f}s left")

    def on_429(self, path: str) -> None:
        if self.is_open():
            return  # [INF] a 429 inside the window does not extend it
        now = trio.current_time()
        self.until = now + self.window_s
        self._last_probe = now
        self.opened += 1
        log.warning(
            "429: every paxos request throttled", venue=self.venue, path=path, for_s=self.window_s
        )
        self._status(VenueState.THROTTLED, f"429 on {path}: requests held for {self.window_s:.0f}s")

    def on_probe_answered(self) -> None:
        """A probe got a non-429 answer: the venue let it through, the window is over."""
        if self.until is not None:
            self._close("a probe was answered")

    def _close(self, why: str) -> None:
        self.until = None
        self._last_probe = None
        log.info("throttle lifted", venue=self.venue, why=why)
        self._status(VenueState.CONNECTED, f"throttle lifted: {why}")

    def _status(self, state: VenueState, reason: str) -> None:
        if self.publish is not None:
            self.publish(VenueStatus(self.venue, state, 0, reason=reason, stream="rest"))

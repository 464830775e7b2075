"""Event bus: synchronous dispatch from the receiving task to subscribed handlers.

Subscriptions are by event type (a base class such as `OrderEvent` receives every subclass) and
optionally by venue and symbol. Dispatch happens in the task that received the frame: no queue, no
scheduler hop. A handler that raises is logged with its owner (the strategy) and isolated; the
other handlers and the session carry on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import structlog

log = structlog.get_logger("botrun.bus")

# a handler that raises on every event would print a traceback per event: the first few are
# logged in full, then one line at each power of ten of the owner's error count
TRACEBACKS_PER_OWNER = 3

Handler = Callable[[Any], None]


@attrs.frozen(slots=True)
class Subscription:
    event_type: type
    handler: Handler
    venue: str | None
    symbol: str | None
    owner: str


def nothing(event: Any) -> None:
    """The dispatcher of an event type nobody subscribed to (a hot path may skip calling it)."""
    return None


class Bus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        # concrete event type -> its dispatcher: a function that calls each matching
        # subscription's handler in turn (filters and isolation included), resolved once per
        # type (MRO walk) and compiled to straight-line code (see `_compile`). Cleared, never
        # replaced, on a subscription change: `routes` hands out this dict
        self._routes: dict[type, Handler] = {}
        # subscriptions paused (by id): kept in their place, left out of the dispatchers
        self._paused: dict[int, Subscription] = {}
        # dispatchers by the subscriptions they call (pausing and resuming brings the same
        # sets back: compiled once each)
        self._compiled: dict[tuple[Subscription, ...], Handler] = {}
        self.handler_errors: Counter[str] = Counter()
        # called after a handler raised (owner, exception): the engine's `--fail-fast` stops there
        self.on_handler_error: Callable[[str, BaseException], None] | None = None

    def subscribe(
        self,
        event_type: type,
        handler: Handler,
        *,
        venue: str | None = None,
        symbol: str | None = None,
        owner: str = "",
    ) -> Subscription:
        sub = Subscription(event_type, handler, venue, symbol, owner)
        self._subs.append(sub)
        self._routes.clear()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.remove(sub)
        self._paused.pop(id(sub), None)
        self._routes.clear()

    def pause(self, sub: Subscription) -> None:
        """Stop calling `sub`'s handler until `resume(sub)`; it keeps its place in the order.
        For a handler that knows it has nothing to do for a while (no call per event then)."""
        if id(sub) not in self._paused:
            self._paused[id(sub)] = sub
            self._routes.clear()

    def resume(self, sub: Subscription) -> None:
        if self._paused.pop(id(sub), None) is not None:
            self._routes.clear()

    @property
    def routes(self) -> dict[type, Handler]:
        """Event type -> its dispatcher, for a hot path that publishes one type: `d =
        routes.get(T) or bus.route(T); d(event)` is `publish(event)` without the call to it."""
        return self._routes

    def route(self, event_type: type) -> Handler:
        """The dispatcher of `event_type` (every matching subscription, in subscription order)."""
        paused = self._paused
        subs = tuple(
            s for s in self._subs if issubclass(event_type, s.event_type) and id(s) not in paused
        )
        try:
            dispatch = self._compiled.get(subs)
        except TypeError:  # a handler that cannot be hashed: compiled every time
            dispatch = self._compile(subs)
        if dispatch is None:
            if len(self._compiled) >= 1024:
                self._compiled.clear()
            dispatch = self._compiled[subs] = self._compile(subs)
        self._routes[event_type] = dispatch
        return dispatch

    def _compile(self, subs: tuple[Subscription, ...]) -> Handler:
        # what publish did per event in a loop over (handler, venue, symbol, owner) tuples,
        # unrolled: one `try` per handler, a filter read once per event (events are immutable)
        if not subs:
            return nothing
        scope: dict[str, Any] = {"_isolate": self._isolate}
        lines = ["def dispatch(event):"]
        if any(s.venue is not None for s in subs):
            lines.append("    venue = getattr(event, 'venue', None)")
        if any(s.symbol is not None for s in subs):
            lines.append("    symbol = getattr(event, 'symbol', None)")
        for i, sub in enumerate(subs):
            scope[f"_h{i}"], scope[f"_o{i}"] = sub.handler, sub.owner
            scope[f"_v{i}"], scope[f"_s{i}"] = sub.venue, sub.symbol
            tests = []
            if sub.venue is not None:
                tests.append(f"venue == _v{i}")
            if sub.symbol is not None:
                tests.append(f"symbol == _s{i}")
            indent = "    "
            if tests:
                lines.append(f"    if {' and '.join(tests)}:")
                indent = "        "
            lines += [
                f"{indent}try:",
                f"{indent}    _h{i}(event)",
                f"{indent}except Exception as exc:",
                f"{indent}    _isolate(_o{i}, event, exc)",
            ]
        exec("\n".join(lines) + "\n", scope)  # as attrs builds __init__
        return scope["dispatch"]  # type: ignore[no-any-return]

    def publish(self, event: Any) -> None:
        dispatch = self._routes.get(type(event))
        if dispatch is None:
            dispatch = self.route(type(event))
        dispatch(event)

    def _isolate(self, owner: str, event: Any, exc: BaseException) -> None:
        self.handler_errors[owner] += 1
        n = self.handler_errors[owner]
        where = {
            "strategy": owner,
            "event_type": type(event).__name__,
            "venue": getattr(event, "venue", None),
            "symbol": getattr(event, "symbol", None),
        }
        if n <= TRACEBACKS_PER_OWNER:
            log.exception("handler raised; isolated", **where)
        elif str(n).rstrip("0") == "1":
            log.error(
                "handler keeps raising; tracebacks suppressed",
                errors=n,
                error=f"{type(exc).__name__}: {exc}",
                **where,
            )
        if self.on_handler_error is not None:
            self.on_handler_error(owner, exc)

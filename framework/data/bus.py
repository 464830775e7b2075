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


class Bus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        # concrete event type -> (handler, venue, symbol, owner) of each matching subscription,
        # resolved once per type (MRO walk); plain tuples: the hot path unpacks them in C
        self._routes: dict[type, tuple[tuple[Handler, str | None, str | None, str], ...]] = {}
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
        self._routes.clear()

    def _route(self, event_type: type) -> tuple[tuple[Handler, str | None, str | None, str], ...]:
        route = tuple(
            (s.handler, s.venue, s.symbol, s.owner)
            for s in self._subs
            if issubclass(event_type, s.event_type)
        )
        self._routes[event_type] = route
        return route

    def publish(self, event: Any) -> None:
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        for handler, venue, symbol, owner in route:
            if venue is not None or symbol is not None:
                if venue is not None and venue != getattr(event, "venue", None):
                    continue
                if symbol is not None and symbol != getattr(event, "symbol", None):
                    continue
            try:
                handler(event)
            except Exception as exc:
                self._isolate(owner, event, exc)

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

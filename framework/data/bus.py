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
            except Exception:
                self._isolate(owner, event)

    def _isolate(self, owner: str, event: Any) -> None:
        self.handler_errors[owner] += 1
        log.exception(
            "handler raised; isolated",
            strategy=owner,
            event_type=type(event).__name__,
            venue=getattr(event, "venue", None),
            symbol=getattr(event, "symbol", None),
        )

"""The strategy the distributed tests run as a `botrun ... --bus` subprocess.

params: `tag` (the strategy's name, so two processes are two strategies), `mode`:
`trade` crosses the spread (buy at the ask, sell at the bid) every 0.2 s, up to `orders`,
and stops after `stop_after` fills;
`rest` places one buy far below the market and keeps it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from framework import BookNotSynced, Strategy


class BusTrader(Strategy):
    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.name = str(self.params.get("tag", "bus"))
        self.sent = 0
        self.filled = 0

    def on_start(self) -> None:
        self.venue, self.symbol = self.default_market()
        self.every(0.2, self.tick)

    def tick(self) -> None:
        try:
            book = self.book(self.venue, self.symbol)
            bid, ask = book.best_bid(), book.best_ask()
        except BookNotSynced:
            return
        if bid is None or ask is None:
            return
        qty = Decimal("0.001")
        if self.params.get("mode") == "rest":
            if self.sent == 0:
                self.sent = 1
                self.buy(self.venue, self.symbol, qty, bid[0] - Decimal(500), post_only=True)
            return
        if self.sent >= int(self.params.get("orders", 4)):
            return
        self.sent += 1
        if self.sent % 2:
            self.buy(self.venue, self.symbol, qty, ask[0])
        else:
            self.sell(self.venue, self.symbol, qty, bid[0])

    def on_filled(self, event: Any) -> None:
        self.log.info("strategy filled", client_order_id=event.client_order_id)
        self.filled += 1
        if (
            self.filled >= int(self.params.get("stop_after", 2))
            and self.params.get("mode") != "rest"
        ):
            self.stop()  # done: the test need not wait for a duration

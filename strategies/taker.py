"""A simple taker: every `interval_s` it crosses the spread with a small market order, alternating
buy and sell so inventory stays near zero. Useful to see fills and fees end to end."""

from __future__ import annotations

from decimal import Decimal

from framework import BookNotSynced, OrderFill, Strategy


class Taker(Strategy):
    def on_start(self) -> None:
        p = self.params
        self.venue, self.symbol = self.default_market()
        self.size = Decimal(str(p.get("size", "0.001")))
        self.buy_next = True
        self.every(float(p.get("interval_s", 1.0)), self.take)

    def take(self) -> None:
        try:
            if not self.book(self.venue, self.symbol).best_ask():
                return
        except BookNotSynced:
            return
        if self.buy_next:
            self.buy(self.venue, self.symbol, self.size)
        else:
            self.sell(self.venue, self.symbol, self.size)
        self.buy_next = not self.buy_next

    def on_filled(self, event: OrderFill) -> None:
        self.log.info(
            "filled",
            side=event.side.value,
            price=str(event.price),
            qty=str(event.quantity),
            fee=str(event.fee),
        )

"""Spread-quoting market maker: one bid and one ask around mid, inside an inventory limit.

Every `refresh_s` it re-quotes if mid moved more than `requote_ticks` since the quotes went out,
or a side is missing. Quotes are post-only where the venue has post-only orders (its declared
capabilities); where it has none (Power.Trade) they are plain limits kept one tick off the other
side, so they do not cross either. Prices are rounded to what the venue keeps (tick, and e.g.
Open Trade's 7 significant digits), bids down and asks up. When inventory reaches
`max_inventory` in one direction, only the side that reduces it is quoted.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from framework import BookNotSynced, OrderFill, OrderRejected, Side, Strategy


class MarketMaker(Strategy):
    def on_start(self) -> None:
        self.venue, self.symbol = self.default_market()
        # `by_venue.<venue>` overrides the shared params for that venue (prices differ by orders
        # of magnitude between venues: a spread in bps that fits one is far off on another)
        p = {**self.params, **self.params.get("by_venue", {}).get(self.venue, {})}
        self.size = Decimal(str(p.get("size", "0.01")))
        self.half_spread_bps = Decimal(str(p.get("half_spread_bps", "2")))
        self.max_inventory = Decimal(str(p.get("max_inventory", "0.05")))
        self.requote_ticks = int(p.get("requote_ticks", 4))
        inst = self.instrument(self.venue, self.symbol)
        self.tick = inst.tick if inst and inst.tick else Decimal(str(p.get("tick", "0.01")))
        self.quoted_mid: Decimal | None = None
        self.post_only = self.capabilities(self.venue).post_only
        self.every(float(p.get("refresh_s", 0.5)), self.requote)

    def requote(self) -> None:
        try:
            book = self.book(self.venue, self.symbol)
            mid, best_bid, best_ask = book.mid(), book.best_bid(), book.best_ask()
        except BookNotSynced:
            return  # never quote off a book we cannot trust
        if mid is None or best_bid is None or best_ask is None:
            return
        working = self.open_orders(self.venue, self.symbol)
        sides = {o.side for o in working}
        moved = self.quoted_mid is None or abs(mid - self.quoted_mid) >= (
            self.requote_ticks * self.tick
        )
        if not moved and len(sides) == 2:
            return
        for order in working:
            self.cancel(order)
        inventory = self.position(self.venue, self.symbol)
        offset = mid * self.half_spread_bps / Decimal(10_000)
        bid = ((mid - offset) / self.tick).to_integral_value(ROUND_FLOOR) * self.tick
        ask = ((mid + offset) / self.tick).to_integral_value(ROUND_CEILING) * self.tick
        # never at or through the other side: a maker quote, post-only or not
        bid = self.venue_price(self.venue, self.symbol, min(bid, best_ask[0] - self.tick), Side.BUY)
        ask = self.venue_price(
            self.venue, self.symbol, max(ask, best_bid[0] + self.tick), Side.SELL
        )
        if inventory + self.size <= self.max_inventory:
            self.buy(self.venue, self.symbol, self.size, bid, post_only=self.post_only)
        if inventory - self.size >= -self.max_inventory:
            self.sell(self.venue, self.symbol, self.size, ask, post_only=self.post_only)
        self.quoted_mid = mid

    def on_filled(self, event: OrderFill) -> None:
        self.log.info(
            "filled",
            side=event.side.value,
            price=str(event.price),
            qty=str(event.quantity),
            client_order_id=event.client_order_id,
        )

    def on_partial_fill(self, event: OrderFill) -> None:
        self.on_filled(event)

    def on_rejected(self, event: OrderRejected) -> None:
        self.log.warning("rejected", reason=event.reason, client_order_id=event.client_order_id)

    def on_stop(self) -> None:
        self.log.info("stopping", inventory=str(self.position(self.venue, self.symbol)))

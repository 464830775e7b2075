"""RFQ responder (Power.Trade): answers incoming RFQs with firm quotes inside limits.

For every RFQ on a configured market it quotes the opposite side with a firm limit order, priced
`edge_bps` better than the book's best price on that side but never through the spread, for at
most `max_quantity` and only while the position stays within `max_inventory`. Unanswered quotes
are withdrawn after `quote_ttl_s`.

    botrun strategies/rfq_responder.py --venue powertrade --mode sandbox

(`sandbox` mode sends real orders to the simulator; in `paper` mode RFQs can be watched but not
answered, since the paper broker does not speak RFQs.)
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from framework import BookNotSynced, OrderFill, OrderRejected, Side, Strategy
from framework.venues.powertrade.events import RfqAdded, RfqEvent, RfqSnapshot


class RfqResponder(Strategy):
    def on_start(self) -> None:
        p = self.params
        self.venue = str(p.get("venue", "powertrade"))
        self.edge_bps = Decimal(str(p.get("edge_bps", "0.1")))
        self.max_quantity = Decimal(str(p.get("max_quantity", "0.01")))
        self.max_inventory = Decimal(str(p.get("max_inventory", "0.05")))
        self.quote_ttl_s = float(p.get("quote_ttl_s", 5))
        self.answered: set[str] = set()
        self.quotes: dict[str, float] = {}  # client order id -> trio time sent
        self.on(RfqEvent, self.on_rfq, venue=self.venue)
        self.every(1.0, self.withdraw_stale)

    def on_rfq(self, event: RfqEvent) -> None:
        if isinstance(event, RfqAdded) and event.rfq is not None:
            self.answer(event.rfq)
        elif isinstance(event, RfqSnapshot):
            for rfq in event.rfqs:
                self.answer(rfq)

    def answer(self, rfq) -> None:  # rfq: framework.venues.powertrade.events.Rfq
        if rfq.rfq_id in self.answered or len(rfq.legs) != 1:
            return
        client = self.venue_client(self.venue)
        if not hasattr(client, "answer_rfq"):
            self.log.info("RFQ seen; paper mode cannot answer it", rfq_id=rfq.rfq_id)
            return
        inst = self.instrument(self.venue, rfq.symbol)
        if inst is None or inst.tick is None or inst.lot is None:
            return  # not a market we trade
        try:
            book = self.book(self.venue, rfq.symbol)
            bid, ask = book.best_bid(), book.best_ask()
        except (BookNotSynced, KeyError):
            return  # never quote off a book we cannot trust
        if bid is None or ask is None:
            return
        qty = (min(rfq.quantity, self.max_quantity) / inst.lot).to_integral_value(ROUND_FLOOR)
        qty *= inst.lot
        if qty <= 0 or (inst.min_qty is not None and qty < inst.min_qty):
            return
        position = self.position(self.venue, rfq.symbol)
        # we take the other side of the requester: they buy, we sell
        our_side = rfq.side.opposite
        after = position - qty if our_side is Side.SELL else position + qty
        if abs(after) > self.max_inventory:
            return
        edge = (ask[0] if our_side is Side.SELL else bid[0]) * self.edge_bps / Decimal(10_000)
        if our_side is Side.SELL:
            price = ((ask[0] - edge) / inst.tick).to_integral_value(ROUND_FLOOR) * inst.tick
            price = max(price, bid[0] + inst.tick)  # never through the spread
        else:
            price = ((bid[0] + edge) / inst.tick).to_integral_value(ROUND_CEILING) * inst.tick
            price = min(price, ask[0] - inst.tick)
        if rfq.price > 0 and (
            (our_side is Side.SELL and price > rfq.price)
            or (our_side is Side.BUY and price < rfq.price)
        ):
            return  # outside the requester's limit
        self.answered.add(rfq.rfq_id)
        handle = client.answer_rfq(self, rfq, price, qty)
        self.quotes[handle.client_order_id] = self._now()
        self.log.info(
            "answered RFQ",
            rfq_id=rfq.rfq_id,
            side=our_side.value,
            price=str(price),
            qty=str(qty),
            client_order_id=handle.client_order_id,
        )

    def withdraw_stale(self) -> None:
        now = self._now()
        for order in self.open_orders(self.venue):
            sent = self.quotes.get(order.client_order_id)
            if sent is not None and now - sent >= self.quote_ttl_s:
                self.cancel(order)

    @staticmethod
    def _now() -> float:
        import trio

        return trio.current_time()

    def on_filled(self, event: OrderFill) -> None:
        self.quotes.pop(event.client_order_id, None)
        self.log.info("quote filled", price=str(event.price), qty=str(event.quantity))

    def on_rejected(self, event: OrderRejected) -> None:
        self.quotes.pop(event.client_order_id, None)
        self.log.warning("quote rejected", reason=event.reason)


STRATEGY = RfqResponder

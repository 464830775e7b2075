"""The order flow the crash-recovery test kills: passive and crossing orders, and cancels.

Every action logs one line; the test kills the process after a (seeded) random number of them.
With `drain = true` it places nothing, so a last run only reconciles and (on SIGTERM) cancels.
"""

from __future__ import annotations

import random
from decimal import Decimal

from framework import BookNotSynced, Strategy
from framework.events import Side


class CrashDriver(Strategy):
    def on_start(self) -> None:
        self.venue, self.symbol = self.default_market()
        self.rng = random.Random(int(self.params.get("seed", 1)))
        self.drain = bool(self.params.get("drain", False))
        self.asked: set[str] = set()  # client order ids this run asked to cancel
        self.lot = Decimal(str(self.params.get("lot", "0.0001")))  # the venue's (ChaosCase.lot)
        inst = self.instrument(self.venue, self.symbol)
        self.tick = inst.tick if inst is not None else Decimal("0.01")
        self.every(float(self.params.get("interval_s", 0.02)), self.act)

    def act(self) -> None:
        if self.drain:
            return
        try:
            book = self.book(self.venue, self.symbol)
            bid, ask = book.best_bid(), book.best_ask()
        except BookNotSynced:
            return
        if bid is None or ask is None:
            return
        working = self.open_orders(self.venue, self.symbol)
        # each order is asked to cancel once per run: an order whose cancel is refused until
        # reconciliation settles it (e.g. one the venue never got, UNKNOWN until "not found" is
        # believed) would otherwise take a cancel line every tick, and the kill point, counted in
        # lines, would come before anything else happened, run after run
        fresh = [o for o in working if o.client_order_id not in self.asked]
        if len(working) >= 4 or (fresh and self.rng.random() < 0.3):
            if not fresh:
                return  # wait for the cancels asked (or reconciliation) to settle
            victim = fresh[0]
            if self.cancel(victim):
                self.asked.add(victim.client_order_id)
                self.log.info("cancel", client_order_id=victim.client_order_id)
            return
        side = self.rng.choice((Side.BUY, Side.SELL))
        qty = self.lot * self.rng.randint(1, 5)
        crossing = ask[0] + self.tick if side is Side.BUY else bid[0] - self.tick
        # never trade with ourselves (venues forbid or mishandle self-trades)
        own_hit = any(
            o.side is not side
            and o.price is not None
            and (o.price <= crossing if side is Side.BUY else o.price >= crossing)
            for o in working
        )
        if self.rng.random() < 0.25 and not own_hit:  # crossing: fills at once (or partly)
            price = crossing
        else:
            ticks = self.rng.randint(0, 3)
            price = bid[0] - ticks * self.tick if side is Side.BUY else ask[0] + ticks * self.tick
        send = self.buy if side is Side.BUY else self.sell
        handle = send(self.venue, self.symbol, qty, price)
        self.log.info("order", client_order_id=handle.client_order_id, side=side.value)


STRATEGY = CrashDriver

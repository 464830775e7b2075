"""Paper broker: orders never reach the venue; they fill against its live book and trades.

Market orders walk the book. Limit orders that cross take liquidity up to their price; the rest
rests with a queue position estimated from the displayed size at that price when it joined. A
resting order fills as public trades print at its price (after the queue ahead is consumed) or
through it, and when the book crosses it. Stop orders wait, accepted, until a public trade prints
at or through their stop price, then work as a market (STOP_MARKET) or limit (STOP_LIMIT) order
against the book of that moment. Paper fills produce the same execution reports, hence the same
order events, as real ones.

The broker refuses what its venue refuses: the venue's declared `Capabilities` (post-only,
modify, order types, time in force; the same checks also run before an order leaves, in risk),
and what the account cannot pay for. A spot venue needs the quote to pay (price x quantity plus
the taker fee) or the base to deliver, net of what open orders already reserve; a margin venue
(Roxom's perpetuals) needs the order's initial margin (reference price x quantity / leverage)
free of what positions and open orders use, as the venue's simulator checks it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from decimal import Decimal

import attrs
import structlog
import trio

from framework.data.book import OrderBook
from framework.errors import BookNotSynced, OrderNotFound, OrderRefused
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    ExecutionReport,
    Liquidity,
    OrderStatus,
    OrderType,
    PublicTrade,
    Side,
    TimeInForce,
)
from framework.execution.checks import capability_refusal, modify_capability_refusal
from framework.execution.fill_models import LatencyModel, QueueModel
from framework.model import Instrument, Order
from framework.venue import Capabilities, ExecutionClient

log = structlog.get_logger("botrun.paper")
_ZERO = Decimal(0)
_STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})
_MARKETS = frozenset({OrderType.MARKET, OrderType.STOP_MARKET})


@attrs.define(kw_only=True)
class PaperConfig:
    maker_fee_rate: Decimal = Decimal("0.0002")
    taker_fee_rate: Decimal = Decimal("0.0005")
    latency_ms: float = 5.0
    balances: dict[str, Decimal] = attrs.Factory(
        lambda: {"USD": Decimal("100000"), "BTC": Decimal("1"), "ETH": Decimal("10")}
    )


@attrs.define(slots=True, eq=False)
class _Resting:
    order: Order
    queue_ahead: Decimal
    # displayed liquidity this order already filled against, by price: paper fills never
    # remove it from the real feed, so it must not fill the same order twice
    consumed: dict[Decimal, Decimal] = attrs.Factory(dict)
    # displayed size at our price when last seen (the queue model needs the change)
    level: Decimal = _ZERO


class PaperBroker(ExecutionClient):
    client_order_id_max_len = 36
    order_types = frozenset(OrderType)
    # in-process: cancelling every resting order at once is as exact as one by one
    supports_cancel_all = True

    def __init__(
        self,
        venue: str,
        cfg: PaperConfig,
        *,
        book: Callable[[str], OrderBook | None],
        instruments: dict[str, Instrument],
        capabilities: Capabilities | None = None,
    ) -> None:
        self.venue = venue
        self.cfg = cfg
        # what the venue takes; permissive if it declares nothing
        self.capabilities = capabilities or Capabilities()
        # margin accounts: signed size and average entry per symbol (the venue's positions)
        self._positions: dict[str, tuple[Decimal, Decimal]] = {}
        self._book = book
        self._instruments = instruments
        self._resting: dict[str, dict[str, _Resting]] = {}  # symbol -> coid -> resting
        self._stops: dict[str, dict[str, Order]] = {}  # symbol -> coid -> untriggered stop
        # coid -> (final status, filled quantity) of every order this broker finished: a venue
        # still answers about an order after it ends (a cancel that lost the race with the last
        # fill is followed by a query, and "never heard of it" would undo the FILLED)
        self._final: dict[str, tuple[OrderStatus, Decimal]] = {}
        self._fill_ids = itertools.count(1)
        self.balances: dict[str, Decimal] = dict(cfg.balances)
        # realism hooks (framework/execution/fill_models.py); None: fixed latency_ms, and the
        # queue ahead only shrinks to the level's size
        self.latency_model: LatencyModel | None = None
        self.queue_model: QueueModel | None = None
        # `watch(symbol, on)`: whoever feeds on_book/on_trade (the core, through the bus) may
        # stop while no order works in a market; called with True before an order starts
        # working there, with False from a handler that found none working there
        self.watch: Callable[[str, bool], None] | None = None
        self._watched: set[str] = set()

    def _watch(self, symbol: str) -> None:
        if symbol not in self._watched and self.watch is not None:
            self._watched.add(symbol)
            self.watch(symbol, True)

    def _unwatch(self, symbol: str) -> None:
        if symbol in self._watched and not self._stops.get(symbol):
            self._watched.discard(symbol)
            self.watch(symbol, False)  # type: ignore[misc]  # set, or nothing is watched

    def _latency_s(self) -> float:
        model = self.latency_model
        return self.cfg.latency_ms / 1000 if model is None else model.sample_s()

    async def run(self) -> None:
        for asset in sorted(self.balances):
            self._publish_balance(asset)
        await trio.sleep_forever()

    # --- ExecutionClient ---------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        await trio.sleep(self._latency_s())
        book = self._book(order.symbol)
        if book is None or not book.is_synced:
            raise OrderRefused("paper: no synced book to fill against")
        refusal = capability_refusal(order, self.capabilities)
        if refusal is not None:
            raise OrderRefused(refusal)
        if order.post_only and order.type is OrderType.LIMIT and self._crosses(order, book):
            raise OrderRefused("post-only order would take liquidity")
        refusal = self._funds_refusal(order, book)
        if refusal is not None:
            raise OrderRefused(refusal)
        self._report(
            ExecutionReport(
                self.venue,
                order.client_order_id,
                status=OrderStatus.ACCEPTED,
                venue_order_id=f"paper-{order.client_order_id}",
            )
        )
        if order.type in _STOPS:
            self._watch(order.symbol)
            self._stops.setdefault(order.symbol, {})[order.client_order_id] = order
        else:
            self._work(order, book)
        return None

    async def cancel(self, order: Order) -> ExecutionReport | None:
        await trio.sleep(self._latency_s())
        resting = self._resting.get(order.symbol, {}).pop(order.client_order_id, None)
        stop = self._stops.get(order.symbol, {}).pop(order.client_order_id, None)
        if resting is None and stop is None:
            raise OrderNotFound(f"paper: {order.client_order_id} is not resting")
        self._finish(order, OrderStatus.CANCELLED)
        return ExecutionReport(self.venue, order.client_order_id, status=OrderStatus.CANCELLED)

    async def cancel_all(self, symbol: str | None = None) -> None:
        for working in (self._resting, self._stops):
            for sym, orders in working.items():
                if symbol in (None, sym):
                    for coid in list(orders):
                        held = orders.pop(coid)
                        self._finish(
                            held.order if isinstance(held, _Resting) else held,
                            OrderStatus.CANCELLED,
                        )
                        self._report(
                            ExecutionReport(self.venue, coid, status=OrderStatus.CANCELLED)
                        )

    async def modify(
        self, order: Order, price: Decimal | None, quantity: Decimal | None
    ) -> ExecutionReport | None:
        """Amend a resting order where the venue supports it (its queue place is lost)."""
        await trio.sleep(self.cfg.latency_ms / 1000)
        refusal = modify_capability_refusal(self.venue, price, self.capabilities)
        if refusal is not None:
            raise OrderRefused(refusal)
        rest = self._resting.get(order.symbol, {}).get(order.client_order_id)
        if rest is None:
            raise OrderRefused(f"paper: {order.client_order_id} is not resting")
        new_price = order.price if price is None else price
        new_qty = order.quantity if quantity is None else quantity
        if new_qty <= order.filled_qty:
            raise OrderRefused("quantity must stay above the filled quantity")
        book = self._book(order.symbol)
        if book is not None and book.is_synced and new_price is not None:
            rest.queue_ahead = book.size_at(order.side is Side.BUY, new_price)
        return ExecutionReport(
            self.venue,
            order.client_order_id,
            status=OrderStatus.PARTIALLY_FILLED if order.filled_qty else OrderStatus.ACCEPTED,
            price=new_price,
            quantity=new_qty,
        )

    async def query_order(self, order: Order) -> ExecutionReport | None:
        coid = order.client_order_id
        if coid in self._resting.get(order.symbol, {}) or coid in self._stops.get(order.symbol, {}):
            return ExecutionReport(
                self.venue,
                coid,
                status=OrderStatus.PARTIALLY_FILLED if order.filled_qty else OrderStatus.ACCEPTED,
                venue_order_id=f"paper-{coid}",
                cum_qty=order.filled_qty,
            )
        final = self._final.get(coid)
        if final is not None:
            status, filled = final
            return ExecutionReport(
                self.venue, coid, status=status, venue_order_id=f"paper-{coid}", cum_qty=filled
            )
        # paper state does not survive a restart: an order it never held (or held before one)
        # is unknown here
        return None

    async def list_open_orders(self) -> list[ExecutionReport]:
        working = [r.order for orders in self._resting.values() for r in orders.values()]
        working += [o for orders in self._stops.values() for o in orders.values()]
        return [
            ExecutionReport(
                self.venue,
                o.client_order_id,
                status=OrderStatus.PARTIALLY_FILLED if o.filled_qty else OrderStatus.ACCEPTED,
                venue_order_id=f"paper-{o.client_order_id}",
                cum_qty=o.filled_qty,
                price=o.price,
                quantity=o.quantity,
                symbol=o.symbol,
                side=o.side,
            )
            for o in working
        ]

    # --- market data (subscribed on the bus by the runner) -----------------------------------

    def on_trade(self, trade: PublicTrade) -> None:
        # both look up the symbol first: asked here, a trade where nothing works costs no call
        if self._resting.get(trade.symbol):
            self._fill_resting(trade)
        # after the resting orders: the trade that sets a stop off happened before it worked
        if self._stops.get(trade.symbol):
            self._trigger_stops(trade)
        elif not self._resting.get(trade.symbol):
            self._unwatch(trade.symbol)

    def _fill_resting(self, trade: PublicTrade) -> None:
        resting = self._resting.get(trade.symbol)
        if not resting:
            return
        left = trade.size
        for rest in list(resting.values()):
            if left <= 0:
                break
            order = rest.order
            assert order.price is not None
            through = (
                trade.price < order.price if order.side is Side.BUY else (trade.price > order.price)
            )
            at = trade.price == order.price
            if not (through or at):
                continue
            if at:
                # the book will show this trade as a smaller level: not a cancellation
                rest.level = max(_ZERO, rest.level - left)
                eaten = min(rest.queue_ahead, left)
                rest.queue_ahead -= eaten
                left -= eaten
                if left <= 0:
                    break
            qty = min(order.remaining, left)
            left -= qty
            self._fill(order, order.price, qty, Liquidity.MAKER)
            if order.remaining <= 0:
                resting.pop(order.client_order_id, None)

    def _trigger_stops(self, trade: PublicTrade) -> None:
        stops = self._stops.get(trade.symbol)
        if not stops:
            return
        book = self._book(trade.symbol)
        if book is None or not book.is_synced:
            return  # nothing to fill against: the stops stay armed for the next trade
        for order in list(stops.values()):
            assert order.stop_price is not None
            hit = (
                trade.price >= order.stop_price
                if order.side is Side.BUY
                else trade.price <= order.stop_price
            )
            if hit:
                del stops[order.client_order_id]
                self._work(order, book)

    def on_book(self, event: BookDelta | BookSnapshot) -> None:
        resting = self._resting.get(event.symbol)
        if not resting:
            self._unwatch(event.symbol)
            return
        book = self._book(event.symbol)
        if book is None or not book.is_synced:
            return
        for rest in list(resting.values()):
            order = rest.order
            price = order.price
            assert price is not None
            buy = order.side is Side.BUY
            # cancellations ahead of us shrink the level; we cannot be further back than it is
            size = book.size_at(buy, price)
            if self.queue_model is None:
                rest.queue_ahead = min(rest.queue_ahead, size)
            else:
                rest.queue_ahead = self.queue_model.after_level_change(
                    rest.queue_ahead, rest.level, size
                )
            rest.level = size
            # `_crosses`, inlined (this runs per resting order per delta): the book is synced,
            # checked above, and nothing in this loop changes its levels
            best = book.best_ask() if buy else book.best_bid()
            if best is not None and (best[0] <= price if buy else best[0] >= price):
                # the market traded through our price: we would have been hit at our price,
                # by liquidity we have not already filled against
                qty = _ZERO
                for price, size in self._levels(order, book):
                    fresh = size - rest.consumed.get(price, _ZERO)
                    take = min(order.remaining - qty, fresh)
                    if take > 0:
                        rest.consumed[price] = rest.consumed.get(price, _ZERO) + take
                        qty += take
                self._fill(order, order.price, qty, Liquidity.MAKER)
                if order.remaining <= 0:
                    resting.pop(order.client_order_id, None)

    # --- funds ---------------------------------------------------------------------------------

    def _working(self) -> list[Order]:
        orders = [r.order for rest in self._resting.values() for r in rest.values()]
        return orders + [o for stops in self._stops.values() for o in stops.values()]

    def _estimate(self, order: Order, book: OrderBook) -> Decimal | None:
        """What the order pays per unit at worst: its limit, its trigger, or the book's walk."""
        if order.price is not None:
            return order.price
        if order.type is OrderType.STOP_MARKET and order.stop_price is not None:
            return order.stop_price
        levels = book.asks() if order.side is Side.BUY else book.bids()
        left, cost = order.quantity, _ZERO
        for price, size in levels:
            take = min(left, size)
            cost += take * price
            left -= take
            if left <= 0:
                return cost / order.quantity
        return levels[-1][0] if levels else None

    def _reserved(self, asset: str) -> Decimal:
        """What open orders hold of `asset` on a spot account."""
        total = _ZERO
        fee = 1 + max(self.cfg.taker_fee_rate, self.cfg.maker_fee_rate, _ZERO)
        for o in self._working():
            inst = self._instruments.get(o.symbol)
            if inst is None:
                continue
            if o.side is Side.BUY and inst.quote == asset:
                price = o.price if o.price is not None else o.stop_price
                total += (price or _ZERO) * o.remaining * fee
            elif o.side is Side.SELL and inst.base == asset:
                total += o.remaining
        return total

    def _margin_used(self) -> Decimal:
        lev = self.capabilities.leverage
        used = sum((abs(q) * avg / lev for q, avg in self._positions.values()), _ZERO)
        for o in self._working():
            price = o.price if o.price is not None else o.stop_price
            if price is not None:
                used += o.remaining * price / lev
        return used

    def _funds_refusal(self, order: Order, book: OrderBook) -> str | None:
        inst = self._instruments.get(order.symbol)
        if inst is None:
            return None
        price = self._estimate(order, book)
        if price is None:
            return "paper: no price to execute against"
        if self.capabilities.account == "margin":
            qty, _ = self._positions.get(order.symbol, (_ZERO, _ZERO))
            signed = order.quantity if order.side is Side.BUY else -order.quantity
            if qty != 0 and (qty > 0) != (signed > 0) and abs(signed) <= abs(qty):
                return None  # reducing a position frees margin
            needed = price * order.quantity / self.capabilities.leverage
            free = self.balances.get(inst.quote, _ZERO) - self._margin_used()
            if needed > free:
                return (
                    f"insufficient balance: margin {needed} {inst.quote} above free {free}"
                    f" (leverage {self.capabilities.leverage})"
                )
            return None
        if order.side is Side.BUY:
            fee = 1 + max(self.cfg.taker_fee_rate, self.cfg.maker_fee_rate, _ZERO)
            needed = price * order.quantity * fee
            free = self.balances.get(inst.quote, _ZERO) - self._reserved(inst.quote)
            if needed > free:
                return f"insufficient funds: {needed} {inst.quote} needed, {free} available"
        else:
            free = self.balances.get(inst.base, _ZERO) - self._reserved(inst.base)
            if order.quantity > free:
                return (
                    f"insufficient funds: {order.quantity} {inst.base} to deliver, {free} available"
                )
        return None

    # --- mechanics ---------------------------------------------------------------------------

    def _work(self, order: Order, book: OrderBook) -> None:
        """An accepted (or just triggered) order meets the book: a market order walks it, a limit
        order takes what crosses and rests the remainder with its place in the queue."""
        if order.type in _MARKETS:
            self._take(order, book, limit=None)
            self._end_unfilled(order)
            return
        assert order.price is not None
        if order.tif is TimeInForce.FOK and self._available(order, book) < order.quantity:
            self._finish(order, OrderStatus.CANCELLED)
            self._report(
                ExecutionReport(
                    self.venue,
                    order.client_order_id,
                    status=OrderStatus.CANCELLED,
                    reason="FOK not fully fillable",
                )
            )
            return
        consumed = self._take(order, book, limit=order.price) if self._crosses(order, book) else {}
        if order.remaining <= 0:
            return
        if order.tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._end_unfilled(order)
            return
        ahead = book.size_at(order.side is Side.BUY, order.price)
        self._watch(order.symbol)
        self._resting.setdefault(order.symbol, {})[order.client_order_id] = _Resting(
            order, ahead, consumed, ahead
        )

    @staticmethod
    def _crosses(order: Order, book: OrderBook) -> bool:
        try:
            level = book.best_ask() if order.side is Side.BUY else book.best_bid()
        except BookNotSynced:
            return False
        if level is None or order.price is None:
            return False
        return level[0] <= order.price if order.side is Side.BUY else level[0] >= order.price

    @staticmethod
    def _levels(order: Order, book: OrderBook) -> list[tuple[Decimal, Decimal]]:
        levels = book.asks() if order.side is Side.BUY else book.bids()
        if order.price is None or order.type in _MARKETS:
            return levels
        if order.side is Side.BUY:
            return [lv for lv in levels if lv[0] <= order.price]
        return [lv for lv in levels if lv[0] >= order.price]

    def _available(self, order: Order, book: OrderBook) -> Decimal:
        return sum((size for _, size in self._levels(order, book)), _ZERO)

    def _take(self, order: Order, book: OrderBook, limit: Decimal | None) -> dict[Decimal, Decimal]:
        """Fill against the displayed levels; returns what was taken at each price."""
        taken: dict[Decimal, Decimal] = {}
        for price, size in self._levels(order, book):
            if order.remaining <= 0:
                break
            qty = min(size, order.remaining)
            taken[price] = qty
            self._fill(order, price, qty, Liquidity.TAKER)
        return taken

    def _end_unfilled(self, order: Order) -> None:
        if order.remaining > 0:
            self._finish(order, OrderStatus.CANCELLED)
            self._report(
                ExecutionReport(
                    self.venue,
                    order.client_order_id,
                    status=OrderStatus.CANCELLED,
                    reason="unfilled remainder of an immediate order",
                )
            )

    def _fill(self, order: Order, price: Decimal, qty: Decimal, liquidity: Liquidity) -> None:
        if qty <= 0:
            return
        rate = self.cfg.maker_fee_rate if liquidity is Liquidity.MAKER else self.cfg.taker_fee_rate
        fee = price * qty * rate
        inst = self._instruments.get(order.symbol)
        if inst is not None and self.capabilities.account == "margin":
            # a perpetual: the position changes, the wallet (in quote) takes PnL and fees
            signed = qty if order.side is Side.BUY else -qty
            self.balances[inst.quote] = (
                self.balances.get(inst.quote, _ZERO) + self._settle(order.symbol, signed, price)
            ) - fee
        elif inst is not None:
            signed = qty if order.side is Side.BUY else -qty
            self.balances[inst.base] = self.balances.get(inst.base, _ZERO) + signed
            self.balances[inst.quote] = self.balances.get(inst.quote, _ZERO) - signed * price - fee
        self._report(
            ExecutionReport(
                self.venue,
                order.client_order_id,
                fill_id=f"paper-{next(self._fill_ids)}",
                fill_price=price,
                fill_qty=qty,
                fee=fee,
                fee_asset=inst.quote if inst else None,
                liquidity=liquidity,
            )
        )
        if order.remaining <= 0:
            # the report above completed it (the order manager applies fills as they come)
            self._finish(order, OrderStatus.FILLED)
        if inst is not None:
            if self.capabilities.account != "margin":
                self._publish_balance(inst.base)
            self._publish_balance(inst.quote)

    def _settle(self, symbol: str, signed: Decimal, price: Decimal) -> Decimal:
        """Apply a fill to a margin position; returns the PnL it realized (quote units)."""
        qty, avg = self._positions.get(symbol, (_ZERO, _ZERO))
        pnl = _ZERO
        if qty == 0 or (qty > 0) == (signed > 0):
            total = qty + signed
            avg = (avg * abs(qty) + price * abs(signed)) / abs(total)
            qty = total
        else:
            closing = min(abs(qty), abs(signed))
            pnl = (price - avg) * closing * (1 if qty > 0 else -1)
            new = qty + signed
            if new == 0:
                avg = _ZERO
            elif (new > 0) != (qty > 0):
                avg = price
            qty = new
        self._positions[symbol] = (qty, avg)
        return pnl

    def _finish(self, order: Order, status: OrderStatus) -> None:
        """Remember how the order ended, for `query_order`."""
        self._final[order.client_order_id] = (status, order.filled_qty)

    def _report(self, report: ExecutionReport) -> None:
        if self.ctx is not None:
            self.ctx.on_report(report)

    def _publish_balance(self, asset: str) -> None:
        if self.ctx is not None:
            total = self.balances.get(asset, _ZERO)
            locked = (
                min(total, self._reserved(asset))
                if self.capabilities.account != "margin"
                else _ZERO
            )
            self.ctx.publish(Balance(self.venue, asset, total - locked, locked, time.time_ns()))

"""What Open Trade pushes: the whole book every 20 ms, public trades, and private order and balance
updates (each checking the subscription's token)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio

from framework.events import Side
from framework.sim.engine import (
    SimFill,
)
from framework.venues.opentrade.sim.common import (
    EXCHANGE,
    SimOrderState,
    WsSession,
    _iso_us,
    _text,
    assets_of,
    num,
)


class Publisher:
    """Frames to subscribers: books, trades, orders and balances."""

    def publish_books(self) -> None:
        """Send every subscribed book now (the 20 ms publisher does the same)."""
        now_ms = self._clock_ns() // 1_000_000
        for session in list(self.ws_sessions):
            for symbol, levels in session.books.items():
                session.conn.enqueue(self._book_frame(symbol, levels, now_ms))

    def broadcast_raw(self, text: str) -> None:
        """Send a raw frame to every WS client (bad-input tests)."""
        for session in list(self.ws_sessions):
            session.conn.enqueue(text)

    # --- engine callbacks ------------------------------------------------------------------

    def on_trade(self, fill: SimFill) -> None:
        # our side of the trade, for GET TRADES_HISTORY (before the order's own update is
        # pushed: a client that asks after seeing the update finds the fill listed)
        for owner, engine_id in (
            (fill.maker_owner, fill.maker_order_id),
            (fill.taker_owner, fill.taker_order_id),
        ):
            order = self.orders.own(self.engine, engine_id) if owner == self.account else None
            if order is not None:
                order.fills.append((fill.trade_id, fill.price, fill.quantity, fill.ts_ns))
        trade = {
            "class": "PublicTrade",
            "exchange": EXCHANGE,
            "symbol": fill.symbol,
            "price": num(fill.price),
            "quantity": num(fill.quantity),
            "tradeSide": fill.aggressor.value,
            "eventTime": fill.ts_ns // 1_000_000,
        }
        frame = _text(
            {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "TRADE_PUBLIC", "data": [trade]}
        )
        for session in list(self.ws_sessions):
            if fill.symbol in session.trades:
                session.conn.enqueue(frame)

    # --- pushing to subscribers ------------------------------------------------------------

    def _private_ok(self, session: WsSession, channel: str) -> bool:
        """A private push needs a live token: an expired one ends the private subscriptions."""
        self._roll_token_expiry()
        error = self.token_error(session.token)
        if error is None:
            return True
        # [INF] the venue tells the client once, then stops its private updates
        self._count("expired_subscriptions")
        session.conn.enqueue(
            _text({"command": "SUBSCRIBE", "event": "ERROR", "channel": channel, "message": error})
        )
        session.orders.clear()
        session.balance.clear()
        session.token = None
        return False

    def _push_orders(self, symbol: str, items: list[dict[str, Any]]) -> None:
        frame = _text(
            {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "TRADE_PRIVATE", "data": items}
        )
        for session in list(self.ws_sessions):
            if symbol in session.orders and self._private_ok(session, "TRADE_PRIVATE"):
                session.conn.enqueue(frame)

    def _push_balances(self, assets: tuple[str, ...]) -> None:
        for session in list(self.ws_sessions):
            wanted = [a for a in assets if a in session.balance]
            if not wanted or not self._private_ok(session, "BALANCE"):
                continue
            data = [self._balance_item(a) for a in wanted]
            session.conn.enqueue(
                _text(
                    {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "BALANCE", "data": data}
                )
            )

    # --- items -----------------------------------------------------------------------------

    def _order_item(self, order: SimOrderState, *, history: bool = False) -> dict[str, Any]:
        """An `Order` item. Active orders and updates name the order `orderId` +
        `exchOrderId`, history items `clientOrderId` + `exchangeOrderId` (as published)."""
        ids = (
            {"clientOrderId": order.client_order_id, "exchangeOrderId": order.exch_order_id}
            if history
            else {"orderId": order.client_order_id, "exchOrderId": order.exch_order_id}
        )
        item: dict[str, Any] = {
            "class": "Order",
            **ids,
            "direction": order.side.value,
            "orderType": order.order_type,
            "timeInForce": order.tif,
            "orderStatus": order.status,
            "price": None if order.price is None else num(order.price),
            "amount": num(order.amount),
            # [INF] filledPrice = average fill price
            "filledPrice": num(order.avg_price),
            "orderDateTime": _iso_us(order.created_ns),
            "globalInstrumentCd": order.symbol,
            "message": order.message,
        }
        if order.exchange_name:
            item["exchange"] = order.exchange_name
        if self.fill_amounts:
            # not published: an option, the cumulative filled amount
            item["filledAmount"] = num(order.filled)
        return item

    def _trade_item(
        self, order: SimOrderState, fill: tuple[str, Decimal, Decimal, int]
    ) -> dict[str, Any]:
        """One fill as GET TRADES_HISTORY lists it [INF: an `Order` item, `amount` = the fill's
        size, `filledPrice` its price, `orderDateTime` its time, `tradeId` the trade]."""
        trade_id, price, size, ts_ns = fill
        return {
            "class": "Order",
            "clientOrderId": order.client_order_id,
            "exchangeOrderId": order.exch_order_id,
            "tradeId": trade_id,
            "direction": order.side.value,
            "orderType": order.order_type,
            "orderStatus": "FILLED" if order.filled >= order.amount else "PARTIALLY_FILLED",
            "price": None if order.price is None else num(order.price),
            "filledPrice": num(price),
            "amount": num(size),
            "orderDateTime": _iso_us(ts_ns),
            "globalInstrumentCd": order.symbol,
            "message": None,
        }

    def _balance_item(self, asset: str) -> dict[str, Any]:
        total = self.accounts.balances(self.account).get(asset, Decimal(0))
        locked = Decimal(0)
        for order in self.orders.values():
            if not order.is_open or order.price is None or order.state is None:
                continue
            base, quote = assets_of(order.symbol)
            remaining = order.state.remaining
            if order.side is Side.BUY and quote == asset:
                locked += remaining * order.price
            elif order.side is Side.SELL and base == asset:
                locked += remaining
        return {
            "class": "Balance",
            "currencyCode": asset,
            "balance": num(total),
            "available": num(total - locked),
            "locked": num(locked),
        }

    def _book_frame(self, symbol: str, levels: int, now_ms: int) -> str:
        bids, asks = self.engine.book(symbol, levels)
        self.published[(symbol, levels)] = (bids, asks)
        book = {
            "class": "OrderBook",
            "exchange": EXCHANGE,
            "symbol": symbol,
            "bids": [[num(p), num(s)] for p, s in bids],
            "asks": [[num(p), num(s)] for p, s in asks],
            "eventTime": now_ms,
        }
        return _text(
            {
                "command": "SUBSCRIBE",
                "event": "UPDATE",
                "channel": "ORDER_BOOK_PUBLIC",
                "data": [book],
            }
        )

    # --- timers ----------------------------------------------------------------------------

    async def _book_loop(self) -> None:
        while True:
            await trio.sleep(self.book_interval_s)
            if self.timed_books:
                self.publish_books()  # [DOC] the whole book every 20 ms, changed or not

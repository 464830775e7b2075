"""Power.Trade order-by-order (L3) market data, derived from the engine's order callbacks, and the
account's executions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio

from framework.events import Side
from framework.sim.engine import (
    FILLED,
    OPEN,
    SimFill,
    SimOrder,
)
from framework.venues.powertrade.sim.common import (
    ALREADY_SUBSCRIBED,
    PARSE_ERROR,
    SUBSCRIPTION_FAILED,
    _Client,
    _Refuse,
    _text,
    _us,
    trade_id,
    wire,
)


class L3Feed:
    """`subscribe`/`unsubscribe`, snapshots, and engine callbacks as book and execution messages."""

    # --- market data ---------------------------------------------------------------------------

    def _subscribe(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        if body.get("market_id", "0") != "0":
            raise _Refuse(PARSE_ERROR, "subscribe: market_id must be 0")
        symbol = self._symbol(body)
        kind = body.get("type", "snap_with_deltas")
        if kind not in ("snap_only", "snap_with_deltas", "snap_full_updates"):
            raise _Refuse(PARSE_ERROR, f"subscribe: unknown type {kind}")
        interval = body.get("interval", "0")
        if not interval.isdigit() or int(interval) % 100:
            raise _Refuse(PARSE_ERROR, "subscribe: interval must be a multiple of 100 ms")
        if symbol in client.books or symbol in client.delta_books:
            # [CODE Hummingbot IGNORABLE_ERROR_TEXTS] refused, and no snapshot comes
            raise _Refuse(SUBSCRIPTION_FAILED, ALREADY_SUBSCRIBED)
        self._ok(client, tag)
        # snapshot and subscription with no await between: no change falls in the gap
        self._send(client, "snapshot", self._snapshot(symbol))
        if kind == "snap_full_updates":
            client.books.add(symbol)  # order-level messages
        elif kind == "snap_with_deltas":
            # [DOC] one `deltas` message per interval if the book changed; [INF] "0" = 100 ms
            every = max(int(interval), 100) / 1000
            client.delta_books[symbol] = [every, trio.current_time() + every]
        # snap_only: [INF] the first snapshot only (the periodic ones are not simulated)

    def _unsubscribe(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        # [INF] not in the venue's material; kept for the simulator's own tests
        symbol = self._symbol(body)
        client.books.discard(symbol)
        client.delta_books.pop(symbol, None)
        client.pending.pop(symbol, None)
        self._ok(client, tag)

    # --- snap_with_deltas ----------------------------------------------------------------------

    def on_level(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        for client in self._clients:
            if symbol in client.delta_books:
                client.pending.setdefault(symbol, {})[(side, price)] = size

    def _flush_deltas(self, now: float) -> None:
        for client in list(self._clients):
            for symbol, timing in client.delta_books.items():
                if now < timing[1]:
                    continue
                timing[1] = now + timing[0]
                changes = client.pending.pop(symbol, None)
                if changes:
                    self._send(client, "deltas", self._deltas(symbol, changes))

    def _deltas(self, symbol: str, changes: dict[tuple[Side, Decimal], Decimal]) -> dict[str, Any]:
        """[CODE Hummingbot `convert_diff_message_to_order_book_row`] absolute level sizes under
        `add_price_level`, removed prices under `delete_price_level` ([INF] a list when several,
        a single price string when one, as Hummingbot reads it)."""
        body: dict[str, Any] = {
            "server_utc_timestamp": _us(self._clock_ns()),
            "market_id": "0",
            "tradeable_entity_id": self.markets[symbol].entity_id,
            "symbol": symbol,
        }
        for side, key in ((Side.BUY, "buy"), (Side.SELL, "sell")):
            adds = [
                {"price": wire(p), "quantity": wire(q)}
                for (s, p), q in sorted(changes.items(), key=lambda c: c[0][1])
                if s is side and q > 0
            ]
            gone = [wire(p) for (s, p), q in sorted(changes.items(), key=lambda c: c[0][1])
                    if s is side and q <= 0]  # fmt: skip
            out: dict[str, Any] = {}
            if adds:
                out["add_price_level"] = adds
            if gone:
                out["delete_price_level"] = gone[0] if len(gone) == 1 else gone
            body[key] = out
        return body

    def _snapshot(self, symbol: str) -> dict[str, Any]:
        m = self.markets[symbol]
        orders = self._l3[symbol]
        rows: dict[Side, list[tuple[Decimal, int, str, Decimal]]] = {Side.BUY: [], Side.SELL: []}
        for oid, (side, price, size, ts) in orders.items():
            rows[side].append((price, ts, oid, size))
        rows[Side.BUY].sort(key=lambda r: (-r[0], r[1]))
        rows[Side.SELL].sort(key=lambda r: (r[0], r[1]))

        def row(r: tuple[Decimal, int, str, Decimal]) -> dict[str, str]:
            return {"utc_timestamp": _us(r[1]), "price": wire(r[0]), "quantity": wire(r[3]),
                    "order_id": r[2]}  # fmt: skip

        return {
            "server_utc_timestamp": _us(self._clock_ns()),
            "market_id": "0",
            "tradeable_entity_id": m.entity_id,
            "symbol": symbol,
            "buy": [row(r) for r in rows[Side.BUY]],
            "sell": [row(r) for r in rows[Side.SELL]],
        }

    def _book_message(self, symbol: str, kind: str, fields: dict[str, str]) -> None:
        now = _us(self._clock_ns())
        body = {
            "server_utc_timestamp": now,
            "utc_timestamp": now,
            "market_id": "0",
            "tradeable_entity_id": self.markets[symbol].entity_id,
            "symbol": symbol,
            **fields,
        }
        frame = _text(kind, body)
        for client in list(self._clients):
            if symbol in client.books:
                self._send_raw(client, frame)

    # --- engine callbacks ----------------------------------------------------------------------

    def on_order(self, order: SimOrder) -> None:
        if order.symbol in self._l3:
            self._l3_change(order)
        if order.owner == self.owner:
            self._own_order(order)

    def _l3_change(self, order: SimOrder) -> None:
        book = self._l3[order.symbol]
        prior = book.get(order.order_id)
        resting = order.status == OPEN and order.price is not None and order.remaining > 0
        side = "buy" if order.side is Side.BUY else "sell"
        if prior is None:
            if resting:
                assert order.price is not None
                book[order.order_id] = (order.side, order.price, order.remaining, order.updated_ns)
                fields = {"side": side, "order_id": order.order_id, "price": wire(order.price),
                          "quantity": wire(order.remaining)}  # fmt: skip
                self._book_message(order.symbol, "order_added", fields)
            return
        _, price, size, ts = prior
        base = {"side": side, "order_id": order.order_id, "price": wire(price)}
        if resting and order.remaining < size:
            book[order.order_id] = (order.side, price, order.remaining, ts)
            # [INF] order_executed `quantity` = the quantity executed by this event
            qty = wire(size - order.remaining)
            self._book_message(order.symbol, "order_executed", {**base, "quantity": qty})
        elif not resting:
            del book[order.order_id]
            if order.status == FILLED:
                # fully executed: the order leaves the book with its last execution
                qty = wire(size)
                self._book_message(order.symbol, "order_executed", {**base, "quantity": qty})
            else:
                self._book_message(order.symbol, "order_deleted", base)

    def on_trade(self, fill: SimFill) -> None:
        now = _us(fill.ts_ns)
        self._book_message(
            fill.symbol,
            "trade",
            {
                "trade_id": trade_id(fill),
                "price": wire(fill.price),
                "quantity": wire(fill.quantity),
                "buy_display_order_id": "",
                "sell_display_order_id": "",
            },
        )
        for engine_id, owner, flag in (
            (fill.maker_order_id, fill.maker_owner, "added"),
            (fill.taker_order_id, fill.taker_owner, "taken"),
        ):
            if owner != self.owner:
                continue
            order = self._own(engine_id)
            if order is None:
                continue
            self._accepted(order)
            order.filled += fill.quantity
            order.state = "filled" if order.filled >= order.quantity else "partial_fill"
            execution = {
                "trade_id": trade_id(fill),
                "executed_price": wire(fill.price),
                "executed_quantity": wire(fill.quantity),
                "liquidity_flag": flag,
                "utc_timestamp": now,
            }
            order.executions.append(execution)
            self._to_owner(
                "execution",
                {
                    "server_utc_timestamp": now,
                    "tradeable_entity_id": self.markets[order.symbol].entity_id,
                    "symbol": order.symbol,
                    "order_id": order.order_id,
                    "client_order_id": order.client_order_id,
                    # [CODE integration/ws/order-execution.test.ts] the order's price as sent
                    # ("10") beside the venue-written executed_price ("10.0")
                    **{k: v for k, v in self._echoed(order).items() if k == "price"},
                    "side": order.side.value.lower(),
                    "order_state": order.state,
                    **execution,
                },
            )

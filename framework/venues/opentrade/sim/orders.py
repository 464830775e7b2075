"""Open Trade order entry over the WebSocket: CREATE, CANCEL (one or the whole pair), MODIFY
(cancel and replace on the engine, fills kept), the engine's outcomes, GTT/GTD expiry."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import trio

from framework.events import Side
from framework.sim.engine import (
    GTC,
    LIMIT,
    MARKET,
    OPEN,
    SimOrder,
)
from framework.venues.opentrade.sim.common import (
    ORDER_TYPES,
    TIFS,
    Refused,
    SimOrderState,
    WsSession,
    _positive,
    _text,
    assets_of,
    cut_price,
    next_new_york_close_ns,
    round_amount,
)


class OrderEntry:
    """TRADE_PRIVATE order commands and the order updates they cause."""

    # --- order commands --------------------------------------------------------------------

    def _order_command(
        self, session: WsSession, msg: dict, command: str, reply: Callable[..., str]
    ) -> list[str]:
        if msg.get("channel") != "TRADE_PRIVATE":
            raise Refused(f"{command} goes to channel TRADE_PRIVATE")
        self._roll_token_expiry()
        error = self.token_error(msg.get("signature"))
        if error:
            raise Refused(error)
        data = msg.get("data")
        if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
            raise Refused("data must hold exactly one Order")
        item = data[0]
        symbol = item.get("globalInstrumentCd")
        if symbol not in self.engine.symbols():
            raise Refused(f"unknown instrument {symbol!r}")
        # Each handler validates, then queues its ACK itself before touching the engine, so the
        # ACK precedes the order updates the engine's callbacks push. [INF] an ACK at all: the
        # SDK skips ACKs before the answer, so it expects them.
        ack = partial(session.conn.enqueue, reply("ACK"))
        if command == "CREATE":
            self._create(session, item, symbol, ack)
        elif command == "CANCEL":
            self._cancel(item, symbol, ack, session)
        else:
            self._modify(item, symbol, ack, session)
        return []

    def _answer(self, session: WsSession, items: list[dict[str, Any]], *, event: bool) -> None:
        """The published answer form: `{"command":"GET","channel":"TRADE_PRIVATE","data":[…]}`,
        with `"event":"GET"` (MODIFY) or without an `event` at all (CREATE) [CODE SDK README];
        to the requesting connection, subscribed or not (the SDK sends MODIFY on a fresh one)."""
        body: dict[str, Any] = {"command": "GET", "channel": "TRADE_PRIVATE", "data": items}
        if event:
            body = {"command": "GET", "event": "GET", "channel": "TRADE_PRIVATE", "data": items}
        session.conn.enqueue(_text(body))

    def _create(self, session: WsSession, item: dict, symbol: str, ack: Callable[[], Any]) -> None:
        if symbol not in session.orders:
            # [DOC] an order for an instrument not subscribed on TRADE_PRIVATE is rejected
            self._count("unsubscribed_orders")
            raise Refused(f"instrument {symbol} is not subscribed on TRADE_PRIVATE")
        side = item.get("direction")
        if side not in ("BUY", "SELL"):
            raise Refused(f"direction must be BUY or SELL, got {side!r}")
        order_type = item.get("orderType")
        if item.get("orderSubType") == "POST_ONLY" and order_type == "LIMIT":
            order_type = "POST_ONLY"
        if order_type not in ORDER_TYPES:
            raise Refused(f"orderType must be one of {', '.join(ORDER_TYPES)}")
        # [DOC] longer amounts are rounded to 8 decimals, longer prices cut to 7 significant
        # digits; the order is worked, and reported, at what is left
        amount = round_amount(_positive(item, "amount"))
        if amount <= 0:
            raise Refused("amount rounds to zero")
        price = None if order_type == "MARKET" else cut_price(_positive(item, "price"))
        tif = item.get("timeInForce") or "GTC"
        if tif not in TIFS:
            raise Refused(f"timeInForce must be one of {', '.join(TIFS)}")
        request_type = item.get("requestType") or "SMART"
        if request_type not in ("SMART", "DIRECT"):
            raise Refused("requestType must be SMART or DIRECT")
        # [CODE] the SDK sends `exchange` (a required field there) and no `exchangeName`: taken
        # as the same thing [INF], and reported back on the order
        exchange = item.get("exchangeName") or item.get("exchange")
        if request_type == "DIRECT" and not exchange:
            raise Refused("DIRECT orders need an exchangeName")
        now = self._clock_ns()
        expire_ns = None
        if tif == "GTT":
            expire = item.get("expireTime")  # [INF] GTT expiry: epoch milliseconds
            if not isinstance(expire, int) or expire <= 0:
                raise Refused("GTT orders need expireTime (epoch milliseconds)")
            expire_ns = expire * 1_000_000
        elif tif == "GTD":
            expire_ns = next_new_york_close_ns(now)
        exch_id = str(next(self._exch_ids))
        coid = item.get("clientOrderId")
        if coid is None or coid == "":
            coid = exch_id  # [INF] without a clientOrderId the order is named by its venue id
        coid = str(coid)
        existing = self.orders.get(coid)
        # an id forgotten with its old order (see `_forget_old_orders`) is accepted again
        if existing is not None:
            raise Refused(f"duplicate clientOrderId {coid}")
        order = SimOrderState(
            client_order_id=coid,
            exch_order_id=exch_id,
            symbol=symbol,
            side=Side(side),
            order_type=order_type,
            tif=tif,
            price=price,
            amount=amount,
            request_type=request_type,
            exchange_name=exchange if isinstance(exchange, str) else None,
            created_ns=now,
            expire_ns=expire_ns,
        )
        self.orders.add(order, trim=False)
        # the ACK, then the published answer (the order, NEW, in the GET form without an
        # event); NEW, then the engine's outcome, follow as updates to the subscribers
        ack()
        self._answer(session, [self._order_item(order)], event=False)
        new = self._order_item(order)
        new["price"] = None if price is None else format(price, "f")  # [DOC] string here
        self._push_orders(symbol, [new])
        self._engine_submit(order, order.amount)
        self.orders.trim()

    def _engine_submit(self, order: SimOrderState, quantity: Decimal) -> None:
        engine_type = MARKET if order.order_type == "MARKET" else LIMIT
        # GTD/GTT rest like GTC in the engine; the simulator expires them itself
        tif = order.tif if order.tif in ("IOC", "FOK") else GTC
        live = self.engine.submit(
            self.account,
            order.symbol,
            order.side,
            engine_type,
            quantity,
            price=order.price,
            tif=tif,
            post_only=order.order_type == "POST_ONLY",
            client_order_id=order.client_order_id,
        )
        order.engine_id = live.order_id
        self.orders.bind_engine(live.order_id, order)
        if live.reject_reason:
            order.message = live.reject_reason

    def _find(self, item: dict, symbol: str) -> SimOrderState | None:
        coid = item.get("clientOrderId") or item.get("orderId")
        if coid not in (None, ""):
            order = self.orders.get(str(coid))
            return order if order is not None and order.symbol == symbol else None
        exch = item.get("exchangeOrderId") or item.get("exchOrderId")
        for order in self.orders.values():
            if order.exch_order_id == str(exch) and order.symbol == symbol:
                return order
        return None

    def _has_id(self, item: dict) -> bool:
        keys = ("clientOrderId", "orderId", "exchangeOrderId", "exchOrderId")
        return any(item.get(k) not in (None, "") for k in keys)

    def _cancel(
        self, item: dict, symbol: str, ack: Callable[[], Any], session: WsSession | None = None
    ) -> None:
        if not self._has_id(item):
            ack()
            # [DOC] a CANCEL with no id cancels every order of the pair
            self._count("cancel_all_pair")
            cancelled = [o for o in self.orders.values() if o.symbol == symbol and o.is_open]
            for order in cancelled:
                self._engine_cancel(order)
            update = {
                "class": "OrderUpdate",
                "clientId": 100141,
                "requestType": "SMART",
                "tradeSide": None,
                "instrumentCd": symbol,
                "exchangeOrderId": None,
                "clientOrderId": None,
                "transactionId": self._clock_ns() // 1_000_000,
                "orderRequestStatus": "CANCELLED",
                "message": "",
                "key": f"100141:{symbol}:{len(cancelled)}",
            }
            self._push_orders(symbol, [update])
            return
        order = self._find(item, symbol)
        if order is None or not order.is_open:
            raise Refused("order not found or not active")
        ack()
        order.cancel_requested = True
        self._engine_cancel(order)
        # [CODE SDK README] the answer is an `OrderUpdate`; published with both ids null
        # (`cancel_ack_names_order` fills them in), to the requesting connection [INF]
        named = self.cancel_ack_names_order
        update = {
            "class": "OrderUpdate",
            "clientId": 100141,
            "requestType": order.request_type,
            "tradeSide": order.side.value,
            "instrumentCd": symbol,
            "exchangeOrderId": order.exch_order_id if named else None,
            "clientOrderId": order.client_order_id if named else None,
            "transactionId": self._clock_ns() // 1_000_000,
            "orderRequestStatus": "CANCELLED",
            "message": "",
            "key": f"100141:{symbol}:{order.exch_order_id}",
        }
        frame = {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "TRADE_PRIVATE"}
        if session is not None:
            session.conn.enqueue(_text({**frame, "data": [update]}))
            if self.cancel_reply_order:
                # [INF] then the order itself in the CREATE answer's form (no event): the SDK
                # reads until a frame without an event, so without this it never returns
                self._answer(session, [self._order_item(order, history=True)], event=False)

    def _engine_cancel(self, order: SimOrderState) -> None:
        if order.engine_id is not None:
            self.engine.cancel(order.engine_id)

    def _modify(
        self, item: dict, symbol: str, ack: Callable[[], Any], session: WsSession | None = None
    ) -> None:
        order = self._find(item, symbol)
        if order is None or not order.is_open:
            raise Refused("order not found or not active")
        price = (
            cut_price(_positive(item, "price")) if item.get("price") is not None else order.price
        )
        amount = (
            round_amount(_positive(item, "amount"))
            if item.get("amount") is not None
            else order.amount
        )
        tick = self.engine.tick(symbol)
        if price is None or price % tick != 0:
            raise Refused(f"price must be a multiple of {tick}")
        if amount % self.engine.lot(symbol) != 0:
            raise Refused(f"amount must be a multiple of {self.engine.lot(symbol)}")
        if amount <= order.filled:
            raise Refused("amount must exceed the filled amount")
        if order.order_type == "POST_ONLY":
            best = (
                self.engine.best_ask(symbol)
                if order.side is Side.BUY
                else self.engine.best_bid(symbol)
            )
            crosses = best is not None and (
                price >= best if order.side is Side.BUY else price <= best
            )
            if crosses:
                raise Refused("post-only order would take liquidity")
        # the engine cannot amend: cancel the working part and place the rest anew, keeping
        # the fills (priority is lost, as with most venues' amend)
        state = order.state
        assert order.engine_id is not None and state is not None
        ack()
        order.retired.add(order.engine_id)
        self.engine.cancel(order.engine_id)
        order.prior_filled += state.filled
        order.prior_notional += state.avg_price * state.filled
        order.state = None
        order.price, order.amount = price, amount
        self._count("modified")
        self._engine_submit(order, amount - order.prior_filled)
        if session is not None:
            # [CODE SDK README] the answer: a GET frame with the order (history naming)
            self._answer(session, [self._order_item(order, history=True)], event=True)

    def on_order(self, snapshot: SimOrder) -> None:
        if snapshot.owner != self.account or snapshot.client_order_id is None:
            return
        order = self.orders.get(snapshot.client_order_id)
        if order is None:
            return
        if snapshot.order_id in order.retired:
            # an engine order replaced by a MODIFY: its cancel is not news, and its last event
            if snapshot.status != OPEN:
                order.retired.discard(snapshot.order_id)
            return
        order.state = snapshot
        if snapshot.reject_reason:
            order.message = snapshot.reject_reason
        if order.cancel_requested and order.status == "CANCELLED":
            # [INF] our CANCEL's end is told by its `OrderUpdate` only (the published answer);
            # whether an `Order` CANCELLED update follows is not shown: an option
            if self.cancel_order_update:
                self._push_orders(order.symbol, [self._order_item(order)])
            self._push_balances(assets_of(order.symbol))
            return
        self._push_orders(order.symbol, [self._order_item(order)])
        self._push_balances(assets_of(order.symbol))

    def expire_orders(self, now_ns: int | None = None) -> int:
        """Expire GTT/GTD orders whose time has come; the number expired."""
        now = self._clock_ns() if now_ns is None else now_ns
        due = [
            o
            for o in self.orders.values()
            if o.is_open and o.expire_ns is not None and o.expire_ns <= now
        ]
        for order in due:
            order.expired = True
            assert order.engine_id is not None
            self.engine.cancel(order.engine_id)  # its on_order pushes the EXPIRED update
        return len(due)

    async def _expiry_loop(self) -> None:
        while True:
            await trio.sleep(0.05)
            self.expire_orders()

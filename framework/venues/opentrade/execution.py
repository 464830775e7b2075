"""Open Trade execution: order entry over the private stream, and keeping its token fresh.

`OpenTradeExecution` sends CREATE / CANCEL / MODIFY and the GETs behind `query_order` and
`list_open_orders` through `private.PrivateStream.request` (one command at a time). Fill sizes
the venue's `Order` items leave out are summed from TRADES_HISTORY by `fills.FillSizing`.

On an auth error or shortly before the JWT expires, a new token is fetched and the private
channels are subscribed again; the snapshot of active orders and a GET per open order bring back
anything missed meanwhile. Order state lives in the core and is never reset by this.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import structlog
import trio

from framework.errors import (
    AuthError,
    ConnectionLost,
    FrameError,
    NotConnected,
    OrderNotFound,
    OrderRefused,
    RequestTimeout,
)
from framework.events import ExecutionReport, OrderStatus, Side
from framework.model import Order
from framework.transport.session import Connection
from framework.venue import ExecutionClient
from framework.venues.opentrade import messages as m
from framework.venues.opentrade.auth import is_auth_error
from framework.venues.opentrade.decode import VENUE, error_text, order_report
from framework.venues.opentrade.fills import FillSizing, date_arg, item_coid, orders_in
from framework.venues.opentrade.private import PrivateStream

log = structlog.get_logger("botrun.opentrade")


async def _first_of(timeout_s: float, *events: trio.Event) -> None:
    """Return when any of `events` is set, or after `timeout_s`."""
    with trio.move_on_after(timeout_s):
        async with trio.open_nursery() as nursery:
            for event in events:

                async def wait(event: trio.Event = event) -> None:
                    await event.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(wait)


class OpenTradeExecution(FillSizing, ExecutionClient):
    """Order entry over the private stream's WebSocket.

    Fill sizes: every report that books a fill goes through `_sized` (`fills.FillSizing`: the
    item's size, else the order's fills in TRADES_HISTORY summed), and stream reports wait for
    theirs in order, per order (`hold`).

    Prices: the core refuses a price with more than 7 significant digits or 8 decimals
    (capabilities; `Strategy.venue_price` rounds away from aggressiveness), so no price the venue
    would cut is ever sent.
    """

    # [INF] clientOrderId length limit undocumented; the SDK examples use ~20 characters
    client_order_id_max_len = 32
    # [CODE] a CANCEL without an order id cancels every order of the pair: one per market
    supports_cancel_all = True

    def __init__(
        self,
        stream: PrivateStream,
        *,
        request_type: str = "SMART",
        exchange_name: str = "",
        timeout_s: float = 10.0,
        ready_timeout_s: float = 5.0,
    ) -> None:
        self.venue = VENUE
        self.stream = stream
        self.tokens = stream.tokens
        self.request_type = request_type
        self.exchange_name = exchange_name
        self.timeout_s = timeout_s
        self.ready_timeout_s = ready_timeout_s
        self.counts: dict[str, int] = {"reauths": 0, "cancel_all": 0, "sized": 0}
        self._reauth_lock = trio.Lock()
        self._auth_gen = 0  # bumped by every re-authentication
        # submits whose reply has not come back yet, and those of them a re-authentication's
        # reconciliation passed by (their updates may have gone with the old subscription)
        self._in_flight: set[str] = set()
        self._recheck: set[str] = set()
        self._symbols: dict[str, tuple[str, int]] = {}  # coid -> (symbol, created_ns)
        self._init_fill_sizing(stream)  # stream reports that need a size wait for `_sizer`

    def bind(self, ctx: Any) -> None:
        super().bind(ctx)
        self.stream.enabled.set()

    async def _signed(
        self, build: Any, *args: Any, resend: bool = True, **kw: Any
    ) -> dict[str, Any]:
        """Send a signed command; on an auth error, re-authenticate and (`resend`) send it once
        more (the venue refused it, so nothing was done)."""
        for attempt in range(2 if resend else 1):
            generation = self._auth_gen
            message = build(*args, signature=await self.tokens.token(), **kw)
            reply = await self.stream.request(message, self.timeout_s)
            if reply.get("event") != "ERROR" or not is_auth_error(error_text(reply)):
                return reply
            if attempt == 0 and resend:
                await self.reauthenticate(since=generation, reconcile=False)
        return reply

    async def _ready(self, symbol: str) -> None:
        if symbol not in self.stream.markets:
            raise OrderRefused(
                f"{symbol} is not subscribed on TRADE_PRIVATE (venue would reject the order)"
            )
        with trio.move_on_after(self.ready_timeout_s):
            await self.stream.ready.wait()
        if not self.stream.ready.is_set():
            # nothing was sent: a definite refusal, not an unknown outcome
            raise OrderRefused("opentrade private stream not ready (TRADE_PRIVATE not subscribed)")

    # --- ExecutionClient ---------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        await self._ready(order.symbol)
        coid = order.client_order_id
        self._symbols[coid] = (order.symbol, order.created_ns)
        if len(self._symbols) > 10_000:
            self._symbols.pop(next(iter(self._symbols)))
        self._in_flight.add(coid)
        try:
            # never sent twice: a second CREATE could only duplicate or confuse the order
            reply = await self._signed(
                m.create,
                order,
                request_type=self.request_type,
                exchange_name=self.exchange_name,
                resend=False,
            )
        finally:
            self._in_flight.discard(coid)
            recheck = coid in self._recheck
            self._recheck.discard(coid)
        if reply.get("event") == "ERROR":
            text = error_text(reply)
            if is_auth_error(text):
                self.stream.reauth.set()  # a new token for the next order
            raise OrderRefused(text)  # the venue refused it: nothing was done
        if recheck:
            # the private subscription was renewed while this was in flight: NEW / ACTIVE /
            # fills may have been pushed to the dead one (and the new snapshot lists only
            # active orders), so ask
            return await self.query_order(order)
        return await self._answer(reply, order)

    async def _answer(self, reply: dict[str, Any], order: Order) -> ExecutionReport | None:
        """The order as the command's answer shows it (sized), if the answer is an `Order`."""
        for item in reply.get("data") or []:
            named = isinstance(item, dict) and item.get("class") == "Order"
            if named and item_coid(item) == order.client_order_id:
                report = attrs.evolve(order_report(item), symbol=order.symbol)
                return await self._sized(report)
        return None

    async def cancel(self, order: Order) -> ExecutionReport | None:
        if not order.client_order_id:
            raise OrderRefused("no clientOrderId: a CANCEL without one would cancel every order")
        self._symbols.setdefault(order.client_order_id, (order.symbol, order.created_ns))
        reply = await self._signed(m.cancel, order.symbol, order.client_order_id)
        if reply.get("event") == "ERROR":
            text = error_text(reply)
            if "not found" in text.lower() or "not active" in text.lower():
                raise OrderNotFound(text)
            raise OrderRefused(text)
        # [CODE] the acknowledgement (an `OrderUpdate` CANCELLED, naming the order or not, or
        # the order itself CANCELLED) ends the order; its fills are summed before it is booked
        cancelled = ExecutionReport(
            VENUE, order.client_order_id, status=OrderStatus.CANCELLED, symbol=order.symbol
        )
        if self._queue_behind_held(cancelled):
            return None  # booked, sized, after the stream's reports still waiting for a size
        report = await self._answer(reply, order)
        if report is not None and report.status is OrderStatus.CANCELLED:
            return report
        return await self._sized(cancelled)

    async def modify(
        self, order: Order, price: Decimal | None, quantity: Decimal | None
    ) -> ExecutionReport | None:
        # [INF] MODIFY carries the amount always (the order's current one if unchanged)
        amount = quantity if quantity is not None else order.quantity
        reply = await self._signed(m.modify, order.symbol, order.client_order_id, price, amount)
        if reply.get("event") == "ERROR":
            raise OrderRefused(error_text(reply))
        # the amended order (price/amount -> OrderModified), from the answer or an update
        return await self._answer(reply, order)

    async def cancel_all(self, symbol: str | None = None) -> None:
        """Explicit cancel-all: the only place a CANCEL without an order id is sent."""
        for sym in [symbol] if symbol else self.stream.markets:
            self.counts["cancel_all"] += 1
            log.warning("opentrade cancel of every order of the pair", venue=VENUE, symbol=sym)
            reply = await self._signed(m.cancel_all_orders, sym)
            if reply.get("event") == "ERROR":
                raise OrderRefused(error_text(reply))

    async def query_order(self, order: Order) -> ExecutionReport | None:
        self._symbols.setdefault(order.client_order_id, (order.symbol, order.created_ns))
        item = await self._find(order, "ACTIVE_ORDERS")
        if item is None:
            item = await self._find(order, "ORDERS_HISTORY")
        if item is None:
            return None
        report = attrs.evolve(order_report(item), symbol=order.symbol)
        if report.status is None:  # NEW: the venue has it, it is not working yet
            report = attrs.evolve(report, status=OrderStatus.SUBMITTED)
        return await self._sized(report)

    async def list_open_orders(self) -> list[ExecutionReport]:
        """[CODE] `GET TRADE_PRIVATE` `category=ACTIVE_ORDERS` for every subscribed market."""
        if not self.stream.markets:
            return []
        args = [m.arg("category", "ACTIVE_ORDERS"), m.arg("instrument", list(self.stream.markets))]
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        listed = []
        for item in orders_in(reply, "ACTIVE_ORDERS"):
            direction = str(item.get("direction", "")).upper()
            symbol = item.get("globalInstrumentCd")
            listed.append(
                attrs.evolve(
                    order_report(item),
                    fill_id=None,  # a listing, not a fill
                    symbol=symbol if isinstance(symbol, str) else None,
                    side=Side(direction) if direction in ("BUY", "SELL") else None,
                )
            )
        return listed

    async def _find(self, order: Order, category: str) -> dict[str, Any] | None:
        args = [m.arg("category", category), m.arg("instrument", [order.symbol])]
        if category == "ORDERS_HISTORY":
            start = order.created_ns - 86_400 * 1_000_000_000
            args.append(m.arg("date-from", date_arg(max(0, start))))
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        found = None
        for item in orders_in(reply, category):
            if item_coid(item) == order.client_order_id:
                found = item  # [INF] the last entry is the current state
        return found

    # --- tokens ---------------------------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sizer)
            await self._tokens_loop()

    async def _tokens_loop(self) -> None:
        """Refresh the JWT before it expires (armed from the first token on), and after an auth
        error; resubscribe each time."""
        while True:
            wait = self.tokens.seconds_to_refresh()
            if wait is None:
                # no token yet (the stream fetches it when it connects): the first one arms
                # the proactive refresh
                await _first_of(float("inf"), self.stream.reauth, self.tokens.fetched)
                if not self.stream.reauth.is_set():
                    continue
            else:
                await _first_of(wait, self.stream.reauth)
            self.stream.reauth = trio.Event()
            if self.stream.conn is None:
                continue  # not connected yet: the next connection takes a fresh token anyway
            try:
                await self.reauthenticate()
            except (AuthError, OSError, RequestTimeout, RuntimeError, FrameError) as exc:
                log.warning("opentrade re-authentication failed", venue=VENUE, error=str(exc))
                self.stream.reauth.set()
                await trio.sleep(1.0)  # back off before the next try

    async def reauthenticate(self, *, since: int | None = None, reconcile: bool = True) -> None:
        """A new token, the private channels subscribed again with it, and open orders asked for
        (updates sent while our subscription was dead are not replayed by the venue)."""
        async with self._reauth_lock:
            if since is not None and since != self._auth_gen:
                return  # another task re-authenticated after this request was signed
            self._auth_gen += 1
            self.counts["reauths"] += 1
            self.tokens.invalidate()
            token = await self.tokens.token()
            conn = self.stream.conn
            if conn is None:
                return
            requests = self.stream.requests
            rid = requests.new_id()

            async def subscribe(conn: Connection) -> None:
                await self.stream.subscribe_private(conn, token, (f"{rid}b", rid))

            try:
                reply = await requests.call(
                    subscribe,
                    request_id=rid,
                    keys=[
                        ("ack", "SUBSCRIBE", m.TRADE_PRIVATE),
                        ("error", "SUBSCRIBE", m.TRADE_PRIVATE),
                    ],
                    timeout_s=self.timeout_s,
                    what="TRADE_PRIVATE resubscribe",
                    conn=conn,
                )
            except (NotConnected, ConnectionLost):
                # closed while we fetched the token, or replaced: the reconnect subscribes with
                # a fresh token and the core reconciles after it (reconcile_on_reconnect)
                return
            if reply.get("event") == "ERROR":
                raise AuthError(f"TRADE_PRIVATE resubscribe refused: {error_text(reply)}")
        if reconcile:
            await self._reconcile_open_orders()

    async def _reconcile_open_orders(self) -> None:
        if self.ctx is None:
            return
        for order in self.ctx.open_orders(VENUE):
            if order.status is OrderStatus.PENDING:
                continue  # not sent yet
            if order.client_order_id in self._in_flight:
                # its submit asks once answered; an acknowledged SUBMITTED order is asked now:
                # its NEW / ACTIVE may have been pushed to the subscription that just died
                self._recheck.add(order.client_order_id)
                continue
            report = await self.query_order(order)
            if report is not None:
                self.ctx.on_report(report)

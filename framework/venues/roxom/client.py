"""Roxom sessions: one signed WebSocket for market data and account events, REST order entry.

Roxom takes orders over REST only; what then happens to them (accepts, fills, cancels) arrives as
`order` events on every authenticated WebSocket of the account, subscribed or not, together with
balance and position events. So the one stream carries both, and reconciles open orders after a
reconnect (whatever happened while it was away is asked for over REST).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import httpx
import structlog
import trio

from framework.errors import (
    AuthError,
    BookNotSynced,
    FrameError,
    HttpProblem,
    OrderNotFound,
    OrderRefused,
)
from framework.events import ExecutionReport, OrderType, Side, TimeInForce
from framework.model import Order
from framework.transport.rest import DEFINITE_4XX, order_outcome, request_json
from framework.transport.session import Connection
from framework.transport.wire import dec_str
from framework.venue import ExecutionClient, Stream, touch_price
from framework.venues.roxom.auth import (
    WS_PATH,
    Signer,
    canonical_body,
    canonical_query,
    rest_message,
)
from framework.venues.roxom.decode import RoxomDecoder
from framework.venues.roxom.instruments import INST_TYPE, VENUE, band_refusal
from framework.venues.roxom.tracking import OrderTracker

log = structlog.get_logger("botrun.roxom")

AUTH_FAILED = "600010"
MARKET_CHANNELS = ("level1", "trade", "depth", "ticker")
ACCOUNT_CHANNELS = ("orders", "balance", "positions")
ORDERS_PATH = "/api/v1/orders"


class RoxomStream(Stream):
    """The account's WebSocket: market channels per symbol plus the private channels."""

    name = "ws"
    # [DOC] "send ping frames every 30 seconds" ([INF] WebSocket control-frame pings)
    ping_interval_s = 30.0
    # [INF] the simulator's market moves several times a second; a real book this quiet for
    # 30 s is suspect (pings keep the socket alive, not the data)
    stale_after_s = 30.0
    reconcile_on_reconnect = True
    # [INF] the largest frames are depth snapshots (a bounded number of levels) and the
    # position list: well under this. Above it a frame is refused unread and the connection
    # started over, instead of being buffered whole (the contract's default is 64 MiB)
    max_message_size = 4 * 1024 * 1024

    def __init__(
        self,
        ws_base: str,
        signer: Signer,
        markets: list[str],
        channels: list[str],
        tracker: OrderTracker | None = None,
    ) -> None:
        super().__init__()
        self.venue = VENUE
        self._url = ws_base.rstrip("/") + WS_PATH
        self._signer = signer
        self.markets = list(markets)
        self.channels = [c for c in MARKET_CHANNELS if c in channels]
        self.decoder = RoxomDecoder(self._emit, self._on_control, self._request_resync, tracker)
        self.errors: list[str] = []
        self.acks = 0

    def _emit(self, event: Any) -> None:
        self.emit(event)

    def _request_resync(self, symbol: str) -> None:
        self.request_resync(symbol)

    async def url(self) -> str:
        return self._url

    async def handshake_headers(self) -> list[tuple[str, str]]:
        return list(self._signer.ws_headers().items())

    def subscriptions(self) -> list[dict[str, str]]:
        args = [{"channel": c, "symbol": s} for s in self.markets for c in self.channels]
        return args + [{"channel": c} for c in ACCOUNT_CHANNELS]

    async def on_connected(self, conn: Connection) -> None:
        self.decoder.depth = {s: "requested" for s in self.books()}
        # one batch (the docs ask for batching); account events come unsubscribed anyway
        await conn.send({"op": "subscribe", "args": self.subscriptions()})

    async def resync(self, conn: Connection, symbol: str) -> bool:
        # no sequence numbers: the only repair is a new subscription, which starts with a
        # snapshot; deltas of the old one still in flight are older than it (the core drops them)
        arg = [{"channel": "depth", "symbol": symbol}]
        self.decoder.depth[symbol] = "requested"
        await conn.send({"op": "unsubscribe", "args": arg})
        await conn.send({"op": "subscribe", "args": arg})
        return True

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        self.decoder.epoch = self.epoch
        self.decoder.decode(frame, recv_ns)

    def _on_control(self, msg: dict[str, Any]) -> None:
        event = msg.get("event")
        if event in ("subscribe", "unsubscribe"):
            self.acks += 1
            arg = msg.get("arg") if isinstance(msg.get("arg"), dict) else {}
            symbol = arg.get("symbol")
            # [INF] a depth subscription is acked before its snapshot, so a delta between the
            # two means the snapshot went missing (the decoder then asks for a resync)
            if (
                event == "subscribe"
                and arg.get("channel") == "depth"
                and self.decoder.depth.get(symbol) == "requested"
            ):
                self.decoder.depth[symbol] = "acked"
            return
        if event == "error":
            code, text = str(msg.get("code")), str(msg.get("msg") or "")
            if code == AUTH_FAILED:
                # the venue refused our signature: ends the connection with the auth back-off
                raise AuthError(f"roxom {code}: {text or 'authentication failed'}")
            self.errors.append(f"{code}: {text}")
            log.error("roxom error", venue=VENUE, code=code, msg=text, arg=msg.get("arg"))
            return
        raise FrameError(f"unknown event {event!r}")

    def books(self) -> list[str]:
        return list(self.markets) if "depth" in self.channels else []


# --- REST execution ------------------------------------------------------------------------------


_TIF = {TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc", TimeInForce.GTD: "gtd"}
# [DOC] orderType: a stop triggers into a market order, a stoplimit into a limit order at `px`
_ORDER_TYPE = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP_MARKET: "stop",
    OrderType.STOP_LIMIT: "stoplimit",
}


def order_body(order: Order) -> dict[str, Any]:
    """The create-order body; a stop's `stop_price` is its `triggerPx`."""
    tif = _TIF.get(order.tif)
    if tif is None:
        raise OrderRefused(f"roxom has no {order.tif.value} time in force (gtc, ioc, gtd)")
    kind = _ORDER_TYPE.get(order.type)
    if kind is None:
        raise OrderRefused(f"roxom has no {order.type.value} orders")
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "instType": INST_TYPE,
        "side": "buy" if order.side is Side.BUY else "sell",
        "orderType": kind,
        "qty": dec_str(order.quantity),
        "timeInForce": tif,
        "unit": "btc",
        # [INF] not in the documented create body, but on every order view: sent, and
        # order events are matched by it
        "clientOrderId": order.client_order_id,
    }
    if kind in ("limit", "stoplimit"):
        if order.price is None:
            raise OrderRefused(f"{kind} order needs a price")
        body["px"] = dec_str(order.price)
    if kind in ("stop", "stoplimit"):
        if order.stop_price is None:
            raise OrderRefused(f"{kind} order needs a stop price")
        body["triggerPx"] = dec_str(order.stop_price)
    if order.tif is TimeInForce.GTD:
        if not order.expire_at_ns:
            raise OrderRefused("gtd order needs an expiry")
        body["cancelAt"] = order.expire_at_ns // 1_000_000  # [DOC] an integer, ms
    if order.post_only:
        body["postOnly"] = True
    return body


def venue_message(body: Any) -> str:
    """`message: details` of a Roxom error body, or its text."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        details = error.get("details")
        return f"{message}: {details}" if details and details != message else message
    return str(body)[:200]


class RoxomExecution(ExecutionClient):
    client_order_id_max_len = 36  # [INF] undocumented; uuid length
    order_types = frozenset(_ORDER_TYPE)
    supports_cancel_all = True  # [DOC] POST /api/v1/orders/cancel-all
    # how often held events and unreadable orders are looked at (`run`)
    sweep_s = 0.5

    def __init__(
        self, http: httpx.AsyncClient, signer: Signer, tracker: OrderTracker | None = None
    ) -> None:
        self.venue = VENUE
        self._http = http
        self._signer = signer
        self.tracker = tracker or OrderTracker()

    def bind(self, ctx: Any) -> None:
        super().bind(ctx)
        self.tracker.deliver = ctx.on_report
        self.tracker.seed = self._seed
        self.tracker.known = lambda order_id: self._by_venue_id(order_id) is not None

    def _seed(self, order_id: str) -> tuple[Decimal, Decimal] | None:
        """What the core has booked of the order with this venue id (after a restart)."""
        order = self._by_venue_id(order_id)
        return (order.filled_qty, order.avg_price) if order and order.filled_qty > 0 else None

    def _by_venue_id(self, order_id: str) -> Order | None:
        if self.ctx is None:
            return None
        for order in self.ctx.open_orders(VENUE):
            if order.venue_order_id == order_id:
                return order
        return None

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """A signed REST call; returns `data` of the answer. Only idempotent calls are retried
        (see `framework.transport.rest`): a create is never sent twice."""
        query_text = canonical_query(query)
        target = f"{path}?{query_text}" if query_text else path
        # [DOC] the signature covers the query as sent: the same text goes on the wire
        message = rest_message(method, path, query_text, canonical_body(body))
        headers = self._signer.headers(message)
        answer = await request_json(
            self._http,
            method,
            target,
            venue=VENUE,
            json=body,
            headers=headers,
            idempotent=idempotent,
        )
        if isinstance(answer, dict) and answer.get("error") not in (None, False):
            raise HttpProblem(200, "error", venue_message(answer), answer)
        return answer.get("data") if isinstance(answer, dict) else answer

    # --- ExecutionClient -------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and order.price is not None:
            # [INF] the venue checks a stoplimit's px against the band when it is created
            refusal = self._band_refusal(order)
            if refusal is not None:
                raise OrderRefused(refusal)
        return await self.create(order_body(order), order)

    async def create(self, body: dict[str, Any], order: Order | None = None) -> ExecutionReport:
        """POST an order body (never re-sent: a 429/5xx/reset leaves it unknown, and the core
        reconciles). Events for its venue id that came first are applied after the link."""
        self.tracker.inflight += 1
        try:
            data = await self.call("POST", ORDERS_PATH, body=body)
        except HttpProblem as exc:
            raise _refusal_or_raise(exc) from None
        finally:
            self.tracker.inflight -= 1
        order_id = data.get("orderId") if isinstance(data, dict) else None
        if not isinstance(order_id, str) or not order_id:
            raise FrameError("create order: answer without orderId")
        coid = order.client_order_id if order else str(body.get("clientOrderId", ""))
        # only the link to the venue's id: the status comes with the order events
        link = ExecutionReport(VENUE, coid, venue_order_id=order_id)
        held = self.tracker.link(order_id, coid)
        if held and self.ctx is not None:
            # the link first (it names the venue id), then what the venue said before its reply
            self.ctx.on_report(link)
            for report in held:
                self.ctx.on_report(report)
        return link

    def _band_refusal(self, order: Order) -> str | None:
        if self.ctx is None or order.price is None:
            return None
        book = self.ctx.book(VENUE, order.symbol)
        if book is None:
            return None  # no book kept here: the venue checks the band itself
        try:
            bid, ask = book.best_bid(), book.best_ask()
        except BookNotSynced:
            return None
        return band_refusal(
            order.side is Side.BUY,
            order.price,
            bid[0] if bid else None,
            ask[0] if ask else None,
        )

    def _touch(self, order: Order) -> Decimal | None:
        """The price a market order would have met (estimating fills recovered over REST)."""
        book = self.ctx.book(VENUE, order.symbol) if self.ctx is not None else None
        return touch_price(book, order.side)

    async def cancel(self, order: Order) -> ExecutionReport | None:
        order_id = order.venue_order_id or await self._venue_id(order)
        if order_id is None:
            raise OrderNotFound(f"{order.client_order_id} unknown at roxom")
        try:
            # cancelling one order by id twice is harmless: retried like a DELETE
            data = await self.call("POST", f"{ORDERS_PATH}/{order_id}/cancel", idempotent=True)
        except HttpProblem as exc:
            raise _refusal_or_raise(exc, not_found={404}) from None
        if isinstance(data, dict) and data.get("success") is False:
            raise OrderRefused("roxom did not accept the cancel")
        # [DOC] a cancel can be delayed (pendingcancel) and the order may still fill: the
        # outcome arrives with the order events
        return None

    async def cancel_all(self, symbol: str | None = None) -> None:
        body: dict[str, Any] = {"instType": INST_TYPE}
        if symbol is not None:
            body["symbol"] = symbol
        data = await self.call("POST", f"{ORDERS_PATH}/cancel-all", body=body, idempotent=True)
        ids = data.get("cancelledOrderIds") if isinstance(data, dict) else None
        log.info("cancel-all sent", venue=VENUE, symbol=symbol, cancelled=len(ids or []))

    async def query_order(self, order: Order) -> ExecutionReport | None:
        if order.venue_order_id:
            try:
                view = await self.get_order(order.venue_order_id)
            except HttpProblem as exc:
                if exc.status == 404:
                    return None
                raise
        else:
            view = await self._find(order)
            if view is None:
                return None
        report = self.tracker.rest(view, fallback_price=order.price or self._touch(order))
        # we asked about this order: the view may not echo our id
        report = attrs.evolve(report, client_order_id=order.client_order_id)
        if self.ctx is not None and report.venue_order_id:
            for held in self.tracker.link(report.venue_order_id, order.client_order_id):
                self.ctx.on_report(held)
        return report

    async def list_open_orders(self) -> list[ExecutionReport]:
        """[DOC] `GET /api/v1/orders?instType=perpetual` (open orders unless `includeClosed`),
        answered as `{"data":{"orders":[...]}}`; never applied as fills."""
        return [OrderTracker.listed(item) for item in await self.list_orders()]

    async def get_order(self, order_id: str) -> Any:
        """[DOC] `GET /api/v1/orders/{id}` → `{"data":{"order":{...}}}` (the view itself)."""
        data = await self.call("GET", f"{ORDERS_PATH}/{order_id}", query={"unit": "btc"})
        if isinstance(data, dict) and isinstance(data.get("order"), dict):
            return data["order"]
        return data  # [INF] tolerated: the view without its `order` wrapper

    async def list_orders(
        self, symbol: str | None = None, *, include_closed: bool = False
    ) -> list[dict[str, Any]]:
        query = {
            "instType": INST_TYPE,
            "includeClosed": "true" if include_closed else "false",
            "unit": "btc",  # the unit we parse prices in
        }
        if symbol is not None:
            query["symbol"] = symbol
        data = await self.call("GET", ORDERS_PATH, query=query)
        items = data.get("orders") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise FrameError("order list: expected data.orders to be a list")
        return [item for item in items if isinstance(item, dict)]

    async def _find(self, order: Order) -> dict[str, Any] | None:
        """The venue's view of an order whose create was not answered: by `clientOrderId`, or,
        where the venue echoes none, by what it is (one unclaimed match only)."""
        items = await self.list_orders(order.symbol, include_closed=True)
        for item in items:
            if item.get("clientOrderId") == order.client_order_id:
                return item
        if any(item.get("clientOrderId") for item in items):
            return None  # the venue echoes ids, and not ours: never arrived
        return self._match(order, items)

    def _match(self, order: Order, items: list[dict[str, Any]]) -> dict[str, Any] | None:
        # [INF] no clientOrderId on the views: an order created at or after ours with its
        # symbol, side, size and price, and no other order of ours claiming it
        side = "buy" if order.side is Side.BUY else "sell"
        found = []
        for item in items:
            if item.get("id") in self.tracker.linked or item.get("side") != side:
                continue
            try:
                view = OrderTracker.listed(item)
            except FrameError:
                continue
            created = _created_ns(item.get("createdAt"))
            if (
                view.quantity == order.quantity
                and view.price == order.price
                and (created is None or created >= order.created_ns - 1_000_000_000)
            ):
                found.append(item)
        return found[0] if len(found) == 1 else None

    async def _venue_id(self, order: Order) -> str | None:
        found = await self._find(order)
        if found is None:
            return None
        order_id = found.get("id") or found.get("orderId")
        return order_id if isinstance(order_id, str) else None

    async def run(self) -> None:
        """Held events past their wait go to the core; orders whose events were unreadable
        are asked for over REST (never booked from the bad frame)."""
        while True:
            await trio.sleep(self.sweep_s)
            try:
                self.tracker.release_expired()
                for order_id in list(self.tracker.suspect):
                    await self._requery(order_id)
            except Exception as exc:  # a background loop never dies: log, try again
                log.warning("roxom order sweep failed", venue=VENUE, error=repr(exc))

    async def _requery(self, order_id: str) -> None:
        order = self._by_venue_id(order_id)
        if order is None:
            self.tracker.suspect.discard(order_id)  # not a working order of ours
            return
        view = await self.get_order(order_id)
        report = self.tracker.rest(view, fallback_price=order.price or self._touch(order))
        log.info(
            "order re-queried after an unreadable event",
            venue=VENUE,
            client_order_id=order.client_order_id,
            venue_order_id=order_id,
        )
        if self.ctx is not None:
            self.ctx.on_report(attrs.evolve(report, client_order_id=order.client_order_id))


def _created_ns(value: Any) -> int | None:
    """`createdAt`: ms in one documented example, ns in the other: told apart by magnitude."""
    if type(value) is not int or value <= 0:
        return None
    return value * 1_000_000 if value < 10**14 else value


def _refusal_or_raise(exc: HttpProblem, not_found: frozenset[int] = frozenset()) -> Exception:
    """4xx (and an error answer with 200): a definite refusal with the venue's message; 429 and
    5xx leave the outcome unknown (the core queries)."""
    return order_outcome(
        exc, refused=DEFINITE_4XX | {200}, not_found=not_found, message=_problem_message
    )


def _problem_message(exc: HttpProblem) -> str:
    if exc.status in (401, 403):
        return f"authentication refused: {venue_message(exc.body)}"
    return venue_message(exc.body)

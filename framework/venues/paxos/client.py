"""Paxos REST v2 execution (the WS streams are in `streams`, OAuth2 tokens in `tokens`).

No Paxos WebSocket carries orders: order entry, own fills and balances are REST v2. Fills are
taken from `/executions` (each has an `execution_id`, the venue fill id used for de-duplication)
before the order's new status is reported, so an order is never FILLED ahead of its fills.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

import attrs
import httpx
import structlog
import trio

from framework.errors import (
    BookNotSynced,
    FrameError,
    HttpProblem,
    OrderNotFound,
    OrderRefused,
)
from framework.events import (
    Balance,
    ExecutionReport,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueState,
    VenueStatus,
)
from framework.model import Order
from framework.transport.rest import order_outcome, request_json
from framework.transport.wire import dec, dec_str
from framework.venue import ExecutionClient, ExecutionContext
from framework.venues.paxos.decode import VENUE
from framework.venues.paxos.throttle import RestThrottle, Throttled
from framework.venues.paxos.tokens import TokenSource

log = structlog.get_logger("botrun.paxos")

_STATUS = {
    "PENDING_SUBMISSION": OrderStatus.SUBMITTED,
    "SUBMITTED": OrderStatus.SUBMITTED,
    "OPEN": OrderStatus.ACCEPTED,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}


# --- REST execution ------------------------------------------------------------------------------

QUOTE_STEP = Decimal("0.01")  # [INF] a market buy's quote_amount in cents (the spec: "500.00")
_HUGE = Decimal("1e30")  # no real amount, price or fee comes near this
_FINISHED_KEPT = 10_000  # terminal orders whose executions are remembered


def order_body(order: Order, quote_amount: Decimal | None = None) -> dict[str, Any]:
    """The create body. [DOC] MARKET BUY is sized by `quote_amount` (never `base_amount`), MARKET
    SELL by `base_amount`, limit orders by `base_amount`."""
    body: dict[str, Any] = {"side": order.side.value, "market": order.symbol}
    body["ref_id"] = order.client_order_id
    if order.type is OrderType.MARKET:
        body["type"] = "MARKET"
        body["time_in_force"] = "IOC"  # Paxos: MARKET is IOC only
        if order.side is Side.BUY:
            if quote_amount is None:
                raise OrderRefused("paxos market buy needs a quote amount")
            body["quote_amount"] = dec_str(quote_amount)
        else:
            body["base_amount"] = dec_str(order.quantity)
        return body
    assert order.price is not None
    body["base_amount"] = dec_str(order.quantity)
    body["type"] = "POST_ONLY_LIMIT" if order.post_only else "LIMIT"
    body["price"] = dec_str(order.price)
    if order.tif is TimeInForce.GTD:
        body["time_in_force"] = "GTT"
        body["expiration_date"] = str((order.expire_at_ns or 0) // 1_000_000)
    elif order.tif is TimeInForce.DAY:
        raise OrderRefused("paxos has no DAY time in force (use GTD)")
    else:
        body["time_in_force"] = order.tif.value
    return body


def market_buy_quote(quantity: Decimal, best_ask: Decimal) -> Decimal:
    """The documented conversion of a base-quantity market buy: quantity x the best ask of the
    synced book, rounded down to the cent [INF]. The amount bought is what the venue reports
    (`amount_filled`, executions): less than `quantity` if the buy walks past the best level."""
    return (quantity * best_ask).quantize(QUOTE_STEP, rounding=ROUND_DOWN)


def _amount(item: dict[str, Any], key: str, *, positive: bool = False) -> Decimal:
    """A REST amount: a finite, non-negative (or positive) decimal below 1e30."""
    value = dec(item.get(key), key)
    if value < 0 or value >= _HUGE or (positive and value == 0):
        raise FrameError(f"{key}: out of range: {item.get(key)!r}")
    return value


def _optional_amount(item: dict[str, Any], key: str) -> Decimal:
    # "" or absent when unused
    raw = item.get(key)
    return Decimal(0) if raw in (None, "") else _amount(item, key)


def report_from_order(data: dict[str, Any]) -> ExecutionReport:
    """A Paxos order object as a status report (fills come from executions, not from here)."""
    status = _STATUS.get(data.get("status", ""))
    if status is None:
        raise FrameError(f"unknown order status {data.get('status')!r}")
    ref_id = data.get("ref_id")
    if not isinstance(ref_id, str) or not ref_id:
        raise FrameError("order without ref_id")
    venue_id = data.get("id")
    if venue_id is not None and (not isinstance(venue_id, str) or not venue_id):
        raise FrameError(f"order id: unexpected {venue_id!r}")
    return ExecutionReport(VENUE, ref_id, status=status, venue_order_id=venue_id)


def _items(data: Any, what: str) -> list[dict[str, Any]]:
    """`{"items": [...], ...}` with object items, or FrameError (an HTML page, `null`...)."""
    if type(data) is not dict or type(data.get("items")) is not list:
        raise FrameError(f"{what}: unexpected body {str(data)[:80]!r}")
    items = data["items"]
    if any(type(item) is not dict for item in items):
        raise FrameError(f"{what}: an item is not an object")
    return items


def _cursor(data: dict[str, Any], what: str) -> str:
    cursor = data.get("next_page_cursor") or ""
    if not isinstance(cursor, str):
        raise FrameError(f"{what}: next_page_cursor is not a string")
    return cursor


def _object(data: Any, what: str) -> dict[str, Any]:
    if type(data) is not dict:
        raise FrameError(f"{what}: unexpected body {str(data)[:80]!r}")
    return data


class PaxosExecution(ExecutionClient):
    client_order_id_max_len = 36  # [INF] ref_id length limit undocumented; uuid-length is safe

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenSource,
        profile_id: str,
        *,
        poll_interval_s: float = 0.5,
        balance_interval_s: float = 5.0,
        throttle: RestThrottle | None = None,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.venue = VENUE
        self._http = http
        self._tokens = tokens
        self.profile_id = profile_id
        self.poll_interval_s = poll_interval_s
        self.balance_interval_s = balance_interval_s
        self.max_backoff_s = max_backoff_s
        self.throttle = throttle or tokens.throttle or RestThrottle(VENUE)
        self._seen_exec: dict[str, set[str]] = {}  # venue order id -> execution ids applied
        self._exec_cum: dict[str, Decimal] = {}  # venue order id -> executions total applied
        self._finished: OrderedDict[str, None] = OrderedDict()  # terminal orders, oldest first
        self.counts = {"bad_executions": 0, "bad_bodies": 0, "loop_errors": 0, "fills_short": 0}

    def bind(self, ctx: ExecutionContext) -> None:
        super().bind(ctx)
        self.throttle.publish = ctx.publish

    async def _call(self, method: str, path: str, *, kind: str = "probe", **kw: Any) -> Any:
        """Every Paxos REST call of the client: through the shared throttle, never retried here
        (a retry inside the 5-minute window only prolongs it; pollers ask again next turn)."""
        probing = self.throttle.admit(kind)
        headers = {"authorization": f"Bearer {await self._tokens.token()}"}
        try:
            data = await request_json(
                self._http, method, path, venue=VENUE, headers=headers, max_retries=0, **kw
            )
        except HttpProblem as exc:
            if exc.status == 429:
                self.throttle.on_429(path)
            elif probing:
                self.throttle.on_probe_answered()
            if exc.status == 401:
                self._tokens.invalidate()  # expired or revoked: fetch a new one next time
            raise
        if probing:
            self.throttle.on_probe_answered()
        return data

    # --- ExecutionClient ---------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        quote = None
        if order.type is OrderType.MARKET and order.side is Side.BUY:
            quote = self._market_buy_quote(order)
        body = order_body(order, quote)
        try:
            self.throttle.admit("submit")
        except Throttled as exc:
            raise OrderRefused(str(exc)) from None  # definite: nothing was sent
        try:
            data = await self._call(
                "POST", f"profiles/{self.profile_id}/orders", kind="submit", json=body
            )
        except HttpProblem as exc:
            if exc.status == 409 and exc.slug == "already-exists":
                # ref_id is the idempotency key: a resend after a lost reply is the same order;
                # `meta.existing` may be partial, so the full order is asked for
                return await self.query_order(order)
            # anything else (429, 5xx: never resent) leaves the outcome unknown: query it
            raise order_outcome(exc, refused={400, 403, 404}) from None
        return await self._sync(_object(data, "create"))

    def _market_buy_quote(self, order: Order) -> Decimal:
        book = self.ctx.book(VENUE, order.symbol) if self.ctx is not None else None
        try:
            best = book.best_ask() if book is not None else None
        except BookNotSynced:
            best = None
        if best is None:
            raise OrderRefused(
                "paxos market buys are sized in quote currency: no synced book with an ask to "
                f"convert {dec_str(order.quantity)} {order.symbol} (place a limit order instead)"
            )
        quote = market_buy_quote(order.quantity, best[0])
        if quote <= 0:
            raise OrderRefused(f"market buy of {dec_str(order.quantity)} is under one cent")
        log.info(
            "market buy sized in quote currency",
            venue=VENUE,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            quantity=str(order.quantity),
            best_ask=str(best[0]),
            quote_amount=str(quote),
        )
        return quote

    async def cancel(self, order: Order) -> ExecutionReport | None:
        venue_id = order.venue_order_id or await self._venue_id(order)
        if venue_id is None:
            raise OrderNotFound(f"{order.client_order_id} unknown at paxos")
        try:
            await self._call("DELETE", f"profiles/{self.profile_id}/orders/{venue_id}")
        except HttpProblem as exc:
            raise order_outcome(exc, refused={400, 403}, not_found={404}) from None
        # DELETE only acknowledges the request; GET says what happened
        data = await self._call("GET", f"profiles/{self.profile_id}/orders/{venue_id}")
        report = await self._sync(_object(data, "order"))
        if report.status is OrderStatus.ACCEPTED or report.status is None:
            return None  # still open (or its fills not all in): the poller will see it land
        return report

    async def query_order(self, order: Order) -> ExecutionReport | None:
        items = await self._orders_by_ref([order.client_order_id])
        if not items:
            return None
        return await self._sync(items[0])

    # no bulk cancel: Paxos documents none (the kill switch cancels order by order)

    async def list_open_orders(self) -> list[ExecutionReport]:
        """`GET /orders?profile_id=&status=` for each working status, paged by cursor."""
        reports = []
        for status in ("PENDING_SUBMISSION", "SUBMITTED", "OPEN"):
            cursor = ""
            while True:
                params = {"profile_id": self.profile_id, "status": status, "limit": "1000"}
                if cursor:
                    params["page_cursor"] = cursor
                data = await self._call("GET", "orders", params=params)
                reports += [self._listed(item) for item in _items(data, "orders")]
                cursor = _cursor(data, "orders")
                if not cursor:
                    break
        return reports

    @staticmethod
    def _listed(item: dict[str, Any]) -> ExecutionReport:
        def amount(key: str) -> Decimal | None:
            # "" or "0" when unused (a MARKET BUY has a quote amount, no base amount or price)
            value = _optional_amount(item, key)
            return value if value > 0 else None

        side = item.get("side")
        return ExecutionReport(
            VENUE,
            str(item.get("ref_id") or ""),
            status=_STATUS.get(str(item.get("status")), OrderStatus.ACCEPTED),
            venue_order_id=item.get("id"),
            cum_qty=_optional_amount(item, "amount_filled"),
            price=amount("price"),
            quantity=amount("base_amount"),
            symbol=item.get("market"),
            side=Side(side) if side in ("BUY", "SELL") else None,
        )

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._guarded, "order poll", self.poll_interval_s, self._poll_once)
            nursery.start_soon(
                self._guarded, "balance poll", self.balance_interval_s, self.publish_balances
            )

    # --- polling -------------------------------------------------------------------------------

    async def _guarded(
        self, name: str, interval_s: float, once: Callable[[], Awaitable[None]]
    ) -> None:
        """A background loop that never dies and never goes blind: any failure is logged, backs
        off (doubling up to `max_backoff_s`) and is told to the strategy; the loop goes on."""
        failures = 0
        while True:
            delay = interval_s
            try:
                await once()
                failures = 0
            except Throttled:
                pass  # nothing sent; the throttle told the strategy already
            except Exception as exc:  # the loop must outlive any one answer
                failures += 1
                self.counts["loop_errors"] += 1
                delay = min(self.max_backoff_s, interval_s * 2**failures)
                log.warning(
                    f"{name} failed; backing off",
                    venue=VENUE,
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                    delay_s=delay,
                )
                if self.ctx is not None and failures in (1, 5):
                    self.ctx.publish(
                        VenueStatus(
                            VENUE,
                            VenueState.STALE,
                            0,
                            reason=f"{name} failing: {type(exc).__name__}",
                            stream="rest",
                        )
                    )
            await trio.sleep(delay)

    async def _poll_once(self) -> None:
        assert self.ctx is not None
        working = [o for o in self.ctx.open_orders(VENUE) if o.status is not OrderStatus.PENDING]
        if not working:
            return
        # working orders: the poll is the throttle's sparse probe while it is open (one per
        # `probe_every_s` across every caller), so updates resume as soon as the venue allows
        for start in range(0, len(working), 100):
            refs = [o.client_order_id for o in working[start : start + 100]]
            for item in await self._orders_by_ref(refs, kind="probe"):
                report = await self._sync(item, kind="probe")
                self.ctx.on_report(report)

    async def publish_balances(self) -> None:
        data = await self._call("GET", f"profiles/{self.profile_id}/balances", kind="poll")
        now = time.time_ns()
        for item in _items(data, "balances"):
            asset = item.get("asset")
            if not isinstance(asset, str) or not asset:
                raise FrameError("balance without asset")
            balance = Balance(
                VENUE,
                asset,
                _optional_amount(item, "available"),
                _optional_amount(item, "trading"),
                now,
            )
            if self.ctx is not None:
                self.ctx.publish(balance)

    async def _orders_by_ref(self, refs: list[str], kind: str = "probe") -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [("profile_id", self.profile_id), ("limit", "1000")]
        params += [("ref_ids", r) for r in refs]
        data = await self._call("GET", "orders", kind=kind, params=params)
        wanted = set(refs)
        # an item for another ref_id would be applied to the wrong order: refuse the body
        items = _items(data, "orders")
        if any(item.get("ref_id") not in wanted for item in items):
            raise FrameError("orders: an item for a ref_id not asked for")
        return items

    async def _venue_id(self, order: Order) -> str | None:
        items = await self._orders_by_ref([order.client_order_id])
        return items[0].get("id") if items else None

    async def _sync(self, data: dict[str, Any], kind: str = "probe") -> ExecutionReport:
        """Report new executions of this order first, then its status report. If the order says
        more was filled than its executions show, the status is held back (None: the order stays
        working for the core) and the next poll asks again until they agree."""
        report = report_from_order(data)
        venue_id = report.venue_order_id
        filled = _optional_amount(data, "amount_filled")
        if venue_id and filled > self._exec_cum.get(venue_id, Decimal(0)):
            await self._report_executions(report.client_order_id, venue_id, kind)
        if not venue_id:
            return report
        applied = self._exec_cum.get(venue_id, Decimal(0))
        if filled > applied:
            self.counts["fills_short"] += 1
            log.warning(
                "order shows more filled than its executions; asking again",
                venue=VENUE,
                client_order_id=report.client_order_id,
                amount_filled=str(filled),
                executions=str(applied),
            )
            return attrs.evolve(report, status=None)
        if report.status is not None and report.status.is_terminal:
            # its executions are final and applied. Kept a while (bounded), not dropped at once:
            # a concurrent `_sync` of the same order (poll and cancel) must still see them
            self._finished[venue_id] = None
            while len(self._finished) > _FINISHED_KEPT:
                old, _ = self._finished.popitem(last=False)
                self._seen_exec.pop(old, None)
                self._exec_cum.pop(old, None)
        return report

    async def _report_executions(self, coid: str, venue_id: str, kind: str = "probe") -> None:
        """Every execution of the order, following `next_page_cursor` to the last page. Each is
        parsed and applied before it is marked seen: an unreadable one is asked for again."""
        seen = self._seen_exec.setdefault(venue_id, set())
        cursor = ""
        pages = 0
        while True:
            params = {"profile_id": self.profile_id, "order_id": venue_id, "limit": "1000"}
            if cursor:
                params["page_cursor"] = cursor
            data = await self._call("GET", "executions", kind=kind, params=params)
            for item in _items(data, "executions"):
                exec_id = item.get("execution_id")
                if isinstance(exec_id, str) and exec_id in seen:
                    continue
                try:
                    report = self._execution(coid, venue_id, item)
                except FrameError as exc:
                    self.counts["bad_executions"] += 1
                    log.warning(
                        "unreadable execution skipped; asked again next poll",
                        venue=VENUE,
                        client_order_id=coid,
                        reason=str(exc),
                        excerpt=str(item)[:200],
                    )
                    continue
                assert report.fill_id is not None and report.fill_qty is not None
                if self.ctx is not None:
                    self.ctx.on_report(report)
                seen.add(report.fill_id)
                self._exec_cum[venue_id] = self._exec_cum.get(venue_id, Decimal(0)) + (
                    report.fill_qty
                )
            cursor = _cursor(data, "executions")
            pages += 1
            if not cursor or pages >= 1000:  # 1000 pages of 1000: a cursor that never ends
                return

    @staticmethod
    def _execution(coid: str, venue_id: str, item: dict[str, Any]) -> ExecutionReport:
        exec_id = item.get("execution_id")
        if not isinstance(exec_id, str) or not exec_id:
            raise FrameError(f"execution_id: unexpected {exec_id!r}")
        order_id = item.get("order_id")
        if order_id is not None and order_id != venue_id:
            raise FrameError(f"execution of another order {order_id!r}")
        qty = _amount(item, "amount", positive=True)
        price = _amount(item, "price", positive=True)
        commission = _optional_amount(item, "commission")
        rebate = _optional_amount(item, "rebate")
        fee_asset = item.get("commission_asset") or item.get("rebate_asset")
        if fee_asset is not None and not isinstance(fee_asset, str):
            raise FrameError("commission_asset is not a string")
        rebate_asset = item.get("rebate_asset") or fee_asset
        if rebate and rebate_asset != fee_asset:
            # [INF] both are fiat-only and in the market's quote: a rebate in another asset is
            # not something the spec shows, so it is not booked against the commission
            raise FrameError(f"rebate in {rebate_asset!r}, commission in {fee_asset!r}")
        return ExecutionReport(
            VENUE,
            coid,
            venue_order_id=venue_id,
            fill_id=exec_id,
            fill_price=price,
            fill_qty=qty,
            # [INF] the fee of a fill = commission - rebate (a maker rebate is a negative fee)
            fee=commission - rebate,
            fee_asset=fee_asset,
        )

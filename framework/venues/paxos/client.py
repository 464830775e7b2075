"""Paxos sessions: public WS streams, the SOR WS stream, OAuth2 tokens and REST v2 execution.

No Paxos WebSocket carries orders: order entry, own fills and balances are REST v2. Fills are
taken from `/executions` (each has an `execution_id`, the venue fill id used for de-duplication)
before the order's new status is reported, so an order is never FILLED ahead of its fills.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import structlog
import trio

from framework.errors import AuthError, FrameError, HttpProblem, OrderNotFound, OrderRefused
from framework.events import (
    Balance,
    ExecutionReport,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from framework.model import Order
from framework.transport.rest import order_outcome, request_json
from framework.transport.session import Connection
from framework.transport.tokens import Token, TokenCache
from framework.transport.wire import dec, dec_str
from framework.venue import ExecutionClient, Stream
from framework.venues.paxos.decode import VENUE, PublicDecoder, SorDecoder

log = structlog.get_logger("botrun.paxos")

SOR_SCOPE = "exchange:read_aggregated_marketdata_stream"
REST_SCOPES = ("exchange:write_order", "exchange:read_order", "funding:read_profile")

_STATUS = {
    "PENDING_SUBMISSION": OrderStatus.SUBMITTED,
    "SUBMITTED": OrderStatus.SUBMITTED,
    "OPEN": OrderStatus.ACCEPTED,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}


class TokenSource(TokenCache):
    """OAuth2 client-credentials token in the core's token cache: refreshed once (1 - margin) of
    its lifetime has passed (never sooner than 1 s), and after a 401."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_path: str,
        client_id: str,
        client_secret: str,
        scopes: tuple[str, ...],
        *,
        refresh_margin: float = 0.2,
    ) -> None:
        super().__init__(self._fetch, margin=refresh_margin, min_margin_s=0.0, min_wait_s=1.0)
        self._http = http
        self._path = token_path
        self._client_id = client_id
        self._secret = client_secret
        self._scopes = scopes

    async def _fetch(self) -> Token:
        try:
            body = await request_json(
                self._http,
                "POST",
                self._path,
                venue=VENUE,
                idempotent=True,  # asking for a token again is harmless
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._secret,
                    "scope": " ".join(self._scopes),
                },
            )
        except HttpProblem as exc:
            if exc.status in (400, 401, 403):
                raise AuthError(f"paxos token refused: HTTP {exc.status} {exc.detail}") from None
            raise
        token, ttl = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(ttl, int | float):
            raise AuthError("paxos token response without access_token/expires_in")
        return Token(token, float(ttl))


# --- WebSocket streams ---------------------------------------------------------------------------


class PublicStream(Stream):
    """One public path; subscription is by URL, the client sends nothing."""

    ping_interval_s = 20.0
    # Paxos public feeds have no heartbeat; a quiet market is normal, so be lenient
    stale_after_s = 30.0

    def __init__(self, ws_base: str, kind: str, markets: list[str]) -> None:
        # the decoder first: `emit` and `epoch` below are the decoder's own (set by the core)
        self.decoder = PublicDecoder(lambda event: None, set(markets) if markets else None)
        super().__init__()
        self.venue = VENUE
        self.kind = kind
        self.name = kind.replace("/", "-")
        self.markets = markets
        self._base = ws_base.rstrip("/")
        # every frame goes straight to the decoder's method for this path, and its events
        # straight to the core: no forwarding call per frame or per event (the hot path)
        self.decode = {  # type: ignore[method-assign]
            "marketdata": self.decoder.marketdata,
            "executiondata": self.decoder.executiondata,
            "marketdata/stablecoin": self.decoder.stablecoin,
        }[kind]

    @property  # type: ignore[override]
    def emit(self) -> Callable[[Any], None]:
        return self.decoder.emit

    @emit.setter
    def emit(self, fn: Callable[[Any], None]) -> None:
        self.decoder.emit = fn

    @property  # type: ignore[override]
    def epoch(self) -> int:
        return self.decoder.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.decoder.epoch = value

    async def url(self) -> str:
        # one market: its own path; several: the all-markets path, filtered on `market`
        suffix = f"/{self.markets[0]}" if len(self.markets) == 1 else ""
        return f"{self._base}/{self.kind}{suffix}"

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        """Replaced per instance by the decoder's method for this path (see __init__)."""
        raise NotImplementedError

    def books(self) -> list[str]:
        return list(self.markets) if self.kind == "marketdata" else []


class SorStream(Stream):
    """The authenticated Smart Order Routing WS: book, top of book, executions, heartbeat."""

    name = "sor"
    # [INF] heartbeat period is undocumented (the simulator sends one a second); three
    # missed periods of a few seconds is a dead feed
    stale_after_s = 10.0

    def __init__(
        self,
        ws_base: str,
        tokens: TokenSource,
        markets: list[str],
        *,
        book: bool,
        top_of_book: bool,
        executions: bool,
    ) -> None:
        super().__init__()
        self.venue = VENUE
        self._url = ws_base.rstrip("/") + "/"
        self._tokens = tokens
        self.markets = markets
        self._book, self._tob, self._exec = book, top_of_book, executions
        self.decoder = SorDecoder(self._emit, self._on_reply)
        self.errors: list[str] = []

    def _emit(self, event: Any) -> None:
        self.emit(event)

    async def url(self) -> str:
        return self._url

    async def handshake_headers(self) -> list[tuple[str, str]]:
        return [("Authorization", f"Bearer {await self._tokens.token()}")]

    def _channels(self, markets: list[str]) -> list[dict[str, Any]]:
        channels: list[dict[str, Any]] = []
        for market in markets:
            if self._book:
                channels.append({"type": "market_data", "params": {"market": market}})
            if self._tob:
                channels.append({"type": "market_data.top_of_book", "params": {"market": market}})
            if self._exec:
                channels.append({"type": "execution_data", "params": {"market": market}})
        return channels

    def on_auth_rejected(self) -> None:
        self._tokens.invalidate()  # revoked or expired: the next attempt asks for a new one

    async def on_connected(self, conn: Connection) -> None:
        channels = [{"type": "heartbeat"}, *self._channels(self.markets)]
        await conn.send({"type": "subscribe", "channels": channels})

    async def resync(self, conn: Connection, symbol: str) -> bool:
        # a fresh SNAPSHOT comes with a new subscription; UPDATEs buffered meanwhile are
        # replayed by time against it (core book logic)
        channel = [{"type": "market_data", "params": {"market": symbol}}]
        await conn.send({"type": "unsubscribe", "channels": channel})
        await conn.send({"type": "subscribe", "channels": channel})
        return True

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        self.decoder.epoch = self.epoch
        self.decoder.decode(frame, recv_ns)

    def _on_reply(self, msg: dict) -> None:
        if msg.get("type") == "error":
            self.errors.append(str(msg.get("error")))
            raise FrameError(f"SOR error: {msg.get('error')}")
        channels = msg.get("channels") or []
        if type(channels) is not list or any(type(c) is not dict for c in channels):
            raise FrameError(f"{msg.get('type')} reply: channels is not a list of objects")
        for channel in channels:
            if channel.get("success") is False and channel.get("error") != "NO_EFFECT_ACTION":
                error = (
                    f"{msg.get('type')} {channel.get('type')} {channel.get('params')}: "
                    f"{channel.get('error')}"
                )
                self.errors.append(error)
                log.error("SOR channel refused", venue=VENUE, error=error)

    def books(self) -> list[str]:
        return list(self.markets) if self._book else []


# --- REST execution ------------------------------------------------------------------------------


def order_body(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = {
        "side": order.side.value,
        "market": order.symbol,
        "base_amount": dec_str(order.quantity),
        "ref_id": order.client_order_id,
    }
    if order.type is OrderType.MARKET:
        body["type"] = "MARKET"
        body["time_in_force"] = "IOC"  # Paxos: MARKET is IOC only
        return body
    assert order.price is not None
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


def report_from_order(data: dict[str, Any]) -> ExecutionReport:
    """A Paxos order object as a status report (fills come from executions, not from here)."""
    status = _STATUS.get(data.get("status", ""))
    if status is None:
        raise FrameError(f"unknown order status {data.get('status')!r}")
    ref_id = data.get("ref_id")
    if not isinstance(ref_id, str) or not ref_id:
        raise FrameError("order without ref_id")
    return ExecutionReport(VENUE, ref_id, status=status, venue_order_id=data.get("id"))


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
    ) -> None:
        self.venue = VENUE
        self._http = http
        self._tokens = tokens
        self.profile_id = profile_id
        self.poll_interval_s = poll_interval_s
        self.balance_interval_s = balance_interval_s
        self._seen_exec: dict[str, set[str]] = {}  # venue order id -> execution ids reported
        self._exec_cum: dict[str, Decimal] = {}  # venue order id -> executions total seen

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"authorization": f"Bearer {await self._tokens.token()}"}
        try:
            return await request_json(self._http, method, path, venue=VENUE, headers=headers, **kw)
        except HttpProblem as exc:
            if exc.status == 401:
                self._tokens.invalidate()  # expired or revoked: fetch a new one next time
            raise

    # --- ExecutionClient ---------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        body = order_body(order)
        try:
            data = await self._call("POST", f"profiles/{self.profile_id}/orders", json=body)
        except HttpProblem as exc:
            if exc.status == 409 and exc.slug == "already-exists":
                # ref_id is the idempotency key: a resend after a lost reply is the same order
                existing = (exc.body or {}).get("meta", {}).get("existing")
                if isinstance(existing, dict):
                    return await self._sync(existing)
                return None
            # anything else (429, 5xx: never resent) leaves the outcome unknown: query it
            raise order_outcome(exc, refused={400, 403, 404}) from None
        return await self._sync(data)

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
        report = await self._sync(data)
        if report.status is OrderStatus.ACCEPTED:
            return None  # still open: the poller will see the cancel land
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
                reports += [self._listed(item) for item in data.get("items", [])]
                cursor = data.get("next_page_cursor") or ""
                if not cursor:
                    break
        return reports

    @staticmethod
    def _listed(item: dict[str, Any]) -> ExecutionReport:
        def amount(key: str) -> Decimal | None:
            # "" or "0" when unused (a MARKET BUY has a quote amount, no base amount or price)
            value = dec(item.get(key) or "0", key)
            return value if value > 0 else None

        side = item.get("side")
        return ExecutionReport(
            VENUE,
            str(item.get("ref_id") or ""),
            status=_STATUS.get(str(item.get("status")), OrderStatus.ACCEPTED),
            venue_order_id=item.get("id"),
            cum_qty=dec(item.get("amount_filled") or "0", "amount_filled"),
            price=amount("price"),
            quantity=amount("base_amount"),
            symbol=item.get("market"),
            side=Side(side) if side in ("BUY", "SELL") else None,
        )

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._poll_orders)
            nursery.start_soon(self._poll_balances)

    # --- polling -------------------------------------------------------------------------------

    async def _poll_orders(self) -> None:
        while True:
            await trio.sleep(self.poll_interval_s)
            assert self.ctx is not None
            working = [
                o for o in self.ctx.open_orders(VENUE) if o.status is not OrderStatus.PENDING
            ]
            if not working:
                continue
            try:
                for start in range(0, len(working), 100):
                    refs = [o.client_order_id for o in working[start : start + 100]]
                    for item in await self._orders_by_ref(refs):
                        report = await self._sync(item)
                        self.ctx.on_report(report)
            except (HttpProblem, httpx.HTTPError, FrameError, AuthError) as exc:
                log.warning("order poll failed", venue=VENUE, error=str(exc))

    async def _poll_balances(self) -> None:
        while True:
            try:
                await self.publish_balances()
            except (HttpProblem, httpx.HTTPError, FrameError, AuthError) as exc:
                log.warning("balance poll failed", venue=VENUE, error=str(exc))
            await trio.sleep(self.balance_interval_s)

    async def publish_balances(self) -> None:
        data = await self._call("GET", f"profiles/{self.profile_id}/balances")
        now = time.time_ns()
        for item in data.get("items", []):
            balance = Balance(
                VENUE,
                item["asset"],
                dec(item.get("available", "0"), "available"),
                dec(item.get("trading", "0") or "0", "trading"),
                now,
            )
            if self.ctx is not None:
                self.ctx.publish(balance)

    async def _orders_by_ref(self, refs: list[str]) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [("profile_id", self.profile_id), ("limit", "1000")]
        params += [("ref_ids", r) for r in refs]
        data = await self._call("GET", "orders", params=params)
        return list(data.get("items", []))

    async def _venue_id(self, order: Order) -> str | None:
        items = await self._orders_by_ref([order.client_order_id])
        return items[0].get("id") if items else None

    async def _sync(self, data: dict[str, Any]) -> ExecutionReport:
        """Report new executions of this order first, then return its status report."""
        report = report_from_order(data)
        venue_id = report.venue_order_id
        filled = dec(data.get("amount_filled") or "0", "amount_filled")
        if venue_id and filled > self._exec_cum.get(venue_id, Decimal(0)):
            await self._report_executions(report.client_order_id, venue_id)
        if venue_id and report.status is not None and report.status.is_terminal:
            # its executions are final and reported: forget them (the core dedups any replay)
            self._seen_exec.pop(venue_id, None)
            self._exec_cum.pop(venue_id, None)
        return report

    async def _report_executions(self, coid: str, venue_id: str) -> None:
        data = await self._call(
            "GET",
            "executions",
            params={"profile_id": self.profile_id, "order_id": venue_id, "limit": "1000"},
        )
        seen = self._seen_exec.setdefault(venue_id, set())
        for item in data.get("items", []):
            exec_id = item.get("execution_id")
            if not isinstance(exec_id, str) or exec_id in seen:
                continue
            seen.add(exec_id)
            qty = dec(item.get("amount"), "amount")
            self._exec_cum[venue_id] = self._exec_cum.get(venue_id, Decimal(0)) + qty
            if self.ctx is not None:
                self.ctx.on_report(
                    ExecutionReport(
                        VENUE,
                        coid,
                        venue_order_id=venue_id,
                        fill_id=exec_id,
                        fill_price=dec(item.get("price"), "price"),
                        fill_qty=qty,
                        fee=dec(item.get("commission") or "0", "commission"),
                        fee_asset=item.get("commission_asset"),
                    )
                )


def make_token_source(
    http_factory: Callable[..., httpx.AsyncClient],
    oauth_base: str,
    token_path: str,
    client_id: str,
    secret: str,
    scopes: tuple[str, ...],
) -> TokenSource:
    return TokenSource(http_factory(oauth_base), token_path, client_id, secret, scopes)

"""The Open Trade WebSocket: PING, subscriptions (public and private) and GET requests."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import trio

from framework.errors import FrameError
from framework.events import Side
from framework.sim.server import WsConnection
from framework.transport.wire import loads_decimal
from framework.venues.opentrade.messages import parse_list_value
from framework.venues.opentrade.sim.common import (
    DEFAULT_LEVELS,
    MAX_LEVELS,
    PRIVATE_CHANNELS,
    Refused,
    WsSession,
    _args,
    _date_arg,
    _int_arg,
    _iso_us,
    _text,
    assets_of,
    num,
)


class Sessions:
    """One WebSocket session's requests, answered in order."""

    # --- WebSocket -------------------------------------------------------------------------

    async def _ws(self, conn: WsConnection) -> None:
        session = WsSession(conn, last_ping=trio.current_time())
        token = conn.headers.get("authorization")
        session.handshake_token = token.removeprefix("Bearer ").strip() if token else None
        self.ws_sessions.append(session)
        if self.connect_confirmation:
            # [DOC] "Upon connection, you'll receive a confirmation message"; its format is not
            # shown [INF: an `event` and no `command`]. Off for clients that, like the FlexFills
            # SDK, take the first frame after a request as its answer.
            conn.enqueue(_text({"event": "CONNECTED"}))
        try:
            while True:
                # [DOC] a PING at least every 2 minutes, else the venue drops the connection
                text = None
                with trio.move_on_at(session.last_ping + self.ping_timeout_s):
                    text = await conn.receive_text()
                    if text is None:
                        return
                if text is None:
                    await conn.close(1008, "no PING within the required interval")
                    return
                for frame in self._handle(session, text):
                    conn.enqueue(frame)
        finally:
            self.ws_sessions.remove(session)

    def _handle(self, session: WsSession, text: str) -> list[str]:
        try:
            msg = loads_decimal(text)
        except FrameError:
            return [_text({"event": "ERROR", "message": "malformed JSON request"})]
        if not isinstance(msg, dict):
            return [_text({"event": "ERROR", "message": "request must be a JSON object"})]
        command, channel, rid = msg.get("command"), msg.get("channel"), msg.get("requestId")

        def reply(event: str, **extra: Any) -> str:
            body: dict[str, Any] = {"command": command, "event": event, "channel": channel}
            if rid is not None and self.echo_request_id:
                # [DOC] no published reply carries a requestId: echoed only as an option
                body["requestId"] = rid
            body.update(extra)
            return _text(body)

        try:
            if command == "PING":
                session.last_ping = trio.current_time()
                return [_text({"event": "PONG", "channel": "PING"})]
            if command in ("SUBSCRIBE", "UNSUBSCRIBE"):
                return self._subscribe(session, msg, command, reply)
            if command == "GET":
                return self._get(session, msg, reply)
            if command in ("CREATE", "CANCEL", "MODIFY"):
                return self._order_command(session, msg, command, reply)
            raise Refused(f"unknown command {command!r}")
        except Refused as exc:
            self._count("errors")
            # [INF] ERROR payload: {"command","event":"ERROR","channel","requestId","message"}
            return [reply("ERROR", message=str(exc))]

    # --- subscriptions ---------------------------------------------------------------------

    def _subscribe(
        self, session: WsSession, msg: dict, command: str, reply: Callable[..., str]
    ) -> list[str]:
        channel = msg.get("channel")
        args = _args(msg)
        subscribe = command == "SUBSCRIBE"
        if channel in PRIVATE_CHANNELS:
            error = self.token_error(msg.get("signature"))
            if error:
                raise Refused(error)
            session.token = msg["signature"]
        if channel == "ORDER_BOOK_PUBLIC":
            symbols = self._instruments(args)
            levels = _int_arg(args, "levels", DEFAULT_LEVELS)
            if not 1 <= levels <= MAX_LEVELS:
                raise Refused(f"levels must be between 1 and {MAX_LEVELS}")
            for symbol in symbols:
                if subscribe:
                    session.books[symbol] = levels
                else:
                    session.books.pop(symbol, None)
            frames = [reply("ACK")]
            if subscribe:  # the first books at once, then every 20 ms
                now_ms = self._clock_ns() // 1_000_000
                frames += [self._book_frame(s, levels, now_ms) for s in symbols]
            return frames
        if channel == "TRADE_PUBLIC":
            symbols = self._instruments(args)
            (session.trades.update if subscribe else session.trades.difference_update)(symbols)
            return [reply("ACK")]
        if channel == "BALANCE":
            currencies = args.get("currency")
            wanted = parse_list_value(currencies) if currencies else self._currencies()
            (session.balance.update if subscribe else session.balance.difference_update)(wanted)
            if not subscribe:
                return [reply("ACK")]
            data = [self._balance_item(c) for c in wanted]
            return [reply("ACK"), reply("SNAPSHOT", data=data)]
        if channel == "TRADE_PRIVATE":
            symbols = self._instruments(args)
            (session.orders.update if subscribe else session.orders.difference_update)(symbols)
            if not subscribe:
                return [reply("ACK")]
            # the snapshot holds the ACTIVE orders of the subscribed instruments
            active = [
                self._order_item(o)
                for o in self.orders.values()
                if o.symbol in symbols and o.is_open
            ]
            return [reply("ACK"), reply("SNAPSHOT", data=active)]
        raise Refused(f"unknown channel {channel!r}")

    def _instruments(self, args: dict[str, str]) -> list[str]:
        raw = args.get("instrument")
        if not raw:
            raise Refused("instrument argument required")
        symbols = parse_list_value(raw)
        unknown = [s for s in symbols if s not in self.engine.symbols()]
        if unknown or not symbols:
            raise Refused(f"unknown instrument {', '.join(unknown) or raw}")
        return symbols

    def _currencies(self) -> list[str]:
        return sorted({a for s in self.engine.symbols() for a in assets_of(s)})

    # --- GET -------------------------------------------------------------------------------

    def _get(self, session: WsSession, msg: dict, reply: Callable[..., str]) -> list[str]:
        channel = msg.get("channel")
        if channel == "TRADE_POSITIONS":
            # [CODE] the SDK's GET carries no signature: the handshake's token stands for it
            error = self.token_error(msg.get("signature") or session.handshake_token)
            if error:
                raise Refused(error)
            return [reply("GET", data=self._positions())]
        if channel == "ASSET_LIST":
            data = [{"class": "Currency", "code": c, "name": None} for c in self._currencies()]
            return [reply("GET", data=data)]
        if channel == "INSTRUMENT_LIST":
            data = [
                {
                    "class": "Instrument",
                    "quoteCurrencyCode": assets_of(s)[1],
                    "code": s,
                    "name": None,
                    # [INF] price and amount steps (the real list gives none)
                    "tickSize": num(self.engine.tick(s)),
                    "lotSize": num(self.engine.lot(s)),
                }
                for s in self.engine.symbols()
            ]
            return [reply("GET", data=data)]
        if channel == "TRADE_PRIVATE":
            self._roll_token_expiry()
            error = self.token_error(msg.get("signature"))
            if error:
                raise Refused(error)
            return [reply("GET", data=self._private_get(_args(msg)))]
        raise Refused(f"GET not supported on {channel!r}")

    def _private_get(self, args: dict[str, str]) -> list[dict[str, Any]]:
        category = args.get("category", "ACTIVE_ORDERS")
        symbols = set(self._instruments(args)) if args.get("instrument") else None
        begin = _date_arg(args, "date-from")
        end = _date_arg(args, "date-to")
        statuses = set(parse_list_value(args["status"])) if args.get("status") else None
        out = []
        for order in self.orders.values():
            if symbols is not None and order.symbol not in symbols:
                continue
            if (begin is not None and order.created_ns < begin) or (
                end is not None and order.created_ns >= end
            ):
                continue
            if category == "ACTIVE_ORDERS":
                keep = order.is_open
            elif category == "ORDERS_HISTORY":
                keep = True  # [INF] every order, in its current state, oldest first
            elif category == "TRADES_HISTORY":
                # [INF] one `Order` item per fill: `amount` = the fill's size, `filledPrice`
                # its price (the published example is an `Order` item; sizes unconfirmed)
                if statuses is None or order.status in statuses:
                    listed = self._clock_ns() - int(self.trade_history_lag_s * 1e9)
                    out += [self._trade_item(order, f) for f in order.fills if f[3] <= listed]
                continue
            else:
                raise Refused(f"unknown category {category!r}")
            if keep and (statuses is None or order.status in statuses):
                out.append(self._order_item(order, history=category == "ORDERS_HISTORY"))
        return out

    def _positions(self) -> list[dict[str, Any]]:
        """[CODE] `TradePosition` items: our net filled volume per instrument [INF: netted by
        direction, `date` of the last fill, no stop-loss / take-profit]."""
        out = []
        for symbol in self.engine.symbols():
            net = Decimal(0)
            notional = Decimal(0)
            last = 0
            for order in self.orders.values():
                if order.symbol != symbol or order.filled == 0:
                    continue
                sign = 1 if order.side is Side.BUY else -1
                net += sign * order.filled
                notional += order.avg_price * order.filled
                last = max([last] + [f[3] for f in order.fills])
            if net == 0:
                continue
            volume = sum((o.filled for o in self.orders.values() if o.symbol == symbol), Decimal(0))
            price = notional / volume
            out.append(
                {
                    "class": "TradePosition",
                    "direction": "BUY" if net > 0 else "SELL",
                    "date": _iso_us(last)[:10],
                    "globalInstrumentCd": symbol,
                    "openPrice": num(price),
                    "entryPrice": num(price),
                    "posVolume": num(abs(net)),
                    "currentSl": None,
                    "currentTp": None,
                }
            )
        return out

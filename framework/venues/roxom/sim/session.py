"""The Roxom WebSocket: the signed handshake, subscriptions and their initial state; request
signatures shared with REST."""

from __future__ import annotations

from typing import Any

import orjson

from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    WsConnection,
    json_response,
)
from framework.venues.roxom.auth import (
    WS_MESSAGE,
    verify_hmac,
    verify_rsa,
)
from framework.venues.roxom.sim.common import (
    _ERROR_MESSAGES,
    AUTH_FAILED,
    BINARY,
    INVALID_CHANNEL,
    INVALID_SYMBOL,
    MALFORMED,
    MARKET_CHANNELS,
    PRIVATE_CHANNELS,
    SUBSCRIPTION_LIMIT,
    _text,
)


class Sessions:
    """`/ws` connections and signature checks."""

    # --- authentication ------------------------------------------------------------------------

    def _signed(self, headers: dict[str, str], message: str) -> bool | None:
        """True/False for a good/bad signature; None if no credentials were sent at all."""
        if "x-api-sign" in headers:
            # [DOC, older] HMAC of the millisecond timestamp ("accepted but not enforced";
            # [INF] the simulator does check it)
            return headers.get("x-api-key") == self.api_key and verify_hmac(
                self.hmac_secret, headers.get("x-api-timestamp", ""), headers["x-api-sign"]
            )
        if "x-api-key" in headers or "x-api-signature" in headers:
            return headers.get("x-api-key") == self.api_key and verify_rsa(
                self._public_pem, message, headers.get("x-api-signature", "")
            )
        return None

    def _authorize(self, headers: dict[str, str]) -> int | None:
        # [DOC] "Authentication is done before connection upgrade": missing and bad credentials
        # alike are refused there ([INF] with 401). The same page also lists error 600010, so
        # `auth_error_in_band` accepts a bad signature and then sends 600010 and closes.
        signed = self._signed(headers, WS_MESSAGE)
        if signed is None or (signed is False and not self.auth_error_in_band):
            return 401
        return None

    def _credentials(self, request: HttpRequest) -> HttpResponse:
        # [INF] simulator only, loopback: lets a standalone simulator's client sign requests
        return json_response(
            200,
            {
                "apiKey": self.api_key,
                "privateKey": self.private_key_pem,
                "hmacSecret": self.hmac_secret,
            },
        )

    # --- WebSocket -------------------------------------------------------------------------------

    async def _ws(self, conn: WsConnection) -> None:
        conn_id = self._uuid()
        if not self._signed(conn.headers, WS_MESSAGE):
            await conn.send_text(self._error_frame(AUTH_FAILED, conn_id))
            await conn.close(1008, "authentication failed")
            return
        self._conn_ids[conn] = conn_id
        # [DOC] text frames only: a binary frame is answered with 60018 ([INF] the connection
        # stays open)
        conn.on_binary = lambda data: conn.enqueue(self._error_frame(BINARY, conn_id))
        self._account_conns.add(conn)
        keys: set[tuple[str, str | None]] = set()
        try:
            while (text := await conn.receive_text()) is not None:
                for frame in self._request(conn, conn_id, keys, text):
                    conn.enqueue(frame)
        finally:
            self._account_conns.discard(conn)
            self._conn_ids.pop(conn, None)
            for key in keys:
                self._subs[key].discard(conn)

    def _error_frame(self, code: str, conn_id: str, arg: Any = None) -> str:
        frame: dict[str, Any] = {
            "event": "error",
            "code": code,
            "msg": _ERROR_MESSAGES[code],
            "connId": conn_id,
        }
        if arg is not None:
            frame["arg"] = arg  # [INF] the offending argument, when there is one
        return _text(frame)

    def _request(
        self, conn: WsConnection, conn_id: str, keys: set[tuple[str, str | None]], text: str
    ) -> list[str]:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [self._error_frame(MALFORMED, conn_id)]
        op = request.get("op") if isinstance(request, dict) else None
        args = request.get("args") if isinstance(request, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            return [self._error_frame(MALFORMED, conn_id)]  # [INF] a request of unknown shape
        out: list[str] = []
        for arg in args:
            out.extend(self._subscription(conn, conn_id, keys, op, arg))
        return out

    def _subscription(
        self,
        conn: WsConnection,
        conn_id: str,
        keys: set[tuple[str, str | None]],
        op: str,
        arg: Any,
    ) -> list[str]:
        channel = arg.get("channel") if isinstance(arg, dict) else None
        if channel not in MARKET_CHANNELS and channel not in PRIVATE_CHANNELS:
            return [self._error_frame(INVALID_CHANNEL, conn_id, arg)]
        symbol = arg.get("symbol") if channel in MARKET_CHANNELS else None
        if channel in MARKET_CHANNELS and symbol not in self.engine.symbols():
            return [self._error_frame(INVALID_SYMBOL, conn_id, arg)]
        key = (channel, symbol)
        # [INF] the ack: one per argument, echoing it
        ack = _text({"event": op, "arg": arg, "code": "0", "connId": conn_id})
        if op == "unsubscribe":
            keys.discard(key)
            self._subs.get(key, set()).discard(conn)
            return [ack]
        if key not in keys and len(keys) >= self.max_subscriptions:
            return [self._error_frame(SUBSCRIPTION_LIMIT, conn_id, arg)]
        keys.add(key)
        self._subs.setdefault(key, set()).add(conn)
        # the ack, then the current state, with no await in between: no engine change can
        # fall between the snapshot and the first delta
        return [ack, *self._initial(channel, symbol)]

    def _initial(self, channel: str, symbol: str | None) -> list[str]:
        if symbol is not None:
            if channel == "depth":
                if symbol in self.skip_snapshot:
                    self.skip_snapshot.discard(symbol)
                    return []
                return [self._depth_snapshot(symbol)]
            if channel == "level1":
                top = self._top[symbol] = self._top_levels(symbol)
                return [self._level1_frame(symbol, top)]
            if channel == "ticker":
                return [self._ticker_frame(symbol)]
            return []  # trades: from now on
        # [INF] private channels start with the current state: open positions and the balance
        if channel == "positions":
            views = [self._position_view(p) for p in self.account.positions.values() if p.size]
            return [_text({"type": "position", "data": views})] if views else []
        if channel == "balance":
            now = self._clock_ns()
            data = {
                "accountId": self.owner,
                "balanceBefore": format(self.account.balance, "f"),
                "balanceAfter": format(self.account.balance, "f"),
                "amount": "0",
                "unit": "btc",
                "updateType": "snapshot",  # [INF] the state on subscribe, not a change
                "timestamp": now,
            }
            return [_text({"type": "balance", "data": data})]
        return []

"""Power.Trade connections: the one WebSocket, request dispatch, heartbeats and idle drops, login,
the entities-and-rules catalogue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import trio

from framework.sim.server import WsConnection
from framework.venues.powertrade.auth import verify_token
from framework.venues.powertrade.sim.common import (
    AUTH_FAILED,
    MULTI_LEG,
    NOT_LOGGED_IN,
    OK,
    PARSE_ERROR,
    UNKNOWN_REQUEST,
    UNKNOWN_SYMBOL,
    _Client,
    _non_string,
    _Refuse,
    _text,
    _us,
    log,
    wire,
)


class Sessions:
    """Each client connection and the requests it sends, dispatched to their handlers."""

    # --- connection ----------------------------------------------------------------------------

    async def _ws(self, conn: WsConnection, **_: str) -> None:
        client = _Client(conn, last_recv=trio.current_time(), last_sent=trio.current_time())
        self._clients.add(client)
        try:
            while (raw := await conn.receive_text()) is not None:
                client.last_recv = trio.current_time()
                self._handle(client, raw)
        finally:
            self._clients.discard(client)

    def _send(self, client: _Client, kind: str, body: dict[str, Any]) -> None:
        self._send_raw(client, _text(kind, body))

    def _send_raw(self, client: _Client, text: str) -> None:
        client.last_sent = trio.current_time()
        client.conn.enqueue(text)

    def _owner_clients(self) -> list[_Client]:
        return [c for c in self._clients if c.authenticated]

    def _to_owner(self, kind: str, body: dict[str, Any]) -> None:
        # [INF] order lifecycle messages go to every logged-in connection of the account
        frame = _text(kind, body)
        for client in self._owner_clients():
            self._send_raw(client, frame)

    async def _timers(self) -> None:
        while True:
            await trio.sleep(min(0.1, self.heartbeat_s))
            self._flush_deltas(trio.current_time())
            now = trio.current_time()
            for client in list(self._clients):
                idle = now - client.last_recv
                if self.idle_drop_s is not None and idle > self.idle_drop_s:
                    await client.conn.close(1001, "heartbeat timeout")
                    continue
                # [DOC] "publishes heartbeat messages every 5 seconds if the client is idle (does
                # not send any message)": one after each 5 s without a client message
                if idle >= self.heartbeat_s and now - client.last_heartbeat >= self.heartbeat_s:
                    client.last_heartbeat = now
                    self._heartbeat(client)
            self._expire(now)

    def _heartbeat(self, client: _Client) -> None:
        self._send(client, "heartbeat", {"server_utc_timestamp": _us(self._clock_ns())})

    # --- requests ------------------------------------------------------------------------------

    def _handle(self, client: _Client, raw: str) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._send(client, "command_response", self._error(PARSE_ERROR, "malformed JSON", ""))
            return
        if not isinstance(msg, dict) or len(msg) != 1:
            text = "a message is an object with exactly one key"
            self._send(client, "command_response", self._error(PARSE_ERROR, text, ""))
            return
        ((kind, body),) = msg.items()
        tag = body.get("user_tag") if isinstance(body, dict) else None
        tag = tag if isinstance(tag, str) else ""
        try:
            if not isinstance(body, dict):
                raise _Refuse(PARSE_ERROR, f"error parsing {kind} request")
            bad = _non_string(body)
            if bad is not None:
                # [DOC] a number or boolean is not accepted; [INF] code 12 for every request
                raise _Refuse(PARSE_ERROR, f"error parsing {kind.replace('_', ' ')} request")
            if tag and not 1 <= len(tag.encode()) <= 64:
                raise _Refuse(PARSE_ERROR, "user_tag must be 1-64 bytes")
            handler = self._handlers().get(kind)
            if handler is None:
                raise _Refuse(UNKNOWN_REQUEST, f"unknown request {kind}")
            needs_login, fn = handler
            if needs_login and not client.authenticated:
                raise _Refuse(NOT_LOGGED_IN, "not authenticated")
            fn(client, body, tag)
        except _Refuse as exc:
            self._send(client, "command_response", self._error(exc.code, exc.text, tag))
        except Exception:
            # a simulator bug must not end the client's session: answer and carry on
            log.exception("request failed", request=kind)
            self._send(client, "command_response", self._error("99", "internal error", tag))

    def _handlers(self) -> dict[str, tuple[bool, Callable[[_Client, dict[str, Any], str], None]]]:
        return {
            "heartbeat": (False, self._on_heartbeat),
            "authenticate": (False, self._authenticate),
            "entities_and_rules_request": (False, self._entities),
            "subscribe": (False, self._subscribe),
            "unsubscribe": (False, self._unsubscribe),
            "register_for_rfqs": (False, self._register_rfqs),
            "deregister_for_rfqs": (False, self._deregister_rfqs),
            "new_order": (True, self._new_order),
            "new_bulk_order": (True, self._new_bulk_order),
            "cancel_order": (True, self._cancel_order),
            "cancel_all_orders": (True, self._cancel_all),
            "refresh_interest": (True, self._refresh_interest),
            "balances": (True, self._balances),
            "position_info": (True, self._positions),
            # [CODE] the TS client's name (market-proxy/api/ws/positionsWs.ts); position_info
            # is the Python client's and the JSON schemas'
            "positions": (True, self._positions),
            "trade_history_request": (True, self._trade_history),
        }

    @staticmethod
    def _error(code: str, text: str, tag: str) -> dict[str, str]:
        return {"error_code": code, "error_text": text, "user_tag": tag}

    def _ok(self, client: _Client, tag: str) -> None:
        # [CODE] real frames say "success" where the docs show ""
        self._send(client, "command_response", self._error(OK, "success", tag))

    def _on_heartbeat(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        # [INF, strong] never answered: two official clients answer every server heartbeat, so
        # an answered client heartbeat would loop (the receipt already reset the idle timer)
        return

    def _authenticate(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        token = body.get("credentials_secret", "")
        problem = (
            "logins refused"
            if self.refuse_logins
            else verify_token(token, self._public_key, self.api_key)
        )
        if problem is not None:
            client.authenticated = False
            log.info("login refused", reason=problem)
            text = "auth server rejected the authenticate request, Unauthorized"
            raise _Refuse(AUTH_FAILED, text)
        client.authenticated = True
        self._ok(client, tag)

    def _entities(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        self._send(client, "entities_and_rules_response", self._entities_body(tag))

    def _entities_body(self, tag: str) -> dict[str, Any]:
        symbols = [
            {
                "symbol": symbol,
                "tradeable_entity_id": m.entity_id,
                "status": "active",
                "base_asset": m.base,
                "quote_asset": m.quote,
                "minimum_quantity": wire(m.min_qty),
                "maximum_quantity": wire(m.max_qty),
                "minimum_value": wire(m.min_value),
                "maximum_value": wire(m.max_value),
                "quantity_step": wire(m.qty_step),
                "price_step": wire(m.price_step),
                "tags": list(m.tags),
            }
            for symbol, m in self.markets.items()
            if MULTI_LEG not in m.tags  # [INF] composites are not catalogue entries
        ]
        body: dict[str, Any] = {"server_utc_timestamp": _us(self._clock_ns())}
        if tag:
            body["user_tag"] = tag
        body["symbols"] = symbols
        return body

    def _symbol(self, body: dict[str, Any]) -> str:
        """The book a request names by `symbol` or `tradeable_entity_id`."""
        symbol = body.get("symbol")
        if symbol is None and "tradeable_entity_id" in body:
            symbol = self._entity.get(body["tradeable_entity_id"])
        if symbol not in self.markets:
            raise _Refuse(UNKNOWN_SYMBOL, f"unknown symbol {symbol}")
        return str(symbol)

"""Paxos Smart Order Routing WebSocket: subscriptions, market data with its snapshot race, top of
book, executions and heartbeats."""

from __future__ import annotations

from typing import Any

import orjson
import trio

from framework.sim.server import (
    WsConnection,
    fan_out,
)
from framework.venues.paxos.sim.common import (
    SOR_CHANNELS,
    SOR_SCOPE,
    Level,
    _levels,
    _SorSession,
    _text,
    iso_ns,
)


class SmartOrderRouting:
    """The SOR WebSocket (`/`, Bearer token with the SOR scope)."""

    # --- Smart Order Routing WebSocket -----------------------------------------------------

    def _authorize_sor(self, headers: dict[str, str]) -> int | None:
        token = self._valid_token(headers)
        if token is None or SOR_SCOPE not in token.scopes:
            # [INF] a missing, unknown or expired token is refused like a missing scope (403)
            return 403
        return None

    async def _ws_sor(self, conn: WsConnection) -> None:
        # [INF] a token expiring on an open socket does not close it (undocumented).
        session = _SorSession()
        try:
            while (text := await conn.receive_text()) is not None:
                for frame in self._sor_request(session, conn, text):
                    conn.enqueue(frame)
        finally:
            for key in session.keys:
                self._sor_subs[key].discard(conn)

    def _sor_request(self, session: _SorSession, conn: WsConnection, text: str) -> list[str]:
        """Frames answering one SOR request."""
        # [INF] the response comes first, then the initial data of new subscriptions
        try:
            request = orjson.loads(text)
        except ValueError:
            return [_text({"type": "error", "error": "MALFORMED_REQUEST"})]
        if not isinstance(request, dict):
            return [_text({"type": "error", "error": "MALFORMED_REQUEST"})]
        action = request.get("type")
        if action == "subscription_list":
            channels = []
            for channel, market in session.keys:
                entry: dict[str, Any] = {"type": channel}
                if market is not None:
                    entry["params"] = {"market": market}
                channels.append(entry)
            return [_text({"type": "subscription_list", "channels": channels})]
        if action not in ("subscribe", "unsubscribe"):
            # [INF] shape of the error frame for an unknown action, as for MALFORMED_REQUEST
            return [_text({"type": "error", "error": "UNKNOWN_ACTION"})]
        channels = request.get("channels")
        if (
            not isinstance(channels, list)
            or not channels
            or not all(isinstance(channel, dict) for channel in channels)
        ):
            # [INF] a subscribe/unsubscribe without a non-empty list of channel objects is
            # malformed (checked before any channel is applied)
            return [_text({"type": "error", "error": "MALFORMED_REQUEST"})]
        results: list[dict[str, Any]] = []
        data: list[str] = []
        for channel in channels:
            result, initial = self._sor_channel(session, conn, action, channel)
            results.append(result)
            data.extend(initial)
        return [_text({"type": action, "channels": results}), *data]

    def _sor_channel(
        self, session: _SorSession, conn: WsConnection, action: str, channel: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        kind = channel.get("type")
        params = channel.get("params")
        result: dict[str, Any] = {"type": kind}
        if "params" in channel and kind != "heartbeat":  # the heartbeat ack never has params
            result["params"] = params

        def fail(error: str) -> tuple[dict[str, Any], list[str]]:
            return {**result, "success": False, "error": error}, []

        if kind not in SOR_CHANNELS:
            return fail("UNKNOWN_CHANNEL")
        market: str | None = None
        if kind == "heartbeat":
            if params not in (None, {}):
                return fail("UNKNOWN_CHANNEL_PARAMS_CONFIGURATION")  # [INF] heartbeat takes none
        else:
            market = params.get("market") if isinstance(params, dict) else None
            if market not in self.engine.symbols():
                return fail("UNKNOWN_CHANNEL_PARAMS_CONFIGURATION")
        key = (kind, market)
        if action == "unsubscribe":
            if key not in session.keys:
                return fail("NO_EFFECT_ACTION")
            del session.keys[key]
            self._sor_subs[key].discard(conn)
            return {**result, "success": True}, []
        if key in session.keys:
            return fail("NO_EFFECT_ACTION")
        session.keys[key] = None
        self._sor_subs.setdefault(key, set()).add(conn)
        return {**result, "success": True}, self._sor_initial(kind, market)

    def _sor_initial(self, kind: str, market: str | None) -> list[str]:
        if market is None or kind == "execution_data":
            return []  # [INF] no replay of executions on SOR; heartbeats start with the timer
        if kind == "market_data.top_of_book":
            # [INF] the current top comes at once, then one frame per change of best bid/ask
            top = self._top_levels(market)
            self._top[market] = top
            return [self._top_of_book_frame(market, top)]
        # market_data. [DOC] UPDATEs may precede the SNAPSHOT; a client keeps only those newer
        # than the snapshot `time`. To exercise that race on every subscription:
        # [INF] first one UPDATE older than the SNAPSHOT (the current top, already in it)
        previous = self._sor_time.get(market)
        snapshot_ns = self._next_sor_time(market)
        stale_ns = previous if previous is not None else snapshot_ns - 1
        bids, asks = self.engine.book(market)
        stale = {
            "market": market,
            "type": "UPDATE",
            "time": iso_ns(stale_ns),
            "bids": _levels(bids[:1]),
            "asks": _levels(asks[:1]),
        }
        snapshot = {
            "market": market,
            "type": "SNAPSHOT",
            "time": iso_ns(snapshot_ns),
            "bids": _levels(bids),
            "asks": _levels(asks),
        }
        return [
            _text({"channel": "market_data", "payload": stale}),
            _text({"channel": "market_data", "payload": snapshot}),
        ]

    def _top_levels(self, market: str) -> tuple[Level | None, Level | None]:
        bids, asks = self.engine.book(market, 1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    def _top_of_book_frame(self, market: str, top: tuple[Level | None, Level | None]) -> str:
        # [INF] `timestamp` comes from the same strictly increasing per-market clock as `time`
        bid, ask = top
        payload = {
            "market": market,
            "type": "TOP_OF_BOOK",
            "timestamp": iso_ns(self._next_sor_time(market)),
            "bids": _levels([bid] if bid else []),
            "asks": _levels([ask] if ask else []),
        }
        return _text({"channel": "market_data.top_of_book", "payload": payload})

    def _next_sor_time(self, market: str) -> int:
        now = max(self._clock_ns(), self._sor_time.get(market, 0) + 1)
        self._sor_time[market] = now
        return now

    async def _heartbeat_loop(self) -> None:
        while True:
            await trio.sleep(self.heartbeat_s)
            subscribers = self._sor_subs.get(("heartbeat", None))
            if subscribers:
                frame = {"channel": "heartbeat", "payload": {"timestamp": iso_ns(self._clock_ns())}}
                fan_out(subscribers, _text(frame))

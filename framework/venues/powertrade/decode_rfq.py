"""Power.Trade RFQ decoding: RFQ books (`market_id "none"`/`"255"`) become `RfqEvent`s, and our own
RFQs' lifecycle becomes `OwnRfqUpdate`s, as a mixin of `decode.Decoder`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from framework.errors import FrameError
from framework.events import Side
from framework.transport.wire import dec
from framework.venues.powertrade.decode_frames import (
    VENUE,
    legs_of,
    opt_ts,
    row_id,
    rows,
    side_of,
    text,
)
from framework.venues.powertrade.events import OwnRfqUpdate, Rfq, RfqAdded, RfqRemoved, RfqSnapshot


class RfqDecoding:
    """RFQ books and our own RFQs; mixed into `Decoder`, whose state (`rfq_books`, `own_rfqs`)
    it uses."""

    # --- RFQs ----------------------------------------------------------------------------------

    def _rfq_updated(
        self,
        body: dict[str, Any],
        old: str,
        new: str,
        price: Decimal | None,
        qty: Decimal | None,
        recv_ns: int,
    ) -> None:
        symbol = text(body, "symbol")
        known = self.rfq_books.setdefault(symbol, {})
        prior = known.pop(old, None)
        self.emit(RfqRemoved(VENUE, symbol, recv_ns, self.epoch, rfq_id=old))
        if prior is not None:
            rfq = Rfq(
                new,
                prior.symbol,
                prior.tradeable_entity_id,
                prior.side,
                prior.price if price is None else price,
                prior.quantity if qty is None else qty,
                prior.legs,
                opt_ts(body, "utc_timestamp"),
            )
            known[new] = rfq
            self.emit(RfqAdded(VENUE, symbol, recv_ns, self.epoch, rfq=rfq))

    def _rfq(self, body: dict[str, Any], row: dict[str, Any], side: Side | None = None) -> Rfq:
        symbol = text(body, "symbol")
        entity = body.get("tradeable_entity_id", "")
        if type(entity) is not str:
            raise FrameError("tradeable_entity_id: expected a string")
        price = dec(row.get("price", "0"), "price")
        qty = dec(row.get("quantity"), "quantity")
        if price < 0 or qty <= 0:
            raise FrameError("RFQ with a negative price or no quantity")
        return Rfq(
            row_id(row),
            symbol,
            entity,
            side if side is not None else side_of(row.get("side")),
            price,
            qty,
            legs_of(symbol, entity),
            opt_ts(row, "utc_timestamp"),
        )

    def _rfq_snapshot(self, body: dict[str, Any], recv_ns: int) -> None:
        symbol = text(body, "symbol")
        found = [
            self._rfq(body, row, side)
            for side, field in ((Side.BUY, "buy"), (Side.SELL, "sell"))
            for row in rows(body, field)
        ]
        self.rfq_books[symbol] = {r.rfq_id: r for r in found}
        self.emit(RfqSnapshot(VENUE, symbol, recv_ns, self.epoch, rfqs=tuple(found)))

    def _own_rfq(self, body: dict[str, Any], recv_ns: int, state: str, reason: str = "") -> bool:
        coid = body.get("client_order_id")
        if type(coid) is not str or coid not in self.own_rfqs:
            return False
        if state in ("rejected", "cancelled"):
            self.own_rfqs.discard(coid)
        self.emit(
            OwnRfqUpdate(
                VENUE,
                str(body.get("symbol", "")),
                recv_ns,
                self.epoch,
                client_order_id=coid,
                rfq_id=body.get("order_id"),
                state=state,
                reason=reason,
            )
        )
        return True

"""Power.Trade-specific events: RFQs (requests for quote, `market_id "none"`).

Strategies subscribe with `self.on(RfqEvent, handler)` (every RFQ event) or a subclass, and act on
RFQs through `self.venue_client("powertrade")` (`post_rfq`, `refresh_rfq`, `cancel_rfq`,
`answer_rfq`).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from framework.events import Side


@attrs.frozen(slots=True)
class RfqLeg:
    symbol: str
    ratio: int  # signed: "-1" = the opposite side of the RFQ for this leg
    entity_id: str | None = None


@attrs.frozen(slots=True)
class Rfq:
    """One indicative order in an RFQ book."""

    rfq_id: str  # the venue's order_id of the indicative order
    symbol: str  # composite for multi-leg RFQs: "SYM@1/SYM@-1"
    tradeable_entity_id: str
    side: Side
    price: Decimal  # 0 when the requester gives no price
    quantity: Decimal
    legs: tuple[RfqLeg, ...]
    venue_ts: int | None


@attrs.frozen(slots=True)
class RfqEvent:
    """Base of every RFQ event; `symbol` is the RFQ book's (possibly composite) symbol."""

    venue: str
    symbol: str
    recv_ns: int
    epoch: int


@attrs.frozen(slots=True)
class RfqSnapshot(RfqEvent):
    """Every active RFQ of one RFQ book (after `register_for_rfqs` or a reconnect)."""

    rfqs: tuple[Rfq, ...] = ()


@attrs.frozen(slots=True)
class RfqAdded(RfqEvent):
    rfq: Rfq | None = None


@attrs.frozen(slots=True)
class RfqRemoved(RfqEvent):
    """An RFQ left the book (answered, cancelled or expired)."""

    rfq_id: str = ""
    side: Side | None = None


@attrs.frozen(slots=True)
class OwnRfqUpdate(RfqEvent):
    """What happened to an RFQ this client posted: accepted, rejected, cancelled or refreshed."""

    client_order_id: str = ""
    rfq_id: str | None = None
    state: str = ""  # "accepted" | "rejected" | "cancelled" | "refreshed"
    reason: str = ""

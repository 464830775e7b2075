"""What Power.Trade takes, as data (reference: shared/venues/powertrade.md, "Orders")."""

from __future__ import annotations

from framework.events import OrderType, TimeInForce
from framework.venue import Capabilities

T = TimeInForce

CAPABILITIES = Capabilities(
    # `type` LIMIT | MARKET; no stop orders in the schema
    order_types=frozenset({OrderType.LIMIT, OrderType.MARKET}),
    tifs={
        OrderType.MARKET: frozenset({T.IOC}),  # "MARKET must be IOC, no price"
        OrderType.LIMIT: frozenset({T.GTC, T.IOC, T.DAY, T.GTD}),  # no FOK
    },
    post_only=False,  # no post-only field in the new_order schema
    modify=False,  # "No replace/amend request exists"
    # price_step / quantity_step / minimum_value come per symbol (entities_and_rules)
    account="spot",
    reference="shared/venues/powertrade.md: Orders, entities_and_rules",
)

"""What Paxos takes, as data (reference: shared/venues/paxos.md, "Create order", TIF)."""

from __future__ import annotations

from decimal import Decimal

from framework.events import OrderType, Side, TimeInForce
from framework.venue import Capabilities

T = TimeInForce

CAPABILITIES = Capabilities(
    # LIMIT, MARKET, POST_ONLY_LIMIT, STOP_MARKET, STOP_LIMIT are documented; the adapter sends
    # LIMIT (POST_ONLY_LIMIT with post_only) and MARKET only, so stops are not declared
    order_types=frozenset({OrderType.LIMIT, OrderType.MARKET}),
    tifs={
        # "MARKET: IOC only"
        OrderType.MARKET: frozenset({T.IOC}),
        # LIMIT / POST_ONLY_LIMIT: GTC, IOC, GTT (our GTD), FOK; no DAY
        OrderType.LIMIT: frozenset({T.GTC, T.IOC, T.GTD, T.FOK}),
        OrderType.STOP_MARKET: frozenset({T.GTC, T.GTD}),
        OrderType.STOP_LIMIT: frozenset({T.GTC, T.GTD}),
    },
    post_only=True,  # POST_ONLY_LIMIT
    modify=False,  # no amend request is documented
    stop_market_sides=frozenset({Side.SELL}),  # "Currently only sell stop loss orders"
    market_buy_sizing="quote",  # MARKET BUY: "set quote_amount to the dollar amount"
    quantity_max_decimals=8,  # amounts 1e-8
    account="spot",
    leverage=Decimal(1),
    reference="shared/venues/paxos.md: Create order, Time in force",
)

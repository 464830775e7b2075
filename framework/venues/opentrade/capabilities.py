"""What Open Trade takes, as data (reference: shared/venues/opentrade.md, "Order entry",
"Precision")."""

from __future__ import annotations

from framework.events import OrderType
from framework.venue import Capabilities

CAPABILITIES = Capabilities(
    # orderType MARKET | LIMIT | POST_ONLY; no stop orders
    order_types=frozenset({OrderType.LIMIT, OrderType.MARKET}),
    # GTC, GTD (our DAY: until 4:59 PM New York), GTT (our GTD), FOK, IOC: every TimeInForce
    post_only=True,
    modify=True,  # MODIFY command (price, amount)
    # "up to 7 significant digits and up to 8 decimals"; longer prices are cut by the API, so
    # they are refused here rather than sent at a price the strategy did not ask for
    price_significant_digits=7,
    price_max_decimals=8,
    quantity_max_decimals=8,
    account="spot",
    reference="shared/venues/opentrade.md: Order entry, Precision",
)

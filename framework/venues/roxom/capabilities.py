"""What Roxom takes, as data (reference: shared/venues/roxom.md, "REST order entry")."""

from __future__ import annotations

from decimal import Decimal

from framework.events import OrderType, TimeInForce
from framework.venue import Capabilities

T = TimeInForce

CAPABILITIES = Capabilities(
    # orderType market | limit | stop | stoplimit
    order_types=frozenset(OrderType),
    # timeInForce gtc (default) | ioc | gtd
    tifs={t: frozenset({T.GTC, T.IOC, T.GTD}) for t in OrderType},
    post_only=True,  # postOnly (crossing post-only orders are cancelled)
    modify=False,  # no amend request is documented
    # perpetuals quoted in BTC: an order needs its initial margin free ("Insufficient balance")
    account="margin",
    # [INF] leverage is not documented per account; the simulator trades at 10x
    leverage=Decimal(10),
    reference="shared/venues/roxom.md: REST order entry",
)

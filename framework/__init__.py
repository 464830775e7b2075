"""botrun: an event-driven trading bot framework.

Write a `Strategy` subclass and run it with `botrun strategy.py`, or from Python with
`framework.run(MyStrategy(params), config="config.toml", duration_s=60)`.
"""

from typing import Any

from framework.data.book import OrderBook
from framework.errors import BookNotSynced
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    ExecutionReport,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderEvent,
    OrderExpired,
    OrderFill,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    OrderUnknown,
    Position,
    PublicTrade,
    Side,
    Ticker,
    TimeInForce,
    TopOfBook,
    VenueState,
    VenueStatus,
)
from framework.execution.handle import OrderHandle
from framework.model import Instrument, Order
from framework.strategy import Strategy, StrategyContext

__all__ = [
    "Balance",
    "BookDelta",
    "BookNotSynced",
    "BookSnapshot",
    "BookState",
    "BookStatus",
    "ExecutionReport",
    "Instrument",
    "Liquidity",
    "Order",
    "OrderAccepted",
    "OrderBook",
    "OrderCancelRequested",
    "OrderCancelled",
    "OrderEvent",
    "OrderExpired",
    "OrderFill",
    "OrderFilled",
    "OrderHandle",
    "OrderModified",
    "OrderModifyRejected",
    "OrderPartiallyFilled",
    "OrderRejected",
    "OrderStatus",
    "OrderSubmitted",
    "OrderType",
    "OrderUnknown",
    "Position",
    "PublicTrade",
    "Side",
    "Strategy",
    "StrategyContext",
    "Ticker",
    "TimeInForce",
    "TopOfBook",
    "VenueState",
    "VenueStatus",
    "run",
]


def __getattr__(name: str) -> Any:
    # `run` needs the venue catalogue and the engine: imported on first use (PEP 562), so that
    # `import framework.events` (which runs this file) loads no venue and no tool
    if name == "run":
        from framework.tools.run import run

        return run
    raise AttributeError(f"module 'framework' has no attribute {name!r}")

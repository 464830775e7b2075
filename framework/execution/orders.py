"""Former home of the order manager, split into `handle`, `checks`, `lifecycle`, `reconcile` and
`manager`. These names stay importable from here while other branches still use this path."""

from framework.execution.handle import ClientOrderIds, OrderHandle
from framework.execution.lifecycle import TRANSITIONS
from framework.execution.manager import OrderManager

__all__ = ["TRANSITIONS", "ClientOrderIds", "OrderHandle", "OrderManager"]

"""Open Trade fill sizes: the cumulative filled quantity, from TRADES_HISTORY where missing.

[DOC] no published `Order` item carries a filled amount. Every report that books a fill goes
through `FillSizing._sized`: a size on the item (`filledAmount`, an option of the simulator, or
FILLED = the whole amount) is used; else, for PARTIALLY_FILLED and the terminal states after
which fills may hide, the order's fills in GET TRADE_PRIVATE `TRADES_HISTORY` are summed. The
cumulative quantity names the fill (`<coid>:cum:<qty>`), so the core's fill de-duplication books
each quantity once whichever path (update stream, command answer, query) brought it first.
Stream reports wait for their size in order, per order (`hold`), so a CANCELLED never overtakes
the partial fill before it.

Also here: reading the `Order` items of a GET TRADE_PRIVATE reply (`orders_in`, `item_coid`) and
the `date-from` argument (`date_arg`), which `execution` uses for its order queries too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import structlog
import trio

from framework.errors import FrameError
from framework.events import ExecutionReport, OrderStatus
from framework.venues.opentrade import messages as m
from framework.venues.opentrade.decode import error_text
from framework.venues.opentrade.private import PrivateStream

log = structlog.get_logger("botrun.opentrade")

# asks of TRADES_HISTORY (0.2 s apart) for a PARTIALLY_FILLED order it lists no fill of, before
# the status goes on without a size [INF: the venue does not say when its history is written]
UNLISTED_TRIES = 25


class FillsNotListed(FrameError):
    """A report says the order filled; TRADES_HISTORY lists none of its fills yet."""


def item_coid(item: dict[str, Any]) -> str | None:
    """`orderId` in active orders and updates, `clientOrderId` in history items: our id."""
    coid = item.get("clientOrderId") or item.get("orderId")
    return None if coid is None else str(coid)


def date_arg(ns: int) -> str:
    """A `date-from` argument value: UTC, to the second."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def orders_in(reply: dict[str, Any], category: str) -> list[dict[str, Any]]:
    """The `Order` items of a GET TRADE_PRIVATE reply; an ERROR or a reply without data raises."""
    if reply.get("event") == "ERROR":
        raise RuntimeError(f"GET TRADE_PRIVATE {category}: {error_text(reply)}")
    data = reply.get("data")
    if not isinstance(data, list):
        raise FrameError(f"GET TRADE_PRIVATE {category} reply without data")
    return [i for i in data if isinstance(i, dict) and i.get("class") == "Order"]


class FillSizing:
    """The fill-size part of `execution.OpenTradeExecution` (a mixin of it).

    The execution client provides `stream` (whose `hold` this takes over), `counts` (with
    "sized"), `_symbols` (coid -> (symbol, created_ns), filled as orders are sent or asked
    about) and `_signed` (a signed command, re-authenticated once on an auth error); it runs
    `_sizer` next to its token loop.
    """

    stream: PrivateStream
    counts: dict[str, int]
    _symbols: dict[str, tuple[str, int]]
    _signed: Callable[..., Awaitable[dict[str, Any]]]

    # these statuses may hide fills the item does not size
    _SIZE_AFTER = (OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED)

    def _init_fill_sizing(self, stream: PrivateStream) -> None:
        # stream reports waiting for their fill size, per order, oldest first
        self._held: dict[str, list[ExecutionReport]] = {}
        self._held_wakeup = trio.Event()
        # orders whose PARTIALLY_FILLED the trade history did not list yet: tries so far
        self._unlisted: dict[str, int] = {}
        stream.hold = self._hold

    def _needs_size(self, report: ExecutionReport) -> bool:
        return report.cum_qty is None and report.status in self._SIZE_AFTER

    def _hold(self, report: ExecutionReport) -> bool:
        """From the update stream: a report that needs its size, and every later one of the
        same order, waits for the sizer (`run`)."""
        queue = self._held.get(report.client_order_id)
        if queue is not None:
            queue.append(report)
            return True
        if not self._needs_size(report):
            return False
        if report.symbol is None and report.client_order_id not in self._symbols:
            return False  # no instrument to ask about: the core's reconciliation asks instead
        self._held[report.client_order_id] = [report]
        self._held_wakeup.set()
        return True

    def _queue_behind_held(self, report: ExecutionReport) -> bool:
        """A command's answer about an order whose stream reports still wait for their size
        waits behind them (a cancel's CANCELLED never overtakes the partial fill before it)."""
        queue = self._held.get(report.client_order_id)
        if queue is None:
            return False
        queue.append(report)
        self._held_wakeup.set()
        return True

    async def _sizer(self) -> None:
        while True:
            await self._held_wakeup.wait()
            self._held_wakeup = trio.Event()
            for coid in list(self._held):
                queue = self._held[coid]
                while queue:
                    report = queue[0]
                    try:
                        sized = await self._sized(report)
                    except FillsNotListed as exc:
                        tries = self._unlisted.get(coid, 0) + 1
                        if tries < UNLISTED_TRIES:
                            self._unlisted[coid] = tries
                            log.info("opentrade fill not listed yet", error=str(exc))
                            self._held_wakeup.set()
                            break
                        # the venue's history never showed it: the status goes on unsized (no
                        # fill booked from nothing); the order's later reports and the core's
                        # working-order checks size it again
                        log.error(
                            "opentrade fill never listed; status booked without size",
                            venue="opentrade",
                            client_order_id=coid,
                            error=str(exc),
                        )
                        sized = report
                    except Exception as exc:  # lost, refused, unreadable, no token yet
                        # asked again on the next wake-up (or answered meanwhile by a query)
                        log.warning("opentrade fill size not known yet", error=str(exc))
                        self._held_wakeup.set()
                        break
                    self._unlisted.pop(coid, None)
                    queue.pop(0)
                    self.stream.emit(sized)
                if not queue:
                    del self._held[coid]
            if self._held:
                await trio.sleep(0.2)  # back off before asking the venue again

    async def _sized(self, report: ExecutionReport, symbol: str | None = None) -> ExecutionReport:
        """`report` with its cumulative fill size, from TRADES_HISTORY when the item had none."""
        if not self._needs_size(report):
            return report
        coid = report.client_order_id
        known = self._symbols.get(coid)
        symbol = symbol or report.symbol or (known[0] if known else None)
        if symbol is None:
            raise FrameError(f"order {coid}: no instrument to ask TRADES_HISTORY for")
        since = known[1] if known else None
        cum, avg = await self._traded(symbol, coid, since)
        if cum == 0 and report.status is OrderStatus.PARTIALLY_FILLED:
            # the status says filled, the history does not list it (yet): ask again rather
            # than book a partial fill of nothing
            raise FillsNotListed(f"order {coid}: PARTIALLY_FILLED, TRADES_HISTORY lists no fill")
        self.counts["sized"] += 1
        return attrs.evolve(
            report,
            cum_qty=cum,
            avg_price=avg,
            fill_id=f"{coid}:cum:{cum.normalize()}" if cum > 0 else None,
        )

    async def _traded(
        self, symbol: str, coid: str, since_ns: int | None
    ) -> tuple[Decimal, Decimal | None]:
        """[CODE] GET TRADE_PRIVATE `TRADES_HISTORY`: the order's fills summed [INF: one item
        per fill, `amount` its size, `filledPrice` its price]."""
        start = (since_ns or time.time_ns()) - 86_400 * 1_000_000_000
        args = [
            m.arg("category", "TRADES_HISTORY"),
            m.arg("instrument", [symbol]),
            m.arg("date-from", date_arg(max(0, start))),
        ]
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        cum = Decimal(0)
        notional = Decimal(0)
        for item in orders_in(reply, "TRADES_HISTORY"):
            if item_coid(item) != coid:
                continue
            size = item.get("amount")
            price = item.get("filledPrice")
            if not isinstance(size, Decimal) or not size.is_finite() or size <= 0:
                raise FrameError(f"TRADES_HISTORY: unreadable amount {size!r}"[:80])
            cum += size
            if isinstance(price, Decimal) and price.is_finite() and price > 0:
                notional += price * size
        avg = notional / cum if cum > 0 and notional > 0 else None
        return cum, avg

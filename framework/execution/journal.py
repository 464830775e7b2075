"""Write-ahead order journal in SQLite (stdlib, WAL mode).

An order's intent is written and committed before its request leaves the process, and made
durable (fsync) before it leaves: in a worker thread, so the event loop does not wait on the disk,
and shared by every intent written meanwhile (group commit). Every status change and every fill
follows. On start the open orders are reloaded and reconciled with the
venue. A fill id is unique per order and venue, so a fill replayed after a crash or reconnect is
refused by the database itself, not by a best-effort memory set.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import structlog
import trio

from framework.errors import ConfigError
from framework.events import OrderStatus, OrderType, Side, TimeInForce
from framework.model import Order

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT,
    tif TEXT NOT NULL,
    post_only INTEGER NOT NULL,
    expire_at_ns INTEGER,
    strategy TEXT NOT NULL,
    status TEXT NOT NULL,
    venue_order_id TEXT,
    filled_qty TEXT NOT NULL,
    avg_price TEXT NOT NULL,
    fees TEXT NOT NULL,
    reason TEXT,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    stop_price TEXT
);
CREATE INDEX IF NOT EXISTS orders_open ON orders(venue, status);
CREATE TABLE IF NOT EXISTS fills (
    venue TEXT NOT NULL,
    fill_id TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    fee TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    -- per order: both sides of one venue execution (a self-trade) are two fills
    PRIMARY KEY (venue, client_order_id, fill_id)
);
"""

_OPEN_STATUSES = tuple(s.value for s in OrderStatus if not s.is_terminal)


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


JOURNAL_CACHE_KIB = 256

log = structlog.get_logger("botrun.journal")
# the sidecar that says "this journal has held orders": a journal that is then missing, empty or
# without orders was truncated or deleted (its working orders would be orphaned), not new
MARKER_SUFFIX = ".orders-marker"


class Journal:
    # `durable` fsyncs in a worker thread. Tests that run trio's MockClock with autojump turn
    # this off: a task waiting on a thread counts as blocked, so the clock would jump past
    # their timeouts while the disk works.
    fsync_in_thread = True

    def __init__(self, path: str | Path, *, accept_empty: bool = False) -> None:
        self.path = str(path)
        self._marker = None if self.path == ":memory:" else Path(self.path + MARKER_SUFFIX)
        file = Path(self.path)
        missing = self._marker is not None and (not file.exists() or file.stat().st_size == 0)
        if self._marker is not None and self._marker.exists() and missing:
            self._truncated(accept_empty, "is missing or 0 bytes")
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # the journal holds the account's order history: user-only permissions
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Durability. In WAL mode every commit survives a process kill, and what survives a power
        # loss is always a prefix of the commits. So SQLite never waits for the disk itself
        # (NORMAL); `durable` fsyncs the WAL before an order's request leaves, which fixes that
        # intent and everything before it. Status changes and fills are not waited for: after a
        # power loss, reconciliation asks the venue about every intent we hold and brings the
        # lost tail back. An fsync in the event loop's thread would stall every session (~4 ms
        # median on the dev VM).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._memory = self.path == ":memory:"
        self._wal_fd: int | None = None
        self._written = 0  # intents written
        self._durable = 0  # intents known to be on disk
        self._syncing: trio.Event | None = None
        # write-mostly, read by key: a small page cache (default 2 MiB) keeps a long session flat
        self._db.execute(f"PRAGMA cache_size=-{JOURNAL_CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        # fault injection (`framework.sim.faults.FaultPlan.journal_hook`): called with the
        # operation ("intent", "update", "fill", "fsync") before each write; it raises what a
        # failing disk raises (OSError(ENOSPC)). None in production.
        self.fault: Callable[[str], None] | None = None
        self._marked = self._marker is not None and self._marker.exists()
        if self._marked and not missing:
            (n,) = self._db.execute("SELECT COUNT(*) FROM orders").fetchone()
            if n == 0:
                self._truncated(accept_empty, "holds no order")

    def _truncated(self, accept: bool, what: str) -> None:
        message = (
            f"journal {self.path} {what}, but {self.path}{MARKER_SUFFIX} says it held orders:"
            " it was truncated or deleted, and orders it knew may still work at the venue."
            " Start with --accept-empty-journal (botrun.accept_empty_journal) to accept it as new"
        )
        if not accept:
            raise ConfigError(message)
        log.warning("accepting an empty journal", path=self.path, was=what)

    def _mark(self) -> None:
        """Write the sidecar once: from now on an empty journal here is a lost one."""
        if self._marker is None or self._marked:
            return
        fd = os.open(self._marker, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            # not fsynced: the next intent's `durable` fsync is the WAL's, and a marker lost to a
            # power cut only weakens this check for that journal
            os.write(fd, b"this journal holds orders; see framework/execution/journal.py\n")
        finally:
            os.close(fd)
        self._marked = True

    def _check(self, op: str) -> None:
        if self.fault is not None:
            self.fault(op)

    def record_intent(self, order: Order) -> int:
        """Commit the intent (survives a process kill from here on); returns the number to pass
        to `durable` before the order's request may leave."""
        self._check("intent")
        self._insert_intent(order)
        self._mark()
        self._written += 1
        return self._written

    async def durable(self, intent: int) -> None:
        """Return once intent number `intent` (and every commit before it) survives a power loss.

        One fsync covers every intent written before it started: a burst of orders waits for
        the disk about once, not once per order.
        """
        if self._memory:
            return
        while self._durable < intent:
            if self._syncing is not None:
                await self._syncing.wait()  # an fsync is under way; it may or may not cover ours
                continue
            self._syncing = done = trio.Event()
            upto = self._written
            try:
                if self.fsync_in_thread:
                    await trio.to_thread.run_sync(self._sync_wal)
                else:
                    self._sync_wal()
                    await trio.lowlevel.checkpoint()
                self._durable = max(self._durable, upto)
            finally:
                self._syncing = None
                done.set()

    def _sync_wal(self) -> None:
        # runs in a worker thread; fsync works on the file, whichever descriptor names it
        self._check("fsync")
        if self._wal_fd is None:
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        os.fsync(self._wal_fd)

    def _insert_intent(self, order: Order) -> None:
        self._db.execute(
            "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                order.client_order_id,
                order.venue,
                order.symbol,
                order.side.value,
                order.type.value,
                str(order.quantity),
                None if order.price is None else str(order.price),
                order.tif.value,
                int(order.post_only),
                order.expire_at_ns,
                order.strategy,
                order.status.value,
                order.venue_order_id,
                str(order.filled_qty),
                str(order.avg_price),
                str(order.fees),
                order.reason,
                order.created_ns,
                order.updated_ns,
                None if order.stop_price is None else str(order.stop_price),
            ),
        )

    def update(self, order: Order) -> None:
        self._check("update")
        self._db.execute(
            "UPDATE orders SET status=?, venue_order_id=?, filled_qty=?, avg_price=?, fees=?,"
            " reason=?, updated_ns=?, price=?, quantity=? WHERE client_order_id=?",
            (
                order.status.value,
                order.venue_order_id,
                str(order.filled_qty),
                str(order.avg_price),
                str(order.fees),
                order.reason,
                order.updated_ns,
                None if order.price is None else str(order.price),
                str(order.quantity),
                order.client_order_id,
            ),
        )

    def record_fill(
        self,
        venue: str,
        fill_id: str,
        client_order_id: str,
        price: Decimal,
        quantity: Decimal,
        fee: Decimal,
        ts_ns: int,
    ) -> bool:
        """Record a fill; False if this order's fill id was recorded before (a duplicate)."""
        self._check("fill")
        try:
            self._db.execute(
                "INSERT INTO fills VALUES (?,?,?,?,?,?,?)",
                (venue, fill_id, client_order_id, str(price), str(quantity), str(fee), ts_ns),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def fill_ids(self, client_order_id: str) -> set[str]:
        rows = self._db.execute(
            "SELECT fill_id FROM fills WHERE client_order_id=?", (client_order_id,)
        )
        return {r[0] for r in rows}

    def load_open(self, venue: str | None = None) -> list[Order]:
        marks = ",".join("?" * len(_OPEN_STATUSES))
        sql = f"SELECT * FROM orders WHERE status IN ({marks})"
        args: list[object] = list(_OPEN_STATUSES)
        if venue is not None:
            sql += " AND venue=?"
            args.append(venue)
        return [self._row_to_order(r) for r in self._db.execute(sql + " ORDER BY created_ns", args)]

    def load(self, client_order_id: str) -> Order | None:
        row = self._db.execute(
            "SELECT * FROM orders WHERE client_order_id=?", (client_order_id,)
        ).fetchone()
        return None if row is None else self._row_to_order(row)

    def count_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status")
        return dict(rows.fetchall())

    def _row_to_order(self, row: tuple) -> Order:
        order = Order(
            client_order_id=row[0],
            venue=row[1],
            symbol=row[2],
            side=Side(row[3]),
            type=OrderType(row[4]),
            quantity=Decimal(row[5]),
            price=_dec(row[6]),
            tif=TimeInForce(row[7]),
            post_only=bool(row[8]),
            expire_at_ns=row[9],
            strategy=row[10],
            status=OrderStatus(row[11]),
            venue_order_id=row[12],
            filled_qty=Decimal(row[13]),
            avg_price=Decimal(row[14]),
            fees=Decimal(row[15]),
            reason=row[16],
            created_ns=row[17],
            updated_ns=row[18],
            stop_price=_dec(row[19]),
        )
        order.fill_ids = self.fill_ids(order.client_order_id)
        return order

    def close(self) -> None:
        self._db.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

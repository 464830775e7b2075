"""A simulator's own order records: one bounded store, indexed the ways a venue looks orders up.

Every venue simulator keeps, beside the engine's orders, what the venue shows for each of the
account's orders (its ids, its status names, what the request said). Those records are held here:
by the venue's order id, in creation order (listings depend on it), with an index by client order
id and one by engine order id, bounded like the engine's own history (`trim_history`): the oldest
finished records beyond the engine's limit go, with their index entries. The record itself is
the venue's (its fields are what its wire messages are built from); the store only needs to know
how to read a record's ids and whether it is still working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, ValuesView
from typing import TypeVar

from framework.sim.engine import MatchingEngine
from framework.sim.loopback import trim_history

R = TypeVar("R")


class OrderStore(Mapping[str, R]):
    """Records by venue order id (creation order), by client order id and by engine order id.

    Read like a mapping of venue order id to record (what `sim.orders` shows a test).

    `key(record)` is the venue order id. `client_id(record)` gives the client order id to index
    by; without it the key *is* the client order id (a venue that names orders by the client's
    id). Every engine order id `bind_engine` indexed a record under (several, where the venue's
    amend is a cancel-and-replace on the engine) goes when the record is forgotten.
    `working(record)` stops the trim at
    a record the venue may still report on. `limit()` is read at each trim, so that lowering the
    engine's history bound lowers this one alike.
    """

    def __init__(
        self,
        *,
        key: Callable[[R], str],
        working: Callable[[R], bool],
        limit: Callable[[], int],
        client_id: Callable[[R], str | None] | None = None,
    ) -> None:
        self._key = key
        self._working = working
        self._limit = limit
        self._client_id = client_id
        self._records: dict[str, R] = {}
        self._by_client: dict[str, R] = {}
        self._by_engine: dict[str, R] = {}
        self._engine_ids: dict[int, list[str]] = {}  # id(record) -> the engine ids bound to it

    # --- writing -------------------------------------------------------------------------------

    def add(self, record: R, *, trim: bool = True) -> R:
        """Add a record (the newest); a reused client order id now names this one."""
        self._records[self._key(record)] = record
        if self._client_id is not None:
            client_id = self._client_id(record)
            if client_id:
                self._by_client[client_id] = record
        if trim:
            self.trim()
        return record

    def bind_engine(self, engine_id: str, record: R) -> None:
        """Index `record` under an engine order id (known once the engine took the order)."""
        self._by_engine[engine_id] = record
        self._engine_ids.setdefault(id(record), []).append(engine_id)

    def trim(self) -> None:
        """Forget the oldest finished records beyond the limit, and their index entries."""
        trim_history(self._records, self._limit(), working=self._working, forget=self._forget)

    def _forget(self, record: R) -> None:
        if self._client_id is not None:
            client_id = self._client_id(record)
            if client_id and self._by_client.get(client_id) is record:
                del self._by_client[client_id]
        for engine_id in self._engine_ids.pop(id(record), ()):
            if self._by_engine.get(engine_id) is record:
                del self._by_engine[engine_id]

    # --- reading -------------------------------------------------------------------------------

    def get(self, order_id: str, default: R | None = None) -> R | None:  # type: ignore[override]
        return self._records.get(order_id, default)

    def by_client(self, client_order_id: str) -> R | None:
        if self._client_id is None:
            return self._records.get(client_order_id)
        return self._by_client.get(client_order_id)

    def by_engine(self, engine_id: str) -> R | None:
        return self._by_engine.get(engine_id)

    def own(self, engine: MatchingEngine, engine_id: str) -> R | None:
        """The record behind an engine order id, also while the order is being submitted: the
        engine reports a submit's matches before `submit` returns the new id, so an id not bound
        yet is looked up by the engine order's client order id, and bound."""
        record = self._by_engine.get(engine_id)
        if record is None:
            live = engine.order(engine_id)
            if live is not None and live.client_order_id is not None:
                record = self.by_client(live.client_order_id)
                if record is not None:
                    self.bind_engine(engine_id, record)
        return record

    def values(self) -> ValuesView[R]:  # type: ignore[override]
        """The records, oldest first (a live view: copy it before changing the store)."""
        return self._records.values()

    def client_ids(self) -> list[str]:
        """The client order ids that name a record, in the order they were first indexed."""
        if self._client_id is None:
            return list(self._records)
        return list(self._by_client)

    def engine_ids(self) -> list[str]:
        """The engine order ids records are indexed under."""
        return list(self._by_engine)

    def __getitem__(self, order_id: str) -> R:
        return self._records[order_id]

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._records

    def __iter__(self) -> Iterator[str]:
        """The venue order ids, oldest first."""
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

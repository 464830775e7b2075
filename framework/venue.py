"""The venue contract: what a venue package gives the core.

A venue package (`framework/venues/<name>/`) exports one `Venue` object and adds one line to
`framework.venues.REGISTRY`. It provides:

- a config class (attrs, subclass of `VenueConfig`) for its `[venues.<name>]` section;
- `Stream`s: one per WebSocket connection, each saying how to connect, authenticate, subscribe,
  heartbeat, and decode frames into normalized events. The core's `WsSession` supervises them
  (reconnect, backoff, watchdog, books, resync) so no venue writes that loop again;
- an `ExecutionClient` if the venue takes orders;
- its instrument catalogue;
- its simulator, a real loopback server speaking the venue's protocol.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol

import attrs
import trio

from framework.errors import BookNotSynced, OrderRefused
from framework.events import ExecutionReport, OrderType, Side, TimeInForce
from framework.model import Instrument, Order

Endpoint = Literal["sim", "sandbox", "production"]


@attrs.define(kw_only=True)
class VenueConfig:
    """Fields every venue section has; a venue subclasses it with its own."""

    # only enabled venues run, unless picked with `botrun --venue NAME`
    enabled: bool = True
    endpoint: Endpoint = "sim"
    markets: list[str] = attrs.Factory(list)
    # embedded simulator: seed of its synthetic market, and its port (0 = any free port)
    sim_seed: int = 1
    sim_port: int = 0
    sim_rate_hz: float = 20.0
    # connect to a standalone simulator (`botrun sim VENUE --port N`) instead of embedding one
    sim_url: str = ""
    request_timeout_s: float = 10.0


@attrs.frozen(kw_only=True)
class Urls:
    """One endpoint's URLs; a venue leaves empty what it does not use."""

    ws: str = ""  # WebSocket (base or full URL, as the venue's streams take it)
    http: str = ""  # REST base
    auth: str = ""  # login / token base, where it differs from `http`


@attrs.frozen(kw_only=True)
class Endpoints:
    """A venue's endpoints as data. `framework.transport.endpoints.select_urls` picks the set for
    `cfg.endpoint` (and applies the TLS rule once).

    `sim` derives the URL set from a simulator's handle (embedded, or a standalone one picked with
    `sim_url`); `sandbox` / `production` are the venue's published URLs, or None where the venue
    publishes none (the user then configures them: see `overrides` of `select_urls`).
    """

    sim: Callable[[SimHandle], Urls]
    sandbox: Urls | None = None
    production: Urls | None = None


def secret(**kw: Any) -> Any:
    """An attrs field of a `Credentials` class that holds a secret (redacted from logs)."""
    return attrs.field(repr=False, metadata={"secret": True}, **kw)


@attrs.frozen
class Credentials:
    """A venue's credentials: subclass with one attrs field per value, `secret()` for secrets.

    `framework.transport.endpoints.credentials_from_env` builds one from the environment
    variables a venue's config names (field `x` from the variable in `cfg.x_env`).
    """

    def secrets(self) -> list[str]:
        return [
            str(getattr(self, f.name))
            for f in attrs.fields(type(self))
            if f.metadata.get("secret") and getattr(self, f.name)
        ]


_ALL_TIFS = frozenset(TimeInForce)


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a venue takes, declared once as data (`framework/venues/<venue>/capabilities.py`,
    from its reference `shared/venues/<venue>.md`). `framework.execution.checks` refuses what
    the venue would refuse before an order leaves, in every mode (paper, sandbox, live,
    backtest), and the paper broker fills only what the venue would take. The defaults are
    permissive: a venue that declares nothing is refused nothing locally."""

    order_types: frozenset[OrderType] = frozenset(OrderType)
    # time in force per order type; a type missing here takes every TimeInForce
    tifs: dict[OrderType, frozenset[TimeInForce]] = attrs.Factory(dict)
    post_only: bool = True
    modify: bool = False
    # sides a STOP_MARKET order may take (Paxos: "only sell stop loss orders are supported")
    stop_market_sides: frozenset[Side] = frozenset(Side)
    # how a MARKET BUY is sized on the wire: "base" quantity, or "quote" amount to spend (the
    # adapter converts; the framework's order stays in base units)
    market_buy_sizing: Literal["base", "quote"] = "base"
    # price precision the venue keeps; None = no rule beyond the instrument's tick
    price_significant_digits: int | None = None
    price_max_decimals: int | None = None
    quantity_max_decimals: int | None = None
    # the account model: "spot" (pay in quote, deliver base) or "margin" (perpetuals: an order
    # needs its initial margin, in quote units, free)
    account: Literal["spot", "margin"] = "spot"
    leverage: Decimal = Decimal(1)
    # where each rule comes from (the reference's section), for the reader
    reference: str = ""

    def tifs_for(self, order_type: OrderType) -> frozenset[TimeInForce]:
        return self.tifs.get(order_type, _ALL_TIFS)


class Connection(Protocol):
    """The open socket as a stream sees it (the transport's `Connection` implements it; the
    contract names only this, so it does not import the transport that imports it)."""

    async def send(self, message: Any) -> None:
        """Send a JSON message (dict/list) or a pre-encoded str."""

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Stream(abc.ABC):
    """One WebSocket connection's protocol. The core sets `emit`, `epoch` and `venue`."""

    name: str = "stream"
    venue: str = ""
    # the core watchdog marks the stream STALE, then reconnects, if no frame for this long
    stale_after_s: float = 15.0
    # WebSocket-level ping (answered by the peer's WS stack); None = no ping
    ping_interval_s: float | None = 20.0
    # venue-level heartbeat: `send_heartbeat` is called this often; None = none
    heartbeat_interval_s: float | None = None
    # the largest frame read (bytes): above it the frame is refused unread (close 1009, counted
    # as `oversized_frames`) and the session reconnects, so memory stays near this size. Each
    # venue sets what its largest frame needs (a book snapshot is far below a catalogue); this
    # default is for streams that have not said
    max_message_size: int = 64 * 1024 * 1024
    # after a reconnect of this stream, the core reconciles the venue's open orders (set it on
    # streams that carry order events: whatever happened while we were away is asked for)
    reconcile_on_reconnect: bool = False
    # `decode` takes a text frame as its UTF-8 bytes just as well as as a str (a JSON parser
    # reads either): a replay then hands it the recorded bytes without decoding them first
    text_as_bytes: bool = False

    def __init__(self) -> None:
        self.emit: Callable[[Any], None] = lambda event: None
        self.epoch = 0
        # the core sets this: `resync(conn, symbol)` is then called after the current frame
        # (for decoders that suspect a gap the book cannot see, e.g. a delta where a snapshot
        # was due)
        self.request_resync: Callable[[str], None] = lambda symbol: None

    @abc.abstractmethod
    async def url(self) -> str: ...

    async def handshake_headers(self) -> list[tuple[str, str]]:
        return []

    async def on_connected(self, conn: Connection) -> None:
        """Authenticate and subscribe (messages are sent with `conn.send`)."""

    async def send_heartbeat(self, conn: Connection) -> None:
        """The venue's own heartbeat, if it has one."""

    @abc.abstractmethod
    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        """Turn one frame into events via `self.emit`. Raise `FrameError` for a bad frame."""

    def on_auth_rejected(self) -> None:
        """The venue refused our credentials (e.g. drop a cached token before the next try)."""

    def books(self) -> list[str]:
        """Symbols whose books this stream maintains (unsynced when it disconnects)."""
        return []

    async def resync(self, conn: Connection, symbol: str) -> bool:
        """Ask for a fresh snapshot of one book on the open connection; False = reconnect."""
        return False


class BookView(Protocol):
    """What an execution client may read of the core's book (`framework.data.book.OrderBook`
    implements it): the touch, for pre-trade checks. Raises `BookNotSynced` unless synced."""

    def best_bid(self) -> tuple[Decimal, Decimal] | None: ...
    def best_ask(self) -> tuple[Decimal, Decimal] | None: ...


def touch_price(book: BookView | None, side: Side) -> Decimal | None:
    """The best price an order on `side` would meet (the best ask for a buy); None with no book,
    an empty side, or a book that is not synced."""
    if book is None:
        return None
    try:
        level = book.best_ask() if side is Side.BUY else book.best_bid()
    except BookNotSynced:
        return None
    return level[0] if level else None


class ExecutionContext(Protocol):
    """What the order manager offers an execution client."""

    def on_report(self, report: ExecutionReport) -> None: ...
    def publish(self, event: object) -> None: ...
    def open_orders(self, venue: str) -> list[Order]: ...
    def book(self, venue: str, symbol: str) -> BookView | None:
        """The core's book (pre-trade checks against the live market); None if not kept."""


class ExecutionClient(abc.ABC):
    """Sends orders to one venue and reports what happens to them.

    `submit`/`cancel` may return a report (e.g. a REST response), raise `OrderRefused` for a
    definite refusal, or raise anything else for an unknown outcome (the core marks UNKNOWN and
    reconciles). Asynchronous reports go to `ctx.on_report` from `run`.
    """

    venue: str = ""
    client_order_id_max_len: int = 32
    # order types this venue accepts; others are refused before they leave
    order_types: frozenset[OrderType] = frozenset({OrderType.LIMIT, OrderType.MARKET})
    ctx: ExecutionContext | None = None
    # the venue documents one request that cancels every open order (`cancel_all`); the kill
    # switch and shutdown then send it instead of one cancel per order
    supports_cancel_all: bool = False

    def bind(self, ctx: ExecutionContext) -> None:
        """Called by the core before anything else (reconciliation included)."""
        self.ctx = ctx

    @abc.abstractmethod
    async def submit(self, order: Order) -> ExecutionReport | None: ...

    @abc.abstractmethod
    async def cancel(self, order: Order) -> ExecutionReport | None: ...

    async def modify(
        self, order: Order, price: Decimal | None, quantity: Decimal | None
    ) -> ExecutionReport | None:
        """Amend a working order's price and/or total quantity (venues that support it)."""
        raise OrderRefused(f"{self.venue} does not support modifying orders")

    @abc.abstractmethod
    async def query_order(self, order: Order) -> ExecutionReport | None:
        """The venue's current view of the order, with cumulative fills; None if unknown there."""

    @abc.abstractmethod
    async def list_open_orders(self) -> list[ExecutionReport]:
        """Every order working at the venue for this account, ours or not (the venue's listing
        request, paged as it needs). Each report names the order (`client_order_id` where the venue
        gives one, else ""; `venue_order_id`) and says what it is: `symbol`, `side`, `price`
        (None for a market order), `quantity` (total), `cum_qty`, `status`. Reconciliation
        compares them with the journal to find orphans; they are never applied as fills.
        Raise `NotImplementedError` where the venue (or its simulator) offers no listing.
        """

    async def cancel_all(self, symbol: str | None = None) -> None:
        """Optional (`supports_cancel_all`): the venue's own request cancelling every open order
        of the account (of `symbol`). Returns once the venue took the request; each order's end
        arrives as its own report (or the core queries it). Raise as `cancel` does."""
        raise NotImplementedError(f"{self.venue} has no bulk cancel")

    async def run(self) -> None:
        """Background work: private streams, polling, balances. Default: nothing."""
        await trio.sleep_forever()


@attrs.define
class VenueRuntime:
    streams: list[Stream]
    execution: ExecutionClient | None
    instruments: dict[str, Instrument]


@attrs.frozen
class SimHandle:
    """An embedded simulator that is serving."""

    port: int
    http_url: str
    ws_url: str
    simulator: Any


class Venue(abc.ABC):
    name: ClassVar[str]
    config_type: ClassVar[type[VenueConfig]] = VenueConfig
    # what the venue takes (order types, TIFs, post-only, modify, precision, account model)
    capabilities: ClassVar[Capabilities] = Capabilities()

    @abc.abstractmethod
    async def start_simulator(self, cfg: Any, nursery: trio.Nursery) -> SimHandle: ...

    @abc.abstractmethod
    async def build(self, cfg: Any, sim: SimHandle | None, http: Any) -> VenueRuntime:
        """Create streams and execution client for the configured endpoint.

        `sim` is the embedded simulator when `cfg.endpoint == "sim"`, else None.
        `http` is a shared httpx.AsyncClient factory: `http(base_url, verify=True)`.
        """

    def secrets(self, cfg: Any) -> list[str]:
        """Secret values in use (to be redacted from logs)."""
        return []

    def replay_stream(self, cfg: Any, name: str) -> Stream | None:
        """Optional (record/replay/backtest): the stream called `name` (its `Stream.name` when it
        was recorded), built offline from `cfg` alone: no network, no credentials, never
        connected — only its `decode` is fed the recorded frames (its `epoch` is set from the
        recording; `on_connected`/`resync` are not called, so a decoder must rebuild its state
        from received frames alone). None = not provided: the backtest then builds the streams
        with `build()` against this venue's embedded simulator (with the recorded markets) and
        picks them by name, which works as long as the simulator lists those markets.
        """
        return None


class VenueCatalog(Protocol):
    """Where the core finds venues by name without importing one: the venue layer provides it
    (`framework.venues.CATALOG`) and hands it to `framework.config.parse`."""

    def names(self) -> list[str]:
        """Every venue that can be configured, sorted."""

    def load(self, name: str) -> Venue:
        """The `Venue` object called `name` (one of `names()`)."""

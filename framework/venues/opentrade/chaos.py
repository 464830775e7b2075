"""Open Trade in the fault-tolerance tests, the soak and the test kit (see venues/chaos.py).

Books: the venue sends every subscribed book in full every 20 ms, changed or not; there are no
deltas, sequence numbers or checksums. So:

- `detects_gaps = False`. The client cannot notice a lost or reordered book frame; it does not
  need to for long, since the next refresh (<= 20 ms later) replaces the whole book. But until
  then the book is SYNCED and one refresh behind (or, after a reorder, an older book sits on top
  of a newer one): a check at that moment sees a synced book that is not the venue's. `drop` and
  `reorder` on the book path are therefore left out of the book checks, as for any gap-blind
  feed, although here the error heals by itself within one refresh interval.
- `removes_level = None`. There is no frame that removes a level: every frame is the whole book,
  so a "lost removal" is healed by the next refresh instead of leaving a ghost level until the
  book crosses. The scripted ghost-level test does not apply (the next refresh heals it).
- `truth` is the book as the venue last sent it (`OpenTradeSimulator.published`, at the depth the
  client subscribes): between refreshes the venue's engine runs ahead of its own feed by design
  (orders, trades), and the feed cannot be expected to show what it has not sent yet.
- `step(n)` is n refreshes: each moves every market until its visible book changed and publishes
  the books at once (as the 20 ms publisher would), so the frames go out, faults applied, before
  the test waits. The first step turns the simulator's own 20 ms refresh off (`timed_books`):
  from then on every book frame comes from a step.

Orders go over the private WebSocket (CREATE / CANCEL / GET on TRADE_PRIVATE; no reply names its
request, so the client sends one command at a time behind a PING barrier), not HTTP: HTTP carries
only login and the JWT. So the order-path faults, the lost submit reply and the failing queries
are frame rules on the private reply frames, and the generic `http_*` faults would only hit
login/token fetches.

Fills: Open Trade's published `Order` items carry no filled amount; the adapter sums the order's
fills from TRADES_HISTORY and names each derived fill `<coid>:cum:<filled so far>`, and fills
missed while the private stream was away come back merged into one. So fills compare per order
total (`fills_by_id = False`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from framework.sim.faults import FaultPlan, Rule
from framework.venues.chaos import ChaosCase

_WS = "/exchange/ws"  # public and private connections share it (told apart by the client port)
_MARKETS = ("BTC/USD", "ETH/USD")
_LEVELS = 20  # what the client subscribes (OpenTradeConfig.levels default)
_MAX_TRIES = 100  # crowd steps per market per refresh, at most
_COMMANDS = ("CREATE", "CANCEL", "MODIFY", "GET")  # order commands: what a request waits for


def _section(seed: int) -> dict[str, Any]:
    return {
        "endpoint": "sim",
        "sim_seed": seed,
        "sim_rate_hz": 0,  # the test moves the market (and, from its first step, the books)
        "markets": list(_MARKETS),
        "trades": False,
        # an order command whose reply is lost (order_faults, lose_submit_reply, queries_fail)
        # times out after this; a loopback simulator answers in well under a millisecond
        "request_timeout_s": 0.5,
    }


def _truth(sim: Any, symbol: str) -> tuple[list, list]:
    published = sim.published.get((symbol, _LEVELS))
    return published if published is not None else sim.engine.book(symbol, _LEVELS)


def _step(sim: Any, n: int) -> None:
    # the test's refreshes replace the venue's 20 ms timer: once the market moves, every book
    # frame comes from a step (deterministic; after the last one the client is caught up for
    # good, not until the next tick of a timer)
    sim.timed_books = False
    for _ in range(n):
        for symbol, crowd in sim.crowds.items():
            # move each market until the book the client sees changed (a crowd step deep in the
            # book shows nothing): every frame of a step is news, which a test waiting on book
            # events alone (the slow-strategy test) needs to see the last one
            before = sim.engine.book(symbol, _LEVELS)
            for _ in range(_MAX_TRIES):
                crowd.steps(1)
                if sim.engine.book(symbol, _LEVELS) != before:
                    break
        sim.publish_books()  # one refresh: every subscribed book, in full


# --- order-path faults: private reply frames ----------------------------------------------------


def _frame(text: str) -> dict[str, Any]:
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return msg if isinstance(msg, dict) else {}


def _command_reply(text: str) -> bool:
    """The answer to an order command or a GET (ACK, ERROR, or the published GET-form answer,
    with or without an event), not a subscription's frames. The cancel's `OrderUpdate` comes in
    the update form and is not among them."""
    if '"TRADE_PRIVATE"' not in text:  # cheap: every book frame passes through here
        return False
    msg = _frame(text)
    return msg.get("channel") == "TRADE_PRIVATE" and msg.get("command") in _COMMANDS


def _get_reply(text: str) -> bool:
    """The answer to a GET TRADE_PRIVATE query (`"event":"GET"`; the CREATE answer has none)."""
    return _command_reply(text) and _frame(text).get("event") == "GET"


def _order_faults(plan: FaultPlan, scale: float) -> list[Rule]:
    # the answer to a CREATE / CANCEL / GET is lost after the venue acted (the request times
    # out: unknown outcome, reconciled), or held back (the order updates queued behind it too)
    return [
        plan.add("drop", 0.08 * scale, _WS, match=_command_reply),
        plan.add("delay", 0.08 * scale, _WS, match=_command_reply, seconds=0.01),
    ]


def _lose_submit_reply(plan: FaultPlan) -> list[Rule]:
    """The next CREATE is done but its answer (the order, in the GET form without an event)
    never arrives (the request times out: unknown).

    The NEW and ACTIVE updates of that order, which the simulator sends right after the
    answer, are lost too, else they would tell the client what the lost answer did. Only that
    order's, and only those: if the frame after the answer is not its NEW, nothing more is
    dropped."""
    state: dict[str, Any] = {"step": "ack", "coid": None}

    def match(text: str) -> bool:
        step = state["step"]
        if step == "done" or '"TRADE_PRIVATE"' not in text:
            return False
        msg = _frame(text)
        if msg.get("channel") != "TRADE_PRIVATE":
            return False
        items = msg.get("data")
        item = items[0] if isinstance(items, list) and len(items) == 1 else None
        order = item if isinstance(item, dict) and item.get("class") == "Order" else {}
        coid = order.get("orderId") or order.get("clientOrderId")
        if step == "ack":
            answer = msg.get("command") == "GET" and "event" not in msg
            if answer and order.get("orderStatus") == "NEW" and coid is not None:
                state["step"], state["coid"] = "new", coid
                return True
            return False
        update = msg.get("command") == "SUBSCRIBE" and msg.get("event") == "UPDATE"
        status = order.get("orderStatus")
        if step == "new":
            # the very next private frame: the NEW of the order the lost answer created
            if update and status == "NEW" and coid == state["coid"]:
                state["step"] = "active"
                return True
            state["step"] = "done"
            return False
        if update and coid is not None and coid == state["coid"]:
            state["step"] = "done"
            return status == "ACTIVE"  # not a fill or an end: those let the order be known
        return False

    return [plan.once("drop", _WS, match=match, times=3)]


def _queries_fail(plan: FaultPlan) -> list[Rule]:
    # order queries are GET TRADE_PRIVATE over the WS: their replies are lost (each query times
    # out). Not a close: the reconnect's TRADE_PRIVATE snapshot would answer the question.
    return [plan.add("drop", 1.0, _WS, match=_get_reply)]


# --- fuzzing ------------------------------------------------------------------------------------


class _NoTokens:
    """Stands in for the TokenSource: decoding never fetches a token, an auth ERROR drops it."""

    def invalidate(self) -> None:
        pass

    async def token(self) -> str:
        return "token"


def _streams() -> dict[str, Any]:
    from framework.venues.opentrade.private import PrivateStream
    from framework.venues.opentrade.public import PublicStream

    ws = "ws://127.0.0.1:1" + _WS
    markets = list(_MARKETS)
    return {
        "public": PublicStream(ws, markets),
        "private": PrivateStream(ws, _NoTokens(), markets, ["BTC", "ETH", "USD"]),  # type: ignore[arg-type]
    }


# lines of tests/venues/opentrade/samples/opentrade.jsonl (documented frames)
_BOOK = (
    '{"command":"SUBSCRIBE","event":"UPDATE","channel":"ORDER_BOOK_PUBLIC","data":[{"class":'
    '"OrderBook","exchange":"CROSSTOWER","symbol":"BTC/USD","bids":[[19292.21,0.0124],'
    '[19242.45,3.0516],[10000.0,0.0002]],"asks":[[85100.0,0.01009],[19397.85,21.6067],'
    '[84300.0,0.00854]],"eventTime":1664651366635}]}'
)
_GET_ORDER = (
    '{"command":"GET","event":"GET","channel":"TRADE_PRIVATE","data":[{"class":"Order",'
    '"orderId":"567567567","exchOrderId":"1668662119644","direction":"BUY","orderType":"LIMIT",'
    '"orderStatus":"ACTIVE","price":12000.0,"filledPrice":0.0,"amount":0.001,'
    '"orderDateTime":"2022-11-09T18:19:29.644164Z","globalInstrumentCd":"BTC/USD",'
    '"message":null}]}'
)
_BALANCE = (
    '{"command":"SUBSCRIBE","event":"SNAPSHOT","channel":"BALANCE","data":[{"class":"Balance",'
    '"currencyCode":"ADA","balance":16140.3555,"available":16040.3555,"locked":100.0}]}'
)
_SAMPLES = {
    "public": (
        _BOOK,
        # the decoder takes a book under any data event; this variant also puts the public
        # stream under the fuzzer's book-state property (it selects streams by '"SNAPSHOT"')
        _BOOK.replace('"UPDATE"', '"SNAPSHOT"').replace("19292.21", "19300.5"),
        '{"command":"SUBSCRIBE","event":"ACK","channel":"ORDER_BOOK_PUBLIC"}',
        '{"command":"SUBSCRIBE","event":"UPDATE","channel":"TRADE_PUBLIC","data":[{"class":'
        '"PublicTrade","exchange":"OKCOIN","symbol":"BTC/USD","price":19308.6,"quantity":0.0103,'
        '"tradeSide":"BUY","eventTime":1664651920827}]}',
        '{"event":"PONG","channel":"PING"}',
    ),
    "private": (
        _BALANCE,
        _BALANCE.replace('"SNAPSHOT"', '"UPDATE"'),
        '{"command":"SUBSCRIBE","event":"ACK","channel":"BALANCE"}',
        _GET_ORDER,
        _GET_ORDER.replace('"event":"GET",', ""),  # the documented reply without an event
        '{"command":"GET","event":"GET","channel":"TRADE_PRIVATE","data":[{"class":"Order",'
        '"clientOrderId":"4444444","exchangeOrderId":"1668553243505","direction":"BUY",'
        '"orderType":"LIMIT","orderStatus":"CANCELLED","price":12700.0,"filledPrice":12700.0,'
        '"amount":0.001,"orderDateTime":"2022-11-10T02:36:52.505443Z",'
        '"globalInstrumentCd":"BTC/USD","message":null}]}',
        '{"command":"SUBSCRIBE","event":"UPDATE","channel":"TRADE_PRIVATE","data":[{"class":'
        '"OrderUpdate","clientId":100141,"requestType":"SMART","tradeSide":"BUY",'
        '"instrumentCd":"BTC/USD","exchangeOrderId":null,"clientOrderId":null,'
        '"transactionId":1668897424879,"orderRequestStatus":"CANCELLED","message":"",'
        '"key":"100141:BTC/USD:352908720"}]}',
        '{"command":"GET","event":"GET","channel":"TRADE_POSITIONS","data":[{"class":'
        '"TradePosition","direction":"BUY","date":"2022-11-10","globalInstrumentCd":"BTC/USD",'
        '"openPrice":12700.0,"entryPrice":12700.0,"posVolume":0.001,"currentSl":10.0,'
        '"currentTp":10.0}]}',
        '{"event":"PONG","channel":"PING"}',
    ),
}


def _create_answer(text: str) -> bool:
    """The CREATE's answer: the new order in the published GET form without an event."""
    if '"TRADE_PRIVATE"' not in text or '"event"' in text:
        return False
    msg = _frame(text)
    items = msg.get("data")
    return (
        msg.get("command") == "GET"
        and isinstance(items, list)
        and any(isinstance(i, dict) and i.get("orderStatus") == "NEW" for i in items)
    )


def _reset_after_create(plan: FaultPlan) -> list[Rule]:
    # the venue has the order; the private socket drops (no close frame) instead of its answer
    return [plan.once("abort", _WS, match=_create_answer)]


def _order_frame(text: str) -> bool:
    """A private frame carrying our orders: a command's answer, an update, a cancel's
    `OrderUpdate`, a GET's orders or trade history."""
    return '"TRADE_PRIVATE"' in text and ('"Order"' in text or '"OrderUpdate"' in text)


CASE = ChaosCase(
    venue="opentrade",
    markets=_MARKETS,
    section=_section,
    book_stream="public",
    book_path=_WS,
    # full-book refresh every 20 ms, no sequence numbers or checksums: a lost or reordered book
    # frame is not noticed, only overwritten by the next refresh (see the module docstring)
    detects_gaps=False,
    account="sim-api",  # OpenTradeSimulator.account = its api_user
    # token_expiry: `expire_tokens()`, fired on login/token requests and on signed WS requests
    # (sim.py). No late_fill: the simulator cancels at once, it has no hook for a late fill.
    venue_faults=("token_expiry",),
    truth=_truth,
    step=_step,
    # fill_id: the engine's trade id (the default). The client's ids derive from cumulative
    # amounts and are not compared one by one (fills_by_id=False); venue_fills() still shows
    # that something traded.
    fills_by_id=False,
    lot=Decimal("0.0001"),
    removes_level=None,  # no frame removes a level: each is the whole book
    order_faults=_order_faults,
    lose_submit_reply=_lose_submit_reply,
    queries_fail=_queries_fail,
    reset_after_create=_reset_after_create,
    order_frames=_order_frame,
    # what the adapter reads from an `Order` item for fills: the size (`amount`: the order's
    # on FILLED, one fill's in TRADES_HISTORY), the average price, a fill size where one is sent
    order_numbers=("amount", "filledPrice", "filledAmount"),
    streams=_streams,
    samples=_SAMPLES,
)

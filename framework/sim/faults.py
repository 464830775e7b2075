"""Seeded, scriptable fault injection shared by every simulator.

A `FaultPlan` is attached to a simulator's `SimApp` (`app.faults = plan`) and consulted at four
points, so every venue simulator misbehaves the same way without a line of venue code:

- each outbound WebSocket frame (`WsConnection.enqueue`): drop, duplicate, reorder (swap with the
  next queued frame), delay, stall (socket open, nothing sent), close with a code, abort (TCP
  dropped without a close frame), malformed frame (inserted before the real one), oversized frame;
- each WebSocket upgrade: refuse the handshake with an HTTP status;
- each HTTP request: answer 429/5xx instead of handling it, delay the answer after handling it
  (a delayed acknowledgement), or handle it and lose the reply (a 504 after the fact); hold it
  and handle it only after the client gave up (`http_hold`: a request stuck in a gateway);
  handle it and then answer 429/5xx (`http_error_after`: the venue acted, the client is told it
  did not), or handle it and drop the TCP connection without an answer (`http_reset_after`: a
  reset after the venue acted; on a WebSocket the same is an `abort` rule matching the reply);
  answer with a junk 200 body (`http_junk_body`: HTML, `null`) or a 429 whose
  Retry-After is nonsense (`http_bad_retry_after`: `nan`, `100000`); corrupt one number of the
  answer (`corrupt_number`, also on frames);
- frames REPLACED by an unreadable one (`corrupt_frame`; `malformed` inserts garbage before the
  real frame instead), or with one number corrupted (`corrupt_number`: 1E+400, NaN, negative,
  a thousand times larger: a cumulative fill above the order quantity);
- the order journal's disk (`journal_enospc`): `plan.journal_hook()` is set as the journal's
  `fault` hook, and each write it sees while such a rule fires raises OSError(ENOSPC);
- venue-specific faults the simulator registers as actions (`app.fault_actions`, e.g. Paxos'
  `token_expiry`) run on HTTP requests, and ones only the simulator can perform (e.g.
  `late_fill`, a fill that lands after the cancel request arrived) are asked for with
  `plan.roll(kind, path)`.

Rules are either random (`plan.add(kind, rate)`: each opportunity fires with that probability,
drawn from the plan's seeded generator, so a run is reproducible for the same traffic) or
scripted (`plan.once(kind, after=n)`: fires on the next matching opportunity(ies), for tests).
Scripted rules are checked first. `FaultPlan.parse("seed=3,drop=0.01@/marketdata,close=0.001")`
builds a plan from a config or command-line string (`botrun sim VENUE --faults SPEC`).
"""

from __future__ import annotations

import errno
import random
import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import attrs
import structlog
import trio

from framework.events import Side
from framework.sim.engine import IOC, LIMIT, MatchingEngine, SimOrder
from framework.sim.messages import HttpRequest, HttpResponse, Pause, Swap


class FaultedConnection(Protocol):
    """What a plan does to one WebSocket connection (a `framework.sim.server.WsConnection`;
    named by this protocol so that the server, which consults the plan, is not imported back)."""

    path: str

    def _put(self, item: str | Pause | Swap) -> bool: ...
    def _close_now(self, code: int, reason: str, force: bool = False) -> None: ...
    def abort(self) -> None: ...


class FaultedApp(Protocol):
    """What a plan uses of a simulator app (a `framework.sim.server.SimApp`)."""

    fault_actions: dict[str, Callable[[], None]]

    def error_response(self, status: int, detail: str) -> HttpResponse: ...


log = structlog.get_logger("botrun.sim.faults")

FRAME_KINDS = (
    "drop",
    "duplicate",
    "reorder",
    "delay",
    "stall",
    "close",
    "abort",
    "malformed",
    "oversized",
    "corrupt_frame",
    "corrupt_number",
)
HANDSHAKE_KINDS = ("refuse",)
HTTP_KINDS = (
    "http_error",
    "http_delay",
    "http_lost_reply",
    "http_hold",
    "http_error_after",
    "http_reset_after",
    "http_junk_body",
    "http_bad_retry_after",
)
# faults on the answer, decided once the request was handled
HTTP_AFTER_KINDS = (
    "http_delay",
    "http_lost_reply",
    "http_error_after",
    "http_reset_after",
    "http_junk_body",
)
# consulted by the journal's fault hook (`FaultPlan.journal_hook`)
JOURNAL_KINDS = ("journal_enospc",)
# performed by a venue simulator that supports them (others never fire)
VENUE_KINDS = ("token_expiry", "late_fill")
KINDS = FRAME_KINDS + HANDSHAKE_KINDS + HTTP_KINDS + VENUE_KINDS + JOURNAL_KINDS

# what `corrupt_number` puts in place of a number: out of range, not a number, negative, and
# far larger than it was (a cumulative fill above the order's quantity)
CORRUPT_FORMS = ("1E+400", "NaN", "negative", "times1000")
# the JSON keys whose numbers `corrupt_number` picks from (unless a rule names its own `keys`):
# quantities, prices and fees, as venues spell them
NUMBER_KEYS = re.compile(
    r"(?i)(qty|quantity|size|amount|fee|filled|price|cum|volume|executed|remaining)"
)
JUNK_BODIES = (b"<html><body>502 Bad Gateway</body></html>", b"null", b"", b"[]", b'"ok"')
BAD_RETRY_AFTER = ("nan", "100000", "-5", "soon", "inf")

# close codes a venue may send (1006 is never sent on the wire; 1008/1009 have own meanings)
CLOSE_CODES = (1000, 1001, 1011, 1012, 1013)
# not 401/403: those mean "your credentials are bad" and rightly make a client back off long
REFUSE_STATUSES = (429, 500, 502, 503)
HTTP_STATUSES = (429, 500, 502, 503, 504)
DEFAULTS: dict[str, dict[str, Any]] = {
    "delay": {"seconds": 0.05},
    "stall": {"seconds": 1.0},
    "oversized": {"bytes": (1 << 20) + 1},
    "http_delay": {"seconds": 0.2},
    "http_error": {"retry_after": "0.05"},
    "late_fill": {"fraction": "0.5"},
    # longer than any client's request timeout (the defaults are 10 s)
    "http_hold": {"seconds": 12.0},
    "http_error_after": {"retry_after": "0.05"},
}

# Mixes for `--faults chaos` / `--faults gentle`: rates per frame or per request.
PRESETS: dict[str, dict[str, float]] = {
    "chaos": {
        "drop": 0.002,
        "duplicate": 0.005,
        "reorder": 0.005,
        "delay": 0.005,
        "stall": 0.0005,
        "close": 0.0005,
        "abort": 0.0005,
        "malformed": 0.003,
        "oversized": 0.0005,
        "refuse": 0.1,
        "http_error": 0.03,
        "http_delay": 0.02,
        "http_lost_reply": 0.01,
        "token_expiry": 0.005,
        "late_fill": 0.2,
    },
    "gentle": {
        "duplicate": 0.002,
        "malformed": 0.002,
        "close": 0.0002,
        "http_error": 0.01,
    },
}


@attrs.define(eq=False)
class Rule:
    kind: str
    rate: float = 0.0  # random rules: chance per opportunity
    path: str = ""  # only where the request/connection path starts with this
    times: int | None = None  # scripted rules: fire this many times, then the rule is spent
    after: int = 0  # scripted rules: let this many matching opportunities pass first
    match: Callable[[str], bool] | None = None  # frames: only frames this accepts
    params: dict[str, Any] = attrs.Factory(dict)
    fired: int = 0
    seen: int = 0

    @property
    def scripted(self) -> bool:
        return self.times is not None

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def param(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        return DEFAULTS.get(self.kind, {}).get(name)


class FaultPlan:
    """What goes wrong, where and how often; counts what it did."""

    def __init__(self, seed: int = 0, rules: list[Rule] | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.rules: list[Rule] = list(rules or [])
        self.counts: Counter[str] = Counter()
        self.enabled = True
        # called whenever a fault fires (kind, path): tests wait on it instead of sleeping
        self.listeners: list[Callable[[str, str], None]] = []

    # --- building ------------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        rate: float,
        path: str = "",
        *,
        match: Callable[[str], bool] | None = None,
        **params: Any,
    ) -> Rule:
        """A random rule: each matching opportunity (frame: one `match` accepts) fires with
        probability `rate`."""
        _check_kind(kind)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {rate}")
        rule = Rule(kind, rate=rate, path=path, match=match, params=params)
        self.rules.append(rule)
        return rule

    def once(
        self,
        kind: str,
        path: str = "",
        *,
        after: int = 0,
        times: int = 1,
        match: Callable[[str], bool] | None = None,
        **params: Any,
    ) -> Rule:
        """A scripted rule: skip `after` matching opportunities, then fire `times` times."""
        _check_kind(kind)
        rule = Rule(kind, path=path, times=times, after=after, match=match, params=params)
        self.rules.append(rule)
        return rule

    def remove(self, *rules: Rule) -> None:
        for rule in rules:
            self.rules.remove(rule)

    def clear(self) -> None:
        self.rules.clear()

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """`"seed=3,chaos"`, `"drop=0.01@/marketdata,close=0.001,http_error=0.05@/v2/"`.

        Items are comma-separated: `seed=N`, a preset name (`chaos`, `gentle`), or
        `kind=rate[@path-prefix]`. Raises ValueError naming a bad item.
        """
        plan = cls()
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            if item in PRESETS:
                for kind, rate in PRESETS[item].items():
                    plan.add(kind, rate)
                continue
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep:
                raise ValueError(f"faults: {item!r} is not kind=rate, seed=N or a preset")
            if name == "seed":
                try:
                    plan.seed = int(value)
                except ValueError:
                    raise ValueError(f"faults: seed must be an integer, got {value!r}") from None
                plan.rng = random.Random(plan.seed)
                continue
            rate_text, _, path = value.partition("@")
            try:
                rate = float(rate_text)
            except ValueError:
                raise ValueError(
                    f"faults: {name} rate must be a number, got {rate_text!r}"
                ) from None
            try:
                plan.add(name, rate, path.strip())
            except ValueError as exc:
                raise ValueError(f"faults: {exc}") from None
        return plan

    # --- deciding ------------------------------------------------------------------------------

    def _pick(
        self, kinds: tuple[str, ...] | set[str], path: str, text: str | None = None
    ) -> Rule | None:
        if not self.enabled:
            return None
        chosen = None
        for rule in self.rules:
            if not rule.scripted or rule.kind not in kinds or rule.spent:
                continue
            if not path.startswith(rule.path):
                continue
            if rule.match is not None and (text is None or not rule.match(text)):
                continue
            rule.seen += 1
            if rule.seen > rule.after:
                chosen = rule
                break
        if chosen is None:
            for rule in self.rules:
                if rule.scripted or rule.kind not in kinds or not path.startswith(rule.path):
                    continue
                if rule.match is not None and (text is None or not rule.match(text)):
                    continue
                # one draw per opportunity per rule: the same traffic gives the same faults
                if self.rng.random() < rule.rate:
                    chosen = rule
                    break
        if chosen is not None:
            chosen.fired += 1
            self.counts[chosen.kind] += 1
            for listener in list(self.listeners):
                listener(chosen.kind, path)
        return chosen

    def roll(self, kind: str, path: str = "") -> Rule | None:
        """For a simulator's own faults (e.g. `late_fill`): the rule that fires now, or None."""
        return self._pick((kind,), path)

    # --- hooks (called by framework.sim.server) -------------------------------------------------

    def on_frame(self, conn: FaultedConnection, text: str) -> bool:
        """Deliver (or not) one outbound frame; returns what `enqueue` returns."""
        rule = self._pick(FRAME_KINDS, conn.path, text)
        if rule is None:
            return conn._put(text)
        kind = rule.kind
        if kind == "drop":
            return True  # the venue thinks it sent it
        if kind == "duplicate":
            return conn._put(text) and conn._put(text)
        if kind == "reorder":
            return conn._put(Swap(text))
        if kind in ("delay", "stall"):
            seconds = float(rule.param("seconds"))
            return conn._put(Pause(seconds)) and conn._put(text)
        if kind == "close":
            code = rule.param("code") or self.rng.choice(CLOSE_CODES)
            conn._close_now(int(code), "injected fault")
            return False
        if kind == "abort":
            conn.abort()
            return False
        if kind == "malformed":
            return conn._put(self._garbage(text)) and conn._put(text)
        if kind == "oversized":
            # invalid JSON either way: refused as too big, or skipped as a bad frame
            return conn._put("#" * int(rule.param("bytes"))) and conn._put(text)
        if kind == "corrupt_frame":
            # replaced, not inserted: the real frame never arrives
            return conn._put(self._garbage(text))
        if kind == "corrupt_number":
            return conn._put(self.corrupt_number(text, rule))
        raise AssertionError(kind)

    def on_handshake(self, path: str) -> int | None:
        rule = self._pick(HANDSHAKE_KINDS, path)
        if rule is None:
            return None
        return int(rule.param("status") or self.rng.choice(REFUSE_STATUSES))

    async def before_http(self, app: FaultedApp, request: HttpRequest) -> HttpResponse | None:
        actions = app.fault_actions
        if actions:
            rule = self._pick(set(actions), request.path)
            if rule is not None:
                actions[rule.kind]()
        rule = self._pick(("http_error", "http_bad_retry_after"), request.path)
        if rule is None:
            return None
        if rule.kind == "http_bad_retry_after":
            retry = str(rule.param("retry_after") or self.rng.choice(BAD_RETRY_AFTER))
            response = app.error_response(429, "injected fault")
            return attrs.evolve(response, headers={**response.headers, "Retry-After": retry})
        status = int(rule.param("status") or self.rng.choice(HTTP_STATUSES))
        return self._error(app, rule, status)

    def hold_for(self, request: HttpRequest) -> float | None:
        """Seconds to hold this request before handling it (`http_hold`), or None.

        The server handles a held request after that long whether or not the client is still
        waiting: a create that reaches the venue after the client's timeout."""
        rule = self._pick(("http_hold",), request.path)
        return None if rule is None else float(rule.param("seconds"))

    async def after_http(
        self, app: FaultedApp, request: HttpRequest, response: HttpResponse
    ) -> HttpResponse:
        rule = self._pick((*HTTP_AFTER_KINDS, "corrupt_number"), request.path)
        if rule is None:
            return response
        if rule.kind == "http_delay":
            await trio.sleep(float(rule.param("seconds")))
            return response
        if rule.kind == "http_error_after":
            # the venue acted; the client is told to try again (or that it failed)
            status = int(rule.param("status") or self.rng.choice(HTTP_STATUSES))
            return self._error(app, rule, status)
        if rule.kind == "http_reset_after":
            # the venue acted; the connection drops before a byte of the answer is sent
            return HttpResponse(status=0, reset=True)
        if rule.kind == "http_junk_body":
            body = rule.param("body")
            if body is None:
                body = self.rng.choice(JUNK_BODIES)
            ctype = "text/html" if body.startswith(b"<") else "application/json"
            return HttpResponse(status=200, body=body, content_type=ctype)
        if rule.kind == "corrupt_number":
            text = response.body.decode("utf-8", "replace")
            return attrs.evolve(response, body=self.corrupt_number(text, rule).encode())
        # handled, but the answer never makes it back: what a gateway timeout looks like
        return app.error_response(int(rule.param("status") or 504), "injected fault: reply lost")

    def _error(self, app: FaultedApp, rule: Rule, status: int) -> HttpResponse:
        response = app.error_response(status, "injected fault")
        if status == 429:
            retry = str(rule.param("retry_after"))
            response = attrs.evolve(response, headers={**response.headers, "Retry-After": retry})
        return response

    # --- numbers -------------------------------------------------------------------------------

    def corrupt_number(self, text: str, rule: Rule | None = None) -> str:
        """`text` (JSON) with one number (of a quantity, price or fee key) made unreadable.

        The form is the rule's `form` (one of CORRUPT_FORMS) or drawn; the key is drawn among
        the rule's `keys` (names) or those NUMBER_KEYS matches. Text without such a number is
        returned unchanged (the rule still counts as fired: the frame is what it is)."""
        keys = rule.param("keys") if rule is not None else None
        form = (rule.param("form") if rule is not None else None) or self.rng.choice(CORRUPT_FORMS)
        spots = [
            m
            for m in _NUMBER_FIELD.finditer(text)
            if (m.group("key") in keys if keys else NUMBER_KEYS.search(m.group("key")))
        ]
        if not spots:
            return text
        spot = self.rng.choice(spots)
        raw = spot.group("num")
        quoted = spot.group("q") == '"'
        if form == "negative":
            new = raw[1:] if raw.startswith("-") else "-" + (raw if raw.strip("0.") else "1")
        elif form == "times1000":
            try:
                new = format(Decimal(raw) * 1000 + 1, "f")
            except ArithmeticError:
                new = "1000000"
        else:
            new = form
        if not quoted and form == "NaN":
            new = "NaN"  # not JSON at all: a decoder that parses numbers refuses the frame
        start, end = spot.span("num")
        return text[:start] + new + text[end:]

    # --- the journal's disk --------------------------------------------------------------------

    def journal_hook(self) -> Callable[[str], None]:
        """A `Journal.fault` hook: each journal write (`op`: intent, update, fill, fsync) while a
        `journal_enospc` rule fires raises OSError(ENOSPC), as a full disk does."""

        def hook(op: str) -> None:
            rule = self._pick(JOURNAL_KINDS, op)
            if rule is not None:
                raise OSError(errno.ENOSPC, f"No space left on device (injected, {op})")

        return hook

    # --- reporting -----------------------------------------------------------------------------

    def summary(self) -> str:
        return ", ".join(f"{k}: {n}" for k, n in sorted(self.counts.items())) or "none"

    def _garbage(self, text: str) -> str:
        """A frame no JSON decoder accepts: the real one cut short, or noise."""
        body = text.rstrip()
        if len(body) > 2 and body[-1] in "}]" and self.rng.random() < 0.5:
            return body[: self.rng.randrange(1, len(body) - 1)]  # the closing bracket is gone
        noise = "".join(chr(self.rng.randrange(33, 127)) for _ in range(self.rng.randrange(1, 40)))
        return "#" + noise


# `"key": number` or `"key": "number"` in JSON text
_NUMBER_FIELD = re.compile(
    r'"(?P<key>[A-Za-z_][A-Za-z0-9_]*)"\s*:\s*(?P<q>"?)(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?P=q)'
)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(KINDS)})")


# --- late fills (performed by the simulators that support `late_fill`) ----------------------------

LATE_FILL_OWNER = "fault-late-fill"


def roll_late_fill(plan: FaultPlan | None, path: str) -> Decimal | None:
    """The fraction to fill if a `late_fill` rule fires now (on `path`), else None."""
    late = plan.roll("late_fill", path) if plan is not None else None
    return None if late is None else Decimal(str(late.param("fraction")))


def late_fill(engine: MatchingEngine, live: SimOrder, fraction: Decimal) -> None:
    """The cancel request arrived, but a trade got there first.

    Another participant sweeps the book up to the resting order's price, taking everything ahead
    of it and `fraction` of it (at least one lot; 1 fills it completely).
    """
    assert live.price is not None
    lot = engine.lot(live.symbol)
    mine = min(live.remaining, max(lot, live.remaining * fraction // lot * lot))
    bids, asks = engine.book(live.symbol)
    if live.side is Side.BUY:
        ahead = sum((size for price, size in bids if price > live.price), Decimal(0))
    else:
        ahead = sum((size for price, size in asks if price < live.price), Decimal(0))
    for other in engine.orders(symbol=live.symbol, open_only=True):  # time priority
        if other.order_id == live.order_id:
            break
        if other.side is live.side and other.price == live.price:
            ahead += other.remaining
    engine.submit(
        LATE_FILL_OWNER, live.symbol, live.side.opposite, LIMIT, ahead + mine, live.price, tif=IOC
    )

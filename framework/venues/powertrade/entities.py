"""Power.Trade reference data: `entities_and_rules_request` on a short-lived connection (retried
with backoff), parsed into `EntityRules`, the steps and limits every order is checked on and the
`Instrument` each market becomes.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import attrs
import structlog
import trio

from framework.errors import FrameError
from framework.model import Instrument
from framework.transport.fetch import FetchError, fetch_ws
from framework.transport.wire import dec
from framework.venues.powertrade.client import frame
from framework.venues.powertrade.decode_frames import VENUE, text

log = structlog.get_logger("botrun.powertrade")


@attrs.frozen(slots=True)
class EntityRules:
    """One symbol of `entities_and_rules_response`."""

    symbol: str
    entity_id: str
    status: str
    base: str
    quote: str
    min_qty: Decimal
    max_qty: Decimal
    min_value: Decimal
    max_value: Decimal
    qty_step: Decimal
    price_step: Decimal
    tags: tuple[str, ...]

    def instrument(self) -> Instrument:
        return Instrument(
            VENUE,
            self.symbol,
            self.base,
            self.quote,
            tick=self.price_step,
            lot=self.qty_step,
            min_qty=self.min_qty,
            max_qty=self.max_qty,
            min_notional=self.min_value,
        )


def parse_entities(body: dict[str, Any]) -> dict[str, EntityRules]:
    out: dict[str, EntityRules] = {}
    symbols = body.get("symbols")
    if not isinstance(symbols, list):
        raise FrameError("entities_and_rules_response: symbols is not a list")
    for row in symbols:
        if not isinstance(row, dict):
            raise FrameError("entities_and_rules_response: a symbol is not an object")
        rules = EntityRules(
            symbol=text(row, "symbol"),
            entity_id=text(row, "tradeable_entity_id"),
            status=text(row, "status"),
            base=str(row.get("base_asset", "")),
            quote=str(row.get("quote_asset", "")),
            min_qty=dec(row.get("minimum_quantity"), "minimum_quantity"),
            max_qty=dec(row.get("maximum_quantity"), "maximum_quantity"),
            min_value=dec(row.get("minimum_value"), "minimum_value"),
            max_value=dec(row.get("maximum_value"), "maximum_value"),
            qty_step=dec(row.get("quantity_step"), "quantity_step"),
            price_step=dec(row.get("price_step"), "price_step"),
            tags=tuple(t for t in row.get("tags", []) if isinstance(t, str)),
        )
        if rules.qty_step <= 0 or rules.price_step <= 0:
            raise FrameError(f"{rules.symbol}: steps must be positive")
        out[rules.symbol] = rules
    return out


# [DOC] the venue lists every option: the instrument list is far above 1 MiB
ENTITIES_MAX_BYTES = 256 * 1024 * 1024


async def fetch_entities(
    url: str,
    timeout_s: float,
    *,
    max_bytes: int = ENTITIES_MAX_BYTES,
    attempts: int = 5,
    backoff_s: float = 0.5,
) -> dict[str, EntityRules]:
    """`entities_and_rules_request` on a short-lived connection ([DOC] works unauthenticated).

    A connection that fails or is reset (`FetchError`) is tried again with exponential backoff;
    after `attempts` the last error is raised with one clear log line. A refusal by the venue is
    not retried."""
    for attempt in range(1, attempts + 1):
        try:
            return await _fetch_entities_once(url, timeout_s, max_bytes)
        except FetchError as exc:
            if attempt == attempts:
                log.error(
                    "instrument list unavailable; giving up",
                    venue=VENUE,
                    attempts=attempts,
                    error=str(exc),
                )
                raise
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning(
                "instrument list fetch failed; retrying",
                venue=VENUE,
                attempt=attempt,
                retry_in_s=delay,
                error=str(exc),
            )
            await trio.sleep(delay)
    raise AssertionError("unreachable")


async def _fetch_entities_once(
    url: str, timeout_s: float, max_bytes: int
) -> dict[str, EntityRules]:
    tag = f"rules-{secrets.token_hex(4)}"

    def answer(message: str | bytes) -> dict[str, EntityRules] | None:
        kind, body = _split(message)
        if kind == "entities_and_rules_response" and body.get("user_tag") == tag:
            return parse_entities(body)
        if kind == "command_response" and body.get("user_tag") == tag:
            raise FrameError(f"entities_and_rules_request refused: {body}")
        return None

    return await fetch_ws(
        url,
        [frame("entities_and_rules_request", {"user_tag": tag})],
        answer,
        what="powertrade entities_and_rules_request",
        timeout_s=timeout_s,
        max_bytes=max_bytes,
    )


def _split(message: str | bytes) -> tuple[str, dict[str, Any]]:
    from framework.venues.powertrade.decode_frames import loads

    return loads(message)

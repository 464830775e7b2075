"""REST calls with the behaviour every venue wants: JSON in/out, typed errors, safe retries, and
the mapping of an HTTP problem to an order request's outcome.

Retries (429, 5xx, a connection reset) are for idempotent requests only — GET, HEAD, DELETE (by
id), or a request the caller flags `idempotent=True` (a token fetch, a cancel by id). A request
that is not (an order create) is NEVER sent twice: whatever it meets surfaces, so the order goes
UNKNOWN and the order manager reconciles it by query. A venue's `Retry-After` is honoured when it
is a sane number of seconds, capped at `max_retry_after_s`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container
from typing import Any

import httpx
import orjson
import structlog
import trio

from framework.errors import HttpProblem, OrderNotFound, OrderRefused

log = structlog.get_logger("botrun.rest")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
# answers that say "not now" rather than "no": worth a retry when resending is safe
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    venue: str,
    json: Any = None,
    params: Any = None,
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    idempotent: bool | None = None,
    max_retries: int = 4,
    backoff_s: float = 0.5,
    max_retry_after_s: float = 30.0,
) -> Any:
    """Send a request and return the decoded JSON body; raise `HttpProblem` for non-2xx.

    `idempotent` defaults to the method's nature (see the module doc); only then are 429, 5xx and
    connection resets retried, up to `max_retries` times with exponential backoff.
    """
    content = orjson.dumps(json) if json is not None else None
    hdrs = dict(headers or {})
    if content is not None:
        hdrs["content-type"] = "application/json"
    retry = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
    attempts = max_retries + 1 if retry else 1
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            resp = await client.request(
                method, path, content=content, params=params, headers=hdrs, data=data
            )
        except httpx.TransportError as exc:
            if last:
                raise
            delay = backoff_s * (2**attempt)
            log.warning(
                "request failed; retrying", venue=venue, path=path, error=repr(exc), delay_s=delay
            )
            await trio.sleep(delay)
            continue
        if resp.status_code not in RETRY_STATUSES or last:
            break
        delay = _retry_after(resp, max_retry_after_s)
        if delay is None:
            delay = backoff_s * (2**attempt)
        log.warning(
            "venue busy; backing off",
            venue=venue,
            path=path,
            status=resp.status_code,
            delay_s=delay,
        )
        await trio.sleep(delay)
    body: Any = None
    if resp.content:
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            body = resp.text[:200]
    if resp.is_success:
        return body
    slug, detail = "", ""
    if isinstance(body, dict):
        slug = str(body.get("type") or body.get("error") or "").rstrip("/").rsplit("/", 1)[-1]
        detail = str(body.get("detail") or body.get("title") or body.get("error") or "")
    raise HttpProblem(resp.status_code, slug, detail or resp.reason_phrase, body)


def _retry_after(resp: httpx.Response, cap_s: float) -> float | None:
    """`Retry-After` in seconds when it is a finite, non-negative number; capped."""
    value = resp.headers.get("retry-after")
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None  # an HTTP date, or junk: our own backoff
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap_s)


# --- an HTTP problem as an order request's outcome --------------------------------------------

# 4xx says "no" to this request, except a timeout and "too many requests": those say nothing
# about whether the venue acted, so the outcome stays unknown (the order manager queries)
DEFINITE_4XX = frozenset(range(400, 500)) - {408, 429}


def problem_text(exc: HttpProblem) -> str:
    return f"{exc.slug or exc.status}: {exc.detail}"


def order_outcome(
    exc: HttpProblem,
    *,
    refused: Container[int] = DEFINITE_4XX,
    not_found: Container[int] = (),
    message: Callable[[HttpProblem], str] = problem_text,
) -> Exception:
    """The exception an order request raises for `exc`: `OrderNotFound` for a `not_found`
    status, `OrderRefused` for a `refused` one (the venue definitely did not act), else `exc`
    itself: an unknown outcome. A venue passes only what differs from these defaults."""
    if exc.status in not_found:
        return OrderNotFound(message(exc))
    if exc.status in refused and exc.status not in (408, 429):
        return OrderRefused(message(exc))
    return exc

"""REST calls with the behaviour every venue wants: JSON in/out, 429 backoff, typed errors."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import structlog
import trio

from framework.errors import HttpProblem

log = structlog.get_logger("botrun.rest")


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
    max_429_retries: int = 4,
    backoff_s: float = 0.5,
) -> Any:
    """Send a request and return the decoded JSON body; raise `HttpProblem` for non-2xx.

    429 is retried after `Retry-After` (or exponential backoff): callers only send idempotent
    requests or requests with an idempotency key through here.
    """
    content = orjson.dumps(json) if json is not None else None
    hdrs = dict(headers or {})
    if content is not None:
        hdrs["content-type"] = "application/json"
    for attempt in range(max_429_retries + 1):
        resp = await client.request(
            method, path, content=content, params=params, headers=hdrs, data=data
        )
        if resp.status_code != 429 or attempt == max_429_retries:
            break
        delay = _retry_after(resp) or backoff_s * (2**attempt)
        log.warning("rate limited; backing off", venue=venue, path=path, delay_s=delay)
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


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None

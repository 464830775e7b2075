"""Start-up fetches (instrument catalogues, rules): one HTTP GET or one one-shot WebSocket request.

Under the sessions' rule: TLS to anything but this machine (`require_tls`, checked before any
connection), and a response size limit set per call, so a misbehaving peer cannot make start-up
read without end. A fetch that fails raises `FetchError` naming what was fetched and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
import orjson
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from framework.errors import FetchError
from framework.transport.session import require_tls

T = TypeVar("T")

# a catalogue of a few thousand instruments is well under this; a venue that needs more says so
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


async def fetch_ws(
    url: str,
    messages: Iterable[Any],
    on_frame: Callable[[str | bytes], T | None],
    *,
    what: str,
    timeout_s: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> T:
    """Open a short-lived WebSocket to `url`, send `messages` (JSON values or text), and feed
    every frame to `on_frame` until it returns something other than None: that is the result.

    `on_frame` may raise to end the fetch (e.g. the venue refused the request). `max_bytes`
    bounds every frame and all frames together.
    """
    require_tls(url)
    received = 0
    try:
        with trio.fail_after(timeout_s):
            async with open_websocket_url(url, max_message_size=max_bytes) as ws:
                for message in messages:
                    text = message if isinstance(message, str) else orjson.dumps(message).decode()
                    await ws.send_message(text)
                while True:
                    frame = await ws.get_message()
                    received += len(frame)
                    if received > max_bytes:
                        raise FetchError(f"{what}: response over {max_bytes} bytes")
                    result = on_frame(frame)
                    if result is not None:
                        return result
    except trio.TooSlowError:
        raise FetchError(f"{what}: no complete answer from {url} in {timeout_s}s") from None
    except ConnectionClosed as exc:
        reason = exc.reason
        if reason is not None and reason.code == 1009:
            raise FetchError(f"{what}: a frame over {max_bytes} bytes") from None
        raise FetchError(f"{what}: {url} closed the connection ({reason})") from None
    except (HandshakeError, OSError) as exc:
        raise FetchError(f"{what}: cannot connect to {url}: {exc!r}") from None


async def fetch_http(
    client: httpx.AsyncClient,
    path: str,
    *,
    what: str,
    params: Any = None,
    timeout_s: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Any:
    """GET `path` on `client` and return its decoded JSON body (read at most `max_bytes`)."""
    url = str(client.base_url.join(path))
    require_tls(url)
    body = bytearray()
    try:
        with trio.fail_after(timeout_s):
            async with client.stream("GET", path, params=params) as resp:
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchError(f"{what}: response over {max_bytes} bytes")
                status = resp.status_code
    except trio.TooSlowError:
        raise FetchError(f"{what}: no complete answer from {url} in {timeout_s}s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{what}: {type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise FetchError(f"{what}: HTTP {status} from {url}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FetchError(f"{what}: the answer is not JSON") from None

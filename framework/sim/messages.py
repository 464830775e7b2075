"""The simulator server's plain records, shared by the server and the fault plan.

`framework.sim.server` serves them and `framework.sim.faults` makes them (an error response, a
paused or swapped frame): they live here, below both, so that neither imports the other both
ways (tests/test_layers.py). `framework.sim.server` re-exports them under their old names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import attrs
import orjson

# --- HTTP ----------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lowercased; repeated headers joined with ", "
    body: bytes = b""
    # the query string exactly as received (venues that sign it byte for byte)
    raw_query: str = ""
    # the peer's address ("" where the server did not say)
    client: str = ""

    def json(self) -> Any:
        """The body as JSON; raises `orjson.JSONDecodeError` (a ValueError) if it is not."""
        return orjson.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body as `application/x-www-form-urlencoded`; the last value of a repeated key."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of query parameter `name`."""
        values = self.query.get(name)
        return values[-1] if values else default


@attrs.frozen(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.Factory(dict)
    # no answer at all: the server drops the TCP connection instead (fault injection: a reset
    # after the venue acted, which the client sees as "server disconnected")
    reset: bool = False


# --- WebSocket queue items -----------------------------------------------------------------------


@attrs.frozen(slots=True)
class Pause:
    """Queue item (fault injection): the writer sends nothing for this long."""

    seconds: float


@attrs.frozen(slots=True)
class Swap:
    """Queue item (fault injection): a frame sent after the one queued behind it, if any."""

    text: str

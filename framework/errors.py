"""Every exception the framework raises on purpose, in one module (like httpx's `_exceptions`).

Grouped by who raises them: the user's config, the wire (a venue's frames and answers), the
order path, and the strategy's reads.
"""

from __future__ import annotations

from typing import Any

import attrs


class ConfigError(Exception):
    """A bad config: the message names the key."""


# --- the wire -------------------------------------------------------------------------------


class FrameError(ValueError):
    """A frame the decoder cannot use: malformed, missing or mistyped fields, unknown type."""


class AuthError(RuntimeError):
    """The venue refused our credentials. Retrying at once will not help: back off."""


@attrs.define
class HttpProblem(Exception):
    """A non-2xx answer. `slug` is the problem type's last path segment where there is one."""

    status: int
    slug: str
    detail: str
    body: Any

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.slug}: {self.detail}"


class RequestTimeout(TimeoutError):
    """No reply to a correlated request in time: its outcome is unknown, not refused."""


class NotConnected(ConnectionError):
    """No open connection to send a request on, or the send failed: the request did not leave."""


class ConnectionLost(ConnectionError):
    """The connection closed while a request waited for its reply: its outcome is unknown."""


class FetchError(ConnectionError):
    """A start-up fetch (catalogue, rules) failed: unreachable, too slow, too big, not JSON."""


# --- the order path -------------------------------------------------------------------------


class OrderRefused(RuntimeError):
    """The venue definitely refused an order request (it will not be working)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OrderNotFound(RuntimeError):
    """The venue says it has no such order."""


# --- the strategy's reads -------------------------------------------------------------------


class BookNotSynced(RuntimeError):
    """Raised when a strategy reads a book that is not SYNCED."""

"""One refreshing token cache (OAuth2 client credentials, a venue's JWT login, ...).

The venue injects how a token is fetched; the cache keeps it, fetches a new one ahead of its
expiry (`margin` of its lifetime, at least `min_margin_s` before it) and after the venue refused
it (`invalidate`), and makes concurrent callers share one fetch. The token itself is never logged
(`Token`'s repr hides it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio


@attrs.frozen
class Token:
    value: str = attrs.field(repr=False)
    # seconds it stays valid from now; None = unknown (replaced only after an auth error)
    expires_in_s: float | None = None


class TokenCache:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[Token]],
        *,
        margin: float = 0.1,
        min_margin_s: float = 5.0,
        min_wait_s: float = 0.0,
    ) -> None:
        self._fetch_token = fetch
        self._margin = margin
        self._min_margin_s = min_margin_s
        self._min_wait_s = min_wait_s
        self._token: str | None = None
        self._refresh_at: float | None = None  # trio clock
        self._lock = trio.Lock()
        self.fetches = 0

    @property
    def cached(self) -> str | None:
        return self._token

    async def token(self) -> str:
        """The cached token, fetched first if there is none or it is due for refresh. Callers
        that arrive during a fetch wait for it and share its token."""
        async with self._lock:
            if self._token is None or (
                self._refresh_at is not None and trio.current_time() >= self._refresh_at
            ):
                token = await self._fetch_token()
                self._store(token)
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """The venue refused the token (expired, revoked): the next `token()` fetches anew."""
        self._token = None

    def seconds_to_refresh(self) -> float | None:
        """Seconds until the cached token is due for refresh; None if none or no known expiry."""
        if self._token is None or self._refresh_at is None:
            return None
        return max(0.0, self._refresh_at - trio.current_time())

    def _store(self, token: Token) -> None:
        self._token = token.value
        self.fetches += 1
        lifetime = token.expires_in_s
        if lifetime is None:
            self._refresh_at = None
            return
        ahead = max(self._min_margin_s, lifetime * self._margin)
        self._refresh_at = trio.current_time() + max(self._min_wait_s, lifetime - ahead)

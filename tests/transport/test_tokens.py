"""The token cache: refresh ahead of expiry, after an auth error, one fetch for many callers."""

from __future__ import annotations

import trio
import trio.testing
from structlog.testing import capture_logs

from framework.transport.tokens import Token, TokenCache


class Issuer:
    """Hands out token-1, token-2, ...; each fetch takes `delay_s` (a round trip)."""

    def __init__(self, lifetime_s: float | None = 100.0, delay_s: float = 0.0) -> None:
        self.lifetime_s = lifetime_s
        self.delay_s = delay_s
        self.issued = 0

    async def fetch(self) -> Token:
        await trio.sleep(self.delay_s)
        self.issued += 1
        return Token(f"token-{self.issued}", self.lifetime_s)


async def test_cached_until_due_then_refreshed_ahead_of_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    issuer = Issuer(lifetime_s=100.0)
    cache = TokenCache(issuer.fetch, margin=0.1, min_margin_s=5.0)
    assert await cache.token() == "token-1"
    assert cache.seconds_to_refresh() == 90.0  # 10% of the lifetime ahead of expiry
    await trio.sleep(89.0)
    assert await cache.token() == "token-1" and issuer.issued == 1
    await trio.sleep(1.0)
    assert await cache.token() == "token-2"  # before it expired at 100 s
    assert cache.fetches == 2


async def test_the_minimum_margin_applies_to_short_lived_tokens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache = TokenCache(Issuer(lifetime_s=20.0).fetch, margin=0.1, min_margin_s=5.0)
    await cache.token()
    assert cache.seconds_to_refresh() == 15.0


async def test_an_auth_error_makes_the_next_caller_fetch_anew(
    autojump_clock: trio.testing.MockClock,
) -> None:
    issuer = Issuer(lifetime_s=None)  # no known expiry: only an auth error replaces it
    cache = TokenCache(issuer.fetch)
    assert await cache.token() == "token-1"
    assert cache.seconds_to_refresh() is None
    await trio.sleep(10_000)
    assert await cache.token() == "token-1"
    cache.invalidate()
    assert cache.cached is None
    assert await cache.token() == "token-2"


async def test_concurrent_callers_share_one_fetch(autojump_clock: trio.testing.MockClock) -> None:
    issuer = Issuer(delay_s=1.0)
    cache = TokenCache(issuer.fetch)
    got: list[str] = []

    async def caller() -> None:
        got.append(await cache.token())

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(caller)
    assert got == ["token-1"] * 5 and issuer.issued == 1


async def test_the_token_is_never_in_a_repr_or_a_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    token = Token("very-secret-jwt", 60.0)
    assert "very-secret-jwt" not in repr(token)
    with capture_logs() as logs:
        cache = TokenCache(Issuer().fetch)
        await cache.token()
        cache.invalidate()
        await cache.token()
    assert "token-" not in repr(logs)

"""REST: retries only where resending is safe, a sane Retry-After, problems as order outcomes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

from framework.errors import HttpProblem, OrderNotFound, OrderRefused
from framework.transport.rest import order_outcome, request_json


def client(answers: list[httpx.Response | Exception]) -> tuple[httpx.AsyncClient, list[str]]:
    """A client whose n-th request gets `answers[n]` (an exception is raised as a reset)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = answers[len(seen) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(
        base_url="https://venue.test", transport=httpx.MockTransport(handler)
    ), seen


def busy(retry_after: str | None = None, status: int = 429) -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, json={"type": "/problems/busy"})


OK = httpx.Response(200, json={"ok": True})


async def test_a_get_that_gets_429_then_200_succeeds_after_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    http, seen = client([busy("2"), OK])
    start = trio.current_time()
    assert await request_json(http, "GET", "/orders", venue="v") == {"ok": True}
    assert seen == ["GET", "GET"] and trio.current_time() - start == pytest.approx(2.0)


async def test_a_create_that_gets_429_or_5xx_or_a_reset_is_sent_exactly_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for answer in (busy("1"), busy(status=503), httpx.ReadError("reset")):
        http, seen = client([answer, OK])
        with pytest.raises((HttpProblem, httpx.ReadError)):
            await request_json(http, "POST", "/orders", venue="v", json={"a": "1"})
        assert seen == ["POST"]


async def test_a_flagged_idempotent_post_and_a_delete_are_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    http, seen = client([busy(), httpx.ConnectError("reset"), OK])
    assert await request_json(http, "POST", "/token", venue="v", idempotent=True) == {"ok": True}
    assert seen == ["POST"] * 3
    http, seen = client([busy(status=502), OK])
    assert await request_json(http, "DELETE", "/orders/7", venue="v") == {"ok": True}
    assert seen == ["DELETE"] * 2


@pytest.mark.parametrize(
    "retry_after, waited",
    [("3600", 30.0), ("inf", 0.5), ("-5", 0.5), ("nan", 0.5), ("Wed, 21 Oct 2015", 0.5)],
)
async def test_retry_after_is_capped_and_junk_falls_back_to_backoff(
    autojump_clock: trio.testing.MockClock, retry_after: str, waited: float
) -> None:
    http, _ = client([busy(retry_after), OK])
    start = trio.current_time()
    await request_json(http, "GET", "/x", venue="v", backoff_s=0.5, max_retry_after_s=30.0)
    assert trio.current_time() - start == pytest.approx(waited)


async def test_retries_are_finite(autojump_clock: trio.testing.MockClock) -> None:
    http, seen = client([busy("1")] * 10)
    with pytest.raises(HttpProblem) as problem:
        await request_json(http, "GET", "/x", venue="v", max_retries=3)
    assert problem.value.status == 429 and len(seen) == 4


def outcome(status: int, **kw: object) -> Exception:
    return order_outcome(HttpProblem(status, "slug", "detail", None), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "status, kw, expected",
    [
        (400, {}, OrderRefused),
        (403, {}, OrderRefused),
        (404, {"not_found": {404}}, OrderNotFound),
        (429, {}, HttpProblem),  # "not now" is not "no": outcome unknown
        (408, {"refused": {408}}, HttpProblem),
        (500, {}, HttpProblem),
        (409, {"refused": {400}}, HttpProblem),  # a venue narrows what is a definite refusal
    ],
)
def test_problem_to_order_outcome(status: int, kw: dict, expected: type) -> None:
    result = outcome(status, **kw)
    assert type(result) is expected
    if expected is OrderRefused:
        assert str(result) == "slug: detail"


def test_a_venue_supplies_its_own_message() -> None:
    message: Callable[[HttpProblem], str] = lambda exc: f"venue says {exc.detail}"  # noqa: E731
    assert str(outcome(400, message=message)) == "venue says detail"

"""Open Trade authentication: form login → session cookie → JWT (the raw token response body).

1. `POST /auth/login`, form `username=…&password=…` (lowercase keys) → session cookie
   (`JSESSIONID` or `SESSION`);
2. `POST /auth/auth/jwt/clients/{api_user}/token`, headers `Cookie` and `clientSecret`, empty
   body → HTTP 200 whose raw body is the JWT.

The token lives in the core's token cache until shortly before its `exp` claim (read without
verifying the signature: only the venue can verify it; we only need to know when to ask again).
`is_auth_error` tells a refused token or signature from other ERROR frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import structlog
import trio

from framework.errors import AuthError
from framework.transport.tokens import Token, TokenCache

log = structlog.get_logger("botrun.opentrade.auth")

SESSION_COOKIES = ("JSESSIONID", "SESSION")
LOGIN_PATH = "/auth/login"
TOKEN_PATH = "/auth/auth/jwt/clients/{api_user}/token"
TOKEN_GET_PATH = "/auth/auth/jwt/client/{api_user}/token"

# [INF] ERROR payloads are undocumented; an auth failure is recognised by its message text
_AUTH_WORDS = ("signature", "token", "jwt", "expired", "unauthori", "authenticat")


def is_auth_error(message: Any) -> bool:
    """True for an ERROR text that says the token or signature was refused."""
    text = str(message or "").lower()
    return any(word in text for word in _AUTH_WORDS)


class TokenSource(TokenCache):
    """The JWT for `signature` and the WS handshake, fetched when missing or about to expire."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        username: str,
        password: str,
        api_user: str,
        api_secret: str,
        *,
        margin: float = 0.1,
        min_margin_s: float = 5.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(self._fetch, margin=margin, min_margin_s=min_margin_s)
        self._http = http
        self._username = username
        self._password = password
        self._api_user = api_user
        self._secret = api_secret
        self._wall = wall
        self._cookie: str | None = None
        self.logins = 0
        # set (and replaced) by every token fetched: the first one arms the proactive refresh
        self.fetched = trio.Event()

    async def _fetch(self) -> Token:
        try:
            if self._cookie is None:
                await self._login()
            status, body = await self._token_request()
            if status in (401, 403):
                # the session may have expired: log in again, once
                await self._login()
                status, body = await self._token_request()
        except httpx.HTTPError as exc:
            # a transport failure is not a refusal: the session retries with normal backoff
            raise ConnectionError(f"opentrade auth: {type(exc).__name__}: {exc}") from None
        if status in (401, 403):
            self._cookie = None
            raise AuthError(f"opentrade token refused: HTTP {status}")
        if not 200 <= status < 300:
            raise ConnectionError(f"opentrade token endpoint: HTTP {status}")
        token = body.strip().strip('"')
        if token.count(".") != 2:
            raise AuthError("opentrade token endpoint did not return a JWT")
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"opentrade token is not a valid JWT: {exc}") from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            return Token(token)  # refreshed on an auth error only
        # the claim is wall-clock time; the cache counts on trio's clock from now
        return Token(token, float(exp) - self._wall())

    def _store(self, token: Token) -> None:
        super()._store(token)
        # after the cache holds it: a waiter woken now sees when it is due for refresh
        done, self.fetched = self.fetched, trio.Event()
        done.set()

    async def _login(self) -> None:
        self.logins += 1
        resp = await self._http.post(
            LOGIN_PATH, data={"username": self._username, "password": self._password}
        )
        if resp.status_code in (400, 401, 403):
            raise AuthError(f"opentrade login refused: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise ConnectionError(f"opentrade login: HTTP {resp.status_code}")
        cookie = None
        for name in SESSION_COOKIES:
            value = resp.cookies.get(name)
            if value:
                cookie = f"{name}={value}"
                break
        # the cookie goes out explicitly, not through the client's jar
        self._http.cookies.clear()
        if cookie is None:
            raise AuthError("opentrade login gave no session cookie (JSESSIONID/SESSION)")
        self._cookie = cookie

    async def _token_request(self) -> tuple[int, str]:
        assert self._cookie is not None
        resp = await self._http.post(
            TOKEN_PATH.format(api_user=self._api_user),
            headers={"Cookie": self._cookie, "clientSecret": self._secret, "accept": "*/*"},
            content=b"",
        )
        if resp.status_code in (404, 405):
            # [DOC] the docs' step-2 text gives the other form: GET, singular `client`, the
            # secret as a query parameter
            resp = await self._http.get(
                TOKEN_GET_PATH.format(api_user=self._api_user),
                params={"clientSecret": self._secret},
                headers={"Cookie": self._cookie, "accept": "*/*"},
            )
        return resp.status_code, resp.text

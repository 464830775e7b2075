"""Open Trade login and JWTs: the login session cookie, issued tokens, their expiry and checks."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from framework.sim.loopback import trim_history
from framework.sim.server import HttpRequest, HttpResponse
from framework.venues.opentrade.sim.common import (
    MAX_LOGIN_SESSIONS,
    SESSION_COOKIE,
    WS_PATH,
    _cookie,
)


class Logins:
    """`POST /auth/login`, the token endpoint, and every check of a token."""

    # --- fault injection and test hooks ----------------------------------------------------

    def expire_tokens(self) -> None:
        """Every JWT issued so far is expired from now on (live subscriptions notice on their
        next private update)."""
        for jti in self._tokens:
            self._tokens[jti] = 0.0

    def _roll_token_expiry(self) -> None:
        """An injected `token_expiry` fault where the venue checks a token on the WS (a signed
        request, a private update): every token ends now."""
        faults = self.app.faults
        if faults is not None and faults.roll("token_expiry", WS_PATH) is not None:
            self.expire_tokens()

    # --- HTTP: login and token -------------------------------------------------------------

    def _login(self, request: HttpRequest) -> HttpResponse:
        form = request.form()
        user, password = form.get("username"), form.get("password")
        if not (
            secrets.compare_digest((user or "").encode(), self.username.encode())
            and secrets.compare_digest((password or "").encode(), self.password.encode())
        ):
            self._count("login_refused")
            # [INF] a refused login is HTTP 401 with no cookie
            return HttpResponse(401, b'{"error":"Unauthorized"}')
        session = secrets.token_hex(16)
        self._sessions_http[session] = None
        trim_history(self._sessions_http, MAX_LOGIN_SESSIONS)
        cookie = f"{SESSION_COOKIE}={session}; Path=/; HttpOnly"
        return HttpResponse(200, b"", content_type="text/plain", headers={"set-cookie": cookie})

    def _token_get(self, request: HttpRequest, api_user: str) -> HttpResponse:
        """`GET /auth/auth/jwt/client/{api_user}/token?clientSecret=…` (the docs' step-2 text)."""
        secret = (request.query.get("clientSecret") or [""])[0]
        return self._token(request, api_user, secret)

    def _token(
        self, request: HttpRequest, api_user: str, secret: str | None = None
    ) -> HttpResponse:
        session = _cookie(request.headers.get("cookie", ""), SESSION_COOKIE)
        if session is None or session not in self._sessions_http:
            return HttpResponse(401, b'{"error":"Unauthorized"}')  # [INF] no/unknown session
        if secret is None:
            secret = request.headers.get("clientsecret", "")
        if api_user != self.api_user or not secrets.compare_digest(
            secret.encode(), self.api_secret.encode()
        ):
            return HttpResponse(403, b'{"error":"Forbidden"}')  # [INF] wrong api user/secret
        now = time.time()
        self._tokens = {jti: expiry for jti, expiry in self._tokens.items() if expiry > now}
        jti = secrets.token_hex(8)
        exp = now + self.token_ttl_s
        self._tokens[jti] = exp
        claims = {"sub": api_user, "iat": int(now), "exp": int(exp) + 1, "jti": jti}
        token = jwt.encode(claims, self._key, algorithm="HS256")
        self._count("tokens")
        return HttpResponse(200, token.encode(), content_type="text/plain")

    def token_error(self, token: Any) -> str | None:
        """Why a signature is not acceptable, or None."""
        if not isinstance(token, str) or not token:
            return "signature required for a private channel"
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            return "invalid signature: token expired"
        except jwt.InvalidTokenError:
            return "invalid signature"
        expiry = self._tokens.get(str(claims.get("jti")))
        # only `_token` signs with our key: a jti we no longer hold was forgotten once expired
        if expiry is None or time.time() >= expiry:
            return "invalid signature: token expired"
        return None

    def _authorize(self, headers: dict[str, str]) -> int | None:
        # [INF] the handshake token is optional (public data needs none); a bad one is refused
        token = headers.get("authorization")
        if token is None:
            return None
        return 401 if self.token_error(token.removeprefix("Bearer ").strip()) else None

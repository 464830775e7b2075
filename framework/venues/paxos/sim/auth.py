"""Paxos OAuth2 client credentials: issued tokens, scopes, and the checks every REST call makes."""

from __future__ import annotations

import math
import secrets

import trio

from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    json_response,
)
from framework.venues.paxos.sim.common import (
    KNOWN_SCOPES,
    _basic_credentials,
    _Problem,
    _Token,
    problem,
)


class OAuth:
    """`POST /oauth2/token` and the token and profile checks of the REST handlers."""

    # --- OAuth2 ----------------------------------------------------------------------------

    def _token(self, request: HttpRequest) -> HttpResponse:
        form = request.form()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic_credentials(request.headers)
        if basic is not None:  # [INF] client_secret_basic is accepted too
            client_id, client_secret = basic
        if form.get("grant_type") != "client_credentials":
            # [INF] OAuth errors use the RFC 6749 shape {"error": ...}
            return json_response(400, {"error": "unsupported_grant_type"})
        if not (
            secrets.compare_digest((client_id or "").encode(), self.client_id.encode())
            and secrets.compare_digest((client_secret or "").encode(), self._client_secret.encode())
        ):
            return json_response(
                401,
                {"error": "invalid_client", "error_description": "client authentication failed"},
            )
        requested = form.get("scope", "").split()
        if not set(requested) <= KNOWN_SCOPES:
            return json_response(400, {"error": "invalid_scope"})
        scopes = requested or sorted(KNOWN_SCOPES)  # [INF] no scope asked: all are granted
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(frozenset(scopes), trio.current_time() + self.token_ttl_s)
        return json_response(
            200,
            {
                "access_token": token,
                "expires_in": math.ceil(self.token_ttl_s),  # [INF] whole seconds, rounded up
                "token_type": "bearer",
                "scope": " ".join(scopes),
            },
        )

    def _valid_token(self, headers: dict[str, str]) -> _Token | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = self._tokens.get(value.strip())
        if token is None or trio.current_time() >= token.expires_at:
            return None
        return token

    def _require(self, request: HttpRequest, scope: str) -> None:
        token = self._valid_token(request.headers)
        if token is None:
            raise _Problem(
                problem(
                    401,
                    None,
                    "no authorization header set"
                    if "authorization" not in request.headers
                    else "invalid or expired access token",
                )
            )
        if scope not in token.scopes:
            # [INF] a missing scope is a generic 403 (about:blank); detail wording
            raise _Problem(problem(403, None, f"token lacks scope {scope}"))

    def _require_profile(self, profile_id: str) -> None:
        if profile_id != self.profile_id:
            # [INF] a profile id other than ours is an unknown profile: 404
            raise _Problem(problem(404, None, f"profile not found: {profile_id}"))

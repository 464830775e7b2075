"""Paxos OAuth2: the client-credentials `TokenSource` and the scopes each session asks for.

One token cache per set of scopes: the SOR stream (`SOR_SCOPE`) and REST execution
(`REST_SCOPES`) each hold their own, refreshed once (1 - margin) of its lifetime has passed and
after a 401.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import structlog

from framework.errors import AuthError, HttpProblem
from framework.transport.rest import request_json
from framework.transport.tokens import Token, TokenCache
from framework.venues.paxos.decode import VENUE
from framework.venues.paxos.throttle import RestThrottle

log = structlog.get_logger("botrun.paxos")

SOR_SCOPE = "exchange:read_aggregated_marketdata_stream"
REST_SCOPES = ("exchange:write_order", "exchange:read_order", "funding:read_profile")


class TokenSource(TokenCache):
    """OAuth2 client-credentials token in the core's token cache: refreshed once (1 - margin) of
    its lifetime has passed (never sooner than 1 s), and after a 401."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_path: str,
        client_id: str,
        client_secret: str,
        scopes: tuple[str, ...],
        *,
        refresh_margin: float = 0.2,
        throttle: RestThrottle | None = None,
    ) -> None:
        super().__init__(self._fetch, margin=refresh_margin, min_margin_s=0.0, min_wait_s=1.0)
        self.throttle = throttle
        self._http = http
        self._path = token_path
        self._client_id = client_id
        self._secret = client_secret
        self._scopes = scopes

    async def _fetch(self) -> Token:
        probing = self.throttle.admit("probe") if self.throttle is not None else False
        try:
            body = await request_json(
                self._http,
                "POST",
                self._path,
                venue=VENUE,
                idempotent=True,  # asking for a token again is harmless
                # [DOC] /oauth2/token allows 1 request/s on average: never a burst of retries
                max_retries=0,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._secret,
                    "scope": " ".join(self._scopes),
                },
            )
        except HttpProblem as exc:
            if exc.status == 429 and self.throttle is not None:
                self.throttle.on_429(self._path)
            elif probing and self.throttle is not None:
                self.throttle.on_probe_answered()
            if exc.status in (400, 401, 403):
                raise AuthError(f"paxos token refused: HTTP {exc.status} {exc.detail}") from None
            raise
        if probing and self.throttle is not None:
            self.throttle.on_probe_answered()
        if type(body) is not dict:
            raise AuthError("paxos token response is not a JSON object")
        token, ttl = body.get("access_token"), body.get("expires_in")
        if (
            not isinstance(token, str)
            or not token
            or type(ttl) not in (int, float)
            or not 0 < ttl < 10 * 365 * 86400  # NaN, inf, negative: unreadable
        ):
            raise AuthError("paxos token response without access_token/expires_in")
        return Token(token, float(ttl))


# --- WebSocket streams ---------------------------------------------------------------------------


def make_token_source(
    http_factory: Callable[..., httpx.AsyncClient],
    oauth_base: str,
    token_path: str,
    client_id: str,
    secret: str,
    scopes: tuple[str, ...],
) -> TokenSource:
    return TokenSource(http_factory(oauth_base), token_path, client_id, secret, scopes)

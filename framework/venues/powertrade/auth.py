"""Power.Trade credentials: an ES256 JWT signed with the API key's PEM private key.

PyJWT (with `cryptography` for the P-256 maths) builds and checks the token: it is the common,
audited implementation, already a dependency, and handles the JOSE details (raw r||s signature
encoding for ES256, base64url) that are easy to get subtly wrong by hand.
"""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from framework.errors import AuthError

# [DOC] "short expiry, ~30-60 s": a token only has to survive the authenticate round trip
TOKEN_TTL_S = 30


def make_token(api_key: str, private_key_pem: str, *, now_s: int | None = None) -> str:
    """The `credentials_secret` for `authenticate`: a fresh ES256 JWT for every login."""
    now = int(time.time()) if now_s is None else now_s
    payload = {"sub": api_key, "iat": now, "exp": now + TOKEN_TTL_S, "client": "api"}
    try:
        return jwt.encode(payload, private_key_pem, algorithm="ES256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        # a malformed or non-P-256 key: retrying cannot help, so it is an auth failure
        raise AuthError(f"powertrade: cannot sign the login token: {exc}") from None


def new_key_pair() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh P-256 key (simulator accounts and tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def verify_token(token: str, public_key_pem: str, api_key: str) -> str | None:
    """Why a token is refused (simulator side), or None if it is good."""
    try:
        claims = jwt.decode(
            token,
            public_key_pem,
            algorithms=["ES256"],
            options={"require": ["sub", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        return str(exc)
    if claims.get("sub") != api_key:
        return "unknown api key"
    if claims.get("client") != "api":
        return "client must be api"
    return None

"""Roxom request signing, shared by the adapter (signs) and the simulator (verifies).

Current scheme [DOC]: `X-API-Key` plus `X-API-Signature` = base64(RSA-SHA256 signature) of
`GET:/ws` on the WebSocket handshake, and of `METHOD:path[?query][:body]` on REST calls; keys
are RSA-2048, private keys PKCS#8 PEM. The older scheme (`X-API-KEY`, `X-API-TIMESTAMP` in ms,
`X-API-SIGN` = base64(HMAC-SHA256(secret, timestamp))) is kept as a config option.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from framework.errors import AuthError

WS_PATH = "/ws"
WS_MESSAGE = f"GET:{WS_PATH}"


def canonical_value(value: Any) -> str:
    # [INF] booleans as JSON literals (true/false); strings as sent; numbers in plain notation
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def canonical_body(params: Mapping[str, Any] | None) -> str:
    """Body parameters sorted by key, `k=v` joined with `&`, nulls left out."""
    if not params:
        return ""
    # [INF] the pair form: k=v&k=v (the docs say "sorted parameters" without showing them)
    return "&".join(f"{k}={canonical_value(v)}" for k, v in sorted(params.items()) if v is not None)


def canonical_query(params: Iterable[tuple[str, str]] | Mapping[str, str] | None) -> str:
    """The query string as the client sends it: pairs sorted by key, URL-encoded."""
    # [INF] sorted so that client and server rebuild the same string from parsed pairs
    items = list(params.items()) if isinstance(params, Mapping) else list(params or [])
    return urlencode(sorted(items))


def rest_message(method: str, path: str, query: str = "", body: str = "") -> str:
    """`METHOD:path[?query][:body]`."""
    message = f"{method.upper()}:{path}"
    if query:
        message += f"?{query}"
    if body:
        message += f":{body}"
    return message


class Signer(abc.ABC):
    """Produces the authentication headers for one message."""

    @abc.abstractmethod
    def headers(self, message: str) -> dict[str, str]: ...

    def ws_headers(self) -> dict[str, str]:
        return self.headers(WS_MESSAGE)


class RsaSigner(Signer):
    """RSA PKCS#1 v1.5 over SHA-256 with a PKCS#8 PEM private key."""

    def __init__(self, api_key: str, private_key_pem: str | bytes) -> None:
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise AuthError(f"roxom private key is not an unencrypted PEM key: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise AuthError("roxom private key is not an RSA key")
        self.api_key = api_key
        self._key = key

    def sign(self, message: str) -> str:
        # [INF] padding is not stated by the docs: PKCS#1 v1.5
        signature = self._key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def headers(self, message: str) -> dict[str, str]:
        return {"X-API-Key": self.api_key, "X-API-Signature": self.sign(message)}


class HmacSigner(Signer):
    """The older scheme: HMAC-SHA256 of the millisecond timestamp, not of the request."""

    def __init__(
        self, api_key: str, secret: str, clock_ms: Callable[[], int] | None = None
    ) -> None:
        self.api_key = api_key
        self._secret = secret.encode()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def headers(self, message: str) -> dict[str, str]:
        timestamp = str(self._clock_ms())
        return {
            "X-API-KEY": self.api_key,
            "X-API-TIMESTAMP": timestamp,
            "X-API-SIGN": hmac_sign(self._secret, timestamp),
        }


def hmac_sign(secret: bytes, timestamp: str) -> str:
    return base64.b64encode(hmac.new(secret, timestamp.encode(), hashlib.sha256).digest()).decode()


# --- verification (simulator side) ------------------------------------------------------------


def public_key_pem(private_key_pem: str | bytes) -> bytes:
    pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    key = serialization.load_pem_private_key(pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def new_private_key_pem() -> str:
    """A fresh RSA-2048 PKCS#8 PEM key (the simulator's built-in account, tests)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def verify_rsa(public_pem: bytes, message: str, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key = serialization.load_pem_public_key(public_pem)
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_hmac(secret: str, timestamp: str, signature_b64: str) -> bool:
    expected = hmac_sign(secret.encode(), timestamp)
    return hmac.compare_digest(expected.encode(), signature_b64.encode())

"""Redis connection settings (URL, ACL user, password by env var name, TLS) and the key layout.

Keys (prefix `botrun:`):
  md:{venue}:{symbol}   stream  market events; entry id `{gateway epoch ms}-{seq}`, seq +1 per
                                entry, so a consumer sees a gap (or a new gateway) from the id
  book:{venue}:{symbol} string  the gateway's book as a BookSnapshot and the id it includes
  acct:{venue}          stream  VenueStatus, Balance, Position
  orders:{strategy}     stream  that strategy's order events (`e`) and order states (`s`)
  cmd:{venue}           stream  order commands, read by the gateway's consumer group
  hb:{strategy}         string  the strategy's heartbeat counter (dead man's switch)
  gw:{venue}            string  the gateway's venue info: markets, instruments, id length
  alive:{venue}         string  the live gateway's epoch, with a short expiry it keeps renewing:
                                gone = no gateway (its books are not trusted)
"""

from __future__ import annotations

import os
import ssl
from typing import Any
from urllib.parse import urlsplit

import attrs
import coredis

from framework.errors import ConfigError
from framework.logs import register_secret

PREFIX = "botrun:"
GROUP = "gateway"
# capped retention: a consumer further behind than this resyncs from the snapshot key
MD_MAXLEN = 100_000
ORDERS_MAXLEN = 100_000


def md_key(venue: str, symbol: str) -> str:
    return f"{PREFIX}md:{venue}:{symbol}"


def book_key(venue: str, symbol: str) -> str:
    return f"{PREFIX}book:{venue}:{symbol}"


def acct_key(venue: str) -> str:
    return f"{PREFIX}acct:{venue}"


def orders_key(strategy: str) -> str:
    return f"{PREFIX}orders:{strategy}"


def cmd_key(venue: str) -> str:
    return f"{PREFIX}cmd:{venue}"


def hb_key(strategy: str) -> str:
    return f"{PREFIX}hb:{strategy}"


def alive_key(venue: str) -> str:
    return f"{PREFIX}alive:{venue}"


def gw_key(venue: str) -> str:
    return f"{PREFIX}gw:{venue}"


@attrs.define
class BusConfig:
    """Where the bus is and how to log in. Secrets by environment variable name, never inline."""

    url: str = "redis://127.0.0.1:6379"
    username: str | None = None  # an ACL user
    password_env: str | None = None  # name of the env var holding the password
    tls_ca_file: str | None = None  # with a `rediss://` URL: the CA to verify the server with
    tls_cert_file: str | None = None  # client certificate, if the server asks for one
    tls_key_file: str | None = None

    def client(self) -> coredis.Redis[bytes]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"bus: unsupported URL scheme {parts.scheme!r}")
        if parts.password:
            raise ConfigError("bus: put the password in an env var (password_env), not the URL")
        kwargs: dict[str, Any] = {}
        if self.username:
            kwargs["username"] = self.username
        if self.password_env:
            password = os.environ.get(self.password_env)
            if not password:
                raise ConfigError(f"bus: env var {self.password_env} is not set")
            register_secret(password)
            kwargs["password"] = password
        if parts.scheme == "rediss":
            # verified TLS, always: the default context checks the chain and the host name
            ctx = ssl.create_default_context(cafile=self.tls_ca_file)
            if self.tls_cert_file:
                ctx.load_cert_chain(self.tls_cert_file, self.tls_key_file)
            kwargs["ssl_context"] = ctx
        return coredis.Redis.from_url(
            self.url,
            decode_responses=False,
            # our loops own reconnection (they must un-sync books first): no silent retries
            retry_policy=coredis.retry.NoRetryPolicy(),
            **kwargs,
        )

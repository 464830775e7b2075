"""Endpoint selection and credentials: the one helper each venue's `build` calls.

`select_urls` picks a venue's URL set for `cfg.endpoint` — the embedded simulator or a standalone
one (`sim_url`, both arrive as the `SimHandle`), the sandbox or production — applies the user's
URL overrides, and checks every URL against the TLS rule once, before anything connects.

`credentials_from_env` builds a venue's `Credentials` from the environment variables its config
names, with the one error message a missing one gets, and registers the secrets for redaction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from framework.errors import ConfigError
from framework.logs import register_secret
from framework.transport.session import require_tls
from framework.venue import Credentials, Endpoints, SimHandle, Urls

C = TypeVar("C", bound=Credentials)


def select_urls(
    venue: str,
    endpoints: Endpoints,
    cfg: Any,
    sim: SimHandle | None,
    *,
    overrides: Mapping[str, str] | None = None,
    missing: str = "",
) -> Urls:
    """The URL set for `cfg.endpoint`.

    `overrides` maps a `Urls` field to the config key that overrides it (e.g. `{"ws": "ws_url"}`);
    a non-empty value there wins. `missing` is the error for an endpoint the venue publishes no
    URLs for. Every URL must be TLS unless it points at this machine: a ConfigError naming the key
    otherwise.
    """
    if sim is not None:
        urls = endpoints.sim(sim)
    else:
        published = getattr(endpoints, cfg.endpoint, None)
        urls = published if published is not None else Urls()
    keys: dict[str, str] = {}
    for field, key in (overrides or {}).items():
        value = getattr(cfg, key, "")
        if value:
            urls = attrs.evolve(urls, **{field: value})
            keys[field] = key
    if sim is None and urls == Urls():
        raise ConfigError(missing or f"venues.{venue}.endpoint: no URLs for {cfg.endpoint!r}")
    for field in ("ws", "http", "auth"):
        url = getattr(urls, field)
        if not url:
            continue
        try:
            require_tls(url)
        except ValueError as exc:
            key = keys.get(field, "endpoint")
            raise ConfigError(f"venues.{venue}.{key}: {exc}") from None
    return urls


def secret_from_env(var: str, key: str) -> str:
    """Read a secret from the environment variable named in config (key names it in errors)."""
    if not var:
        raise ConfigError(f"{key}: no environment variable named for this secret")
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"{key}: environment variable {var} is not set")
    return value


def credentials_from_env(
    cls: type[C],
    venue: str,
    cfg: Any,
    *,
    optional: bool = False,
    **given: str,
) -> C | None:
    """`cls` with each field `x` read from the variable named by `cfg.x_env` (fields passed in
    `given` are taken as they are). With `optional`, None when none of the variables is set (a
    venue that then runs without an account); once any is set, all must be."""
    names = {
        f.name: getattr(cfg, f"{f.name}_env", "") for f in attrs.fields(cls) if f.name not in given
    }
    if optional and not any(var and os.environ.get(var) for var in names.values()):
        return None
    values = {
        field: secret_from_env(var, f"venues.{venue}.{field}_env") for field, var in names.items()
    }
    creds = cls(**values, **given)
    for value in creds.secrets():
        register_secret(value)
    return creds


def env_secrets(cls: type[Credentials], cfg: Any) -> list[str]:
    """The secret values `cls` would read from the environment, as far as they are set (for
    redaction before anything is built)."""
    out = []
    for f in attrs.fields(cls):
        var = getattr(cfg, f"{f.name}_env", "")
        value = os.environ.get(var) if var else None
        if f.metadata.get("secret") and value:
            out.append(value)
    return out

"""Endpoint selection (TLS rule applied once, overrides) and credentials from the environment."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from framework.errors import ConfigError
from framework.logs import redact
from framework.transport.endpoints import credentials_from_env, env_secrets, select_urls
from framework.venue import Credentials, Endpoints, SimHandle, Urls, secret

ENDPOINTS = Endpoints(
    sim=lambda sim: Urls(ws=sim.ws_url + "/ws", http=sim.http_url),
    production=Urls(ws="wss://ws.example.com", http="https://api.example.com"),
)
SIM = SimHandle(1234, "http://127.0.0.1:1234", "ws://127.0.0.1:1234", None)


@attrs.define
class Cfg:
    endpoint: str = "production"
    ws_url: str = ""
    api_key_env: str = "T_API_KEY"
    api_secret_env: str = "T_API_SECRET"


@attrs.frozen
class Creds(Credentials):
    api_key: str
    api_secret: str = secret()


def test_the_url_set_per_endpoint_and_the_simulators() -> None:
    assert select_urls("v", ENDPOINTS, Cfg(), None).ws == "wss://ws.example.com"
    # embedded or standalone simulator: derived from its handle, whatever `endpoint` says
    urls = select_urls("v", ENDPOINTS, Cfg(endpoint="sim"), SIM)
    assert urls == Urls(ws="ws://127.0.0.1:1234/ws", http="http://127.0.0.1:1234")


def test_an_endpoint_the_venue_publishes_no_urls_for_is_a_config_error() -> None:
    missing = "venues.v.sandbox_url: configure it"
    with pytest.raises(ConfigError) as refused:
        select_urls("v", ENDPOINTS, Cfg(endpoint="sandbox"), None, missing=missing)
    assert str(refused.value) == missing


def test_an_override_wins_and_meets_the_tls_rule_before_anything_connects() -> None:
    cfg = Cfg(ws_url="wss://other.example.com/ws")
    overrides = {"ws": "ws_url"}
    assert select_urls("v", ENDPOINTS, cfg, None, overrides=overrides).ws == cfg.ws_url
    cfg.ws_url = "ws://127.0.0.1:9/ws"  # plain to this machine: a simulator
    assert select_urls("v", ENDPOINTS, cfg, None, overrides=overrides).ws == cfg.ws_url
    cfg.ws_url = "ws://example.com/ws"
    with pytest.raises(ConfigError, match=r"venues\.v\.ws_url: refusing unencrypted ws://"):
        select_urls("v", ENDPOINTS, cfg, None, overrides=overrides)


def test_credentials_from_env_name_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_API_KEY", raising=False)
    monkeypatch.delenv("T_API_SECRET", raising=False)
    assert credentials_from_env(Creds, "v", Cfg(), optional=True) is None
    monkeypatch.setenv("T_API_KEY", "key-1")
    with pytest.raises(ConfigError) as missing:
        credentials_from_env(Creds, "v", Cfg(), optional=True)
    assert (
        str(missing.value)
        == "venues.v.api_secret_env: environment variable T_API_SECRET is not set"
    )
    monkeypatch.setenv("T_API_SECRET", "s3cr3t-value")
    creds = credentials_from_env(Creds, "v", Cfg())
    assert creds == Creds("key-1", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(creds)
    assert env_secrets(Creds, Cfg()) == ["s3cr3t-value"]
    # registered for redaction as it was read
    event: dict[str, Any] = {"event": "x", "detail": "token s3cr3t-value here"}
    assert "s3cr3t-value" not in str(redact(None, "info", event))


async def test_open_trade_refuses_a_plain_ws_override_to_a_remote_host_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bug: `ws_url` reached the catalogue fetch unchecked and a plain ws:// was opened."""
    import framework.transport.fetch as fetch
    from framework.venues.opentrade import OpenTradeConfig, OpenTradeVenue

    def no_connection(*args: object, **kw: object) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(fetch, "open_websocket_url", no_connection)
    cfg = OpenTradeConfig(endpoint="sandbox", ws_url="ws://example.com/exchange/ws")
    with pytest.raises(ConfigError, match=r"venues\.opentrade\.ws_url: refusing unencrypted ws://"):
        await OpenTradeVenue().build(cfg, None, lambda *a, **kw: None)

"""Secrets never reach the logs; plain HTTP only to loopback."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from framework import logs
from framework.engine import http_client

SECRET = "sk-live-5f2a9c1e7b"


def test_registered_secret_is_masked_everywhere_in_json_logs() -> None:
    out = io.StringIO()
    logs.register_secret(SECRET)
    logs.configure("json", "info", stream=out)
    log = structlog.get_logger("t").bind(venue="paxos", header=f"Bearer {SECRET}")
    log.info(f"token {SECRET} fetched", nested={"secret": SECRET, "list": [SECRET]})
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("boom")
    text = out.getvalue()
    assert SECRET not in text
    first = json.loads(text.splitlines()[0])
    assert first["header"] == "Bearer ***" and first["nested"] == {"secret": "***", "list": ["***"]}
    assert "auth failed for ***" in text


def test_console_logs_are_masked_too() -> None:
    out = io.StringIO()
    logs.register_secret(SECRET)
    logs.configure("plain", "info", stream=out)
    structlog.get_logger("t").warning("x", secret=SECRET)
    assert SECRET not in out.getvalue() and "***" in out.getvalue()


async def test_plain_http_refused_for_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        http_client("http://api.paxos.com/v2/")
    client = http_client("https://api.paxos.com/v2/")  # TLS: allowed, verification on
    assert client._transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"
    await client.aclose()
    await http_client("http://127.0.0.1:9/").aclose()

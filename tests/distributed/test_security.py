"""Bus security settings: ACL user and password by env var name against a real redis-server,
and TLS settings that always verify."""

from __future__ import annotations

import ssl
from pathlib import Path

import coredis
import pytest

from framework.distributed.redis import BusConfig
from framework.errors import ConfigError
from framework.logs import redact
from framework.transport.session import first_leaf
from tests.distributed.conftest import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def locked_redis(tmp_path: Path) -> RedisServer:
    server = RedisServer(
        tmp_path,
        extra=[
            "--requirepass", "default-secret",
            "--user", "bot", "on", ">bot-secret", "~botrun:*", "+@all",
        ],
    )  # fmt: skip
    server.start(auth=b"AUTH default-secret\r\n")
    yield server
    server.kill()


async def test_acl_user_and_password_from_env(
    locked_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_REDIS_PASSWORD", "bot-secret")
    bus = BusConfig(url=locked_redis.url, username="bot", password_env="BOT_REDIS_PASSWORD")
    async with bus.client() as redis:
        assert await redis.set("botrun:probe", b"1")
        # the ACL confines the user to botrun keys
        with pytest.raises(coredis.exceptions.ResponseError):
            await redis.set("other:key", b"1")
    # the password never reaches a log line
    line = redact(None, "info", {"event": "connect", "detail": "password bot-secret"})
    assert "bot-secret" not in str(line)

    monkeypatch.setenv("BOT_REDIS_PASSWORD", "wrong")
    with pytest.raises(Exception) as refused:  # coredis wraps it in a group
        async with bus.client() as redis:
            await redis.ping()
    assert isinstance(first_leaf(refused.value), coredis.exceptions.AuthenticationError)


def test_secrets_never_inline_and_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="password_env"):
        BusConfig(url="redis://:inline@127.0.0.1:6379").client()
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        BusConfig(url="redis://127.0.0.1:6379", password_env="NOT_SET_ANYWHERE").client()
    with pytest.raises(ConfigError, match="scheme"):
        BusConfig(url="http://127.0.0.1:6379").client()


def test_tls_always_verifies() -> None:
    client = BusConfig(url="rediss://127.0.0.1:6380").client()
    ctx = client.connection_pool.connection_kwargs["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname

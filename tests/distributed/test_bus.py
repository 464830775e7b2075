"""Gateways and strategies over a real Redis: sharing, book sync, outages, crashes.

Each test starts its own `redis-server` (no persistence), a Paxos simulator (the venue truth) in
this trio run, and the gateway and strategies in this process or as `botrun` subprocesses. The
venue's own order list is what "neither lost nor doubled" is checked against.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from framework import Strategy
from framework.distributed import codec
from framework.distributed.gateway import Gateway
from framework.distributed.redis import BusConfig, md_key
from framework.distributed.remote import RemoteRuntime
from framework.errors import ConfigError
from framework.events import BookState, BookStatus, OrderStatus, Side, VenueState, VenueStatus
from framework.tools.gateway import run_gateway
from tests.distributed.conftest import (
    GUARD_S,
    RedisServer,
    botrun,
    make_config,
    start_sim,
    until,
    write_config,
)

pytestmark = pytest.mark.redis

HERE = Path(__file__).resolve().parent
STRATEGY = HERE / "bus_strategy.py"
PROFILE = "sim-profile"
QTY = Decimal("0.001")


class Probe(Strategy):
    """Driven by the test; records what the runtime tells it."""

    def __init__(self, name: str = "probe") -> None:
        super().__init__({})
        self.name = name
        self.book_status: list[BookStatus] = []
        self.venue_status: list[VenueStatus] = []

    def on_book_status(self, event: BookStatus) -> None:
        self.book_status.append(event)

    def on_venue_status(self, event: VenueStatus) -> None:
        self.venue_status.append(event)

    def resting_buy(self, price: Decimal | None = None) -> Any:
        if price is None:
            bid = self.book("paxos", "BTCUSD").best_bid()
            assert bid is not None
            price = bid[0] - Decimal(500)
        self.last_price = price
        return self.buy("paxos", "BTCUSD", QTY, price, post_only=True)


async def start_gateway(
    nursery: trio.Nursery, cfg: Any, bus: BusConfig, **kw: Any
) -> tuple[Gateway, trio.Event]:
    ready = trio.Event()
    stop = trio.Event()
    box: dict[str, Gateway] = {}

    def on_ready(gw: Gateway) -> None:
        box["gw"] = gw
        ready.set()

    nursery.start_soon(partial(run_gateway, cfg, "paxos", bus, on_ready=on_ready, stop=stop, **kw))
    with trio.fail_after(GUARD_S):
        await ready.wait()
    return box["gw"], stop


async def start_remote(
    nursery: trio.Nursery, cfg: Any, bus: BusConfig, *strategies: Strategy
) -> RemoteRuntime:
    rt = RemoteRuntime(cfg, list(strategies), bus, heartbeat_interval_s=0.1, reconnect_s=0.05)
    nursery.start_soon(rt.run, 0)
    with trio.fail_after(GUARD_S):
        await rt.started.wait()
    return rt


def synced(rt: RemoteRuntime) -> bool:
    return rt.books[("paxos", "BTCUSD")].is_synced


def venue_orders(sim: Any) -> Counter[str]:
    """How many venue orders each client order id has (1 each, or it was doubled)."""
    return Counter(o.client_order_id for o in sim.engine.orders(owner=PROFILE))


def venue_status(sim: Any, coid: str) -> str | None:
    order = sim.engine.order_by_client_id(PROFILE, coid)
    return None if order is None else str(order.status)


async def test_two_strategy_processes_share_one_gateway(
    tmp_path: Path, bus: BusConfig, redis_server: RedisServer
) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery)
        cfg = make_config(sim.http_url, tmp_path / "journal")
        gw, _ = await start_gateway(nursery, cfg, bus)
        procs = []
        for tag in ("alpha", "beta"):
            config = write_config(
                tmp_path / f"{tag}.toml", sim.http_url, tmp_path / "j2", tag=tag, orders="4"
            )
            procs.append(
                await botrun(
                    str(STRATEGY),
                    "--config",
                    str(config),
                    "--bus",
                    redis_server.url,
                    "--duration",
                    "25",  # a guard: it stops itself once its orders fill
                    log=tmp_path / f"{tag}.log",
                    nursery=nursery,
                )
            )
        with trio.fail_after(GUARD_S):
            for proc in procs:
                await proc.wait()
        logs = {tag: (tmp_path / f"{tag}.log").read_text() for tag in ("alpha", "beta")}
        for proc, text in zip(procs, logs.values(), strict=True):
            assert proc.returncode == 0, text[-2000:]
            assert '"strategy filled"' in text, text[-2000:]
        by_strategy: Counter[str] = Counter(
            o.strategy for o in gw.engine.orders.orders.values() if o.status is OrderStatus.FILLED
        )
        # both traded through the one gateway (each stops itself after two fills)
        assert by_strategy["alpha"] >= 2 and by_strategy["beta"] >= 2, by_strategy
        # every command became exactly one venue order
        assert set(venue_orders(sim).values()) == {1}
        assert gw.counts["duplicates"] == 0
        nursery.cancel_scope.cancel()


async def test_book_resyncs_across_a_gap_and_a_bad_entry(tmp_path: Path, bus: BusConfig) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery)
        cfg = make_config(sim.http_url, tmp_path / "journal")
        gw, _ = await start_gateway(nursery, cfg, bus)
        probe = Probe()
        rt = await start_remote(nursery, cfg, bus, probe)
        await until(lambda: synced(rt), "synced from the snapshot key")
        book = rt.books[("paxos", "BTCUSD")]
        base = rt.counts["resyncs"]

        # an entry the consumer never sees: the next id is not last + 1
        gw._next_id("BTCUSD")
        await until(lambda: rt.counts["gaps"] == 1, "gap detected")
        await until(lambda: synced(rt) and rt.counts["resyncs"] == base + 1, "resynced")
        states = [s.state for s in probe.book_status]
        assert BookState.UNSYNCED in states and states[-1] is BookState.SYNCED

        # an entry that does not decode (a NaN price): counted, un-synced, resynced
        bad = codec.encode(BookStatus("paxos", "BTCUSD", BookState.SYNCED, "", 0)).replace(
            b'"SYNCED"', b'"NOPE"'
        )
        gw._md.append((md_key("paxos", "BTCUSD"), gw._next_id("BTCUSD"), bad))
        gw._wake.set()
        await until(lambda: rt.counts["bad_entries"] == 1, "bad entry counted")
        await until(lambda: synced(rt) and rt.counts["resyncs"] == base + 2, "resynced again")

        # after resync the copy follows the gateway's book level for level
        gw_book = gw.engine.books[("paxos", "BTCUSD")]
        await until(
            lambda: (
                rt._md_last[("paxos", "BTCUSD")][1] == gw._seq["BTCUSD"]
                and book.levels_unchecked() == gw_book.levels_unchecked()
            ),
            "remote book equals the gateway's",
        )
        nursery.cancel_scope.cancel()


async def test_duplicate_command_is_one_order(tmp_path: Path, bus: BusConfig) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery)
        cfg = make_config(sim.http_url, tmp_path / "journal")
        gw, _ = await start_gateway(nursery, cfg, bus)
        await until(lambda: gw.engine.books[("paxos", "BTCUSD")].is_synced, "gateway synced")
        bid = gw.engine.books[("paxos", "BTCUSD")].best_bid()
        assert bid is not None
        cmd = codec.dumps(
            {
                "op": "submit",
                "coid": "dup1",
                "strategy": "s",
                "venue": "paxos",
                "symbol": "BTCUSD",
                "side": Side.BUY.value,
                "type": "LIMIT",
                "quantity": QTY,
                "price": bid[0] - 500,
                "tif": "GTC",
                "post_only": True,
            }
        )
        gw.handle_command(cmd)
        gw.handle_command(cmd)  # delivered twice
        await until(lambda: venue_status(sim, "dup1") == "OPEN", "on the book")
        gw.handle_command(cmd)  # and again once working
        await trio.sleep(0.2)
        assert venue_orders(sim)["dup1"] == 1
        assert gw.counts["duplicates"] == 2
        # a float or a NaN for money is refused, never booked
        gw.handle_command(cmd.replace(b'"dup1"', b'"dup2"').replace(b'"0.001"', b"0.001"))
        gw.handle_command(cmd.replace(b'"dup1"', b'"dup3"').replace(b'"0.001"', b'"NaN"'))
        assert gw.counts["bad_commands"] == 2
        assert "dup2" not in gw.engine.orders.orders and "dup3" not in gw.engine.orders.orders
        nursery.cancel_scope.cancel()


async def test_redis_restart(tmp_path: Path, bus: BusConfig, redis_server: RedisServer) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery)
        cfg = make_config(sim.http_url, tmp_path / "journal")
        gw, _ = await start_gateway(nursery, cfg, bus)
        probe = Probe()
        rt = await start_remote(nursery, cfg, bus, probe)
        await until(lambda: synced(rt), "synced")
        first = probe.resting_buy()
        await until(lambda: venue_status(sim, first.client_order_id) == "OPEN", "first working")
        await until(lambda: first.status is OrderStatus.ACCEPTED, "first accepted (mirror)")

        redis_server.kill()
        await until(lambda: not rt.up and not synced(rt), "books un-synced by the outage")
        assert any(
            s.state is VenueState.DISCONNECTED and "bus outage" in s.reason
            for s in probe.venue_status
        )
        assert "bus outage" in rt.books[("paxos", "BTCUSD")].unsync_reason
        # orders while the bus is down: kept, sent when it is back
        second = probe.resting_buy(probe.last_price)
        assert probe.cancel(first)
        redis_server.start()  # empty: no persistence

        await until(lambda: rt.up and synced(rt), "resynced after the restart")
        await until(lambda: venue_status(sim, second.client_order_id) == "OPEN", "second sent")
        await until(lambda: venue_status(sim, first.client_order_id) == "CANCELLED", "cancelled")
        await until(lambda: second.status is OrderStatus.ACCEPTED, "second accepted (mirror)")
        await until(lambda: first.status is OrderStatus.CANCELLED, "first cancelled (mirror)")
        # neither lost nor doubled
        assert venue_orders(sim) == {first.client_order_id: 1, second.client_order_id: 1}
        assert gw.counts["reconnects"] >= 2
        nursery.cancel_scope.cancel()


async def test_gateway_sigkill_and_restart(
    tmp_path: Path, bus: BusConfig, redis_server: RedisServer
) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery)
        config = write_config(tmp_path / "gw.toml", sim.http_url, tmp_path / "journal")
        args = ("gateway", "--venue", "paxos", "--config", str(config), "--bus", redis_server.url)
        gw1 = await botrun(*args, log=tmp_path / "gw1.log", nursery=nursery)
        probe = Probe()
        rt = await start_remote(nursery, make_config(sim.http_url, tmp_path / "x"), bus, probe)
        await until(lambda: synced(rt), "synced")
        first = probe.resting_buy()
        await until(lambda: first.status is OrderStatus.ACCEPTED, "first accepted")

        gw1.kill()  # SIGKILL: no shutdown, no cancel
        await gw1.wait()
        await until(lambda: not synced(rt), "a dead gateway's books are not trusted")
        # a command while no gateway reads: waits in the consumer group
        second = probe.resting_buy(probe.last_price)
        await trio.sleep(0.3)
        states_before = rt.counts["connects"]

        gw2 = await botrun(*args, log=tmp_path / "gw2.log", nursery=nursery)
        await until(lambda: synced(rt), "resynced from the new gateway")
        await until(lambda: venue_status(sim, second.client_order_id) == "OPEN", "second sent")
        await until(lambda: second.status is OrderStatus.ACCEPTED, "second accepted")
        # the restarted gateway restored and reconciled the journal: the first order is still
        # working, and the strategy can cancel it through the new gateway
        assert first.status is OrderStatus.ACCEPTED and first.order.is_open
        assert rt.counts["connects"] == states_before  # the bus itself never went away
        assert probe.cancel(first)
        await until(lambda: venue_status(sim, first.client_order_id) == "CANCELLED", "cancelled")
        await until(lambda: first.status is OrderStatus.CANCELLED, "mirror cancelled")
        assert venue_orders(sim) == {first.client_order_id: 1, second.client_order_id: 1}
        gw2.kill()
        nursery.cancel_scope.cancel()


async def test_dead_strategy_orders_cancelled_after_heartbeat_timeout(
    tmp_path: Path, bus: BusConfig, redis_server: RedisServer
) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery)
        cfg = make_config(sim.http_url, tmp_path / "journal")
        gw, _ = await start_gateway(nursery, cfg, bus, heartbeat_timeout_s=1.0)
        # a live strategy beside it: its order must survive
        probe = Probe("alive")
        rt = await start_remote(nursery, cfg, bus, probe)
        await until(lambda: synced(rt), "synced")
        kept = probe.resting_buy()

        config = write_config(
            tmp_path / "doomed.toml", sim.http_url, tmp_path / "j2", tag="doomed", mode="rest"
        )
        proc = await botrun(
            str(STRATEGY), "--config", str(config), "--bus", redis_server.url,
            log=tmp_path / "doomed.log", nursery=nursery,
        )  # fmt: skip

        def doomed_open() -> list[Any]:
            return [o for o in gw.engine.orders.open_orders() if o.strategy == "doomed"]

        await until(lambda: len(doomed_open()) == 1, "the doomed strategy's order works")
        coid = doomed_open()[0].client_order_id
        await until(lambda: venue_status(sim, coid) == "OPEN", "on the venue's book")
        proc.kill()
        await proc.wait()
        await until(lambda: venue_status(sim, coid) == "CANCELLED", "dead man's switch fired")
        assert gw.counts["deadman_cancels"] == 1
        assert venue_status(sim, kept.client_order_id) == "OPEN"
        nursery.cancel_scope.cancel()


async def test_second_gateway_for_a_venue_refuses(tmp_path: Path, bus: BusConfig) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery)
        cfg = make_config(sim.http_url, tmp_path / "journal")
        gw, _ = await start_gateway(nursery, cfg, bus)
        # the journal has one writer: a second gateway on the same account must not start
        second = Gateway(gw.engine, "paxos", bus, alive_ttl_s=0.3)
        async with bus.client() as redis:
            with pytest.raises(ConfigError, match="another gateway"):
                await second._first_connect(redis)
        nursery.cancel_scope.cancel()

from __future__ import annotations

from decimal import Decimal as D

import pytest

from framework.events import Side
from framework.sim import Accounts, MatchingEngine

SYM = "BTC-USD"


def assets_of(symbol: str) -> tuple[str, str]:
    base, quote = symbol.split("-")
    return base, quote


def make(maker_fee: str = "0", taker_fee: str = "0") -> tuple[MatchingEngine, Accounts]:
    engine = MatchingEngine(clock_ns=lambda: 0)
    engine.add_symbol(SYM, D("0.5"), D("0.01"))
    engine.add_symbol("ETH-BTC", D("0.0001"), D("0.1"))
    accounts = Accounts(engine, assets_of, fee_rate_maker=D(maker_fee), fee_rate_taker=D(taker_fee))
    accounts.open("alice", {"BTC": D(10), "USD": D(10_000)})
    accounts.open("bob", {"BTC": D(0), "USD": D(50_000)})
    return engine, accounts


def test_fill_between_two_accounts_moves_base_and_quote_with_fees() -> None:
    engine, accounts = make(maker_fee="0.001", taker_fee="0.002")
    engine.submit("alice", SYM, Side.SELL, "LIMIT", D("1.5"), D(20_000))  # maker

    engine.submit("bob", SYM, Side.BUY, "LIMIT", D(1), D(20_000))  # taker

    # notional 20_000; maker fee 20, taker fee 40, both in quote
    assert accounts.balances("alice") == {"BTC": D(9), "USD": D(10_000 + 20_000 - 20)}
    assert accounts.balances("bob") == {"BTC": D(1), "USD": D(50_000 - 20_000 - 40)}


def test_taker_sell_against_maker_buy() -> None:
    engine, accounts = make(taker_fee="0.01")
    engine.submit("bob", SYM, Side.BUY, "LIMIT", D(2), D(100))  # maker, no maker fee
    engine.submit("alice", SYM, Side.SELL, "MARKET", D("0.5"))  # taker

    assert accounts.balance("alice", "BTC") == D("9.5")
    assert accounts.balance("alice", "USD") == D(10_000 + 50) - D("0.5")
    assert accounts.balance("bob", "BTC") == D("0.5")
    assert accounts.balance("bob", "USD") == D(50_000 - 50)


def test_quote_asset_follows_the_symbol() -> None:
    engine, accounts = make(maker_fee="0.01")
    accounts.open("carol", {"ETH": D(5)})
    engine.submit("carol", "ETH-BTC", Side.SELL, "LIMIT", D(2), D("0.05"))
    engine.submit("alice", "ETH-BTC", Side.BUY, "LIMIT", D(2), D("0.05"))

    assert accounts.balances("carol") == {"ETH": D(3), "BTC": D("0.1") - D("0.001")}
    assert accounts.balance("alice", "ETH") == D(2)
    assert accounts.balance("alice", "BTC") == D("9.9")
    assert accounts.balance("alice", "USD") == D(10_000)


def test_crowd_without_account_is_ignored() -> None:
    engine, accounts = make(maker_fee="0.001", taker_fee="0.002")
    engine.submit("crowd", SYM, Side.SELL, "LIMIT", D(1), D(100))
    engine.submit("alice", SYM, Side.BUY, "LIMIT", D(1), D(100))
    engine.submit("crowd", SYM, Side.BUY, "LIMIT", D(1), D(90))
    engine.submit("crowd", SYM, Side.SELL, "LIMIT", D(1), D(90))  # crowd against crowd

    assert len(engine.fills()) == 2
    assert accounts.balances("alice") == {"BTC": D(11), "USD": D(10_000 - 100) - D("0.2")}
    assert accounts.balances("bob") == {"BTC": D(0), "USD": D(50_000)}
    with pytest.raises(KeyError):
        accounts.balances("crowd")


def test_self_trade_only_costs_fees() -> None:
    engine, accounts = make(maker_fee="0.001", taker_fee="0.002")
    engine.submit("alice", SYM, Side.SELL, "LIMIT", D(1), D(1000))
    engine.submit("alice", SYM, Side.BUY, "LIMIT", D(1), D(1000))
    assert accounts.balances("alice") == {"BTC": D(10), "USD": D(10_000 - 1 - 2)}


def test_open_copies_and_resets_and_unknown_asset_is_zero() -> None:
    _, accounts = make()
    start = {"USD": D(5)}
    accounts.open("dave", start)
    start["USD"] = D(0)
    assert accounts.balance("dave", "USD") == D(5)
    assert accounts.balance("dave", "BTC") == D(0)
    accounts.balances("dave")["USD"] = D(0)  # a copy: does not change the account
    assert accounts.balance("dave", "USD") == D(5)
    accounts.open("dave", {"BTC": D(1)})
    assert accounts.balances("dave") == {"BTC": D(1)}

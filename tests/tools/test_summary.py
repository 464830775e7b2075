"""The run summary as text and JSON: every amount in its currency, at its precision."""

from __future__ import annotations

import json
from decimal import Decimal as D
from typing import Any

from framework.tools.summary import format_summary, summary_json


def _summary(*positions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "mode": "paper",
        "events": {"paxos": 3},
        "orders": {"FILLED": 1, "CANCELLED": 2},
        "fills": 1,
        "positions": list(positions),
        "sessions": {},
        "handler_errors": {},
        **extra,
    }


def _position(**kw: Any) -> dict[str, Any]:
    p = {
        "venue": "paxos",
        "symbol": "BTCUSD",
        "quantity": D("0.1"),
        "avg_price": D("60000.125"),
        "realized_pnl": D("-1.005"),
        "unrealized_pnl": D("-0.001"),
        "mark": None,
        "fees": D("0.3"),
        "turnover": D("6000.0125"),
        "quote": "USD",
        "base": "BTC",
        "tick": D("0.25"),
        "lot": D("0.00000001"),
    }
    p.update(kw)
    return p


def test_summary_prints_usd_to_the_cent_without_negative_zero() -> None:
    line = format_summary(_summary(_position())).splitlines()[4]
    assert "realized -1.00 USD" in line and "unrealized 0.00 USD" in line and "-0.00" not in line
    assert (
        "0.10000000 @ 60000.12" in line
        and "fees 0.30 USD" in line
        and "turnover 6000.01 USD" in line
    )


def test_btc_quoted_pnl_keeps_its_satoshis() -> None:
    roxom = _position(
        venue="roxom",
        symbol="US500-BTC",
        quantity=D("-0.010"),
        avg_price=D("0.00432453"),
        realized_pnl=D("-0.00000123"),
        unrealized_pnl=D("0.00000045"),
        mark=D("0.00432450"),
        fees=D("0.00000001"),
        turnover=D("0.00006054"),
        quote="BTC",
        tick=D("0.00000001"),
        lot=D("0.001"),
    )
    line = format_summary(_summary(roxom)).splitlines()[4]
    assert "-0.010 @ 0.00432453" in line
    assert "realized -0.00000123 BTC" in line and "unrealized 0.00000045 BTC" in line
    assert "@ 0.00 " not in line and "realized 0.00 " not in line


def test_a_flat_position_prints_flat_not_0E_8() -> None:
    flat = _position(quantity=D("0E-8"), unrealized_pnl=D("0"))
    line = format_summary(_summary(flat)).splitlines()[4]
    assert "BTCUSD: 0 (flat)" in line and "E-" not in line and "@" not in line


def test_totals_per_currency_kill_switch_halts_balances_and_handler_errors() -> None:
    text = format_summary(
        _summary(
            _position(),
            totals={
                "USD": {
                    "realized_pnl": D("-1.005"),
                    "unrealized_pnl": D("2"),
                    "fees": D("0.3"),
                    "turnover": D("6000"),
                },
                "BTC": {
                    "realized_pnl": D("0.00000001"),
                    "unrealized_pnl": D("0"),
                    "fees": D("0"),
                    "turnover": D("0.1"),
                },
            },
            balances={"paxos": {"USD": D("99998.7938"), "BTC": D("1")}},
            kill_switch="loss above max_loss 1",
            halt_reasons=["kill switch: loss above max_loss 1"],
            handler_errors={"MyStrategy": 12},
        )
    )
    assert "KILL SWITCH ENGAGED: loss above max_loss 1" in text.splitlines()[1]
    assert "total PnL USD: 1.00 USD (realized -1.00 USD net of fees 0.30 USD" in text
    assert "total PnL BTC: 0.00000001 BTC" in text
    assert "equity paxos: 1.00000000 BTC, 99998.79 USD" in text
    assert "handler errors: MyStrategy: 12" in text


def test_summary_json_is_exact_text_for_machines() -> None:
    data = json.loads(summary_json(_summary(_position(), kill_switch=None), exit_code=0))
    assert data["positions"][0]["realized_pnl"] == "-1.005"  # exact, not a float
    assert data["exit_code"] == 0 and data["kill_switch"] is None

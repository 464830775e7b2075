"""The run summary as text."""

from __future__ import annotations

from decimal import Decimal

from framework.tools.summary import format_summary


def test_summary_prints_money_to_the_cent_without_negative_zero() -> None:
    summary = {
        "mode": "paper",
        "events": {"paxos": 3},
        "orders": {"FILLED": 1},
        "fills": 1,
        "positions": [
            {
                "venue": "paxos",
                "symbol": "BTCUSD",
                "quantity": Decimal("0.1"),
                "avg_price": Decimal("60000.125"),
                "realized_pnl": Decimal("-1.005"),
                "unrealized_pnl": Decimal("-0.001"),
                "mark": None,
            }
        ],
        "sessions": {},
        "handler_errors": {},
    }
    line = format_summary(summary).splitlines()[4]
    assert "realized -1.00" in line and "unrealized 0.00" in line and "-0.00" not in line

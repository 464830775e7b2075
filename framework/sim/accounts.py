"""Per-owner balances that follow the engine's fills.

Settlement only: the engine does not check or reserve funds before matching, so a balance may go
negative. Owners without an account (the synthetic crowd) trade freely and are not tracked.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from framework.events import Side
from framework.sim.engine import EngineListener, MatchingEngine, SimFill

_ZERO = Decimal(0)


class Accounts(EngineListener):
    def __init__(
        self,
        engine: MatchingEngine,
        assets_of: Callable[[str], tuple[str, str]],
        fee_rate_maker: Decimal = _ZERO,
        fee_rate_taker: Decimal = _ZERO,
    ) -> None:
        """`assets_of(symbol)` gives (base, quote); fees are a rate of the notional, in quote."""
        self._assets_of = assets_of
        self.fee_rate_maker = fee_rate_maker
        self.fee_rate_taker = fee_rate_taker
        self._balances: dict[str, dict[str, Decimal]] = {}
        engine.add_listener(self)

    def open(self, owner: str, balances: dict[str, Decimal]) -> None:
        """Open (or reset) the account of `owner` with these starting balances."""
        self._balances[owner] = dict(balances)

    def balance(self, owner: str, asset: str) -> Decimal:
        """Balance of `asset`; 0 for an asset the account never held. KeyError if no account."""
        return self._balances[owner].get(asset, _ZERO)

    def balances(self, owner: str) -> dict[str, Decimal]:
        return dict(self._balances[owner])

    def on_trade(self, fill: SimFill) -> None:
        if fill.taker_owner not in self._balances and fill.maker_owner not in self._balances:
            return  # crowd against crowd
        base, quote = self._assets_of(fill.symbol)
        self._settle(fill.taker_owner, fill.aggressor, fill, base, quote, self.fee_rate_taker)
        maker_side = fill.aggressor.opposite
        self._settle(fill.maker_owner, maker_side, fill, base, quote, self.fee_rate_maker)

    def _settle(
        self, owner: str, side: Side, fill: SimFill, base: str, quote: str, fee_rate: Decimal
    ) -> None:
        account = self._balances.get(owner)
        if account is None:
            return  # no account (the crowd): nothing to track
        notional = fill.price * fill.quantity
        sign = 1 if side is Side.BUY else -1
        account[base] = account.get(base, _ZERO) + sign * fill.quantity
        account[quote] = account.get(quote, _ZERO) - sign * notional - notional * fee_rate

"""Simulator core: matching engine, account balances and a seeded synthetic market."""

from framework.sim.accounts import Accounts
from framework.sim.engine import EngineListener, MatchingEngine, SimFill, SimOrder
from framework.sim.market import SyntheticMarket

__all__ = [
    "Accounts",
    "EngineListener",
    "MatchingEngine",
    "SimFill",
    "SimOrder",
    "SyntheticMarket",
]

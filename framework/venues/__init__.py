"""Venue registry: adding a venue adds its package and one line here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.venue import Venue

REGISTRY: dict[str, str] = {
    "opentrade": "framework.venues.opentrade:VENUE",
    "paxos": "framework.venues.paxos:VENUE",
    "powertrade": "framework.venues.powertrade:VENUE",
    "roxom": "framework.venues.roxom:VENUE",
}


def venue_names() -> list[str]:
    return sorted(REGISTRY)


def load_venue(name: str) -> Venue:
    module_name, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), attr)

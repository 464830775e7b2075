"""Venue registry: the one list of venues. Adding a venue adds its package and one line here.

The core never imports this package: it is handed `CATALOG` (a `framework.venue.VenueCatalog`)
through the config, which `parse_config`/`load_config` below build with it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework import config as _config

if TYPE_CHECKING:
    from framework.config import Config
    from framework.venue import Venue

REGISTRY: dict[str, str] = {
    "opentrade": "framework.venues.opentrade:VENUE",
    "paxos": "framework.venues.paxos:VENUE",
    "powertrade": "framework.venues.powertrade:VENUE",
    "roxom": "framework.venues.roxom:VENUE",
}


class Registry:
    """`REGISTRY` as a `VenueCatalog`: venue packages are imported on first use only."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def load(self, name: str) -> Venue:
        module_name, attr = self._entries[name].split(":")
        return getattr(importlib.import_module(module_name), attr)


CATALOG = Registry(REGISTRY)


def venue_names() -> list[str]:
    return CATALOG.names()


def load_venue(name: str) -> Venue:
    return CATALOG.load(name)


def parse_config(raw: dict[str, Any]) -> Config:
    """`framework.config.parse` with every registered venue."""
    return _config.parse(raw, CATALOG)


def load_config(path: str | Path) -> Config:
    """`framework.config.load` with every registered venue."""
    return _config.load(path, CATALOG)

"""Loading a user's strategy file: the one place the tools turn a path into a Strategy class."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from framework.errors import ConfigError
from framework.strategy import Strategy


def load_strategy_class(path: str) -> type[Strategy]:
    """The Strategy subclass defined in a file (its `STRATEGY` name if it defines several)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"strategy: file {path} not found")
    spec = importlib.util.spec_from_file_location(f"botrun_user_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"strategy: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    named = getattr(module, "STRATEGY", None)
    if isinstance(named, type) and issubclass(named, Strategy):
        return named
    found = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise ConfigError(
            f"strategy: {path} defines {len(found)} Strategy subclasses; set STRATEGY = <class>"
        )
    return found[0]

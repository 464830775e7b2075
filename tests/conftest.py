from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """A test that configures logging onto a captured stream must not leave it for the next."""
    yield
    structlog.reset_defaults()

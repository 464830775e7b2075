from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from framework.execution.journal import Journal

# `pytester`: tests/testing runs the test kit's plugin as a user's suite would load it
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """A test that configures logging onto a captured stream must not leave it for the next."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _journal_fsync_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under trio's autojump clock a task waiting on a worker thread counts as blocked, and the
    clock would jump past timeouts while an fsync runs: tests fsync inline. The threaded path
    is tested on its own (tests/test_journal.py)."""
    monkeypatch.setattr(Journal, "fsync_in_thread", False)

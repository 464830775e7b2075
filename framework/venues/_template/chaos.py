"""Template venue in the test kit (OPTIONAL, recommended): its `ChaosCase`.

A registered venue with a `chaos.py` is found by `chaos_cases()` (through the registry) and runs
in the guarantee tests (tests/venues/test_guarantees.py), the decoder fuzzer
(tests/venues/test_fuzz.py), the soak (bench/soak.py) and users' `chaos_run` fixtures. Import
only the declaration (framework.venues.chaos) and the simulator toolkit here: never the engine
or pytest.
"""

from __future__ import annotations

from typing import Any

from framework.venues.chaos import ChaosCase

MARKETS = ("BTCUSD", "ETHUSD")


def _section(seed: int) -> dict[str, Any]:
    # the venue's config section for its embedded simulator, market stopped (the test moves it)
    return {"endpoint": "sim", "sim_seed": seed, "sim_rate_hz": 0, "markets": list(MARKETS)}


def _streams() -> dict[str, Any]:
    from framework.venues._template.client import TemplateStream

    return {"public": TemplateStream("ws://127.0.0.1:1", list(MARKETS))}


CASE = ChaosCase(
    venue="template",
    markets=MARKETS,
    section=_section,
    book_stream="public",
    book_path="/ws",
    # no sequence numbers in the toy feed: a dropped or reordered delta goes unnoticed
    detects_gaps=False,
    account="sim-account",
    # order reports carry cumulative quantities, not fill ids: totals are compared per order
    fills_by_id=False,
    streams=_streams,
    samples={
        "public": (
            '{"type":"snapshot","symbol":"BTCUSD","bids":[["100","1"]],"asks":[["101","2"]]}',
            '{"type":"delta","symbol":"BTCUSD","bids":[["100.5","3"]],"asks":[]}',
            '{"type":"delta","symbol":"BTCUSD","bids":[],"asks":[["101","0"]]}',
            '{"type":"order","client_order_id":"c1","order_id":"O1","status":"OPEN",'
            '"filled":"0","avg_price":"0"}',
        )
    },
)

"""bench/throughput.py: each venue's synthetic stream goes through that venue's real decoder.

`botrun_path` itself asserts that the book ends synced and equal to the generator's, and that the
strategy saw one event per frame, so a decoder change that starts refusing or dropping these
frames fails here rather than producing a flattering figure in the benchmark.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from bench import throughput


@pytest.mark.parametrize("venue", throughput.VENUES)
def test_stream_decodes_to_one_event_per_frame(venue: str) -> None:
    bench = throughput.STREAMS[venue](3_000, 1)
    assert len(bench.frames) == 3_000
    assert throughput.botrun_path(bench) > 0


@pytest.mark.parametrize("venue", throughput.VENUES)
def test_streams_are_seeded(venue: str) -> None:
    make = throughput.STREAMS[venue]
    assert make(500, 3).frames == make(500, 3).frames
    assert make(500, 3).frames != make(500, 4).frames


@pytest.mark.parametrize("visible", [None, 20])
def test_book_walk_keeps_about_200_levels_and_15_percent_deletes(visible: int | None) -> None:
    walk = throughput.BookWalk(random.Random(1), mid=100_000, max_lots=1_000, visible=visible)
    deletes = sum(walk.step()[2] == 0 for _ in range(20_000))
    assert 0.13 < deletes / 20_000 < 0.17
    assert min(len(walk.bids), len(walk.asks)) > 120
    assert max(walk.bids) < min(walk.asks)


def test_a_frame_the_decoder_drops_fails_the_run() -> None:
    bench = throughput.powertrade_stream(200, 1)
    # Power.Trade drops a frame identical to the one before it (one message delivered twice)
    bench.frames[100] = bench.frames[99]
    with pytest.raises(AssertionError):
        throughput.botrun_path(bench)


def test_paxos_stream_unchanged() -> None:
    # figures stay comparable with earlier runs only while the Paxos stream is the same
    snapshot, frames = throughput.make_stream(1_000, 7)
    digest = hashlib.sha256(snapshot.encode() + b"".join(frames)).hexdigest()
    assert digest == "c4462dc71405863c5222c1c0fb52a503f8bf5595639d089a95eb32acb68a0acb"

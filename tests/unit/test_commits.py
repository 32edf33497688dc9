"""A source offset is committed only past records that were folded (stream/commits.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from intervaltree import IntervalTree

from processors.stream.commits import GaplessConsumer, unfolded_head
from processors.stream.processor import Processor
from runtime.catalog import load_catalog
from runtime.settings import Settings

RAW = TP("store.app_store.notifications", 0)


@pytest.mark.parametrize(
    ("head", "first", "gaps", "unfolded"),
    [
        (100, 100, [], False),  # the run starts where the commit stands
        (100, 101, [], True),  # the record at 100 was read and never folded
        (100, 150, [], True),
        (100, 150, [(100, 150)], False),  # the log holds nothing there (compaction)
        (100, 150, [(100, 120), (120, 150)], False),
        (100, 150, [(100, 120), (121, 150)], True),  # 120 is missing
        (0, 1, [], True),  # at the start of a partition too
        (0, 0, [], False),
    ],
)
def test_an_unfolded_head_is_an_offset_neither_acknowledged_nor_absent(
    head: int, first: int, gaps: list[tuple[int, int]], unfolded: bool
) -> None:
    assert unfolded_head(head, first, gaps) is unfolded


def consumer(gapless: bool) -> Any:
    """Faust's Kafka consumer, or ours, with only the offset bookkeeping a commit reads
    (made without its service: nothing connects)."""
    kind = GaplessConsumer if gapless else faust_aiokafka.Consumer
    made: Any = object.__new__(kind)
    made._acked = defaultdict(list)
    made._acked_index = defaultdict(set)
    made._gap = defaultdict(IntervalTree)
    made._committed_offset = defaultdict(lambda: None)
    if gapless:
        made.unfolded, made.log_start = {}, {}
    return made


def test_the_worker_consumes_through_the_gapless_consumer() -> None:
    processor = Processor(Settings(), load_catalog(), "127.0.0.1:9")
    assert processor.app.transport.Consumer is GaplessConsumer


def acked(consumer: Any, committed: int | None, offsets: list[int]) -> None:
    consumer._committed_offset[RAW] = committed
    consumer._acked[RAW] = list(offsets)
    consumer._acked_index[RAW] = set(offsets)


def test_faust_alone_commits_past_a_record_it_never_acknowledged() -> None:
    """Why `GaplessConsumer` exists: committed at 100 (the next offset to read), 100 never
    acknowledged, 101-103 acknowledged: Faust commits 104, and 100 is never read again."""
    stock = consumer(gapless=False)
    acked(stock, 100, [101, 102, 103])
    assert stock._new_offset(RAW) == 104
    # Nothing committed yet: no check at all.
    acked(stock, None, [5, 6])
    assert stock._new_offset(RAW) == 7


def test_the_gapless_consumer_waits_for_the_record_and_asks_for_it_again() -> None:
    gapless = consumer(gapless=True)
    assert isinstance(gapless, GaplessConsumer)
    acked(gapless, 100, [101, 102, 103])
    assert gapless._new_offset(RAW) is None
    assert gapless.unfolded == {RAW: 100}
    # Read again and folded: the whole run commits.
    gapless._acked[RAW].append(100)
    gapless._acked_index[RAW].add(100)
    assert gapless._new_offset(RAW) == 104


def test_a_partition_with_nothing_committed_commits_from_its_first_offset() -> None:
    gapless = consumer(gapless=True)
    acked(gapless, None, [5, 6])
    assert gapless._new_offset(RAW) is None
    assert gapless.unfolded == {RAW: 0}
    # Its log starts at 5 (older records deleted by retention): 5 on is all there is.
    gapless.log_start[RAW] = 5
    acked(gapless, None, [5, 6])
    assert gapless._new_offset(RAW) == 7
    acked(gapless, 7, [7, 8])
    assert gapless._new_offset(RAW) == 9


def test_offsets_the_log_does_not_hold_are_no_hole() -> None:
    gapless = consumer(gapless=True)
    acked(gapless, 100, [110, 111])
    gapless._gap[RAW].addi(100, 110)
    assert gapless._new_offset(RAW) == 112
    assert gapless.unfolded == {}


async def test_a_seek_runs_on_the_consumers_own_thread() -> None:
    """aiokafka's fetcher, on the consumer thread, crashes on a seek made from another."""
    calls: list[tuple[str, Any]] = []

    class Kafka:
        def seek(self, tp: TP, offset: int) -> None:
            calls.append(("seek", (tp, offset)))

    class Thread:
        def _ensure_consumer(self) -> Kafka:
            return Kafka()

        async def call_thread(self, method: Any, *args: Any) -> None:
            calls.append(("on the consumer thread", method.__name__))
            method(*args)

    gapless = GaplessConsumer.__new__(GaplessConsumer)
    gapless._thread = Thread()  # type: ignore[assignment]
    await gapless._seek(RAW, 41)
    assert calls == [("on the consumer thread", "seek"), ("seek", (RAW, 41))]

"""Source offsets committed only past records that were folded.

Faust commits a partition up to the first run of consecutive acknowledged offsets. It
checks that run against the committed offset (the next one to read) only for a distance
of two or more, and not at all while nothing above offset 0 was committed
(`faust/transport/consumer.py`, `_new_offset`: `if committed: if min(acked) - committed >
1`). A record taken at the committed offset but never acknowledged (dropped from a
stream's queue when a rebalance ends, which happens after a worker is killed) is then
committed past, and its input is lost: one record per partition, between neighbours
that were folded.

`GaplessConsumer` refuses such a commit: a partition commits only from its committed
offset on, every offset in between acknowledged (or one the log does not hold, which
Faust records as a gap). A partition refused is remembered in `unfolded`, with the
offset to read again from; the worker seeks it there (the folds know what they have
seen, so the records read twice change nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


def unfolded_head(head: int, first: int, gaps: Iterable[tuple[int, int]]) -> bool:
    """Whether an offset in [head, first) was read but never acknowledged: one not covered
    by the gaps, the ranges [begin, end) the log does not hold."""
    at = head
    for begin, end in sorted(gaps):
        if at >= first or begin > at:
            break
        at = max(at, end)
    return at < first


class GaplessConsumer(faust_aiokafka.Consumer):
    """Faust's Kafka consumer, committing nothing past an offset that was not folded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Partitions whose commit waits for a record to be read again: where from.
        self.unfolded: dict[TP, int] = {}
        # The first offset each partition holds, for a partition with nothing committed.
        self.log_start: dict[TP, int] = {}

    async def _seek(self, partition: TP, offset: int) -> None:
        """Seek on the consumer's own thread. aiokafka's fetcher runs there and is not safe
        against a seek made from another: it loses a partition's buffer mid-read and
        crashes (`KeyError` in `fetched_records`), and the worker reads nothing more."""
        thread: Any = self._thread
        await thread.call_thread(thread._ensure_consumer().seek, partition, offset)

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if acked:
            committed = self._committed_offset[tp]
            head = committed if committed is not None else self.log_start.get(tp, 0)
            gaps = ((interval.begin, interval.end) for interval in self._gap[tp])
            if unfolded_head(head, min(acked), gaps):
                self.unfolded[tp] = head
                return None
        offset: int | None = super()._new_offset(tp)
        return offset


class GaplessTransport(faust_aiokafka.Transport):
    """Faust's Kafka transport with `GaplessConsumer` as its consumer."""

    Consumer = GaplessConsumer


def install(app: Any) -> None:
    """Make `app` consume through `GaplessConsumer` (before its consumer exists)."""
    app.transport = GaplessTransport(app.conf.broker_consumer, app)

"""Faust baselines on the same input: per-event table writes, or an agent doing nothing.

python -m bench.naive_faust BOOTSTRAP TOPIC APP_ID EXPECTED [naive|empty]

- naive: reads, folds and writes its table per event (no batching);
- empty: takes batches and does nothing with them: what Faust itself costs per record.
"""

from __future__ import annotations

import os
import sys
import time

import faust
import orjson

from runtime.kafka import faust_settings, tune_faust_fetches
from runtime.settings import BrokerFlavor


def main() -> None:
    bootstrap, topic_name, app_id, expected = (
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]),
    )
    mode = sys.argv[5] if len(sys.argv) > 5 else "naive"
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=True,
        **faust_settings(BrokerFlavor.TANSU),
    )
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, value_serializer="raw")
    table = app.Table(f"{app_id}-revenue", default=float, partitions=8)
    seen = {"n": 0, "start": 0.0}

    async def tune() -> None:  # the worker's fetch wait on this broker, as it sets it
        tune_faust_fetches(app, BrokerFlavor.TANSU)

    app.timer(0.05)(tune)

    def count(n: int) -> None:
        if seen["n"] == 0:
            seen["start"] = time.perf_counter()
        seen["n"] += n
        if seen["n"] >= expected:
            elapsed = time.perf_counter() - seen["start"]
            print(f"{expected} {elapsed:.3f}", flush=True)
            os._exit(0)  # the figure is out; no need for an orderly shutdown

    if mode == "empty":

        @app.agent(topic)
        async def nothing(stream):  # type: ignore[no-untyped-def]
            async for events in stream.take_events(1000, within=0.02):
                count(len(events))

    else:

        @app.agent(topic)
        async def fold(stream):  # type: ignore[no-untyped-def]
            async for key, value in stream.items():
                event = orjson.loads(value)
                table[key] = table[key] + float(
                    event["transaction"]["price_usd"]
                )  # one write per event
                count(1)

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()

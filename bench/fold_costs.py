"""Where a stream worker's time per event goes, measured in process on real states.

    python -m bench.fold_costs [--events 20000] [--profiles 2000]

Folds synthetic renewals through the in-memory ledger (the same pure folds the worker
runs), then times, on the states and outputs that left, each step the worker adds per
event: decoding the input, encoding what it publishes, the snapshot view, and the state
written to the changelogs. Each line is microseconds per item; the first, the fold itself,
is the baseline the others compare with. The garbage collector keeps a worker's pace.
Every step but decoding grows with a profile's history (`--events / --profiles` renewals
each).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import TypeAdapter

from bench.traffic import renewals
from processors.core.ledger import Ledger
from processors.core.view import profile_view
from processors.stream.codecs import encode_state
from runtime.collector import collect_seldom
from schemas.messages import ChainMessage
from schemas.state import ChainState, ProfileState


def per_item(step: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Microseconds per item of `step`."""
    started = time.perf_counter()
    for item in items:
        step(item)
    return (time.perf_counter() - started) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--profiles", type=int, default=2_000)
    args = parser.parse_args()
    print(f"$ python -m bench.fold_costs --events {args.events} --profiles {args.profiles}")
    events = list(renewals(args.events, args.profiles))
    collect_seldom()  # as in a worker
    ledger = Ledger()
    fold = per_item(ledger.submit, events)
    chains = list(ledger.chains.values())
    states = [s for s in ledger.profiles.values() if s.as_of is not None]
    # Timed once: a second view of the same state would find its readings remembered.
    views: list[Any] = []
    view = per_item(lambda s: views.append(profile_view(s, s.as_of, ledger.config)), states)
    adapter: TypeAdapter[Any] = TypeAdapter(ChainMessage)
    rows = [
        ("fold: chain and profile, events published (baseline)", fold),
        (
            "decode and validate a store event",
            per_item(adapter.validate_json, [e.model_dump_json() for e in events]),
        ),
        ("encode an integration event", per_item(lambda e: e.model_dump_json(), ledger.published)),
        ("profile view for a snapshot", view),
        ("encode a snapshot", per_item(lambda v: v.model_dump_json(), views)),
        ("encode a chain state for its changelog", per_item(encode_state, chains)),
        ("encode a profile state for its changelog", per_item(encode_state, states)),
        (
            "decode a chain state (recovery)",
            per_item(ChainState.model_validate_json, [encode_state(c) for c in chains]),
        ),
        (
            "decode a profile state (recovery)",
            per_item(ProfileState.model_validate_json, [encode_state(s) for s in states]),
        ),
    ]
    print(f"\n{'step':55} {'µs':>8} {'of fold':>8}")
    for name, micros in rows:
        print(f"{name:55} {micros:8.1f} {micros / fold:8.2f}")
    print(f"\n{len(ledger.published) / len(events):.2f} integration events per store event")


if __name__ == "__main__":
    main()

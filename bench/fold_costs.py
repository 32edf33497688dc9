"""Where a stream worker's time per event goes, at several lengths of a profile's history.

    python -m bench.fold_costs [--profiles 2000] [--renewals 1,10,40,100]

For each history length R, it folds R - 1 monthly renewals for every profile through the
in-memory ledger (the same pure folds the worker runs), then takes every profile's R-th
renewal through each step a worker runs for it, timing each: decoding the store event,
the chain fold, the change message to the profile (encoded, then decoded by the profile
agent), the profile fold with its integration events, the snapshot view and its
encoding, and the states and records written to the changelogs (with their bytes).

The target figure is the fold (chain, profile, integration events) + the snapshot view +
the state encoding; the baseline is the same figure at the first history length, so the
last column says how the cost grows with history. The garbage collector keeps a worker's
pace.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, TypeVar

from bench.traffic import renewals
from processors.core.chain import ChainOutcome, evolve_chain
from processors.core.facts import FactBook
from processors.core.integration import published
from processors.core.ledger import Ledger
from processors.core.profile import ProfileOutcome, evolve_profile
from processors.core.view import profile_view
from processors.stream import codecs
from processors.stream.codecs import LAYOUTS
from runtime.collector import collect_seldom
from schemas.base import from_json, to_json
from schemas.events import StoreEvent
from schemas.messages import ChainChanged, ProfileMessage

STEPS = (
    "decode the store event",
    "chain fold",
    "encode the change for the profile",
    "decode the change (profile agent)",
    "profile fold",
    "integration events: build",
    "integration events: encode",
    "profile view for the snapshot",
    "encode the snapshot",
    "encode chain state and facts",
    "encode profile state and payments",
)
T = TypeVar("T")

TARGET = (
    "chain fold",
    "profile fold",
    "integration events: build",
    "profile view for the snapshot",
    "encode chain state and facts",
    "encode profile state and payments",
)


class Clock:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STEPS, 0.0)

    def time(self, step: str, work: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        result = work(*args)
        self.seconds[step] += time.perf_counter() - started
        return result


def _chain_records(chain: ChainOutcome) -> list[bytes]:
    return [
        LAYOUTS["chains"].encode_head(chain.state),
        *map(codecs.encode, chain.transactions),
        *map(codecs.encode, chain.observations),
    ]


def _profile_records(outcome: ProfileOutcome) -> list[bytes]:
    return [LAYOUTS["profiles"].encode_head(outcome.state), *map(codecs.encode, outcome.payments)]


def _encode_all(records: list[Any]) -> list[bytes]:
    return [to_json(r) for r in records]


def measure(history: int, profiles: int) -> tuple[dict[str, float], float, float]:
    """Microseconds per event of each step at the `history`-th renewal, and the changelog
    bytes the chain and the profile write for it."""
    events = list(renewals(history * profiles, profiles))
    ledger = Ledger()
    ledger.submit_all(events[:-profiles])
    config = ledger.config
    clock = Clock()
    chain_bytes = profile_bytes = 0
    for sent in events[-profiles:]:
        event = clock.time("decode the store event", from_json, StoreEvent, to_json(sent))
        key = event.chain_key
        book = ledger.facts.setdefault(key, FactBook())
        chain = clock.time("chain fold", evolve_chain, ledger.chains.get(key), event, book, config)
        assert chain.state is not None
        ledger.chains[key] = chain.state
        book.keep(chain.transactions, chain.observations)
        written = clock.time("encode chain state and facts", _chain_records, chain)
        chain_bytes += sum(map(len, written))
        for told in chain.to_profiles:
            wire = clock.time("encode the change for the profile", to_json, told)
            change = clock.time(
                "decode the change (profile agent)", from_json, ProfileMessage, wire
            )
            assert isinstance(change, ChainChanged)
            before = ledger.profiles.get(change.profile_id)
            outcome = clock.time("profile fold", evolve_profile, before, change, change.at, config)
            ledger.profiles[change.profile_id] = outcome.state
            out = clock.time(
                "integration events: build", published, outcome.state, outcome.events, config
            )
            clock.time("integration events: encode", _encode_all, out)
            state = outcome.state
            view = clock.time(
                "profile view for the snapshot", profile_view, state, state.as_of, config
            )
            clock.time("encode the snapshot", to_json, view)
            written = clock.time("encode profile state and payments", _profile_records, outcome)
            profile_bytes += sum(map(len, written))
    micros = {step: seconds / profiles * 1e6 for step, seconds in clock.seconds.items()}
    return micros, chain_bytes / profiles, profile_bytes / profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=2_000)
    parser.add_argument("--renewals", default="1,10,40,100")
    args = parser.parse_args()
    lengths = [int(n) for n in args.renewals.split(",")]
    print(f"$ python -m bench.fold_costs --profiles {args.profiles} --renewals {args.renewals}")
    collect_seldom()  # as in a worker
    results = [(n, *measure(n, args.profiles)) for n in lengths]
    header = "".join(f"{f'R={n}':>9}" for n in lengths)
    print(f"\nµs per event at its profile's R-th renewal\n{'step':40}{header}")
    for step in STEPS:
        print(f"{step:40}" + "".join(f"{r[1][step]:9.1f}" for r in results))
    totals = [sum(r[1][s] for s in TARGET) for r in results]
    print(f"{'fold + view + state encoding':40}" + "".join(f"{t:9.1f}" for t in totals))
    print(f"{'  of the first length':40}" + "".join(f"{t / totals[0]:9.2f}" for t in totals))
    print(f"{'changelog bytes: chain':40}" + "".join(f"{r[2]:9.0f}" for r in results))
    print(f"{'changelog bytes: profile':40}" + "".join(f"{r[3]:9.0f}" for r in results))


if __name__ == "__main__":
    main()

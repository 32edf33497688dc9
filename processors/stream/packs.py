"""Packs: one Kafka record holding every message one batch sends to one partition.

Faust spends tens of microseconds on each record it consumes, more than a fold step
costs, so the folds send each other packs: the messages a batch addresses to one
partition of an internal topic travel as a single record, a JSON array. A record that
holds a single JSON object is one message, as anyone outside the processor (the dev
command, an operator re-driving a dead letter) would publish it.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

# Kafka refuses records over a megabyte by default; a pack stays well below.
PACK_BYTES = 256 * 1024


class PackError(ValueError):
    """A record that is neither one message nor a pack of messages."""


def is_pack(value: bytes) -> bool:
    return value[:1] == b"["


_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def unpack(value: bytes) -> list[bytes]:
    """The messages of a pack, each as its own JSON (decoded by the caller, one by one)."""
    try:
        return [bytes(item) for item in _ITEMS.decode(value)]
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise PackError(f"a pack must be a JSON array: {error}") from error


def packed(messages: list[bytes]) -> Iterator[bytes]:
    """The messages (JSON each) as packs of at most PACK_BYTES, in order."""
    start, size = 0, 2
    for index, message in enumerate(messages):
        if index > start and size + len(message) + 1 > PACK_BYTES:
            yield b"[" + b",".join(messages[start:index]) + b"]"
            start, size = index, 2
        size += len(message) + 1
    if start < len(messages):
        yield b"[" + b",".join(messages[start:]) + b"]"

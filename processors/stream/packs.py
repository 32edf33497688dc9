"""Packs: one Kafka record holding every message one batch sends to one partition.

Faust spends tens of microseconds on each record it consumes, more than a fold step
costs, so the folds send each other packs: the messages a batch addresses to one
partition of an internal topic travel as a single record, a JSON array. A record that
holds a single JSON object is one message, as anyone outside the processor (the dev
command, an operator re-driving a dead letter) would publish it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

# Kafka refuses records over a megabyte by default; a pack stays well below.
PACK_BYTES = 256 * 1024


class PackError(ValueError):
    """A record that is neither one message nor a pack of messages."""


def is_pack(value: bytes) -> bool:
    return value[:1] == b"["


def unpack(value: bytes) -> list[Any]:
    """The messages of a pack, each as parsed JSON (validated by the caller, one by one)."""
    try:
        messages = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise PackError(f"a pack must be a JSON array: {error}") from error
    if not isinstance(messages, list):
        raise PackError("a pack must be a JSON array")
    return messages


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

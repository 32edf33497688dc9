"""Answers remembered by identity, and ids that stay what they were."""

from __future__ import annotations

from uuid import UUID, uuid5

from processors.core.ids import NAMESPACE, stable_id
from processors.core.recall import recalled


class Box:
    def __init__(self, value: int) -> None:
        self.value = value


def test_an_answer_is_remembered_for_the_same_object_and_instant() -> None:
    asked: list[tuple[int, int]] = []

    @recalled(4)
    def times(box: Box, factor: int) -> int:
        asked.append((box.value, factor))
        return box.value * factor

    one = Box(3)
    assert times(one, 2) == 6
    assert times(one, 2) == 6
    assert times(one, 5) == 15
    # An equal value that is another object is asked again: identity, not equality.
    assert times(Box(3), 2) == 6
    assert asked == [(3, 2), (3, 5), (3, 2)]


def test_remembered_answers_are_bounded() -> None:
    asked: list[int] = []

    @recalled(2)
    def value(box: Box) -> int:
        asked.append(box.value)
        return box.value

    boxes = [Box(n) for n in range(3)]
    for box in boxes:
        value(box)
    value(boxes[0])
    assert asked == [0, 1, 2, 0]


def test_a_remembered_answer_keeps_its_object_so_its_identity_is_not_reused() -> None:
    @recalled(4)
    def value(box: Box) -> int:
        return box.value

    assert value(Box(1)) == 1
    # The first box is kept with its answer: a new one cannot take its id and its answer.
    assert value(Box(2)) == 2


def test_stable_ids_are_uuid5_of_the_joined_parts() -> None:
    me = UUID("0b3c7f8e-1a2b-4c5d-8e9f-001122334455")
    parts = (me, "apple:1000", "renew:2000", "subscription_renewed", 3)
    expected = uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts))
    assert stable_id(*parts) == expected
    assert stable_id(*parts).version == 5
    assert str(stable_id("customer", "user-1")) == str(uuid5(NAMESPACE, "customer\x1fuser-1"))

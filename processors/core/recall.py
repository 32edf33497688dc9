"""Answers about frozen values, remembered by the value's identity.

A fold step, the integration events it emits and the snapshot of its profile ask the same
questions of the same states several times (which chains a profile reads, what a chain
means at an instant, the profile's revenue). The states are frozen, so an answer about one
object at one instant never changes: the last few are kept, with the object itself, so
that its identity cannot be taken by another while the answer is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import update_wrapper
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def recalled(size: int) -> Callable[[F], F]:
    """Remember the last `size` answers of a function of a frozen value and hashable
    arguments, passed by position; the answers must be frozen too."""

    def wrap(question: F) -> F:
        answers: dict[tuple[Hashable, ...], tuple[object, Any]] = {}

        def recall(subject: object, *args: Hashable) -> Any:
            key = (id(subject), *args)
            known = answers.get(key)
            if known is not None and known[0] is subject:
                return known[1]
            answer = question(subject, *args)
            if len(answers) >= size:
                answers.clear()
            answers[key] = (subject, answer)
            return answer

        return cast(F, update_wrapper(recall, question))

    return wrap

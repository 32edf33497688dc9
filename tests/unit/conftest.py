from __future__ import annotations

import pytest

import tests.builders as b


@pytest.fixture
def chain() -> b.Chain:
    return b.Chain()

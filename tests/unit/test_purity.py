"""The pure core and its contracts import no I/O library (DESIGN.md, STYLE.md)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import processors.core
import schemas

# Streaming, database and HTTP libraries.
FORBIDDEN = frozenset(
    [
        "faust",
        "mode",
        "aiokafka",
        "kafka",
        "confluent_kafka",
        "sqlalchemy",
        "psycopg",
        "psycopg2",
        "asyncpg",
        "alembic",
        "httpx",
        "requests",
        "urllib3",
        "aiohttp",
        "fastapi",
        "starlette",
        "uvicorn",
    ]
)


def _modules() -> list[str]:
    found = []
    for package in (schemas, processors.core):
        found.append(package.__name__)
        found += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return found


def test_pure_modules_import_no_io_library() -> None:
    # A fresh interpreter, so that nothing the test runner imported counts.
    script = (
        "import importlib, json, sys\n"
        f"for name in {_modules()!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout
    )
    offending = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert offending == []


def test_the_core_has_modules_to_check() -> None:
    assert {"processors.core.profile", "processors.core.chain", "schemas.events"} <= set(_modules())

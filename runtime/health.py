"""What a process tells its operators, on one port: `/health`, `/ready` and `/metrics`.

`/health` answers 200 while the process runs. `/ready` answers 200 once the process has
recovered and caught up, 503 with the reason until then; the process decides, from its
own event loop, by calling `Health.set`. Everything else is Prometheus' exposition.
The server runs on a thread of its own (prometheus-client's), so a busy event loop does
not stop a scrape or a probe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import make_server

import orjson
from prometheus_client import Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

CONSUMER_LAG = Gauge(
    "subledger_consumer_lag_records",
    "Records between a consumer's position and the end of the partition",
    ["consumer", "topic", "partition"],
)

Start = Callable[[str, list[tuple[str, str]]], Any]


class Health:
    """Readiness of one process, set from its event loop and read by the probe thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reason: str | None = "starting"
        # What an operator should look at though the process is ready (records it could
        # not apply, kept aside), shown with /ready's answer either way.
        self.counts: dict[str, int] = {}

    def set(self, reason: str | None) -> None:
        """`None` is ready; otherwise why not, e.g. "recovering" or "1,204 records behind"."""
        self.reason = reason

    def count(self, name: str, value: int) -> None:
        self.counts = {**self.counts, name: value}

    @property
    def ready(self) -> bool:
        return self.reason is None

    def wsgi(self) -> Callable[[dict[str, Any], Start], Iterable[bytes]]:
        metrics = make_wsgi_app()

        def app(environ: dict[str, Any], start: Start) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/health":
                return _json(start, "200 OK", {"status": "ok", "process": self.name})
            if path == "/ready":
                reason, counts = self.reason, self.counts
                if reason is None:
                    body = {"status": "ready", "process": self.name, **counts}
                    return _json(start, "200 OK", body)
                body = {"status": "not_ready", "process": self.name, "reason": reason, **counts}
                return _json(start, "503 Service Unavailable", body)
            return metrics(environ, start)  # type: ignore[no-any-return]

        return app

    def serve(self, port: int, host: str) -> None:
        """Serve the three paths on a daemon thread, with the server prometheus-client's
        own `start_http_server` uses."""
        server = make_server(
            host, port, self.wsgi(), ThreadingWSGIServer, handler_class=_SilentHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True, name="health").start()


def _json(start: Start, status: str, body: Mapping[str, object]) -> list[bytes]:
    start(status, [("Content-Type", "application/json")])
    return [orjson.dumps(body)]


def lag_reason(behind: int, allowed: int) -> str | None:
    """Ready while at most `allowed` records are left to read."""
    return None if behind <= allowed else f"{behind:,} records behind"

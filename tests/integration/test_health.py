"""Every process answers /health at once, /ready once recovered and caught up, and
serves its metrics, including the consumer lag of what it reads."""

from __future__ import annotations

import time

import httpx

from runtime.broker import free_port
from tests.builders import ALICE, Chain, day
from tests.helpers import create
from tests.integration.stack import Stack


def wait_ready(base: str, timeout: float = 90.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    answer: httpx.Response | None = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{base}/ready", timeout=2)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{base} not ready: {answer.text if answer else 'no answer'}")


async def test_worker_projector_dispatcher_and_api_report_health_and_readiness(
    stack: Stack,
) -> None:
    chain = Chain()
    await stack.publish([create(ALICE, "alice"), chain.buy("t1", day(0), day(30))])
    ports = {role: free_port() for role in ("worker", "projector", "dispatcher")}
    stack.start_worker(metrics_port=str(ports["worker"]))
    stack.start_projector(metrics_port=str(ports["projector"]))
    stack.start_dispatcher(metrics_port=str(ports["dispatcher"]))
    api_port = free_port()
    stack.start_ingress(api_port)

    for role, port in ports.items():
        base = f"http://127.0.0.1:{port}"
        ready = wait_ready(base).json()
        assert (ready["status"], ready["process"]) == ("ready", role)
        # Beside readiness, what an operator should look at: nothing kept aside here.
        assert not any(
            ready.get(name) for name in ("dead_letters", "failed_deliveries", "held_deliveries")
        )
        assert httpx.get(f"{base}/health").json() == {"status": "ok", "process": role}
    api = f"http://127.0.0.1:{api_port}"
    assert wait_ready(api).json() == {"status": "ready", "process": "api"}
    assert httpx.get(f"{api}/health").status_code == 200

    # Caught up: the worker has read both inputs, and says so per partition.
    worker = httpx.get(f"http://127.0.0.1:{ports['worker']}/metrics").text
    lags = [
        line
        for line in worker.splitlines()
        if line.startswith('subledger_consumer_lag_records{consumer="worker"')
    ]
    assert lags, worker[:2000]
    assert all(float(line.rsplit(" ", 1)[1]) <= 1000 for line in lags)
    assert "subledger_events_in_total" in worker
    projector = httpx.get(f"http://127.0.0.1:{ports['projector']}/metrics").text
    assert 'subledger_consumer_lag_records{consumer="projector"' in projector
    assert "subledger_projection_batch_seconds" in projector
    dispatcher = httpx.get(f"http://127.0.0.1:{ports['dispatcher']}/metrics").text
    assert "subledger_webhook_attempts_total" in dispatcher

"""The HTTP service against its own contract, on the whole stack: Schemathesis generates
requests from the served OpenAPI document (valid and invalid ones, every operation) and
checks every answer (no server error, only documented statuses, bodies and headers as
documented, invalid input refused, valid input taken); and a client generated from the
committed document creates a profile, grants it access and reads it back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.app import SPEC_FILE
from runtime.broker import free_port
from tests.apple_signing import SigningAuthority
from tests.integration.stack import Stack
from tests.integration.test_ingress import apple_settings
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

KEY = "secret_fuzz_test"
AUTH = {"Authorization": f"Api-Key {KEY}"}
INSTALLATION = {"installation_meta": {"device_id": "device-1", "platform": "iOS"}}
CONFIG = Path(__file__).with_name("schemathesis.toml")
BIN = Path(sys.executable).parent


@pytest.fixture
async def service(stack: Stack, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    stack.start_ingress(
        port,
        api_keys=f'["{KEY}"]',
        read_your_writes_seconds="3",
        # Every store configured, so that its webhook checks what it is sent.
        **apple_settings(tmp_path, SigningAuthority()),
        stripe_webhook_secrets='["whsec_fuzz"]',
        google_play_package="com.example.fuzz",
        google_push_secret="fuzz-push-secret",
        # Never asked: no push gets past the secret.
        google_play_api_endpoint="http://127.0.0.1:9",
    )
    stack.start_worker()
    stack.start_projector()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http


async def _profile(http: httpx.AsyncClient, customer: str) -> str:
    created = await http.post(
        "/api/v2/server-side-api/profile/",
        headers={**AUTH, "adapty-customer-user-id": customer},
        json=INSTALLATION,
    )
    assert created.status_code in (200, 202), created.text
    profile: str = created.json().get("data", created.json())["profile_id"]
    # The first write may outrun a worker still joining its group: wait until it shows.
    for _ in range(120):
        if (await http.get(f"/api/v1/profiles/{profile}", headers=AUTH)).status_code == 200:
            return profile
        await asyncio.sleep(0.5)
    raise AssertionError(f"profile {profile} never reached the read model")


async def test_every_operation_holds_to_its_documented_contract(
    service: httpx.AsyncClient, receiver: Receiver, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SUBLEDGER_FUZZ_KEY": KEY,
        "SUBLEDGER_FUZZ_PROFILE": await _profile(service, "fuzzed"),
        "SUBLEDGER_FUZZ_DOOMED": await _profile(service, "doomed"),
        "SUBLEDGER_FUZZ_RECEIVER": receiver.url,
    }
    # Asynchronously: the receiver answering the handshake runs on this event loop.
    run = await asyncio.create_subprocess_exec(
        str(BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        str(service.base_url.join("/openapi.json")),
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "10",
        "--seed",
        "20261203",
        "--workers",
        "2",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(run.communicate(), timeout=600)
    report = output.decode()
    assert run.returncode == 0, report[-20000:]
    # Every operation in the document was exercised, not skipped.
    document = (await service.get("/openapi.json")).json()
    operations = sum(len(ops) for ops in document["paths"].values())
    assert f"Tested: {operations}" in report, report[-5000:]


async def test_a_client_generated_from_the_committed_document_works(
    service: httpx.AsyncClient, tmp_path: Path
) -> None:
    generated = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(SPEC_FILE),
            "--output-path",
            str(tmp_path / "client"),
            "--meta",
            "none",
        ],
        # It formats what it writes with ruff, from the PATH.
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    script = tmp_path / "use_client.py"
    script.write_text(USE_CLIENT)
    used = subprocess.run(
        [sys.executable, str(script), str(service.base_url).rstrip("/"), KEY],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert used.returncode == 0, used.stdout + used.stderr
    assert used.stdout.split() == ["premium", "True", "generated-1"], used.stdout


# What an integrator writes with the generated package: create a profile, grant it an
# access level, read it back through the query API.
USE_CLIENT = """
import sys
from uuid import uuid4

from client import AuthenticatedClient
from client.api.default import (
    create_profile_api_v2_server_side_api_profile_post as create,
    get_profile_api_v1_profiles_profile_id_get as read,
    grant_api_v2_server_side_api_purchase_profile_grant_access_level_post as grant,
)
from client.models import GrantRequest, InstallationMetaBody, ProfileRequest

base_url, key = sys.argv[1:]
api = AuthenticatedClient(base_url=base_url, token=key, prefix="Api-Key")
made = create.sync(
    client=api,
    body=ProfileRequest(installation_meta=InstallationMetaBody(device_id=str(uuid4()))),
    adapty_customer_user_id="generated-1",
)
profile = made.data.profile_id
granted = grant.sync(
    client=api,
    body=GrantRequest(access_level_id="premium"),
    adapty_profile_id=str(profile),
)
(level,) = granted.data.access_levels
read_back = read.sync(client=api, profile_id=profile)
shown = read_back.data
print(level.access_level_id, shown.access_levels[0].is_active, shown.customer_user_id)
"""


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


async def test_a_refused_write_changes_nothing(service: httpx.AsyncClient) -> None:
    """Any JSON body to any server-side write: never a server error, and when refused, the
    profile it names is as it was."""
    document = (await service.get("/openapi.json")).json()
    writes = sorted(
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        # Deleting takes no body: whatever is sent, the profile goes.
        if "server-side-api" in path
        and method != "get"
        and (method, path) != ("delete", "/api/v2/server-side-api/profile/")
    )
    profile = await _profile(service, "property")
    headers = {**AUTH, "adapty-profile-id": profile}
    base = str(service.base_url)

    def version(http: httpx.Client) -> int:
        answer = http.get(f"/api/v1/profiles/{profile}", headers=AUTH)
        return int(answer.json()["data"]["version"]) if answer.status_code == 200 else -1

    def settled(http: httpx.Client) -> int:
        # A write taken may still be on its way to the read model: wait until it shows.
        seen = version(http)
        while True:
            time.sleep(0.3)
            now = version(http)
            if now == seen:
                return now
            seen = now

    def check() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            state = {"version": settled(http)}

            @settings(max_examples=60, deadline=None, database=None, derandomize=True)
            @given(operation=st.sampled_from(writes), body=JSON)
            def any_body(operation: tuple[str, str], body: object) -> None:
                method, path = operation
                path = path.replace("{note_id}", "note-1")
                answer = http.request(method, path, headers=headers, json=body)
                assert answer.status_code < 500, (method, path, body, answer.text)
                if answer.status_code >= 400:
                    assert version(http) == state["version"], (method, path, body, answer.text)
                else:
                    state["version"] = settled(http)

            any_body()

    await asyncio.to_thread(check)

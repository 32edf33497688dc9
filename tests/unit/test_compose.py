"""docker-compose.yml runs what this checkout builds: real commands, real settings, and a
Prometheus that scrapes every process where it serves its metrics.

`docker compose config` checks the file against the Compose specification where the
client exists (.ci/run); these check what it cannot: that the file fits subledger.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cli.main import app
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SUBLEDGER = ("api", "worker", "projector", "dispatcher")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())  # type: ignore[no-any-return]


def commands() -> set[str]:
    return {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}


def test_every_subledger_service_runs_a_command_of_this_build() -> None:
    services = load("docker-compose.yml")["services"]
    assert {"kafka", "postgres", "prometheus", *SUBLEDGER} <= set(services)
    for name in SUBLEDGER:
        service = services[name]
        assert service["build"] == "."
        assert service["command"][0] in commands(), name
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_setting_it_passes_is_one_subledger_reads() -> None:
    services = load("docker-compose.yml")["services"]
    fields = set(Settings.model_fields)
    for name in SUBLEDGER:
        for variable in services[name]["environment"]:
            assert variable.startswith("SUBLEDGER_"), variable
            assert variable.removeprefix("SUBLEDGER_").lower() in fields, variable
        env = services[name]["environment"]
        assert env["SUBLEDGER_BROKER_FLAVOR"] == "kafka"
        assert env["SUBLEDGER_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_kafka_runs_in_kraft_mode_without_topic_auto_creation() -> None:
    kafka = load("docker-compose.yml")["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_prometheus_scrapes_each_process_where_it_serves_metrics() -> None:
    services = load("docker-compose.yml")["services"]
    volumes = services["prometheus"]["volumes"]
    (mount,) = [v for v in volumes if v.endswith("prometheus.yml:ro")]
    config = load(mount.split(":")[0].removeprefix("./"))
    jobs = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert set(jobs) == set(SUBLEDGER)
    for name in SUBLEDGER:
        assert jobs[name]["names"] == [name]
        service = services[name]
        if name == "api":
            served = int(service["command"][service["command"].index("--port") + 1])
        else:
            served = int(service["environment"]["SUBLEDGER_METRICS_PORT"])
            assert service["environment"]["SUBLEDGER_METRICS_HOST"] == "0.0.0.0"
        assert jobs[name]["port"] == served, name
        probe = " ".join(service["healthcheck"]["test"])
        assert re.search(rf":{served}/health", probe), name


def test_the_image_holds_every_package_and_the_topic_catalog() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.M))
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()} - {
        "tests",
        "bench",
    }
    assert packages <= copied
    assert "topics.yaml" in copied

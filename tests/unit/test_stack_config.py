"""Generated configs of the local stack: supervisord, Prometheus, Alertmanager, Kafka, topics, doctor parsing."""

from __future__ import annotations

import configparser
import json
import shlex
from pathlib import Path

import pytest
import yaml

from berg.kafka.topics import DEAD_LETTER, PLATFORM_TOPICS, topic_specs
from berg_app.stack.doctor import java_major_version
from berg_app.stack.kafka import write_broker_config
from berg_app.stack.layout import StateLayout
from berg_app.stack.local import LocalStack, StackError
from berg_app.stack.monitoring_config import (
    BERG_SCRAPE_JOB,
    alertmanager_config,
    prometheus_config,
    register_scrape_target,
    unregister_scrape_target,
    write_yaml,
)
from berg_app.stack.services import service_programs
from berg_app.stack.settings import PortTable, StackSettings
from berg_app.stack.supervisor import Program, render_config
from berg_clicks.use_case import clicks
from berg_fraud.use_case import fraud

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(
        state_dir=tmp_path, ports=PortTable(kafka=1001, kafka_controller=1002, prometheus=1003, alertmanager=1004)
    )


@pytest.fixture
def layout(settings: StackSettings) -> StateLayout:
    layout = StateLayout.at(settings.state_dir)
    layout.create()
    return layout


def test_supervisor_config_quotes_arguments_and_escapes_percent(layout: StateLayout) -> None:
    program = Program("kafka", ["java", "-cp", "/opt/libs/*", "--pattern=%d %p", "it's"], {"KEY": "50%"})
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(render_config(layout, [program]))
    section = parser["program:kafka"]
    # supervisord expands %(..)s and then splits with shlex: undo both to get the argv back.
    assert shlex.split(section["command"].replace("%%", "%")) == list(program.command)
    assert section["stopasgroup"] == "true"
    assert section["killasgroup"] == "true"
    assert section["stdout_logfile"] == str(layout.log_file("kafka"))
    assert section["environment"] == 'KEY="50%%"'


def test_prometheus_config_scrapes_the_stack_and_registered_services(
    settings: StackSettings, layout: StateLayout
) -> None:
    config = prometheus_config(settings, layout)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["127.0.0.1:1003"]
    assert jobs[BERG_SCRAPE_JOB]["file_sd_configs"][0]["files"] == [str(layout.scrape_targets / "*.json")]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:1004"]


def test_scrape_targets_are_registered_and_removed(layout: StateLayout) -> None:
    path = register_scrape_target(layout, "ingestion", "127.0.0.1:8101", {"model": "fraud"})
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:8101"], "labels": {"service": "ingestion", "model": "fraud"}}
    ]
    unregister_scrape_target(layout, "ingestion")
    assert not path.exists()


def test_alertmanager_config_groups_by_alert_and_model(
    tmp_path: Path, settings: StackSettings, layout: StateLayout
) -> None:
    path = write_yaml(tmp_path / "alertmanager.yml", alertmanager_config(settings, layout))
    config = yaml.safe_load(path.read_text())
    assert config["route"]["group_by"] == ["alertname", "model"]
    routes = [config["route"], *config["route"]["routes"]]
    assert {receiver["name"] for receiver in config["receivers"]} == {route["receiver"] for route in routes}


def test_the_broker_is_a_single_kraft_node_on_loopback(settings: StackSettings, layout: StateLayout) -> None:
    lines = write_broker_config(settings, layout).read_text().splitlines()
    properties = dict(line.split("=", 1) for line in lines)
    assert properties["process.roles"] == "broker,controller"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:1001,CONTROLLER://127.0.0.1:1002"
    assert properties["auto.create.topics.enable"] == "false"


def test_every_topic_of_the_use_case_and_the_platform_gets_the_default_or_its_override() -> None:
    use_case = clicks()
    specs = {spec.name: spec for spec in topic_specs(use_case.topics, use_case.raw_topics, 3, {"impressions.raw": 6})}
    assert list(specs) == [
        "impressions.raw",
        "clicks.raw",
        "impressions.ingested",
        "clicks.ingested",
        "impressions.valid",
        "clicks.valid",
        *PLATFORM_TOPICS,
    ]
    assert specs["impressions.raw"].partitions == 6
    assert specs["clicks.raw"].partitions == 3
    assert "retention.ms" in specs[DEAD_LETTER].configs
    large = {name for name, spec in specs.items() if "max.message.bytes" in spec.configs}
    assert large == {"impressions.raw", "clicks.raw", DEAD_LETTER}


def test_an_override_for_an_unknown_topic_is_refused() -> None:
    use_case = fraud()
    with pytest.raises(ValueError, match=r"transactions\.rwa"):
        topic_specs(use_case.topics, use_case.raw_topics, 3, {"transactions.rwa": 6})


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no java here", None),
    ],
)
def test_java_versions_are_parsed(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


def test_a_state_dir_too_deep_for_a_socket_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BERG_STATE_DIR"):
        StateLayout.at(tmp_path / ("x" * 120)).create()


def test_one_setting_gives_every_service_its_use_case(
    tmp_path: Path, layout: StateLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BERG_USE_CASE", raising=False)  # the root conftest's default
    unset = service_programs(StackSettings(state_dir=tmp_path), layout)
    assert unset, "the stack runs services"
    assert all("BERG_USE_CASE" not in program.environment for program in unset), "unset: the only one installed"
    chosen = service_programs(StackSettings(state_dir=tmp_path, use_case="clicks"), layout)
    assert {program.name: program.environment["BERG_USE_CASE"] for program in chosen} == {
        program.name: "clicks" for program in unset
    }


def test_up_refuses_a_use_case_that_is_not_installed_in_one_line_before_starting_anything(tmp_path: Path) -> None:
    stack = LocalStack(StackSettings(state_dir=tmp_path, use_case="weather"))
    with pytest.raises(StackError, match=r"^BERG_USE_CASE: no use case named 'weather' is installed") as raised:
        stack.up()
    assert "\n" not in str(raised.value)
    assert not stack.is_up()

"""Fetching Kafka's jars with Maven: the command's checksum policy and what a failed fetch leaves behind."""

from __future__ import annotations

import os
import shlex
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree

import pytest

from berg_app.stack.kafka import KafkaRuntimeError, fetch_kafka_jars, jars_present
from berg_app.stack.layout import StateLayout
from berg_app.stack.settings import StackSettings

pytestmark = pytest.mark.unit

KAFKA_VERSION = "4.1.0"


def _install_mvn(folder: Path, body: str) -> Path:
    """An ``mvn`` on PATH that records its arguments (one a line) in ``folder/args`` and then runs ``body``."""
    folder.mkdir()
    args = folder / "args"
    script = folder / "mvn"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(args))}\n{body}\n')
    script.chmod(0o755)
    return args


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(state_dir=tmp_path / "state", kafka_home=None, kafka_version=KAFKA_VERSION)


@pytest.fixture
def layout(settings: StackSettings) -> StateLayout:
    layout = StateLayout.at(settings.state_dir)
    layout.create()
    return layout


def test_maven_is_told_to_fail_on_a_checksum_mismatch(
    tmp_path: Path, settings: StackSettings, layout: StateLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Maven only warns on a bad checksum unless told otherwise: the command must tell it."""
    writes_jar = (
        'for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac; done\n'
        f'mkdir -p "$out" && touch "$out/kafka_2.13-{KAFKA_VERSION}.jar"'
    )
    args = _install_mvn(tmp_path / "bin", writes_jar)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    libs = fetch_kafka_jars(settings, layout)

    assert jars_present(libs)
    recorded = args.read_text().splitlines()
    assert "--strict-checksums" in recorded, recorded
    assert not {"--lax-checksums", "-c"} & set(recorded)
    assert "dependency:copy-dependencies" in recorded


def test_a_refused_checksum_leaves_no_cached_jars(
    tmp_path: Path, settings: StackSettings, layout: StateLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuses = "echo '[ERROR] Checksum validation failed, expected 0a1b but is 9f8e' >&2\nexit 1"
    _install_mvn(tmp_path / "bin", refuses)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(KafkaRuntimeError, match="Checksum validation failed"):
        fetch_kafka_jars(settings, layout)

    assert not layout.kafka_libs(KAFKA_VERSION).exists()


def test_the_runtime_pom_is_well_formed() -> None:
    """Maven refuses a pom that is not XML (a ``--`` inside its comment once broke every fresh machine's fetch,
    which the stand-in ``mvn`` above cannot notice)."""
    pom = resources.files("berg_app.stack") / "resources" / "kafka-runtime.pom.xml"
    project = ElementTree.fromstring(pom.read_bytes())
    assert project.tag == "{http://maven.apache.org/POM/4.0.0}project"
